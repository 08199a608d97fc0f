"""The study's resource checks on real lab hosts (issue 3).

--exhaust runs to real exhaustion of the LAB host's resources (a 512 MiB, 20k-inode loop disk,
a 1 GiB memory cgroup, a 512-pid cgroup), never this machine's. Bounded mode with floors set just
above the lab disk's free space must not write at all.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from labctl.transport import SSHTransport
from tests.helpers import host_named, labctl, only_run

pytestmark = pytest.mark.lab

ALL = "disk,disk-shared,inodes,memory,memory-limited,processes,processes-limited"


def experiments(run: Path, host: str) -> dict[str, dict[str, Any]]:
    data = json.loads((run / "hosts" / f"{host}.json").read_text())
    assert data["status"] == "ok", data.get("error")
    return {e["name"]: e for e in data["experiments"]}


def test_exhaust_on_the_lab(lab: Any, tmp_path: Path) -> None:
    results = tmp_path / "results"
    proc = labctl(
        "probe", "-i", str(lab.inventory), "--results", str(results), "--exhaust",
        "--experiments", ALL, "--limit", "bullseye,bookworm", timeout=1500,
    )  # fmt: skip
    run = only_run(results)
    for host in ("bullseye", "bookworm"):
        exp = experiments(run, host)
        disk = exp["disk"]["metrics"]
        assert disk["stop_reason"] == "enospc", exp["disk"]["verdict"]
        assert disk["host_write_ok"] is False, "the lab host's own write must fail at the peak"
        assert disk["landed_on_host_ratio"] > 0.8
        inodes = exp["inodes"]["metrics"]
        assert inodes["stop_reason"] == "enospc", exp["inodes"]["verdict"]
        assert inodes["host_create_ok"] is False
        mem = exp["memory"]["metrics"]
        assert mem["oom_killed"] is True, exp["memory"]["verdict"]
        assert "container" in str(mem["oom_victim"])
        lim = exp["memory-limited"]["metrics"]
        assert lim["stop_reason"] == "container-limit", exp["memory-limited"]["verdict"]
        assert lim["host_alloc_ok"] is True
        procs = exp["processes"]["metrics"]
        assert procs["stop_reason"] == "eagain", exp["processes"]["verdict"]
        assert procs["processes_started"] < 512  # the lab host's pids limit stopped it
        plim = exp["processes-limited"]["metrics"]
        assert plim["stop_reason"] == "container-limit", exp["processes-limited"]["verdict"]
        assert plim["host_fork_ok"] is True
    assert proc.returncode == 0, proc.stderr
    # verdicts.csv has one row per experiment and host
    with (run / "verdicts.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    seen = {(r["experiment"], r["host"]) for r in rows}
    for name in ALL.split(","):
        assert (name, "bookworm") in seen and (name, "bullseye") in seen
    # nothing of the run is left on the lab hosts
    for h in lab.hosts:
        if h.name in ("bullseye", "bookworm"):
            with SSHTransport(h) as t:
                assert t.run("docker ps -aq --filter name=labctl-probe-").stdout == ""
                assert not t.exists(f"/var/lib/labctl/runs/{run.name}")


def test_bounded_floors_are_never_crossed(lab: Any, tmp_path: Path) -> None:
    host = host_named(lab, "trixie")
    with SSHTransport(host) as t:
        out = t.run("df -B1 --output=avail /var/lib/docker | tail -1; "
                    "df --output=iavail /var/lib/docker | tail -1").stdout.split()  # fmt: skip
    free, ifree = int(out[0]), int(out[1])
    results = tmp_path / "results"
    proc = labctl(
        "probe", "-i", str(lab.inventory), "--results", str(results), "--limit", "trixie",
        "--experiments", "disk,inodes",
        "--set", f"disk_floor_bytes={free + (1 << 20)}", "--set", f"inodes_floor={ifree + 10}",
        timeout=1500,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    exp = experiments(only_run(results), "trixie")
    for name in ("disk", "inodes"):
        m = exp[name]["metrics"]
        assert m["stop_reason"] == "floor", exp[name]["verdict"]
        assert m.get("written_bytes", 0) in (0, None) or m["written_bytes"] < (1 << 20)
        assert m.get("files_created", 0) in (0, None) or m["files_created"] < 10


def test_exhaust_is_refused_on_hosts_not_marked_disposable(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.ini"
    inv.write_text("precious ansible_host=127.0.0.1 ansible_port=1 labctl_disposable=false\n")
    proc = labctl("probe", "-i", str(inv), "--results", str(tmp_path / "r"), "--exhaust")
    assert proc.returncode != 0
    assert "precious: refusing --exhaust: the host is not marked disposable" in proc.stderr
    assert "cannot connect" not in proc.stderr  # refused before any connection
