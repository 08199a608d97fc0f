"""The agent's janitor for the controller's run folders on a host (<labctl's folder>/runs)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.agenthelp import pa


def _run_dir(parent: Path, name: str, files: dict[str, str], age_s: float = 3600) -> Path:
    d = parent / name
    d.mkdir()
    for fname, text in files.items():
        (d / fname).write_text(text)
    old = time.time() - age_s
    for p in [*d.iterdir(), d]:
        os.utime(p, (old, old))
    return d


def test_dead_runs_go_uncollected_results_stay_live_and_starting_runs_stay(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "labctl-runs"
    runs.mkdir()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        me = f"{sleeper.pid} {pa.proc_start_time(sleeper.pid)}\n"
        killed_files = {"agent.pid": "999999 123\n", "agent.log": "x", "probe_agent-0a1b.pyz": "x"}
        killed_files["result.json.reserve"] = "x"
        killed = _run_dir(runs, "r-killed", killed_files)
        reused = _run_dir(runs, "r-reused", {"agent.pid": f"{sleeper.pid} 1\n"})
        done_files = {"agent.pid": "999999 1\n", "result.json": "{}", "agent.log": "x"}
        done_files["probe_agent-0a1b.pyz"] = "x"
        finished = _run_dir(runs, "r-done", done_files)
        live = _run_dir(runs, "r-live", {"agent.pid": me, "probe_agent-0a1b.pyz": "x"})
        starting = _run_dir(runs, "r-starting", {"probe_agent-0a1b.pyz": "x"}, age_s=1)
        cut = _run_dir(runs, "r-cut", {"probe_agent-0a1b.pyz.part": "x"}, age_s=1)
        slow = _run_dir(runs, "r-slow-upload", {"probe_agent-0a1b.pyz.part": "x"})
        uploading = (slow / "probe_agent-0a1b.pyz.part").open("a")  # as sftp-server holds it
        stray = _run_dir(runs, "not a run id", {"x": "x"})
        # the launch's shell killed before it wrote the pid: an empty pid file, nothing runs
        cut_launch = _run_dir(runs, "r-cut-launch", {"agent.pid": "", "probe_agent-0a1b.pyz": "x"},
                              age_s=3)  # fmt: skip
        launching = _run_dir(runs, "r-launching", {"agent.pid": ""}, age_s=0.5)
        removed: dict[str, list[str]] = {"workdirs": [], "errors": []}
        pa.reap_controller_runs(str(runs), set(), removed)
        uploading.close()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not killed.exists() and not reused.exists() and not cut.exists()
    assert not cut_launch.exists() and launching.exists()
    assert sorted(p.name for p in finished.iterdir()) == ["agent.log", "result.json"]
    assert live.exists() and starting.exists() and slow.exists() and stray.exists()
    assert removed["errors"] == []


def test_a_run_dated_in_the_future_counts_its_age_from_now(tmp_path: Path) -> None:
    """After the clock was stepped back two days, a dead run's folder is dated in the future:
    its age counts from now (before, it was never reaped), and a recent one is not taken."""
    runs = tmp_path / "labctl-runs"
    runs.mkdir()
    files = {"agent.pid": "999999 1\n", "result.json": "{}", "agent.log": "x", "a.pyz": "x"}
    future = _run_dir(runs, "r-future", files, age_s=-2 * 24 * 3600)
    removed: dict[str, list[str]] = {"workdirs": [], "errors": []}
    pa.reap_controller_runs(str(runs), set(), removed)
    assert sorted(p.name for p in future.iterdir()) == ["agent.log", "result.json"]
    assert all(p.stat().st_mtime <= time.time() + 1 for p in [future, *future.iterdir()])
    week_later = time.time() + pa.UNCOLLECTED_KEEP_S + 60
    pa.reap_controller_runs(str(runs), set(), removed, now=week_later)
    assert not future.exists()


def test_durations_are_on_a_clock_nobody_steps() -> None:
    a = pa.monotonic()
    time.sleep(0.02)
    assert 0.01 < pa.monotonic() - a < 5


def test_only_the_controllers_layout_is_reaped(tmp_path: Path) -> None:
    work = "/var/lib/labctl/work"
    assert pa.controller_runs_of("/var/lib/labctl/runs/r1/result.json", work) == (
        "/var/lib/labctl/runs"
    )
    assert pa.controller_runs_of(str(tmp_path / "r1.json"), work) is None
    assert pa.controller_runs_of("/tmp/x/result.json", work) is None
    assert pa.controller_runs_of("/var/lib/labctl/runs/r1/result.json", "/elsewhere/work") is None
