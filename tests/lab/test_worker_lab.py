"""Beyond one controller (issue 19 item 4), for real: a lab host is the worker node that plays
the playbook on another lab host (ansible-runner transmit | worker over SSH | process), its
events streaming back into the controller's lines and run folder, Ctrl-C cancelling it there;
and two shards of one inventory probed apart and merged by `labctl report` into one matrix."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import LABCTL, docker_lab_up, host_named, labctl, remote

pytestmark = pytest.mark.lab

HOSTS = ("bookworm", "bookworm/name=target")  # bookworm is the worker


@pytest.fixture(scope="module")
def wlab(labctl_home: Path, docker_client: Any) -> Iterator[Any]:
    with docker_lab_up(docker_client, name=f"w{os.getpid()}", hosts=HOSTS, disk_size="512MiB") as s:
        yield s


def _events(run: Path) -> list[dict[str, Any]]:
    folder = run / "artifacts" / "provision" / "job_events"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def _worker_leftovers(lab: Any) -> str:
    """What a worker run left in the worker's /tmp (its private data dir holds keys)."""
    return remote(host_named(lab, "bookworm"), "ls -d /tmp/labctl-worker-* 2>/dev/null; true")


def test_a_worker_node_provisions_another_host_and_its_events_come_back(
    wlab: Any, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    res = labctl("provision", "-i", str(wlab.inventory), "--limit", "target", "--full",
                 "--worker", "bookworm", "--results", str(tmp_path), timeout=600)  # fmt: skip
    took = time.monotonic() - t0
    assert res.returncode == 0, (res.stdout, res.stderr[-3000:])
    assert "target: provisioned (" in res.stdout  # the same per-host report line
    # the live view's plain lines: the worker's task events, as they came
    assert "target Gather facts with the setup module" in res.stderr
    assert "target Stamp the host as provisioned" in res.stderr
    run = next((tmp_path / "provision").iterdir())
    assert (run / "artifacts" / "provision" / "status").read_text() == "successful"
    oks = [e for e in _events(run) if e.get("event") == "runner_on_ok"]
    assert {e["event_data"]["host"] for e in oks} == {"target"}
    assert any(e.get("event") == "playbook_on_stats" for e in _events(run))
    assert _worker_leftovers(wlab) == ""  # the worker removed its private data dir
    made = remote(host_named(wlab, "bookworm"), "ls /var/lib/labctl/worker").split()
    venvs = [v for v in made if not v.endswith(".lock")]  # the install's flock file stays
    assert len(venvs) == 1 and venvs[0].startswith("runner-"), venvs
    print(f"provision through the worker: {took:.1f} s")


def test_ctrl_c_cancels_the_play_on_the_worker(wlab: Any, tmp_path: Path) -> None:
    cmd = [LABCTL, "provision", "-i", str(wlab.inventory), "--limit", "target", "--full",
           "--worker", "bookworm", "--results", str(tmp_path)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # the play runs on the worker once its first task is said
            if line.startswith("target "):
                break
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err[-2000:]
    assert "the play on the worker was cancelled" in err
    assert time.monotonic() - t0 < 40
    run = next((tmp_path / "provision").iterdir())
    assert (run / "artifacts" / "provision" / "status").read_text() == "canceled"
    assert _worker_leftovers(wlab) == ""


def _columns(matrix: Path) -> list[str]:
    with matrix.open(newline="") as fh:
        return [c.split(" (")[0] for c in next(csv.reader(fh))[1:]]


def test_two_shards_probed_apart_merge_into_one_matrix(wlab: Any, tmp_path: Path) -> None:
    """Shard 1/2 (bookworm) by `probe`; shard 2/2 (target) by `run`, provisioned through the
    worker; `report` merges them into one matrix of both hosts."""
    inv, runs = str(wlab.inventory), []
    for shard, command in (("1/2", ["probe"]), ("2/2", ["run", "--worker", "bookworm"])):
        results = tmp_path / shard.replace("/", "of")
        res = labctl(*command, "-i", inv, "--shard", shard, "--results", str(results),
                     "--experiments", "storage-location", timeout=600)  # fmt: skip
        assert res.returncode == 0, (shard, res.stdout, res.stderr[-3000:])
        run = next(p for p in results.iterdir() if (p / "run.json").exists())
        meta = json.loads((run / "run.json").read_text())
        assert [p.stem for p in (run / "hosts").glob("*.json")] == meta["shard"]["hosts"]
        runs.append(run)
    assert meta["asked"]["worker"] == "bookworm" and meta["shard"]["hosts"] == ["target"]
    assert (run / "ansible" / "artifacts" / "provision" / "status").read_text() == "successful"
    res = labctl("report", *map(str, runs), "--out", str(tmp_path / "merged"), "--format", "csv")
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert _columns(tmp_path / "merged" / "matrix.csv") == ["bookworm", "target"]
