"""The source archive of an engine: fetched (file or URL), then checked against its commit.

``git archive`` (and GitHub's tag archives, made by it) writes the commit id into the tar's pax
global header; that id must be the version's tag commit, and the files must hash to the tree of
that commit (gittree.py). The archive's sha256 is recorded too, so a manifest names the exact
bytes built.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..paths import cache_dir
from .gittree import archive_tree_id
from .versions import KnownVersion

DOWNLOAD_TIMEOUT = 120.0
#: Docker 1.5.0's archive is 6 MB; anything this large is not what we asked for
MAX_DOWNLOAD_BYTES = 256 << 20


@dataclass(frozen=True)
class Source:
    path: Path
    #: what the user named: the file's path or the URL
    origin: str
    sha256: str
    commit: str
    #: the git tree id the files hash to ("" when only the commit id was checked)
    tree: str = ""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_commit_id(path: Path) -> str | None:
    """The commit id ``git get-tar-commit-id`` would print for this (possibly gzipped) tar."""
    try:
        with tarfile.open(path, "r:*") as tar:
            # the pax global header comes first; reading the first member parses it
            tar.next()
            comment = tar.pax_headers.get("comment", "")
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise ConfigError(
            f"{path} is not a readable tar archive ({exc})",
            hint="give a `git archive` of the release tag (e.g. GitHub's tag .tar.gz)",
        ) from exc
    comment = comment.strip()
    return comment if re.fullmatch(r"[0-9a-f]{40}", comment) else None


def is_url(text: str) -> bool:
    return bool(re.match(r"^https?://", text))


def downloads_dir() -> Path:
    return cache_dir() / "engines" / "sources"


def download(url: str, *, timeout: float = DOWNLOAD_TIMEOUT) -> Path:
    """Fetch ``url`` into the sources cache (atomically); an earlier download is reused."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", url.split("://", 1)[1])
    target = downloads_dir() / name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            size = 0
            for block in iter(lambda: resp.read(1 << 20), b""):
                size += len(block)
                if size > MAX_DOWNLOAD_BYTES:
                    raise ConfigError(
                        f"{url} is over {MAX_DOWNLOAD_BYTES >> 20} MiB: not a source archive",
                        hint="check the URL, or pass --source FILE",
                    )
                out.write(block)
        os.replace(tmp, target)
    except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError is an OSError
        raise ConfigError(
            f"cannot download {url} ({getattr(exc, 'reason', exc)})",
            hint="download it elsewhere and pass --source FILE",
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target


def resolve_source(spec: str | None, known: KnownVersion, *, content: bool = True) -> Source:
    """The archive to build ``known`` from, checked: its commit id must be the tag's and (with
    ``content``, ~1 s) its files must hash to that commit's tree."""
    origin = spec or known.url
    if is_url(origin):
        path = download(origin)
    else:
        path = Path(origin).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"the source archive {path} does not exist",
                hint=f"pass --source FILE or URL (e.g. {known.url})",
            )
    try:
        return _checked(path, origin, known, content=content)
    except ConfigError:
        if is_url(origin):  # a bad download must not be reused as the cache next time
            path.unlink(missing_ok=True)
        raise


def _checked(path: Path, origin: str, known: KnownVersion, *, content: bool) -> Source:
    commit = read_commit_id(path)
    if commit is None:
        raise ConfigError(
            f"{origin} carries no commit id (not a `git archive`), so it cannot be checked",
            hint=f"use the tag archive {known.url} or `git archive v{known.version}`",
        )
    if commit != known.commit:
        raise ConfigError(
            f"{origin} is commit {commit}, not Docker {known.version} ({known.commit})",
            hint=f"use the tag archive {known.url}",
        )
    tree = ""
    if content:
        tree = archive_tree_id(path)
        if tree != known.tree:
            raise ConfigError(
                f"{origin} says commit {commit[:7]} but its files are not that commit's"
                f" (tree {tree[:12]}, not {known.tree[:12]}): it was altered",
                hint=f"use the tag archive {known.url}",
            )
    return Source(
        path=path.resolve(), origin=origin, sha256=sha256_file(path), commit=commit, tree=tree
    )
