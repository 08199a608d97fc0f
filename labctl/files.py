"""Writing a file on the controller whole or not at all, never through a planted link.

Every file labctl writes (run and host results, reports, lab files, manifests) goes through
:func:`atomic_open`: a new temporary file in the same folder (``mkstemp``: O_EXCL, mode 0600, a
random name nobody can prepare), flushed and fsynced, its mode set, then renamed over the
target, and the folder fsynced. A link someone left at the target is replaced, not followed; a
killed controller leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal, overload


@overload
def atomic_open(
    path: Path, mode: int = ..., *, binary: Literal[False] = ...
) -> contextlib.AbstractContextManager[IO[str]]: ...
@overload
def atomic_open(
    path: Path, mode: int = ..., *, binary: Literal[True]
) -> contextlib.AbstractContextManager[IO[bytes]]: ...
def atomic_open(path: Path, mode: int = 0o644, *, binary: bool = False) -> Any:
    """A handle to write ``path``'s new content; on a clean exit it replaces ``path``."""
    return _atomic(path, mode, binary)


@contextlib.contextmanager
def _atomic(path: Path, mode: int, binary: bool) -> Iterator[IO[Any]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        kw: dict[str, Any] = {} if binary else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, "wb" if binary else "w", **kw) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a host's copy of a result is removed after this)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: str | bytes, mode: int = 0o644) -> Path:
    """``path`` holds ``data`` (text is UTF-8), written by :func:`atomic_open`."""
    if isinstance(data, bytes):
        with atomic_open(path, mode, binary=True) as fh:
            fh.write(data)
    else:
        with atomic_open(path, mode) as out:
            out.write(data)
    return path


def write_json(path: Path, data: Any, mode: int = 0o600) -> Path:
    """``data`` as indented, sorted JSON (one trailing newline), written atomically."""
    return write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode)


def unsafe_reason(path: Path) -> str | None:
    """Why another user of this machine could change ``path`` (or a folder above it), or None.

    The hosts' rule (:func:`labctl.agent.hostpaths.path_problem`: no symlink, owned by root or
    this user, not writable by others; root's sticky folders above are fine), except that a
    folder's group may write: on systems whose umask is 002 every folder of a user is
    group-writable, and the group is the user's own. A missing path is judged by what exists.
    """
    from .agent import hostpaths

    real = os.path.realpath(path)
    problem = hostpaths.path_problem(
        real, os.geteuid(), os.lstat, hostpaths.user_name, group_ok=True
    )
    if problem is None or problem[1] == hostpaths.MISSING:
        return None
    return f"{problem[0]} {problem[1]}"
