"""The source archive of an engine: fetched (file or URL), then checked by its commit id.

``git archive`` (and GitHub's tag archives, made by it) writes the commit id into the tar's pax
global header; that id, compared with the version's known tag commit, is what makes an archive
trusted. The archive's sha256 is recorded too, so a manifest names the exact bytes built.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from labctl.engines.versions import KnownVersion
from labctl.errors import ConfigError
from labctl.paths import cache_dir

DOWNLOAD_TIMEOUT = 120.0


@dataclass(frozen=True)
class Source:
    path: Path
    #: what the user named: the file's path or the URL
    origin: str
    sha256: str
    commit: str


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
            shutil.copyfileobj(resp, out)
        os.replace(tmp, target)
    except (OSError, urllib.error.URLError) as exc:
        raise ConfigError(
            f"cannot download {url} ({getattr(exc, 'reason', exc)})",
            hint="download it elsewhere and pass --source FILE",
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target


def resolve_source(spec: str | None, known: KnownVersion) -> Source:
    """The archive to build ``known`` from, checked: its commit id must be the tag's."""
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
        return _checked(path, origin, known)
    except ConfigError:
        if is_url(origin):  # a bad download must not be reused as the cache next time
            path.unlink(missing_ok=True)
        raise


def _checked(path: Path, origin: str, known: KnownVersion) -> Source:
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
    return Source(path=path.resolve(), origin=origin, sha256=sha256_file(path), commit=commit)
