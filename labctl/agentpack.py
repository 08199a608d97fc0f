"""The probe agent as ONE file: a deterministic zip (``probe_agent-<hash12>.pyz``).

Python 2.6+ runs a zip that holds ``__main__.py``; this one holds that and the modules of
``labctl/agent/`` as the package ``labctl_agent``.  The bytes depend on the sources only:
entries sorted, every timestamp 1980-01-01, stored (not deflated), fixed permissions, no
archive comment, no shebang.  The file is cached by the sources' hash (its name carries the
first 12 hex digits, and ``probe_agent``, the name the agent's reaper knows running agents
by) and written by an atomic rename, so concurrent builds of one version are safe.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from pathlib import Path

#: the package's name inside the zip
PACKAGE = "labctl_agent"
AGENT_DIR = Path(__file__).resolve().parent / "agent"
#: bump when the layout of the zip changes (so a cached file of the old layout is not reused)
LAYOUT = b"labctl-agent-pyz-1"
_EPOCH = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644  # a regular file, rw-r--r--
_MAIN = (
    "# -*- coding: utf-8 -*-\n"
    '"""labctl probe agent: `python probe_agent-<hash>.pyz COMMAND ...`."""\n'
    "import sys\n\n"
    f"from {PACKAGE}.cli import main\n\n"
    "sys.exit(main())\n"
).encode()


def agent_sources(agent_dir: Path = AGENT_DIR) -> dict[str, bytes]:
    """Entry name in the zip -> bytes: ``__main__.py`` and the package's ``*.py``."""
    entries = {"__main__.py": _MAIN}
    for path in sorted(agent_dir.glob("*.py")):
        entries[f"{PACKAGE}/{path.name}"] = path.read_bytes()
    return entries


def source_hash(entries: dict[str, bytes]) -> str:
    """sha256 over the layout version and every entry's name and bytes, in order."""
    h = hashlib.sha256(LAYOUT)
    for name in sorted(entries):
        data = entries[name]
        h.update(b"\0%s\0%d\0" % (name.encode(), len(data)))
        h.update(data)
    return h.hexdigest()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """The zip of ``entries``: sorted, stored, fixed times and modes, no comment."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3  # unix, so external_attr holds the mode
            info.external_attr = _FILE_MODE << 16
            zf.writestr(info, entries[name])
        zf.comment = b""
    return buf.getvalue()


def pyz_name(digest: str) -> str:
    return f"probe_agent-{digest[:12]}.pyz"


def build_agent(cache: Path, agent_dir: Path = AGENT_DIR) -> Path:
    """The agent's .pyz in ``cache`` (built when missing) -> its path."""
    entries = agent_sources(agent_dir)
    dest = cache / pyz_name(source_hash(entries))
    if dest.is_file():
        return dest
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".probe_agent-", suffix=".part", dir=cache)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(zip_bytes(entries))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)  # atomic: a concurrent build writes the same bytes
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    prune_old(cache, keep=dest)
    return dest


#: agents of earlier labctl versions kept in the cache (a checkout switching branches)
KEEP_OLD = 4


def prune_old(cache: Path, keep: Path) -> None:
    """Remove all but the newest :data:`KEEP_OLD` other agents from the cache."""
    others = [p for p in cache.glob("probe_agent-*.pyz") if p != keep]
    others.sort(key=lambda p: p.stat().st_mtime if p.exists() else 0.0, reverse=True)
    for old in others[KEEP_OLD:]:
        old.unlink(missing_ok=True)
