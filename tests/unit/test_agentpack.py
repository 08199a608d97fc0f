"""The shipped agent: one deterministic probe_agent-<hash>.pyz, cached by its sources."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from labctl import agentpack, paths
from labctl.agent import AGENT_VERSION
from tests.agenthelp import agent_files


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_builds_are_byte_identical(tmp_path: Path) -> None:
    first = agentpack.build_agent(tmp_path / "a")
    again = agentpack.zip_bytes(agentpack.agent_sources())  # built anew, not the cached file
    fresh = agentpack.build_agent(tmp_path / "b")  # another cache, built from nothing
    assert first.name == fresh.name
    assert hashlib.sha256(again).hexdigest() == _sha(first) == _sha(fresh)
    assert agentpack.build_agent(tmp_path / "a") == first  # cached


def test_the_zip_layout(tmp_path: Path) -> None:
    pyz = agentpack.build_agent(tmp_path)
    assert pyz.name.startswith("probe_agent-") and pyz.suffix == ".pyz"  # the reaper's name
    data = pyz.read_bytes()
    assert data[:4] == b"PK\x03\x04"  # no shebang
    with zipfile.ZipFile(pyz) as zf:
        assert zf.comment == b""
        infos = zf.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names)
        assert names[0] == "__main__.py"
        assert names[1:] == [f"{agentpack.PACKAGE}/{p.name}" for p in agent_files()]
        for info in infos:
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.external_attr >> 16 == 0o100644
        for path in agent_files():
            assert zf.read(f"{agentpack.PACKAGE}/{path.name}") == path.read_bytes()


def test_a_source_change_gives_another_file(tmp_path: Path) -> None:
    src = tmp_path / "agent"
    src.mkdir()
    for path in agent_files():
        (src / path.name).write_bytes(path.read_bytes())
    before = agentpack.build_agent(tmp_path / "cache", src)
    with (src / "consts.py").open("a") as f:
        f.write("# changed\n")
    after = agentpack.build_agent(tmp_path / "cache", src)
    assert before != after and before.exists() and after.exists()


def test_concurrent_builds_leave_one_whole_file(tmp_path: Path) -> None:
    got: list[Path] = []
    threads = [
        threading.Thread(target=lambda: got.append(agentpack.build_agent(tmp_path)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [got[0].name]  # no .part left
    with zipfile.ZipFile(got[0]) as zf:
        assert zf.testzip() is None


def test_agent_path_builds_into_the_labctl_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABCTL_CACHE", str(tmp_path))
    pyz = paths.agent_path()
    assert pyz.parent == tmp_path / "agent"
    proc = subprocess.run(
        [sys.executable, str(pyz), "--version"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == AGENT_VERSION


def test_old_agents_are_pruned(tmp_path: Path) -> None:
    """A checkout that moves through many versions keeps a few agents, not all of them."""
    import os

    from labctl.agentpack import KEEP_OLD, build_agent

    for i in range(KEEP_OLD + 3):
        old = tmp_path / f"probe_agent-{i:012x}.pyz"
        old.write_bytes(b"old")
        os.utime(old, (1000 + i, 1000 + i))
    dest = build_agent(tmp_path)
    left = sorted(p.name for p in tmp_path.glob("probe_agent-*.pyz") if p != dest)
    assert left == [f"probe_agent-{i:012x}.pyz" for i in range(3, KEEP_OLD + 3)]
    assert dest.is_file()
