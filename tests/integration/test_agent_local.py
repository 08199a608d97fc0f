"""Run the probe agent for real against this machine's Docker engine (overlay2).

Every test is marked ``lab``; all of them skip with the reason when `docker info` fails.
Containers are tracked by this test run's own run ids, so other people's containers on the same
engine (lab hosts named ``labctl-lab-*``, other agents' probes) are never looked at or touched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import agenthelp
from tests.agenthelp import ENV, agent_command, engine_or_skip, need_py27, run_command
from tests.agenthelp import container_names as _names
from tests.agenthelp import docker as _docker
from tests.agenthelp import new_run_id as _run_id

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def docker_engine() -> None:
    engine_or_skip()


def run_agent(
    tmp_path: Path, python: str, run_id: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], list[dict[str, Any]]]:
    run = agenthelp.run_agent(tmp_path, run_id, python=python, env=env)
    return run.proc, run.result, run.progress


def _check_ok_result(result: dict[str, Any], progress: list[dict[str, Any]], run_id: str) -> None:
    assert result["schema"] == 1
    assert result["status"] == "ok", result["error"]
    assert result["error"] is None
    assert result["run_id"] == run_id and result["host"] == "local"
    facts = result["facts"]
    assert facts["kernel"] == os.uname().release
    assert facts["arch"] == os.uname().machine
    assert facts["distribution"]["id"]
    assert facts["cgroup"]["version"] in (1, 2) and facts["cgroup"]["controllers"]
    d = facts["docker"]
    assert d["error"] is None
    assert d["storage_driver"] == "overlay2"
    assert d["server_version"] and d["client_version"] and d["api_version"]
    assert d["root_dir"] == "/var/lib/docker"
    assert d["cgroup_driver"] in ("cgroupfs", "systemd")
    assert isinstance(d["warnings"], list) and isinstance(d["driver_status"], dict)
    limits = facts["limits"]
    assert limits["pid_max"] > 0 and limits["threads_max"] > 0 and limits["mem_total_bytes"] > 0
    assert limits["docker_root_fs"]["path"] == "/var/lib/docker"
    assert limits["docker_root_fs"]["size_bytes"] > 0

    (exp,) = result["experiments"]
    assert exp["name"] == "storage-location"
    assert exp["status"] == "ok", exp["error"]
    assert exp["duration_s"] >= 0 and exp["started"] and exp["finished"]
    m = exp["metrics"]
    for key in (
        "container_file",
        "host_path",
        "found_by",
        "host_path_under_docker_root",
        "host_can_read",
        "host_can_write",
        "container_sees_host_write",
        "container_root_fstype",
        "container_root_source",
        "container_root_is_block_device",
        "storage_driver",
        "docker_root_dir",
        "probe_image",
        "probe_image_files",
    ):
        assert key in m, key
    for key, value in m.items():
        assert value is None or isinstance(value, (str, int, float, bool)), key
    assert m["container_file"].startswith("/labctl-probe-")
    assert m["host_path"].startswith("/var/lib/docker/overlay2/")
    assert m["host_path"].endswith("/diff" + m["container_file"])
    assert m["found_by"] == "inspect"
    assert m["host_path_under_docker_root"] is True
    assert m["host_can_read"] is True
    assert m["host_can_write"] is True
    assert m["container_sees_host_write"] is True
    assert m["container_root_fstype"] == "overlay"
    assert m["container_root_is_block_device"] is False
    assert m["storage_driver"] == "overlay2"
    assert m["docker_root_dir"] == "/var/lib/docker"
    assert m["probe_image"].startswith("labctl-probe:")
    assert m["probe_image_files"] >= 3
    assert exp["verdict"].startswith("shares host filesystem")
    assert not os.path.exists(m["host_path"])  # the container is gone, with its layer

    events = [p["event"] for p in progress]
    assert events == ["start", "experiment-start", "experiment-end", "end"]
    for p in progress:
        assert set(p) == {"t", "event", "experiment", "message"}
        assert isinstance(p["t"], float)
    assert progress[1]["experiment"] == "storage-location"
    assert _names(f"labctl-probe-{run_id}-") == []


def test_run_python3(tmp_path: Path) -> None:
    run_id = _run_id("py3")
    proc, result, progress = run_agent(tmp_path, sys.executable, run_id)
    assert proc.returncode == 0, proc.stderr
    assert result["python"] == ".".join(str(n) for n in sys.version_info[:3])
    _check_ok_result(result, progress, run_id)
    assert not (tmp_path / "work" / "runs" / run_id).exists()


def test_run_python27(tmp_path: Path) -> None:
    run_id = _run_id("py27")
    proc, result, progress = run_agent(tmp_path, need_py27(), run_id)
    assert proc.returncode == 0, proc.stderr
    assert result["python"] == "2.7.18"
    _check_ok_result(result, progress, run_id)


def test_no_docker_on_path_is_an_error_result(tmp_path: Path) -> None:
    empty = tmp_path / "emptybin"
    empty.mkdir()
    env = dict(os.environ, PATH=str(empty))
    run_id = _run_id("nodocker")
    proc, result, progress = run_agent(tmp_path, sys.executable, run_id, env=env)
    assert proc.returncode == 0, proc.stderr
    assert result["status"] == "error"
    assert result["error"]["kind"] == "no-docker"
    assert "no `docker` command on PATH" in result["error"]["message"]
    assert result["facts"]["kernel"] == os.uname().release  # facts still gathered
    assert result["facts"]["docker"]["server_version"] is None
    (exp,) = result["experiments"]
    assert exp["name"] == "storage-location" and exp["status"] == "skipped"
    assert [p["event"] for p in progress] == ["start", "end"]


def test_daemon_down_is_an_error_result(tmp_path: Path) -> None:
    env = dict(ENV, DOCKER_HOST=f"unix://{tmp_path}/no-such-docker.sock")
    proc, result, _ = run_agent(tmp_path, sys.executable, _run_id("down"), env=env)
    assert proc.returncode == 0, proc.stderr
    assert result["status"] == "error"
    assert result["error"]["kind"] == "docker-daemon-down"
    assert result["error"]["message"].startswith("the Docker daemon is not running (")
    assert result["facts"]["docker"]["client_version"]
    assert result["experiments"][0]["status"] == "skipped"


def _probe_image() -> str:
    out = _docker("images", "--format", "{{.Repository}}:{{.Tag}}", "labctl-probe").stdout
    images = out.split()
    if not images:
        pytest.skip("no labctl-probe image yet (run the whole file: test_run_python3 builds it)")
    return images[0]


@pytest.fixture
def tracked() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for n in names:
        _docker("rm", "-f", n)


def test_reap_removes_dead_runs_only(tmp_path: Path, tracked: list[str]) -> None:
    image = _probe_image()
    work = tmp_path / "work"
    dead, live = _run_id("dead"), _run_id("live")
    for run_id, pid in ((dead, 2**22 + 7), (live, os.getpid())):  # 2**22+7 > pid_max
        run_dir = work / "runs" / run_id
        run_dir.mkdir(parents=True)
        (run_dir / "agent.pid").write_text(f"{pid}\n")
    dead_c, live_c = f"labctl-probe-{dead}-storage", f"labctl-probe-{live}-storage"
    other = f"labctl-test-other-{uuid.uuid4().hex[:6]}"  # not ours: must survive
    for name in (dead_c, live_c, other):
        tracked.append(name)
        created = _docker("create", "--net=none", "--name", name, image, "/bin/sleep", "1")
        assert created.returncode == 0, created.stderr
    proc = subprocess.run(
        agent_command(sys.executable, "reap", "--workdir", str(work)),
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert dead_c in report["containers"]
    assert live_c not in report["containers"] and other not in report["containers"]
    assert str(work / "runs" / dead) in report["workdirs"]
    assert not (work / "runs" / dead).exists()
    assert (work / "runs" / live).exists()
    left = _docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert dead_c not in left
    assert live_c in left and other in left


def test_socket_listing_matches_the_cli(tracked: list[str]) -> None:
    """The agent lists containers over the engine's socket (no Go client per call); it must
    name them as `docker ps -a` does."""
    name = f"labctl-probe-{_run_id('list')}-storage"
    tracked.append(name)
    created = _docker("create", "--net=none", "--name", name, _probe_image(), "/bin/sleep", "1")
    assert created.returncode == 0, created.stderr
    by_socket = agenthelp.pa.engine_container_names(30)
    assert by_socket is not None
    cli = agenthelp.pa.parse_ps_names(
        _docker("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}").stdout
    )
    ours = created.stdout.strip()
    assert (ours, [name]) in by_socket
    assert dict(by_socket)[ours] == dict(cli)[ours]


def test_sigterm_cleans_up_and_still_writes_result(tmp_path: Path) -> None:
    run_id = _run_id("sig")
    out = tmp_path / "res.json"
    proc = subprocess.Popen(
        run_command(sys.executable, run_id, out, tmp_path / "work"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not _names(f"labctl-probe-{run_id}-"):
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        if proc.poll() is not None:
            pytest.skip("the agent finished before it could be interrupted")
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 128 + signal.SIGTERM
    result = json.loads(out.read_text())
    assert result["status"] == "error"
    assert result["error"]["kind"] == "interrupted"
    assert result["experiments"][0]["status"] == "error"
    assert _names(f"labctl-probe-{run_id}-") == []
    assert not (tmp_path / "work" / "runs" / run_id).exists()
    progress = [json.loads(line) for line in Path(str(out) + ".progress").read_text().splitlines()]
    assert progress[-1]["event"] == "end"
