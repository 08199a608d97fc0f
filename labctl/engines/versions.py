"""The Docker versions labctl can build from source, and what identifies each one.

A source archive is accepted for a version only if the commit id git embedded in it (the pax
global header ``comment`` that ``git get-tar-commit-id`` reads) is the version's tag commit:
a file name or a URL proves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from labctl.errors import ConfigError

DOCKER_PKG = "github.com/docker/docker"


@dataclass(frozen=True)
class KnownVersion:
    version: str
    #: the full commit id of the release tag
    commit: str
    #: where a user with internet gets the tag's source (a ``git archive`` made by GitHub)
    url: str
    #: Go build tags of the era's static binary bundle (btrfs: see the patches' series)
    build_tags: tuple[str, ...]

    @property
    def short_commit(self) -> str:
        """The 7-digit id upstream stamped into the binary (``docker -v``: "build a8a31ef")."""
        return self.commit[:7]

    @property
    def expected_version_line(self) -> str:
        return f"Docker version {self.version}, build {self.short_commit}"


KNOWN_VERSIONS: dict[str, KnownVersion] = {
    "1.5.0": KnownVersion(
        version="1.5.0",
        commit="a8a31eff10544860d2188dddabdee4d727545796",
        url="https://github.com/moby/moby/archive/refs/tags/v1.5.0.tar.gz",
        build_tags=("netgo", "static_build", "exclude_graphdriver_btrfs", "daemon"),
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
