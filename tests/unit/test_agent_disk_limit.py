"""Per-container disk limits and swap accounting in the probe agent (issue 3): pure logic.

disk-limited (`--storage-opt size=`, devicemapper's base device size): support detection from
each engine's own error text, the plan, the write cap, the stop-reason rule "ENOSPC while the
host still had room is the container's own limit" with made-up numbers (btrfs qgroup limit,
devicemapper base size, real host exhaustion), verdict wording; "No swap limit support" and
whether --memory-swap applied; and a Python 2.7 run of the same functions.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.agenthelp import GIB, MIB, oom_killed_at_limit, pa, run_py27, sample

# what each engine prints when `docker create --storage-opt size=64m ...` is refused
OVERLAY2_EXT4 = (
    "docker: Error response from daemon: --storage-opt is supported only for "
    "overlay over xfs with 'pquota' mount option.\nSee 'docker run --help'.\n"
)
OVERLAY2_XFS_NO_PQUOTA = OVERLAY2_EXT4
VFS_NO_QUOTA = (
    "Error response from daemon: Filesystem does not support, or has not enabled quotas\n"
)
OVERLAY_OLD = "Error response from daemon: --storage-opt is not supported for overlay\n"
AUFS = "docker: Error response from daemon: --storage-opt is not supported for aufs.\n"
DEVMAPPER_BELOW_BASE = (
    "Error response from daemon: devmapper: Container size cannot be smaller than 10.74 GB\n"
)
CLIENT_1_10 = "flag provided but not defined: --storage-opt\nSee 'docker create --help'.\n"
CLIENT_COBRA = "unknown flag: --storage-opt\nSee 'docker create --help'.\n"
NO_IMAGE = (
    "Unable to find image 'labctl-probe:nope' locally\ndocker: Error response from "
    "daemon: pull access denied for labctl-probe, repository does not exist.\n"
)


# -- support detection -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (OVERLAY2_EXT4, "driver"),
        (VFS_NO_QUOTA, "quota"),
        (OVERLAY_OLD, "driver"),
        (AUFS, "driver"),
        (DEVMAPPER_BELOW_BASE, "below-base"),
        (CLIENT_1_10, "client"),
        (CLIENT_COBRA, "client"),
        (NO_IMAGE, None),
        ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock.", None),
        ("", None),
    ],
)
def test_storage_opt_refusal(text: str, kind: str | None) -> None:
    assert pa.storage_opt_refusal(text) == kind


def test_engine_message_is_the_engines_own_words() -> None:
    assert pa.engine_message(OVERLAY2_EXT4) == (
        "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"
    )
    assert pa.engine_message(VFS_NO_QUOTA) == (
        "Filesystem does not support, or has not enabled quotas"
    )
    assert pa.engine_message(CLIENT_1_10) == "flag provided but not defined: --storage-opt"
    assert pa.engine_message("WARNING: x\n") == ""


@pytest.mark.parametrize(
    ("driver", "fstype", "text", "expected"),
    [
        (
            "overlay2",
            "ext4",
            OVERLAY2_EXT4,
            "not supported here: overlay2 on ext4 has no per-container size limit "
            "(the engine says: --storage-opt is supported only for overlay over xfs with "
            "'pquota' mount option)",
        ),
        (
            "overlay2",
            "xfs",
            OVERLAY2_XFS_NO_PQUOTA,
            "not supported here: overlay2 on xfs has no per-container size limit (the engine says: "
            "--storage-opt is supported only for overlay over xfs with 'pquota' mount option)",
        ),
        (
            "vfs",
            "ext4",
            VFS_NO_QUOTA,
            "not supported here: vfs on ext4 has no per-container size limit (the engine says: "
            "Filesystem does not support, or has not enabled quotas)",
        ),
        (
            "aufs",
            None,
            AUFS,
            "not supported here: aufs on its filesystem has no per-container size limit "
            "(the engine says: --storage-opt is not supported for aufs)",
        ),
    ],
)
def test_plan_skips_with_the_engines_reason(
    driver: str, fstype: str | None, text: str, expected: str
) -> None:
    plan = pa.disk_limit_plan(True, driver, "20.10.24", 64 * MIB, None)
    assert plan["try_opt"] is True and plan["skip"] is None  # it asks the engine first
    plan = pa.disk_limit_plan(True, driver, "20.10.24", 64 * MIB, None, ("failed", text), fstype)
    assert plan["skip"] == expected
    assert plan["storage_opt"] is False and plan["limit"] is None and plan["error"] is None


def test_plan_btrfs_accepts_the_flag() -> None:
    plan = pa.disk_limit_plan(True, "btrfs", "20.10.24", 64 * MIB, None, ("ok", ""), "btrfs")
    assert plan["storage_opt"] is True and plan["skip"] is None
    assert (plan["limit"], plan["source"]) == (64 * MIB, "storage-opt")
    args, _ = pa.resource_run_options(
        "disk-limited", "20.10.24", pa.DEFAULT_LIMITS, storage_opt_size=64 * MIB
    )
    assert args == ["--storage-opt", "size=67108864"]
    assert pa.resource_run_options("disk", "20.10.24", pa.DEFAULT_LIMITS)[0] == []


def test_plan_devicemapper_base_size_is_the_limit() -> None:
    status = {
        "Pool Name": "docker-8:1-1234-pool",
        "Base Device Size": "10.74 GB",
        "Backing Filesystem": "xfs",
        "Data loop file": "/var/lib/docker/devicemapper/data",
    }
    base = pa.base_device_size("devicemapper", status)
    assert base == 10_740_000_000
    assert pa.base_device_size("overlay2", status) is None
    assert pa.base_device_size("devicemapper", {"Base Device Size": "10.74GB"}) == base
    # plain disk on devicemapper: the base size is the limit in effect, nothing to try
    plan = pa.disk_limit_plan(False, "devicemapper", "1.13.1", 64 * MIB, base)
    assert (plan["limit"], plan["source"], plan["try_opt"]) == (base, "base-device-size", False)
    # disk-limited: 64 MiB is below the base size, which the engine refuses: run with the base
    plan = pa.disk_limit_plan(
        True, "devicemapper", "1.13.1", 64 * MIB, base, ("failed", DEVMAPPER_BELOW_BASE), "xfs"
    )
    assert plan["skip"] is None and plan["storage_opt"] is False
    assert (plan["limit"], plan["source"], plan["refusal"]) == (
        base,
        "base-device-size",
        "below-base",
    )
    assert plan["message"] == "devmapper: Container size cannot be smaller than 10.74 GB"
    # ... and with the flag where the engine takes it (a size above the base size)
    plan = pa.disk_limit_plan(True, "devicemapper", "1.13.1", 20 * GIB, base, ("ok", ""))
    assert (plan["limit"], plan["source"], plan["storage_opt"]) == (20 * GIB, "storage-opt", True)
    # Docker 1.10 (CentOS 7's docker 1.10.3): no run flag; the base size still holds
    plan = pa.disk_limit_plan(True, "devicemapper", "1.10.3", 64 * MIB, base)
    assert plan["try_opt"] is False and plan["skip"] is None and plan["limit"] == base


def test_plan_old_docker_without_base_size_is_skipped() -> None:
    plan = pa.disk_limit_plan(True, "aufs", "1.5.0", 64 * MIB, None)
    assert plan["try_opt"] is False
    assert plan["skip"] == (
        "not supported here: Docker 1.5.0 has no per-container disk size "
        "limit (`docker run --storage-opt size=` came with Docker 1.12)"
    )
    plan = pa.disk_limit_plan(True, "aufs", None, 64 * MIB, None, ("failed", CLIENT_1_10))
    assert plan["skip"].endswith("(docker says: flag provided but not defined: --storage-opt)")


def test_plan_other_create_failure_is_an_error_not_a_skip() -> None:
    plan = pa.disk_limit_plan(True, "btrfs", "20.10.24", 64 * MIB, None, ("failed", NO_IMAGE))
    assert plan["skip"] is None and plan["refusal"] is None
    assert "pull access denied" in plan["error"]


def test_disk_limited_cap_is_past_the_limit_and_still_bounded() -> None:
    assert pa.disk_limited_cap(110 * MIB, 64 * MIB) == 110 * MIB  # the bounded cap wins
    assert pa.disk_limited_cap(GIB, 64 * MIB) == 128 * MIB  # twice the limit
    assert pa.disk_limited_cap(None, 64 * MIB) == 128 * MIB  # exhaust: still 2x
    assert pa.disk_limited_cap(GIB, 10_740_000_000) == GIB  # devicemapper, bounded
    assert pa.disk_limited_cap(GIB, None) == GIB
    assert pa.DEFAULT_LIMITS["disk_limit_bytes"] == 64 * MIB
    assert pa.parse_limit_value("disk_limit_bytes", "32M") == 32 * MIB


# -- stop reasons: ENOSPC with room on the host is the container's own limit -----------------


def _observed(
    written: int,
    free_min: int | None,
    limit: int | None,
    err: str = "enospc",
    exhausted: bool = False,
) -> dict[str, object]:
    near = (written >= 0.5 * limit) if limit else None
    return {
        "resource": "disk",
        "container_error": err,
        "reached_target": False,
        "limit_applied": bool(limit),
        "near_limit": near,
        "host_exhausted": exhausted,
        "host_had_room": pa.host_had_room(written, free_min, limit),
    }


@pytest.mark.parametrize(
    ("observed", "reason"),
    [
        # btrfs lab host: 64 MiB qgroup limit, EDQUOT after 61 MiB, 380 MiB left on a 512 MiB disk
        (_observed(61 * MIB, 380 * MIB, 64 * MIB, "edquot"), "container-limit"),
        # xfs pquota: the project quota gives ENOSPC, the host has room
        (_observed(63 * MIB, 380 * MIB, 64 * MIB), "container-limit"),
        # devicemapper (CentOS 7, 2015): 10 GB base size, ENOSPC after 9.7 GiB, 30 GiB left
        (_observed(int(9.7 * GIB), 30 * GIB, 10_740_000_000), "container-limit"),
        # devicemapper on a smaller host: 2 GiB left (< written), but it stopped at its base size
        (_observed(int(9.7 * GIB), 2 * GIB, 10_740_000_000), "container-limit"),
        # `disk` with no known limit (a default quota somewhere): room well above what was written
        (_observed(500 * MIB, 20 * GIB, None), "container-limit"),
        # real exhaustion of the host's filesystem: stays enospc
        (_observed(966 * MIB, 0, None, exhausted=True), "enospc"),
        (_observed(900 * MIB, 4 * MIB, None), "enospc"),
        # devicemapper loop file on a host that filled first: enospc, not the base size
        (_observed(3 * GIB, 5 * MIB, 10_740_000_000, exhausted=True), "enospc"),
        # a thin pool that ran out far below the base size while the host had room: not the limit
        (_observed(2 * GIB, 30 * GIB, 10_740_000_000), "enospc"),
        # no clear room: 100 MiB free after writing 400 MiB, no limit known
        (_observed(400 * MIB, 100 * MIB, None), "enospc"),
    ],
)
def test_stop_reason_container_limit_only_with_room(
    observed: dict[str, object], reason: str
) -> None:
    assert pa.decide_stop_reason(observed) == reason


def test_host_had_room() -> None:
    assert pa.host_had_room(61 * MIB, 380 * MIB, 64 * MIB) is True
    assert pa.host_had_room(61 * MIB, 16 * MIB, 64 * MIB) is False  # under 32 MiB: no room
    assert pa.host_had_room(61 * MIB, None, 64 * MIB) is False
    assert pa.host_had_room(500 * MIB, 400 * MIB, None) is False  # less than written
    assert pa.host_had_room(500 * MIB, 600 * MIB, None) is True


def test_stop_reason_other_resources_untouched() -> None:
    # inodes ENOSPC with room: still enospc (the rule is the disk's)
    assert (
        pa.decide_stop_reason(
            {"resource": "inodes", "container_error": "enospc", "host_had_room": True}
        )
        == "enospc"
    )
    # the disk check reaching its cap is a cap, room or not
    assert (
        pa.decide_stop_reason({"resource": "disk", "reached_target": True, "host_had_room": True})
        == "cap"
    )


# -- verdicts --------------------------------------------------------------------------------


def _disk(**kw: object) -> dict[str, object]:
    m: dict[str, object] = {
        "stop_reason": "container-limit",
        "container_started": True,
        "written_bytes": 62 * MIB,
        "cap_effective": 128 * MIB,
        "landed_on_host_ratio": 1.0,
        "host_free_bytes_delta": 62 * MIB,
        "host_free_bytes_min": 400 * MIB,
        "target_path": "/var/lib/docker",
        "target_fstype": "btrfs",
        "storage_driver": "btrfs",
        "host_write_ok": True,
        "host_create_ok": True,
        "host_write_bytes": MIB,
        "container_error": "edquot",
        "disk_limit_bytes": 64 * MIB,
        "disk_limit_source": "storage-opt",
        "disk_limit_requested_bytes": 64 * MIB,
        "storage_opt_size": "supported",
    }
    m.update(kw)
    return m


def test_verdict_contained_by_storage_opt() -> None:
    assert pa.resource_verdict("disk-limited", _disk()) == (
        "contained: the container stopped at its 64 MiB disk limit (--storage-opt size=; "
        "EDQUOT after 62 MiB); the host's filesystem kept 400 MiB free and the host could "
        "still write a 1 MiB file and create a file"
    )


def test_verdict_contained_by_devicemapper_base_size() -> None:
    m = _disk(
        written_bytes=int(9.7 * GIB),
        disk_limit_bytes=10 * GIB,
        disk_limit_source="base-device-size",
        container_error="enospc",
        host_free_bytes_min=30 * GIB,
        storage_driver="devicemapper",
        target_fstype="xfs",
    )
    for key in ("disk_limit_requested_bytes", "storage_opt_size"):
        m.pop(key)
    assert pa.resource_verdict("disk", m) == (
        "contained: the container stopped at its 10 GiB disk limit (devicemapper's base "
        "device size; ENOSPC after 9.7 GiB); the host's filesystem kept 30 GiB free and the "
        "host could still write a 1 MiB file and create a file"
    )
    # disk-limited there: the engine refused 64 MiB, and says so
    m.update(
        disk_limit_requested_bytes=64 * MIB,
        storage_opt_size="refused",
        storage_opt_error="devmapper: Container size cannot be smaller than 10.74 GB",
    )
    v = pa.resource_verdict("disk-limited", m)
    assert v.startswith(
        "contained: the container stopped at its 10 GiB disk limit "
        "(devicemapper's base device size; ENOSPC after 9.7 GiB) "
        "(--storage-opt size=64 MiB was refused, the engine says: devmapper: "
        "Container size cannot be smaller than 10.74 GB); "
    )


def test_verdict_limit_did_not_hold() -> None:
    m = _disk(
        stop_reason="cap",
        written_bytes=128 * MIB,
        host_free_bytes_delta=128 * MIB,
        container_error=None,
    )
    v = pa.resource_verdict("disk-limited", m)
    assert v.startswith(
        "NOT contained: the container wrote 128 MiB, past its 64 MiB disk "
        "limit (--storage-opt size=), until it was stopped at the cap of "
        "128 MiB; every byte written landed"
    )
    assert v.endswith("the limit did not hold")


def test_verdict_cap_below_the_limit_is_not_a_test_of_it() -> None:
    m = _disk(
        stop_reason="cap",
        written_bytes=GIB,
        cap_effective=GIB,
        container_error=None,
        disk_limit_bytes=10 * GIB,
        disk_limit_source="base-device-size",
        host_free_bytes_delta=GIB,
    )
    v = pa.resource_verdict("disk", m)
    assert v.startswith(
        "stopped at the cap of 1 GiB after 1 GiB, before its 10 GiB disk limit "
        "(devicemapper's base device size) was reached: whether the limit "
        "holds was not tested"
    )


def test_verdict_real_exhaustion_with_a_limit() -> None:
    m = _disk(
        stop_reason="enospc",
        written_bytes=400 * MIB,
        disk_limit_bytes=10 * GIB,
        disk_limit_source="base-device-size",
        host_write_ok=False,
        host_write_error="ENOSPC: No space left on device",
        container_error="enospc",
    )
    v = pa.resource_verdict("disk", m)
    assert v.startswith("stopped at ENOSPC after 400 MiB: every byte written landed")
    assert v.endswith(
        "a container can fill the host disk; its 10 GiB disk limit "
        "(devicemapper's base device size) did not stop it first"
    )


def test_verdict_plain_disk_unchanged_without_a_limit() -> None:
    m = _disk(
        stop_reason="cap",
        written_bytes=32 * MIB,
        cap_effective=32 * MIB,
        disk_limit_bytes=None,
        disk_limit_source=None,
        container_error=None,
        target_fstype="ext4",
    )
    assert pa.resource_verdict("disk", m).endswith(
        "no container limit applied up to 32 MiB: a container can fill the host disk"
    )


# -- swap ------------------------------------------------------------------------------------


def test_swap_limit_warning() -> None:
    ubuntu_1404 = pa.parse_docker_info(
        "Containers: 0\nImages: 0\nStorage Driver: aufs\n Root Dir: /var/lib/docker/aufs\n"
        " Backing Filesystem: extfs\nExecution Driver: native-0.2\nKernel Version: "
        "3.13.0-24-generic\nOperating System: Ubuntu 14.04 LTS\n"
        "WARNING: No swap limit support\n"
    )
    assert pa.swap_limit_warning(ubuntu_1404["warnings"]) is True
    assert pa.swap_limit_warning(["bridge-nf-call-iptables is disabled"]) is False
    assert pa.swap_limit_warning([]) is False
    assert pa.swap_limit_warning(None) is None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # nothing asked
        ((None, "", False, None, 1), (None, None)),
        # cgroup v1 with swap accounting: memsw limit as asked
        ((32 * MIB, "", False, str(32 * MIB), 1), (True, "cgroup")),
        # cgroup v1 without swapaccount=1: no memsw file at all (Ubuntu 14.04)
        ((32 * MIB, "", True, "", 1), (False, "cgroup")),
        # memsw present but unlimited
        ((32 * MIB, "", False, "9223372036854771712", 1), (False, "cgroup")),
        # cgroup v2: swap.max 0 (memory-swap == -m) / max
        ((32 * MIB, "", False, "0", 2), (True, "cgroup")),
        ((32 * MIB, "", False, "max", 2), (False, "cgroup")),
        # the container was gone before its cgroup was read: the engine's words decide
        (
            (
                32 * MIB,
                "WARNING: Your kernel does not support swap limit capabilities or the cgroup "
                "is not mounted. Memory limited without swap.\n",
                False,
                None,
                1,
            ),
            (False, "engine-warning"),
        ),
        ((32 * MIB, "", True, None, 1), (False, "engine-warning")),
        ((32 * MIB, "", False, None, 1), (True, "assumed")),
    ],
)
def test_swap_limit_applied(args: tuple[object, ...], expected: tuple[object, object]) -> None:
    assert pa.swap_limit_applied(*args) == expected


def test_swap_limit_applied_from_inspect() -> None:
    assert pa.swap_limit_applied(32 * MIB, "", False, None, 1, -1) == (False, "engine")
    assert pa.swap_limit_applied(32 * MIB, "", False, None, 1, 32 * MIB) == (True, "engine")


def test_verdict_memory_limited_says_swap_was_not_limited() -> None:
    m = oom_killed_at_limit(
        memory_swap_limit_bytes=64 * MIB,
        memory_swap_limit_applied=False,
        engine_swap_limit_warning=True,
        host_swap_total_bytes=2 * GIB,
    )
    v = pa.resource_verdict("memory-limited", m)
    assert v.startswith("contained: the container was OOM-killed at its 64 MiB limit")
    assert v.endswith(
        '; swap was NOT limited: the engine warns "No swap limit support", so --memory-swap '
        "did not apply (the study's Ubuntu 14.04 situation) and the container can go past its "
        "-m limit into the host's swap (2 GiB of swap on this host)"
    )
    m["host_swap_total_bytes"] = 0
    assert pa.resource_verdict("memory-limited", m).endswith(
        "(this host has no swap, so it made no difference here)"
    )
    m["memory_swap_limit_applied"] = True
    m["memory_swap_limit_source"] = "cgroup"
    assert pa.resource_verdict("memory-limited", m).endswith(
        "; swap was limited too (--memory-swap applied: the container's cgroup has its swap "
        "limit; no swap warning from the engine)"
    )
    m.pop("memory_swap_limit_applied")
    assert "swap" not in pa.resource_verdict("memory-limited", m)
    # Docker 1.5.0's own words when the kernel has no swap accounting (daemon/create.go)
    m.update(
        {
            "memory_swap_limit_applied": False,
            "engine_swap_limit_warning": False,
            "engine_run_warning": "Your kernel does not support swap limit capabilities. "
            "Limitation discarded.",
        }
    )
    assert (
        '; swap was NOT limited: docker run warned "Your kernel does not support swap '
        'limit capabilities. Limitation discarded.", so --memory-swap did not apply'
        in pa.resource_verdict("memory-limited", m)
    )


def test_docker_facts_record_the_swap_warning() -> None:
    class Old(pa.Docker):  # type: ignore[misc]  # the agent is untyped
        def run(self, args, timeout=60.0, stdin_file=None):  # type: ignore[override]
            if args == ["version"]:
                return pa.CmdResult(args, 0, "Client version: 1.5.0\nServer version: 1.5.0\n", "")
            if args == ["info"]:
                return pa.CmdResult(
                    args,
                    0,
                    "Storage Driver: aufs\n Backing Filesystem: extfs\n",
                    "WARNING: No swap limit support\n",
                )
            return pa.CmdResult(args, 1, "", "flag provided but not defined: --format")

    facts = pa.docker_facts(Old(path="/usr/bin/docker"))
    assert facts["server_version"] == "1.5.0"
    assert facts["swap_limit_warning"] is True
    assert "No swap limit support" in facts["warnings"]


# -- the experiment list ---------------------------------------------------------------------


def test_disk_limited_follows_disk_everywhere() -> None:
    from labctl import experiments as probe

    assert pa.EXPERIMENT_ORDER.index("disk-limited") == pa.EXPERIMENT_ORDER.index("disk") + 1
    assert pa.RESOURCE_OF["disk-limited"] == "disk"
    assert "disk-limited" in pa.EXPERIMENTS
    assert probe.EXPERIMENTS == pa.EXPERIMENT_ORDER
    assert "disk-limited" in probe.parse_experiments("all")
    assert probe.parse_experiments("disk-limited") == ("disk-limited",)
    assert "of=/fill " in pa.container_script("disk-limited", 128 * MIB, 180)


# -- Python 2.7 ------------------------------------------------------------------------------

PY2_SCRIPT = r"""
import json
MIB = 1024 * 1024
GIB = 1024 * MIB
OVERLAY2 = ("docker: Error response from daemon: --storage-opt is supported only for overlay "
            "over xfs with 'pquota' mount option.\nSee 'docker run --help'.\n")
plan = pa.disk_limit_plan(True, "overlay2", "20.10.5", 64 * MIB, None,
                          ("failed", OVERLAY2), "ext4")
dm = pa.disk_limit_plan(True, "devicemapper", "1.13.1", 64 * MIB,
                        pa.base_device_size("devicemapper", {"Base Device Size": "10.74 GB"}),
                        ("failed", "devmapper: Container size cannot be smaller than 10.74 GB"))
def reason(written, free_min, limit, exhausted=False):
    return pa.decide_stop_reason({
        "resource": "disk", "container_error": "enospc", "host_exhausted": exhausted,
        "near_limit": (written >= 0.5 * limit) if limit else None,
        "host_had_room": pa.host_had_room(written, free_min, limit)})
out = {
    "py": list(sys.version_info[:2]),
    "kinds": [pa.storage_opt_refusal(OVERLAY2),
              pa.storage_opt_refusal("Filesystem does not support, or has not enabled quotas"),
              pa.storage_opt_refusal("flag provided but not defined: --storage-opt"),
              pa.storage_opt_refusal("No such image: x")],
    "skip": plan["skip"],
    "dm": [dm["limit"], dm["source"], dm["skip"]],
    "reasons": [reason(61 * MIB, 380 * MIB, 64 * MIB), reason(int(9.7 * GIB), 30 * GIB,
                10740000000), reason(966 * MIB, 0, None, True)],
    "cap": pa.disk_limited_cap(GIB, 64 * MIB),
    "verdict": pa.resource_verdict("disk-limited", {
        "stop_reason": "container-limit", "written_bytes": 62 * MIB,
        "host_free_bytes_min": 400 * MIB, "disk_limit_bytes": 64 * MIB,
        "disk_limit_source": "storage-opt", "container_error": "edquot",
        "host_write_ok": True, "host_create_ok": True, "host_write_bytes": MIB,
        "landed_on_host_ratio": 1.0}),
    "swap": [pa.swap_limit_warning(["No swap limit support"]),
             list(pa.swap_limit_applied(32 * MIB, "", True, "", 1))],
    "base150": list(pa.dm_base_size("devicemapper", {"Data file": "/dev/loop0"},
                                    ["/usr/local/bin/docker", "-d", "--storage-opt",
                                     "dm.basesize=2G"])),
    "stall": [pa.stall_window(3.0, 2.0), pa.stall_decision(12.0, 12.0, 10.0, None)[0]],
    "ratio": list(pa.process_ratio(79, 381, 301)),
    "pids": pa.pids_unavailable_verdict("1.5.0", "x", {"host_pid_max": 32768}),
    "dmwords": pa.resource_verdict("disk", {
        "stop_reason": "cap", "written_bytes": 256 * MIB, "cap_effective": 256 * MIB,
        "storage_driver": "devicemapper", "pool_data_file": "/p", "disk_limit_bytes": 10 * GIB,
        "disk_limit_source": "base-device-size", "pool_file_growth_bytes": 257 * MIB,
        "thin_pool_overcommitted": True, "thin_pool_room_bytes": 2 * GIB,
        "landed_on_host_ratio": 1.0}),
}
print(json.dumps(out))
"""


def test_disk_limit_logic_runs_under_python27(tmp_path: Path) -> None:
    out = run_py27(tmp_path, PY2_SCRIPT)
    assert out["py"] == [2, 7]
    assert out["kinds"] == ["driver", "quota", "client", None]
    assert out["skip"] == (
        "not supported here: overlay2 on ext4 has no per-container size limit (the engine "
        "says: --storage-opt is supported only for overlay over xfs with 'pquota' mount option)"
    )
    assert out["dm"] == [10_740_000_000, "base-device-size", None]
    assert out["reasons"] == ["container-limit", "container-limit", "enospc"]
    assert out["cap"] == 128 * MIB
    assert out["verdict"].startswith(
        "contained: the container stopped at its 64 MiB disk "
        "limit (--storage-opt size=; EDQUOT after 62 MiB)"
    )
    assert out["swap"] == [True, [False, "cgroup"]]
    assert out["base150"] == [2 * GIB, "daemon-option"]
    assert out["stall"] == [10.0, True]
    assert out["ratio"] == [1.003, 302, 301]
    assert out["pids"].startswith("not available: --pids-limit arrived in Docker 1.11")
    assert "the thin pool over-commits" in out["dmwords"]


# -- devicemapper on Docker 1.5.0: the base size it does not print, the pool file it grows ------

# `docker info` of Docker 1.5.0 on loop-lvm, in the order daemon/graphdriver/devmapper/driver.go
# of v1.5.0 prints it: no "Base Device Size", no "Data Space Available"
INFO_150_LOOP_LVM = sample("docker-info-1.5.0-debian11-loop-lvm.txt")


def test_devicemapper_base_size_of_docker_150_is_the_engine_default_or_its_option() -> None:
    info = pa.parse_docker_info(INFO_150_LOOP_LVM)
    status = info["driver_status"]
    assert pa.base_device_size("devicemapper", status) is None  # 1.5.0 does not print it
    assert pa.dm_base_size("devicemapper", status) == (10 * GIB, "engine-default")
    argv = [
        "/usr/local/bin/docker",
        "-d",
        "-s",
        "devicemapper",
        "--storage-opt",
        "dm.basesize=2G",
        "--storage-opt=dm.loopdatasize=4G",
    ]
    assert pa.daemon_storage_opts(argv) == {"dm.basesize": "2G", "dm.loopdatasize": "4G"}
    assert pa.dm_base_size("devicemapper", status, argv) == (2 * GIB, "daemon-option")
    assert pa.dm_base_size("devicemapper", {"Base Device Size": "10.74GB"}, argv) == (
        10_740_000_000,
        "docker-info",
    )
    assert pa.dm_base_size("overlay2", status, argv) == (None, None)
    assert pa.is_daemon_cmdline(["/usr/local/bin/docker", "-d", "-s", "devicemapper"])
    assert pa.is_daemon_cmdline(["/usr/bin/docker", "daemon"])
    assert pa.is_daemon_cmdline(["/usr/sbin/dockerd", "-H", "fd://"])
    assert not pa.is_daemon_cmdline(["/usr/bin/docker", "run", "-d", "x"])
    assert not pa.is_daemon_cmdline([])


def test_devicemapper_pool_file_and_space(tmp_path: Path) -> None:
    status = pa.parse_docker_info(INFO_150_LOOP_LVM)["driver_status"]
    loop = "/var/lib/docker/devicemapper/devicemapper/data"
    assert pa.dm_pool_file("devicemapper", status) == loop
    # an engine that names the loop file itself as its data file
    assert pa.dm_pool_file("devicemapper", {"Data file": loop}) == loop
    # direct-lvm: the pool is a block device, nothing grows on a filesystem
    assert pa.dm_pool_file("devicemapper", {"Data file": "/dev/mapper/vg-thinpool"}) is None
    assert pa.dm_pool_file("overlay2", status) is None
    # only the loop device named: the kernel's backing file (a sysfs tree made here)
    sysfs = tmp_path / "sys"
    (sysfs / "block" / "loop3" / "loop").mkdir(parents=True)
    (sysfs / "block" / "loop3" / "loop" / "backing_file").write_text(loop + "\n")
    assert pa.dm_pool_file("devicemapper", {"Data file": "/dev/loop3"}, str(sysfs)) == loop
    assert pa.dm_pool_file("devicemapper", {"Data file": "/dev/loop4"}, str(sysfs)) is None
    # Docker 1.5.0 restarted on its existing pool prints "Data file: " (nothing)
    empty = {"Data file": "", "Metadata file": ""}
    assert pa.dm_pool_file("devicemapper", empty, str(sysfs)) == loop
    assert pa.dm_pool_file("devicemapper", empty, str(sysfs), root_dir="/srv/docker") is None
    assert pa.dm_pool_space(status) == (306_600_000, 107_400_000_000, None)
    assert pa.dm_pool_space(
        {
            "Data Space Used": "190.3MB",
            "Data Space Total": "107.4GB",
            "Data Space Available": "1.234GB",
        }
    ) == (190_300_000, 107_400_000_000, 1_234_000_000)


def test_thin_pool_overcommit() -> None:
    # a 3 GiB lab disk holds the pool file: one container's 10 GiB device cannot fill
    assert pa.thin_pool_overcommit(10 * GIB, 2 * GIB, None) == (True, 2 * GIB)
    # the pool's own free data space is smaller still
    assert pa.thin_pool_overcommit(10 * GIB, 50 * GIB, 1 * GIB) == (True, 1 * GIB)
    assert pa.thin_pool_overcommit(10 * GIB, 50 * GIB, 40 * GIB) == (False, 40 * GIB)
    assert pa.thin_pool_overcommit(None, 50 * GIB) == (None, 50 * GIB)
    assert pa.thin_pool_overcommit(10 * GIB, None) == (None, None)


def test_allocated_bytes_of_a_sparse_file(tmp_path: Path) -> None:
    f = tmp_path / "data"
    with open(f, "wb") as fh:
        fh.truncate(64 * MIB)  # 64 MiB long, nothing allocated
    assert os.path.getsize(f) == 64 * MIB
    assert (pa.allocated_bytes(str(f)) or 0) < MIB
    with open(f, "r+b") as fh:
        fh.seek(8 * MIB)
        fh.write(b"x" * MIB)
        fh.flush()
        os.fsync(fh.fileno())
    assert MIB <= (pa.allocated_bytes(str(f)) or 0) < 4 * MIB
    assert pa.allocated_bytes(str(tmp_path / "nope")) is None


def test_disk_limited_on_docker_150_devicemapper_runs_with_the_base_size() -> None:
    plan = pa.disk_limit_plan(True, "devicemapper", "1.5.0", 64 * MIB, 10 * GIB)
    assert plan["skip"] is None and plan["try_opt"] is False
    assert (plan["limit"], plan["source"]) == (10 * GIB, "base-device-size")
    assert pa.disk_limited_cap(256 * MIB, plan["limit"]) == 256 * MIB  # bounded: far below


DM_150_CAP = {
    "stop_reason": "cap",
    "written_bytes": 256 * MIB,
    "cap_effective": 256 * MIB,
    "disk_limit_bytes": 10 * GIB,
    "disk_limit_source": "base-device-size",
    "base_device_size_source": "engine-default",
    "storage_driver": "devicemapper",
    "target_path": "/var/lib/docker",
    "target_fstype": "ext4",
    "landed_on_host_ratio": 1.0,
    "host_free_bytes_delta": 256 * MIB,
    "ratio_numerator": 256 * MIB,
    "ratio_denominator": 256 * MIB,
    "pool_data_file": "/var/lib/docker/devicemapper/devicemapper/data",
    "pool_file_growth_bytes": 258 * MIB,
    "pool_growth_ratio": 1.008,
    "container_fs_size_bytes": 9 * GIB + 800 * MIB,
    "container_fs_own": True,
    "thin_pool_overcommitted": True,
    "thin_pool_room_bytes": 2 * GIB,
    "host_write_ok": True,
    "host_create_ok": True,
    "host_write_bytes": MIB,
}


def test_verdict_disk_limited_devicemapper_overcommitted_host_runs_out_first() -> None:
    v = pa.resource_verdict("disk-limited", dict(DM_150_CAP))
    assert v.startswith(
        "stopped at the cap of 256 MiB after 256 MiB, far below its 10 GiB disk limit "
        "(devicemapper's base device size, a per-container limit that exists), which cannot be "
        "reached on this host: the thin pool over-commits: each container may fill its 10 GiB "
        "device, but the pool has only 2 GiB to grow into on this host, so the host runs out "
        "before a container reaches its own limit;"
    )
    assert v.endswith(
        "a container can fill the host disk; devicemapper: the container wrote into its own "
        "9.8 GiB thin device, which lives in the sparse pool file "
        "/var/lib/docker/devicemapper/devicemapper/data on the host's filesystem; the pool file "
        "grew by 258 MiB (allocated blocks, ratio 1.01) and the host's free space fell by "
        "256 MiB (ratio 1.00)"
    )
    assert v.count("over-commits") == 1


def test_verdict_disk_devicemapper_room_for_the_limit() -> None:
    m = dict(DM_150_CAP, thin_pool_overcommitted=False, thin_pool_room_bytes=40 * GIB)
    v = pa.resource_verdict("disk-limited", m)
    assert "whether the limit holds was not tested" in v
    assert v.endswith(
        "; the pool has 40 GiB to grow into on this host, more than one container's 10 GiB device"
    )
    # plain disk: the same words about the pool
    v = pa.resource_verdict("disk", dict(DM_150_CAP))
    assert "the pool file grew by 258 MiB" in v and "over-commits" in v
    # metrics of an older agent (no pool fields): no devicemapper words at all
    old = dict(DM_150_CAP)
    del old["pool_data_file"]
    assert "devicemapper:" not in pa.resource_verdict("disk", old)


def test_verdict_inodes_on_own_thin_device() -> None:
    m = {
        "stop_reason": "cap",
        "files_created": 2000,
        "cap_effective": 2000,
        "host_inodes_total": 196608,
        "landed_on_host_ratio": 0.0,
        "host_free_inodes_delta": 0,
        "target_path": "/var/lib/docker",
        "target_fstype": "ext4",
        "storage_driver": "devicemapper",
        "container_fs_own": True,
        "container_fs_size_bytes": 9 * GIB + 800 * MIB,
        "container_fs_inodes_total": 655360,
        "container_fs_free_inodes_delta": 2003,
        "host_create_ok": True,
        "host_write_ok": True,
        "host_write_bytes": MIB,
    }
    v = pa.resource_verdict("inodes", m)
    assert (
        "the files did not show up as used inodes on the host's /var/lib/docker filesystem "
        "(ext4) (ratio 0.00); the container's / is a filesystem of its own (9.8 GiB, "
        "655,360 inodes, on its own devicemapper thin device) whose free inodes fell by "
        "2,003;"
    ) in v
    assert v.endswith("the container's inodes are separate from the host's")


# the kernel's words when the loop file's filesystem filled under Docker 1.5.0 (bullseye VM)
DMESG_BEFORE = "[ 1084.152255] EXT4-fs (dm-2): mounted filesystem with ordered data mode.\n"
DMESG_AFTER = (
    DMESG_BEFORE
    + (
        "[ 1494.711259] device-mapper: thin: 253:0: metadata operation 'dm_pool_commit_metadata' "
        "failed: error = -5\n"
    )
    + """\
[ 1494.711807] device-mapper: thin: 253:0: aborting current metadata transaction
[ 1494.722503] device-mapper: thin: 253:0: switching pool to read-only mode
[ 1499.540669] Aborting journal on device dm-2-8.
[ 1499.720790] EXT4-fs (dm-2): Remounting filesystem read-only
"""
)


def test_thin_pool_kernel_lines_and_the_exhausted_host_verdict() -> None:
    lines = pa.thin_pool_kernel_lines(DMESG_BEFORE, DMESG_AFTER)
    assert len(lines) == 3 and lines[-1].endswith("switching pool to read-only mode")
    assert pa.thin_pool_kernel_lines(DMESG_AFTER, DMESG_AFTER) == []
    # the exhaust run: the host's disk filled (root's own write failed), no container output
    # (1.5.0 keeps the container's log on the full filesystem)
    assert (
        pa.decide_stop_reason(
            {
                "resource": "disk",
                "exit_code": 137,
                "killed_by_agent": True,
                "limit_applied": True,
                "near_limit": False,
                "host_exhausted": True,
                "host_had_room": False,
            }
        )
        == "enospc"
    )
    m = dict(
        DM_150_CAP,
        stop_reason="enospc",
        written_bytes=2882 * MIB,
        landed_on_host_ratio=0.94,
        ratio_numerator=2715 * MIB,
        pool_file_growth_bytes=2708 * MIB,
        pool_growth_ratio=0.94,
        host_write_ok=False,
        host_write_error="ENOSPC: No space left on device",
        thin_pool_read_only=True,
        thin_pool_kernel_line=lines[-1],
    )
    v = pa.resource_verdict("disk", m)
    assert v.startswith("stopped at ENOSPC after 2.8 GiB:")
    assert "the host could NOT write a 1 MiB file (ENOSPC: No space left on device)" in v
    assert (
        "a container can fill the host disk; its 10 GiB disk limit "
        "(devicemapper's base device size) did not stop it first" in v
    )
    assert v.endswith(
        "the kernel switched the thin pool to read-only ([ 1494.722503] "
        "device-mapper: thin: 253:0: switching pool to read-only mode): every "
        "container of this engine lost its writable disk until the pool is "
        "repaired"
    )
