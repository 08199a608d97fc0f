"""labctl end to end on real lab hosts: provision, probe over SSH, collect, matrix.

Everything is real: ansible-core through ansible-runner, sshd in each lab host, paramiko, the
inner dockerd of each host, and the probe agent (under python2.7 on bullseye).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import paramiko
import pytest

from tests.helpers import LABCTL, host_named, labctl, only_run, remote

pytestmark = pytest.mark.lab

EXPECTED_DOCKER = {"bullseye": "20.10.5", "bookworm": "20.10.24", "trixie": "26.1."}


def matrix(run_dir: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    with (run_dir / "matrix.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = {r["metric"]: r for r in reader}
        return list(reader.fieldnames or []), rows


def col(columns: list[str], host: str) -> str:
    return next(c for c in columns if c.split(" ")[0] == host)


def test_run_end_to_end_on_the_lab(lab: Any, tmp_path: Path) -> None:
    results = tmp_path / "results"
    proc = labctl("run", "-i", str(lab.inventory), "--results", str(results))
    assert proc.returncode == 0, proc.stderr
    run_dir = only_run(results)
    assert f"matrix:   {run_dir / 'matrix.csv'}" in proc.stdout
    columns, rows = matrix(run_dir)
    assert len(columns) == 1 + len(lab.hosts)
    kernel = os.uname().release  # container lab hosts share the controller's kernel
    for host in lab.hosts:
        c = col(columns, host.name)
        assert "Debian GNU/Linux" in c and kernel in c and "overlay2" in c, c
        assert rows["status"][c] == "ok"
        assert rows["host.kernel"][c] == kernel
        assert rows["docker.server_version"][c].startswith(EXPECTED_DOCKER[host.name])
        assert rows["docker.storage_driver"][c] == "overlay2"
        assert rows["limits.docker_root_fstype"][c] == "ext4"
        assert rows["storage-location.status"][c] == "ok"
        assert rows["storage-location.host_path"][c].startswith("/var/lib/docker/overlay2/")
        assert rows["storage-location.host_can_read"][c] == "true"
        assert rows["storage-location.host_can_write"][c] == "true"
        assert rows["storage-location.container_sees_host_write"][c] == "true"
        assert rows["storage-location.container_root_is_block_device"][c] == "false"
        assert rows["lab.driver"][c] == "docker"
        # the whole study ran, bounded: caps and floors held on every host
        assert rows["disk.stop_reason"][c] in ("cap", "floor"), rows["disk.verdict"][c]
        assert float(rows["disk.landed_on_host_ratio"][c]) > 0.8
        assert rows["memory-limited.stop_reason"][c] in ("container-limit", "floor")
        assert rows["processes-limited.stop_reason"][c] == "container-limit"
        assert rows["processes.stop_reason"][c] in ("cap", "floor")
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["labctl_version"] and meta["asked"]["command"] == "run"
    assert meta["status"] == "ok" and meta["problems"] == []
    bullseye = json.loads((run_dir / "hosts" / "bullseye.json").read_text())
    assert bullseye["python"].startswith("2.7"), "the agent must run under python2.7 there"
    assert (run_dir / "ansible" / "artifacts").is_dir()
    # the offline report of a copied folder gives the same matrix
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "matrix.csv").unlink()
    assert labctl("report", str(copy)).returncode == 0
    assert (copy / "matrix.csv").read_text() == (run_dir / "matrix.csv").read_text()


def test_bad_hosts_are_one_line_each_and_the_rest_completes(lab: Any, tmp_path: Path) -> None:
    good = host_named(lab, "bookworm")
    nodocker = host_named(lab, "bullseye")
    stopped = host_named(lab, "trixie")
    other_key = tmp_path / "other_key"
    paramiko.RSAKey.generate(2048).write_private_key_file(str(other_key))
    empty_known = tmp_path / "empty_known_hosts"
    empty_known.write_text("")
    key, kh = good.key_file, good.known_hosts
    with socket_free_port() as free_port:
        inv = tmp_path / "mixed.ini"
        inv.write_text(
            f"bookworm ansible_host=127.0.0.1 ansible_port={good.port} "
            f"ansible_ssh_private_key_file={key} labctl_known_hosts={kh}\n"
            f"bullseye ansible_host=127.0.0.1 ansible_port={nodocker.port} "
            f"ansible_ssh_private_key_file={key} labctl_known_hosts={kh}\n"
            f"trixie ansible_host=127.0.0.1 ansible_port={stopped.port} "
            f"ansible_ssh_private_key_file={key} labctl_known_hosts={kh}\n"
            f"ghost ansible_host=127.0.0.1 ansible_port={free_port} "
            f"ansible_ssh_private_key_file={key} labctl_known_hosts={kh}\n"
            f"wrongkey ansible_host=127.0.0.1 ansible_port={good.port} "
            f"ansible_ssh_private_key_file={other_key} labctl_known_hosts={kh}\n"
            f"strangekey ansible_host=127.0.0.1 ansible_port={good.port} "
            f"ansible_ssh_private_key_file={key} labctl_known_hosts={empty_known}\n"
        )
        remote(nodocker, "mv /usr/bin/docker /usr/bin/docker.labctl-test-hidden")
        remote(stopped, "/usr/local/sbin/labctl-dockerd stop")
        try:
            results = tmp_path / "results"
            proc = labctl(
                "probe",
                "-i",
                str(inv),
                "--results",
                str(results),
                "--experiments",
                "storage-location",
            )
        finally:
            remote(nodocker, "mv /usr/bin/docker.labctl-test-hidden /usr/bin/docker")
            remote(stopped, "/usr/local/sbin/labctl-dockerd start")
    err = proc.stderr
    assert proc.returncode != 0
    assert "Traceback" not in err + proc.stdout
    problems = [ln for ln in err.splitlines() if ln.startswith("problem: ")]
    by_host = {ln.split()[1].rstrip(":"): ln for ln in problems}
    assert set(by_host) == {"bullseye", "trixie", "ghost", "wrongkey", "strangekey"}, err
    assert f"cannot connect to 127.0.0.1:{free_port}" in by_host["ghost"]
    assert "SSH login as root refused" in by_host["wrongkey"]
    assert "is not in" in by_host["strangekey"]
    assert "--accept-new-host-keys" in by_host["strangekey"]
    assert "docker is not installed" in by_host["bullseye"]
    assert "Docker daemon is not running" in by_host["trixie"]
    run_dir = only_run(results)
    columns, rows = matrix(run_dir)
    assert len(columns) == 7
    assert rows["status"][col(columns, "bookworm")] == "ok"
    assert rows["storage-location.host_can_read"][col(columns, "bookworm")] == "true"
    for bad in ("ghost", "wrongkey", "strangekey", "bullseye", "trixie"):
        c = col(columns, bad)
        assert rows["status"][c] == "error"
        assert rows["error"][c], bad
    # facts of a host without docker are still gathered
    assert rows["host.kernel"][col(columns, "bullseye")] == os.uname().release
    assert empty_known.read_text() == "", "an unknown key must not be recorded without opt-in"


def test_a_python_that_cannot_run_is_named(lab: Any, tmp_path: Path) -> None:
    """A python3 that is not executable was launched anyway (bash's `command -v` names it)
    and the host's line said "killed or the host restarted"."""
    host = host_named(lab, "bookworm")
    real = remote(host, 'readlink -f "$(command -v python3)"').strip()
    remote(host, f"chmod 644 {real}")
    try:
        proc = labctl(
            "probe", "-i", str(lab.inventory), "--limit", "bookworm",
            "--results", str(tmp_path / "r"), "--experiments", "storage-location",
        )  # fmt: skip
    finally:
        remote(host, f"chmod 755 {real}")
    assert proc.returncode == 4, proc.stderr
    assert "/usr/bin/python3: not executable" in proc.stderr, proc.stderr
    assert "chmod 755" in proc.stderr
    assert "restarted" not in proc.stderr


def test_unknown_host_key_accepted_only_on_request(lab: Any, tmp_path: Path) -> None:
    good = host_named(lab, "bookworm")
    known = tmp_path / "known_hosts"
    inv = tmp_path / "one.ini"
    inv.write_text(
        f"newhost ansible_host=127.0.0.1 ansible_port={good.port} "
        f"ansible_ssh_private_key_file={good.key_file} labctl_known_hosts={known}\n"
    )
    proc = labctl(
        "probe", "-i", str(inv), "--results", str(tmp_path / "r"), "--accept-new-host-keys",
        "--experiments", "storage-location",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    recorded = known.read_text()
    assert f"[127.0.0.1]:{good.port}" in recorded
    assert good.known_hosts is not None
    assert recorded.split()[2] in good.known_hosts.read_text()  # the same key the lab recorded


def test_provision_reports_each_host_and_starts_a_stopped_engine(lab: Any, tmp_path: Path) -> None:
    trixie = host_named(lab, "trixie")
    remote(trixie, "/usr/local/sbin/labctl-dockerd stop")
    proc = labctl("provision", "-i", str(lab.inventory), "--results", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for host in lab.hosts:  # provisioned before in this module: warm, unless its engine stopped
        said = (f"{host.name}: provisioned", f"{host.name}: already provisioned as asked")
        assert any(s in proc.stdout for s in said), proc.stdout
    # the stopped engine makes trixie cold: the warm check says why and the whole play runs
    assert "trixie: provisioned" in proc.stdout, proc.stdout
    assert "trixie cold: " in proc.stderr, proc.stderr
    assert "docker version" not in proc.stderr
    remote(trixie, "docker info >/dev/null")


class socket_free_port:
    """A TCP port on 127.0.0.1 that nothing listens on while the block runs."""

    def __enter__(self) -> int:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = int(s.getsockname()[1])
        s.close()
        return self.port

    def __exit__(self, *exc: object) -> None:
        return None


def test_killed_controller_loses_nothing_collect_fetches_it(lab: Any, tmp_path: Path) -> None:
    """Kill the controller while the agents run: the agents finish; `collect` gets the results."""
    results = tmp_path / "results"
    proc = subprocess.Popen(
        [
            LABCTL,
            "probe",
            "-i",
            str(lab.inventory),
            "--results",
            str(results),
            "--experiments",
            "storage-location",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    started: set[str] = set()
    try:
        for line in proc.stderr:
            if "agent running (pid" in line:
                started.add(line.split()[0])
            if len(started) == len(lab.hosts):
                break
    finally:
        proc.kill()
        proc.wait(timeout=30)
    run_dir = only_run(results)
    # usually none, but a fast host may have been stored before the kill landed
    stored_before = {p.stem for p in (run_dir / "hosts").glob("*.json")}
    deadline = time.monotonic() + 120
    said = ""
    while True:
        col_proc = labctl("collect", str(run_dir))
        said += col_proc.stderr
        if col_proc.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert col_proc.returncode == 0, said
    for host in lab.hosts:
        if host.name not in stored_before:
            assert f"{host.name} collected" in said
    columns, rows = matrix(run_dir)
    for host in lab.hosts:
        assert rows["storage-location.host_can_read"][col(columns, host.name)] == "true"
        # the host's run folder is gone once the result is safe on the controller
        assert (
            remote(host, f"test -e /var/lib/labctl/runs/{run_dir.name} && echo left || true") == ""
        )
        assert remote(host, "docker ps -aq --filter name=labctl-probe-") == ""
    # collecting again is harmless: everything is already here
    again = labctl("collect", str(run_dir))
    assert again.returncode == 0, again.stderr
