"""The shipped agent itself, run as root on this machine (no engine needed: an empty PATH makes
its run short): it refuses folders and a copy of itself that another user could change, and
never writes through a link planted where its files go (Python 3 and 2.7)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agenthelp import built_agent, need_py27, new_run_id

pytestmark = [
    pytest.mark.security,
    pytest.mark.skipif(os.geteuid() != 0, reason="runs the agent as root, as labctl does"),
]
OTHER = 4242


def run(tmp_path: Path, python: str, out: Path, work: Path, agent: Path | None = None,
        run_id: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    empty = tmp_path / "emptybin"
    empty.mkdir(exist_ok=True)
    args = [python, str(agent or built_agent()), "run", "--run-id", run_id or new_run_id("sec")]
    args += ["--host", "local", "--out", str(out), "--workdir", str(work), "--timeout", "30"]
    env = {"PATH": str(empty), "HOME": "/root"}
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)


def users_folder(path: Path, mode: int = 0o777) -> Path:
    path.mkdir(parents=True)
    os.chown(path, OTHER, OTHER)
    os.chmod(path, mode)
    return path


def refusal(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 3 and len(lines) == 1, (proc.returncode, proc.stderr)
    assert lines[0].startswith("labctl probe agent: refusing to run: "), lines
    return lines[0]


@pytest.mark.parametrize("where", ["out", "work"])
def test_a_folder_another_user_controls_is_refused(tmp_path: Path, where: str) -> None:
    theirs = users_folder(tmp_path / "theirs")
    out = (theirs if where == "out" else tmp_path / "results") / "r.json"
    work = theirs / "work" if where == "work" else tmp_path / "work"
    line = refusal(run(tmp_path, sys.executable, out, work))
    assert f"{theirs} is owned by uid {OTHER}" in line, line
    assert list(theirs.iterdir()) == []  # nothing of root's where the user can reach it


def test_a_symlinked_workdir_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "work").symlink_to(real)
    line = refusal(run(tmp_path, sys.executable, tmp_path / "results" / "r.json",
                       tmp_path / "work"))  # fmt: skip
    assert f"{tmp_path / 'work'} is a symbolic link" in line
    assert list(real.iterdir()) == []


def test_a_copy_of_the_agent_another_user_can_change_does_not_run(tmp_path: Path) -> None:
    theirs = users_folder(tmp_path / "theirs", 0o755)
    agent = theirs / built_agent().name
    shutil.copy(built_agent(), agent)
    proc = run(tmp_path, sys.executable, tmp_path / "results" / "r.json", tmp_path / "work",
               agent=agent)  # fmt: skip
    assert str(theirs) in refusal(proc)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("python", ["python3", "python2.7"])
def test_planted_links_are_never_written_through(tmp_path: Path, python: str) -> None:
    """Links where the result, its temp file, the progress file and the pid file go (as if
    left there): the agent writes its own files; the victims are untouched."""
    exe = sys.executable if python == "python3" else need_py27()
    run_id = new_run_id("links")
    results, work = tmp_path / "results", tmp_path / "work"
    run_dir = work / "runs" / run_id
    for d in (results, work, work / "runs", run_dir):
        d.mkdir(mode=0o700)
    victims = {}
    out = results / "r.json"
    places = {"result": out, "tmp": Path(f"{out}.tmp"), "progress": Path(f"{out}.progress")}
    places["pid"] = run_dir / "agent.pid"
    for name, place in places.items():
        victim = tmp_path / f"victim-{name}"
        victim.write_text("untouched\n")
        place.symlink_to(victim)
        victims[name] = victim
    proc = run(tmp_path, exe, out, work, run_id=run_id)
    assert proc.returncode == 0, proc.stderr
    for victim in victims.values():
        assert victim.read_text() == "untouched\n", victim
    assert not out.is_symlink() and '"status": "error"' in out.read_text()  # no docker here
    assert (out.stat().st_mode & 0o077) == 0
    progress = Path(f"{out}.progress")
    assert not progress.is_symlink() and '"event": "start"' in progress.read_text()
