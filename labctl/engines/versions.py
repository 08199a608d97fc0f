"""The Docker versions labctl can build from source, and what identifies each one.

A source archive is accepted for a version only if the commit id git embedded in it (the pax
global header ``comment`` that ``git get-tar-commit-id`` reads) is the version's tag commit and
its files hash to that commit's tree: a file name or a URL proves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .gittree import commit_tree, git_object_id

DOCKER_PKG = "github.com/docker/docker"


@dataclass(frozen=True)
class KnownVersion:
    version: str
    #: the full commit id of the release tag
    commit: str
    #: where a user with internet gets the tag's source (a ``git archive`` made by GitHub)
    url: str
    #: Go build tags of the era's static binary bundle, plus exclude_graphdriver_btrfs: its
    #: btrfs driver does not compile against today's btrfs headers (`args.name` undefined)
    build_tags: tuple[str, ...]
    #: the raw commit object (`git cat-file commit <commit>`): its sha1 is the commit id, and
    #: it names the tree every source archive's content must hash to
    commit_object: bytes

    @property
    def short_commit(self) -> str:
        """The 7-digit id upstream stamped into the binary (``docker -v``: "build a8a31ef")."""
        return self.commit[:7]

    @property
    def tree(self) -> str:
        """The commit's tree id, trusted only because the commit object hashes to the commit."""
        if git_object_id("commit", self.commit_object) != self.commit:
            raise ValueError(f"the commit object of {self.version} is not {self.commit}")
        return commit_tree(self.commit_object)

    @property
    def expected_version_line(self) -> str:
        return f"Docker version {self.version}, build {self.short_commit}"


KNOWN_VERSIONS: dict[str, KnownVersion] = {
    "1.5.0": KnownVersion(
        version="1.5.0",
        commit="a8a31eff10544860d2188dddabdee4d727545796",
        url="https://github.com/moby/moby/archive/refs/tags/v1.5.0.tar.gz",
        build_tags=("netgo", "static_build", "exclude_graphdriver_btrfs", "daemon"),
        commit_object=(
            b"tree 7ac817b0deb0030794a4f3b47567de171895933a\n"
            b"parent 68a8fd5c4ef1ef0cde5466e6023800db8372decf\n"
            b"author Arnaud Porterie <arnaud.porterie@docker.com> 1421962247 -0800\n"
            b"committer Arnaud Porterie <arnaud.porterie@docker.com> 1423584877 -0800\n"
            b"\n"
            b"Bump to version v1.5.0\n"
            b"\n"
            b"Signed-off-by: Arnaud Porterie <arnaud.porterie@docker.com>\n"
        ),
    ),
}


def known_versions() -> list[str]:
    return sorted(KNOWN_VERSIONS)


def known_version(version: str) -> KnownVersion:
    try:
        return KNOWN_VERSIONS[version]
    except KeyError:
        raise ConfigError(
            f"labctl cannot build Docker {version!r} from source",
            hint=f"known versions: {', '.join(known_versions())}",
        ) from None
