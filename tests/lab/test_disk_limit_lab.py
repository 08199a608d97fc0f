"""disk-limited on real lab hosts (issue 3): a per-container disk limit where the engine has one.

A small lab of its own: bookworm with the btrfs driver on a btrfs loop disk with quota enabled
(`--storage-opt size=` works: the btrfs driver limits the container's subvolume with a qgroup)
and bookworm with overlay2 on ext4 (the engine refuses `--storage-opt size=`). Bounded mode; the
lab disks are 512 MiB. The lab is always taken down.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import docker_lab_up, labctl, only_run

pytestmark = pytest.mark.lab

MIB = 1024**2
LIMIT = 64 * MIB  # the agent's default disk_limit_bytes


def _experiment(run: Path, host: str, name: str) -> dict[str, Any]:
    data = json.loads((run / "hosts" / f"{host}.json").read_text())
    assert data["status"] == "ok", data.get("error")
    (exp,) = [e for e in data["experiments"] if e["name"] == name]
    return exp


def test_disk_limited_btrfs_contained_overlay2_skipped(
    labctl_home: Path, docker_client: Any, tmp_path: Path
) -> None:
    hosts = ("bookworm/driver=btrfs", "bookworm")
    with docker_lab_up(
        docker_client, name=f"d{os.getpid()}", hosts=hosts, disk_size="512MiB"
    ) as st:
        results = tmp_path / "results"
        proc = labctl(
            "probe",
            "-i",
            str(st.inventory),
            "--experiments",
            "disk-limited",
            "--results",
            str(results),
        )
        assert proc.returncode == 0, proc.stderr
        run = only_run(results)

        # btrfs: the qgroup of the container's subvolume stopped it; the host kept room
        e = _experiment(run, "bookworm-btrfs", "disk-limited")
        m = e["metrics"]
        assert e["status"] == "ok", (e["error"], e["verdict"])
        assert m["storage_driver"] == "btrfs" and m["target_fstype"] == "btrfs"
        assert m["storage_opt_size"] == "supported"
        assert m["disk_limit_bytes"] == LIMIT and m["disk_limit_source"] == "storage-opt"
        assert m["limit_applied"] is True
        assert m["cap_effective"] > LIMIT  # it was asked to write past its limit
        assert m["stop_reason"] == "container-limit", e["verdict"]
        assert m["container_error"] in ("edquot", "enospc")
        # the image's own bytes count against the subvolume's limit: written is a little less
        assert 0.75 * LIMIT <= m["written_bytes"] <= 1.05 * LIMIT, m["written_bytes"]
        assert m["host_had_room"] is True and m["host_exhausted"] is False
        assert m["host_free_bytes_min"] > 2 * LIMIT
        assert m["host_write_ok"] is True and m["host_create_ok"] is True
        assert e["verdict"].startswith(
            "contained: the container stopped at its 64 MiB disk limit (--storage-opt size=; "
        ), e["verdict"]
        assert "the host's filesystem kept " in e["verdict"]
        assert "the host could still write" in e["verdict"]

        # overlay2 on ext4: the engine refuses the option; the record says why, in its words
        e = _experiment(run, "bookworm", "disk-limited")
        m = e["metrics"]
        assert e["status"] == "skipped", e["verdict"]
        assert e["error"]["kind"] == "not-supported"
        assert m["storage_opt_size"] == "refused"
        assert "pquota" in m["storage_opt_error"]
        assert m["container_started"] is False
        assert e["verdict"].startswith(
            "not supported here: overlay2 on ext4 has no per-container size limit "
            "(the engine says: --storage-opt is supported only for overlay over xfs"
        ), e["verdict"]
        # verdicts.csv has both records
        rows = (run / "verdicts.csv").read_text()
        assert rows.count("disk-limited") >= 2
