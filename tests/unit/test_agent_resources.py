"""The resource checks of the probe agent (issue 3): pure logic, no Docker needed.

Limit parsing, caps and floors, the floor watch, downsampling, OOM attribution, stop
reasons, verdict wording from recorded numbers, version gates, the container scripts, and
a Python 2.7 run of the same functions.
"""

from __future__ import annotations

import json
import os
import resource as rlimits
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from labctl.agent import catalog
from labctl.agent import context as agent_context
from tests.agenthelp import GIB, MIB, built_agent, need_py27, oom_killed_at_limit, pa, run_py27

# -- limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("disk_cap_bytes", "512M", 512 * MIB),
        ("disk_cap_bytes", "1G", GIB),
        ("disk_cap_bytes", "1.5GiB", int(1.5 * GIB)),
        ("disk_floor_bytes", "1048576", MIB),
        ("memory_limit_bytes", "32m", 32 * MIB),
        ("inodes_cap", "2000", 2000),
        ("inodes_cap", "100k", 100_000),
        ("processes_floor", "1m", 1_000_000),
        ("experiment_timeout_s", "90", 90.0),
        ("experiment_timeout_s", "2.5s", 2.5),
        ("disk_cap_fraction", "0.5", 0.5),
        ("disk_cap_bytes", "off", None),
        ("inodes_floor", "none", None),
    ],
)
def test_parse_limit_value(name: str, text: str, expected: object) -> None:
    assert pa.parse_limit_value(name, text) == expected


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("disk_cap", "1G", "unknown limit"),
        ("disk_cap_bytes", "lots", "size like 512M"),
        ("inodes_cap", "12x", "count like"),
        ("experiment_timeout_s", "0", "positive number"),
        ("experiment_timeout_s", "off", "cannot be turned off"),
        ("disk_cap_fraction", "2", "between 0 and 1"),
    ],
)
def test_parse_limit_value_errors(name: str, text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        pa.parse_limit_value(name, text)


def test_parse_limit_options() -> None:
    got = pa.parse_limit_options(["disk_cap_bytes=32M", "pids-limit=20", "inodes_cap=2k"])
    assert got == {"disk_cap_bytes": 32 * MIB, "pids_limit": 20, "inodes_cap": 2000}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        pa.parse_limit_options(["disk_cap_bytes"])


def test_default_limits_are_documented_and_complete() -> None:
    for resource in ("disk", "inodes", "memory", "processes"):
        assert pa.RESOURCES[resource].cap_key in pa.DEFAULT_LIMITS
        assert pa.RESOURCES[resource].floor_key in pa.DEFAULT_LIMITS
        assert resource + "_cap_fraction" in pa.DEFAULT_LIMITS
        assert resource + "_floor_fraction" in pa.DEFAULT_LIMITS
    assert pa.DEFAULT_LIMITS["experiment_timeout_s"] > 0
    assert pa.DEFAULT_LIMITS["sample_interval_s"] <= 0.25  # several times a second
    text = Path(sys.modules[pa.resolve_cap_floor.__module__].__file__ or "").read_text()
    assert "DEFAULT_LIMITS = {" in text


def test_cap_and_floor_bounded_defaults_big_host() -> None:
    cap, floor = pa.cap_and_floor("disk", "bounded", {}, free=80 * GIB, total=250 * GIB)
    assert cap == GIB  # min(1 GiB, 25% of free)
    assert floor == 25 * GIB  # 10% of the size beats 256 MiB


def test_cap_and_floor_bounded_defaults_small_lab_disk() -> None:
    cap, floor = pa.cap_and_floor("disk", "bounded", {}, free=480 * MIB, total=512 * MIB)
    assert cap == 120 * MIB  # a quarter of what is free
    assert floor == 256 * MIB  # never more than half the disk
    amount, limited = pa.cap_within_floor(cap, floor, 480 * MIB)
    assert (amount, limited) == (120 * MIB, False)
    cap, floor = pa.cap_and_floor("inodes", "bounded", {}, free=19_990, total=20_000)
    assert cap == 4997 and floor == 10_000
    cap, floor = pa.cap_and_floor("processes", "bounded", {}, free=480, total=512)
    assert cap == 120 and floor == 256


def test_cap_and_floor_overrides_and_exhaust() -> None:
    over = {"disk_cap_bytes": 32 * MIB, "disk_floor_bytes": 100}
    assert pa.cap_and_floor("disk", "bounded", over, 80 * GIB, 250 * GIB) == (32 * MIB, 100)
    assert pa.cap_and_floor("memory", "exhaust", {}, 20 * GIB, 24 * GIB) == (None, 0)
    # exhaust still honours what --limit says
    assert pa.cap_and_floor(
        "memory", "exhaust", {"memory_floor_bytes": 64 * MIB}, 20 * GIB, 24 * GIB
    ) == (None, 64 * MIB)
    assert pa.cap_and_floor("disk", "bounded", {"disk_cap_bytes": None}, GIB, 2 * GIB)[0] is None


def test_cap_within_floor() -> None:
    assert pa.cap_within_floor(100, 0, 50) == (100, False)  # no floor
    assert pa.cap_within_floor(100, 30, 200) == (100, False)
    assert pa.cap_within_floor(100, 150, 200) == (50, True)  # never below the floor
    assert pa.cap_within_floor(None, 150, 200) == (50, True)  # no cap: the floor bounds it
    assert pa.cap_within_floor(100, 300, 200) == (0, True)  # already under: run nothing
    assert pa.cap_within_floor(None, 0, 200) == (None, False)  # exhaust


def test_floor_breached_looks_ahead() -> None:
    assert not pa.floor_breached(1000, 0, 10_000, 1.0)  # no floor
    assert not pa.floor_breached(None, 100, 0, 1.0)
    assert pa.floor_breached(100, 100, 0, 0.5)  # at the floor
    assert not pa.floor_breached(1000, 100, 100, 0.5)  # far enough
    assert pa.floor_breached(1000, 100, 2000, 0.5)  # will cross before next look
    assert not pa.floor_breached(1000, 100, -500, 0.5)  # rising: no look-ahead


def test_floor_look_ahead_is_bounded_by_the_containers_own_limit() -> None:
    # seen in CI: 64 forks in a burst (rate ~640/s) on a lab host with 411 free pids and a
    # 256 floor; the container's --pids-limit 64 left it room for 1 more pid, not 320
    assert pa.floor_breached(411, 256, 640, 0.5)
    assert not pa.floor_breached(411, 256, 640, 0.5, room=1)
    assert pa.floor_breached(300, 256, 640, 0.5, room=50)  # the room itself crosses
    assert not pa.floor_breached(300, 256, 640, 0.5, room=-3)  # over its limit: no more
    assert pa.floor_breached(256, 256, 0, 0.5, room=0)  # at the floor all the same


def test_decline_rate() -> None:
    assert pa.decline_rate((0.0, 1000), (0.5, 500)) == 1000.0
    assert pa.decline_rate((0.0, 500), (0.5, 1000)) == 0.0
    assert pa.decline_rate((1.0, 5), (1.0, 1)) == 0.0
    assert pa.decline_rate(None, (1.0, 1)) == 0.0


def test_downsample_bounds_length_keeps_ends() -> None:
    n = 2001
    series: dict[str, list[float]] = {
        "t": [i * 0.1 for i in range(n)],
        "free_bytes": list(range(n, 0, -1)),
    }
    out = pa.downsample(series, 600)
    assert len(out["t"]) == len(out["free_bytes"]) <= 600
    assert len(out["t"]) >= 590
    assert out["t"][0] == 0.0 and out["t"][-1] == series["t"][-1]
    assert out["free_bytes"][-1] == 1
    assert out["t"] == sorted(out["t"])
    small = {"t": [0, 1], "x": [1, 2]}
    assert pa.downsample(small, 600) is small


# -- reading the host ------------------------------------------------------------------------


def test_parse_loadavg_and_vmstat() -> None:
    assert pa.parse_loadavg_threads("3.38 2.18 1.32 8/134 10445\n") == 134
    assert pa.parse_loadavg_threads("") is None
    assert pa.parse_vmstat("nr_free_pages 123\noom_kill 7\n")["oom_kill"] == 7


def test_mem_available_falls_back_on_old_kernels() -> None:
    assert pa.mem_available({"MemAvailable": 5, "MemFree": 1}) == (5, "MemAvailable")
    # CentOS 6 (2.6.32) has no MemAvailable
    got = pa.mem_available({"MemFree": 100, "Buffers": 10, "Cached": 50})
    assert got == (160, "MemFree+Buffers+Cached")
    assert pa.mem_available({}) == (None, None)


MOUNTINFO_V1_NESTED = """\
22 1 8:1 / / rw,relatime - ext4 /dev/vda rw
30 22 0:26 /docker/outer /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
31 22 0:27 /docker/outer /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
32 22 0:28 /docker/outer /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
"""
MOUNTINFO_V2 = "40 22 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"


def test_cgroup_dir_v1_nested_lab_host() -> None:
    mounts = pa.parse_cgroup_mounts(MOUNTINFO_V1_NESTED)
    proc = pa.parse_proc_cgroup(
        "5:pids:/docker/outer/docker/inner\n"
        "4:memory:/docker/outer/docker/inner\n"
        "3:cpu,cpuacct:/docker/outer/docker/inner\n"
        "1:name=systemd:/docker/outer\n"
    )
    assert proc["cpuacct"] == "/docker/outer/docker/inner"
    assert pa.cgroup_dir(proc, mounts, "memory") == ("/sys/fs/cgroup/memory/docker/inner", 1)
    assert pa.cgroup_dir(proc, mounts, "pids") == ("/sys/fs/cgroup/pids/docker/inner", 1)
    assert pa.cgroup_root_dir(mounts, "pids") == ("/sys/fs/cgroup/pids", 1)


def test_cgroup_dir_v2() -> None:
    mounts = pa.parse_cgroup_mounts(MOUNTINFO_V2)
    proc = pa.parse_proc_cgroup("0::/system.slice/docker-abc.scope\n")
    assert pa.cgroup_dir(proc, mounts, "memory") == (
        "/sys/fs/cgroup/system.slice/docker-abc.scope",
        2,
    )


def test_host_sampler_reads_this_machine(tmp_path: Path) -> None:
    sampler = pa.HostSampler(str(tmp_path))
    s = sampler.sample()
    for key in (
        "free_bytes",
        "free_inodes",
        "mem_available",
        "procs",
        "threads",
        "free_pids",
        "size_bytes",
    ):
        assert isinstance(s[key], int) and s[key] >= 0, key
    assert s["threads"] >= s["procs"] > 0
    assert sampler.pids_total() and s["free_pids"] <= sampler.pids_total()


def test_host_checks_on_a_folder(tmp_path: Path) -> None:
    lim = dict(pa.DEFAULT_LIMITS)
    disk = pa.host_checks("disk", str(tmp_path), lim)
    assert disk["host_write_ok"] is True and disk["host_create_ok"] is True
    assert disk["host_write_error"] is None and disk["host_write_bytes"] == MIB
    assert os.listdir(tmp_path) == []  # nothing left behind
    gone = pa.host_checks("inodes", str(tmp_path / "missing"), lim)
    assert gone["host_create_ok"] is False
    assert gone["host_create_error"].startswith("ENOENT: ")
    assert pa.host_checks("memory", str(tmp_path), lim)["host_alloc_ok"] is True
    assert pa.host_checks("processes", str(tmp_path), lim)["host_fork_ok"] is True


def test_errno_text() -> None:
    import errno

    assert pa.errno_text(OSError(errno.ENOSPC, "No space left on device")) == (
        "ENOSPC: No space left on device"
    )
    assert pa.errno_text(OSError(errno.EAGAIN, "Resource temporarily unavailable")).startswith(
        "EAGAIN: "
    )


def test_reserve_space_and_write_through_it(tmp_path: Path) -> None:
    out = tmp_path / "host.json"
    reserve = str(out) + ".reserve"
    assert pa.reserve_space(reserve, 4 * MIB) == 4 * MIB
    st = os.stat(reserve)
    assert st.st_size == 4 * MIB and st.st_blocks * 512 >= 4 * MIB  # real blocks, not sparse
    pa.write_json_atomic(str(out), {"schema": 1}, reserve)
    assert json.loads(out.read_text()) == {"schema": 1}
    assert not os.path.exists(reserve) and not os.path.exists(str(out) + ".tmp")
    assert out.stat().st_size < 100  # the reserve was truncated to the data


def test_protect_self_in_a_child() -> None:
    # in a child process, so the test runner's own OOM score is left alone
    code = (
        f"import json, sys; sys.path.insert(0, {str(built_agent())!r}); "
        "from labctl_agent import sampling; print(json.dumps(sampling.protect_self()))"
    )
    proc = subprocess.run(["python3", "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["oom_file"] == "oom_score_adj"
    # lowering the score needs CAP_SYS_RESOURCE (this machine's sessions lack it): then the
    # failure is recorded, not raised
    if got["oom_value"] is None:
        assert got["oom_error"].split(":")[0] in ("EACCES", "EPERM"), got
    else:
        assert got["oom_value"] == -1000 and got["oom_error"] is None


# -- version gates and docker run options ----------------------------------------------------


def test_pids_gate_by_docker_version() -> None:
    ok, why = pa.pids_gate("1.10.3", ["cpu", "memory", "pids"])
    assert not ok and why == (
        "not supported by Docker 1.10.3 (--pids-limit needs Docker 1.11 or later)"
    )
    assert pa.pids_gate("1.11.0", ["memory", "pids"]) == (True, None)
    assert pa.pids_gate("1.5.0", None)[1].startswith("not supported by Docker 1.5.0")
    ok, why = pa.pids_gate("20.10.24+dfsg1", ["memory"])  # kernel without the pids cgroup
    assert not ok and "Linux 4.3" in why


def test_resource_run_options_gates() -> None:
    lim = dict(pa.DEFAULT_LIMITS, memory_limit_bytes=32 * MIB, pids_limit=20)
    args, applied = pa.resource_run_options("memory-limited", "1.5.0", lim)
    assert args == ["-m", f"{32 * MIB}b", "--memory-swap", f"{32 * MIB}b"]
    assert applied["memory_limit_bytes"] == 32 * MIB
    args, applied = pa.resource_run_options("processes-limited", "1.10.3", lim)
    assert args == [] and applied["pids_limit"] is None
    args, applied = pa.resource_run_options("processes-limited", "1.11.0", lim)
    assert args == ["--pids-limit", "20"] and applied["pids_limit"] == 20
    args, _ = pa.resource_run_options("disk-shared", "1.6.2", lim, True, "/d")
    assert args == ["-v", "/d:/shared"]  # :z only from 1.7
    args, _ = pa.resource_run_options("disk-shared", "1.13.1", lim, True, "/d")
    assert args == ["-v", "/d:/shared:z"]
    args, _ = pa.resource_run_options("disk", "1.13.1", lim)
    assert args == []


# -- the container's scripts -----------------------------------------------------------------


def test_container_scripts_bounded_and_exhaust() -> None:
    disk = pa.container_script("disk", 32 * MIB, 180)
    assert "dd if=/dev/zero of=/fill bs=1M count=32;" in disk and "exec sleep 180" in disk
    assert "count=" not in pa.container_script("disk", None, 180)
    assert "of=/shared/fill" in pa.container_script("disk-shared", 16 * MIB, 180)
    ino = pa.container_script("inodes", 2000, 180)
    assert "while [ $i -lt 2000 ]" in ino and "true > $p/f$i-$j" in ino
    assert str(pa.BIG_COUNT) in pa.container_script("inodes", None, 180)
    mem = pa.container_script("memory", 64 * MIB, 180)
    assert mem.startswith(f"(head -c {64 * MIB} /dev/zero && echo held") and "| tail" in mem
    assert pa.container_script("memory-limited", None, 180).startswith("tail /dev/zero")
    # under its own -m, the pipe's processes go before the container's first one (CI saw the
    # shell OOM-killed after tail, and the container's peak lost with it)
    limited = pa.container_script("memory-limited", 32 * MIB, 180)
    adj = "echo 1000 2>/dev/null > /proc/self/oom_score_adj; "
    assert limited.startswith(f"({adj}head -c {32 * MIB} /dev/zero && echo held")
    assert f"| ({adj}exec tail); r=$?" in limited and adj not in mem
    procs = pa.container_script("processes", 50, 180)
    assert "sleep 180 &" in procs and "while [ $i -lt 50 ]" in procs


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/dash", "/bin/bash", "/bin/busybox"])
def test_inodes_script_counts_right(tmp_path: Path, shell: str) -> None:
    """The inodes loop in a real shell, against a scratch folder (no container)."""
    if not os.path.exists(shell):
        pytest.skip(f"{shell} not here")
    script = pa.container_script("inodes", 1100, 1)
    script = (
        script.replace("/fill", str(tmp_path / "fill"))
        .replace("/dev/labctl-", str(tmp_path / "labctl-"))
        .replace("exec sleep 1", "true")
    )
    argv = [shell, "sh", "-c", script] if shell.endswith("busybox") else [shell, "-c", script]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    parsed = pa.parse_container_log(proc.stdout)
    assert parsed["count"] == 1100 and parsed["dirs"] == 2
    assert (tmp_path / "labctl-count").read_text().strip() == "1100"
    files = sum(len(f) for _d, _s, f in os.walk(tmp_path / "fill"))
    assert files == 1100


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_memory_script_outlives_a_killed_tail(tmp_path: Path, shell: str) -> None:
    """An OOM-killed tail (here: SIGKILL from the test) leaves its shell a second, so the
    container's cgroup and its peak are still there to read; the exit code stays 137."""
    if not os.path.exists(shell):
        pytest.skip(f"{shell} not here")
    script = pa.container_script("memory-limited", None, 1).replace(
        "tail /dev/zero", "sh -c 'kill -9 $$'"
    )
    t0 = time.monotonic()
    proc = subprocess.run([shell, "-c", script], capture_output=True, text=True, timeout=30)
    took = time.monotonic() - t0
    assert proc.returncode == 137 and pa.parse_container_log(proc.stdout)["rc"] == 137
    assert took >= 0.9
    ok = (
        pa.container_script("memory", 1024, 0)
        .replace("exec sleep 0", "true")
        .replace(pa.STATE_FILE, str(tmp_path / "state"))
    )
    t0 = time.monotonic()
    proc = subprocess.run([shell, "-c", ok], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and time.monotonic() - t0 < 0.9  # a clean end: no wait


def test_parse_container_log() -> None:
    gnu = (
        "dd: error writing '/fill': No space left on device\n967+0 records in\n"
        "966+0 records out\n1013972992 bytes (1.0 GB, 967 MiB) copied, 2.8 s, 362 MB/s\n"
        "labctl-rc 1\n"
    )
    got = pa.parse_container_log(gnu)
    assert got["dd_bytes"] == 1013972992 and got["rc"] == 1 and got["error"] == "enospc"
    assert got["error_line"].startswith("dd: error writing")
    busybox = "32+0 records in\n32+0 records out\n33554432 bytes (32.0MB) copied\nlabctl-rc 0\n"
    assert pa.parse_container_log(busybox)["dd_bytes"] == 33554432
    dash = "sh: 1: Cannot fork\nlabctl-rc 2\n"
    assert pa.parse_container_log(dash)["error"] == "eagain"
    bash = "sh: fork: retry: Resource temporarily unavailable\n"
    assert pa.parse_container_log(bash)["error"] == "eagain"
    assert pa.parse_container_log("labctl-count 2000 dirs 20\n")["dirs"] == 20


# -- OOM attribution -------------------------------------------------------------------------

CID = "cb7b6b1dcf30" + "a" * 52
MODERN = [
    f"[ 980.4] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset={CID},"
    f"mems_allowed=0,oom_memcg=/docker/{CID},task_memcg=/docker/{CID},task=tail,pid=8841,uid=0",
    "[ 980.4] Memory cgroup out of memory: Killed process 8841 (tail) total-vm:34248kB, "
    "anon-rss:31744kB, file-rss:1248kB, shmem-rss:0kB, UID:0",
]
OLD_HOST = [  # CentOS 6 style: a host process killed, no memcg fields
    "Out of memory: Kill process 2211 (mysqld) score 901 or sacrifice child",
    "Killed process 2211, UID 27, (mysqld) total-vm:2000000kB, anon-rss:900000kB, file-rss:0kB",
]


def test_kernel_oom_lines_only_new_ones() -> None:
    before = "[1.0] boot\n[2.0] Killed process 1 (old)\n"
    after = before + "[3.0] eth0 up\n" + "\n".join(MODERN) + "\n"
    assert pa.kernel_oom_lines(before, after) == MODERN
    assert pa.kernel_oom_lines("", "\n".join(OLD_HOST)) == OLD_HOST
    assert pa.oom_line_rss(MODERN) == (31744 + 1248) * 1024


def test_attribute_oom_container_by_limit() -> None:
    got = pa.attribute_oom(True, 137, False, 1, MODERN, CID)
    assert got["oom_victim"] == "container"
    assert got["oom_kills_total"] == 1 and got["oom_kills_other"] == 0


def test_attribute_oom_host_process() -> None:
    got = pa.attribute_oom(False, 0, True, 1, OLD_HOST, CID)
    assert got["oom_victim"] == "host" and got["oom_other_victims"] == "mysqld"


def test_attribute_oom_container_and_host() -> None:
    other = [
        "oom-kill:constraint=CONSTRAINT_NONE,task_memcg=/user.slice,task=sshd,pid=77,uid=0",
        "Out of memory: Killed process 77 (sshd) total-vm:1kB, anon-rss:1kB, file-rss:0kB",
    ]
    got = pa.attribute_oom(True, 137, False, 2, MODERN + other, CID)
    assert got["oom_victim"] == "container+host"
    assert got["oom_kills_other"] == 1 and got["oom_other_victims"] == "sshd"


def test_attribute_oom_none_and_unconfirmed() -> None:
    assert pa.attribute_oom(False, 137, True, 0, [], CID)["oom_victim"] == "none"
    # exit 137 that the agent did not cause, no kernel log, no vmstat counter (old kernel)
    assert pa.attribute_oom(False, 137, False, None, [], CID)["oom_victim"] == "container-likely"
    # only the machine-wide counter moved: someone on the host was killed
    assert pa.attribute_oom(False, 0, True, 1, [], CID)["oom_victim"] == "host"


# -- stop reasons ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("observed", "reason"),
    [
        ({"agent_stop": "floor", "reached_target": True}, "floor"),
        ({"reached_target": True}, "cap"),
        ({"reached_target": True, "cap_limited_by_floor": True}, "floor"),
        ({"container_error": "enospc"}, "enospc"),
        ({"host_exhausted": True}, "enospc"),
        ({"container_error": "eagain"}, "eagain"),
        (
            {"container_error": "eagain", "limit_applied": True, "near_limit": True},
            "container-limit",
        ),
        ({"oom_killed": True, "exit_code": 137}, "oom-kill"),
        ({"oom_killed": True, "exit_code": 137, "limit_applied": True}, "container-limit"),
        ({"exit_code": 137, "killed_by_agent": True, "reached_target": True}, "cap"),
        ({"container_error": "edquot"}, "container-limit"),
        ({"agent_stop": "timeout"}, "timeout"),
        ({"exit_code": 1}, "error"),
    ],
)
def test_decide_stop_reason(observed: dict[str, object], reason: str) -> None:
    assert pa.decide_stop_reason(observed) == reason
    assert reason in pa.STOP_REASONS


# -- verdicts --------------------------------------------------------------------------------


def _disk(**kw: object) -> dict[str, object]:
    m: dict[str, object] = {
        "stop_reason": "cap",
        "container_started": True,
        "written_bytes": 256 * MIB,
        "cap_effective": 256 * MIB,
        "landed_on_host_ratio": 1.0,
        "host_free_bytes_delta": 256 * MIB,
        "target_path": "/var/lib/docker",
        "target_fstype": "ext4",
        "host_write_ok": True,
        "host_create_ok": True,
        "host_write_bytes": MIB,
    }
    m.update(kw)
    return m


def test_verdict_disk_cap_landed_on_host() -> None:
    v = pa.resource_verdict("disk", _disk())
    assert v.startswith(
        "stopped at the cap of 256 MiB: every byte written landed on the "
        "host's /var/lib/docker filesystem (ext4)"
    )
    assert "the host could still write a 1 MiB file and create a file" in v
    assert v.endswith(
        "no container limit applied up to 256 MiB: a container can fill the host disk"
    )


def test_verdict_disk_enospc_host_failed() -> None:
    v = pa.resource_verdict(
        "disk",
        _disk(
            stop_reason="enospc",
            written_bytes=966 * MIB,
            host_write_ok=False,
            host_write_error="ENOSPC: No space left on device",
        ),
    )
    assert v.startswith("stopped at ENOSPC after 966 MiB: every byte written landed")
    assert "the host could NOT write a 1 MiB file (ENOSPC: No space left on device)" in v
    assert v.endswith("a container can fill the host disk")


def test_verdict_disk_separate_device() -> None:
    v = pa.resource_verdict(
        "disk", _disk(stop_reason="enospc", landed_on_host_ratio=0.0, written_bytes=10 * GIB)
    )
    assert "did not show up as lost free space" in v
    assert v.endswith("the container's disk filled, not the host's")


def test_verdict_floor_not_run_and_stopped() -> None:
    v = pa.resource_verdict(
        "disk",
        _disk(
            stop_reason="floor",
            container_started=False,
            host_free_bytes_before=300 * MIB,
            floor=400 * MIB,
        ),
    )
    assert v.startswith(
        "not run: the host has only 300 MiB free, at or below the safety floor of 400 MiB free"
    )
    v = pa.resource_verdict(
        "disk", _disk(stop_reason="floor", floor=256 * MIB, written_bytes=100 * MIB)
    )
    assert v.startswith(
        "stopped by the agent at the host's safety floor of 256 MiB free after 100 MiB"
    )


def test_verdict_too_little_room_is_not_run() -> None:
    """A /var/lib/docker with 3 MiB free and no floor left the container under the check's
    minimum: it never started, yet the verdict said "stopped at the cap of 765 KiB ... no
    container limit applied up to 0 bytes"."""
    v = pa.resource_verdict(
        "disk",
        _disk(
            stop_reason="cap",
            container_started=False,
            below_minimum=True,
            host_free_bytes_before=3 * MIB,
            cap_effective=765 * 1024,
            floor=0,
        ),
    )
    assert v == (
        "not run: the host has only 3 MiB free, too little to measure (the container would "
        "get 765 KiB, under the 1 MiB the check needs); free some to run it"
    )


def test_verdict_inodes() -> None:
    m = {
        "stop_reason": "enospc",
        "files_created": 19960,
        "host_inodes_total": 20000,
        "landed_on_host_ratio": 1.0,
        "host_free_inodes_delta": 19970,
        "target_path": "/var/lib/docker",
        "target_fstype": "ext4",
        "host_create_ok": False,
        "host_create_error": "ENOSPC: No space left on device",
        "host_write_ok": True,
        "host_write_bytes": MIB,
    }
    v = pa.resource_verdict("inodes", m)
    assert v.startswith(
        "stopped at ENOSPC after 19,960 files: every file created used an "
        "inode of the host's /var/lib/docker filesystem (ext4)"
    )
    assert "the host could NOT create a file (ENOSPC" in v
    assert v.endswith("a container can exhaust the host's inodes")
    m.update(host_inodes_total=0, target_fstype="btrfs", stop_reason="cap")
    assert "no fixed inode count" in pa.resource_verdict("inodes", m)


def test_verdict_memory() -> None:
    lim = oom_killed_at_limit()
    assert pa.resource_verdict("memory-limited", lim) == (
        "contained: the container was OOM-killed at its 64 MiB limit (peak 64 MiB); host "
        "MemAvailable stayed above 20 GiB and the host could still allocate 16 MiB"
    )
    oom = {
        "stop_reason": "oom-kill",
        "resident_bytes": 900 * MIB,
        "oom_victim": "container+host",
        "oom_kills_other": 1,
        "oom_other_victims": "sshd",
        "host_alloc_ok": True,
        "host_alloc_bytes": 16 * MIB,
    }
    v = pa.resource_verdict("memory", oom)
    assert v.startswith(
        "the host ran out of memory: the container was OOM-killed after "
        "900 MiB with no memory limit; the kernel also killed 1 other"
    )
    cap = {
        "stop_reason": "cap",
        "cap_effective": 64 * MIB,
        "resident_bytes": 65 * MIB,
        "host_mem_available_delta": 64 * MIB,
        "landed_on_host_ratio": 0.98,
        "host_alloc_ok": True,
        "host_alloc_bytes": 16 * MIB,
    }
    v = pa.resource_verdict("memory", cap)
    assert v.startswith("stopped at the cap of 64 MiB with 65 MiB resident and no memory limit")
    assert v.endswith("a container can use up the host's memory")


def test_verdict_processes() -> None:
    lim = {
        "stop_reason": "container-limit",
        "pids_limit": 20,
        "processes_started": 18,
        "container_pids_peak": 20,
        "host_fork_ok": True,
    }
    assert pa.resource_verdict("processes-limited", lim) == (
        "contained: the container stopped at its --pids-limit of 20 (EAGAIN after 18 children, "
        "20 pids in the container); the host could still fork a process"
    )
    bomb = {
        "stop_reason": "eagain",
        "processes_started": 477,
        "host_free_pids_min": 0,
        "host_threads_delta": 477,
        "landed_on_host_ratio": 1.0,
        "host_fork_ok": False,
        "host_fork_error": "EAGAIN: Resource temporarily unavailable",
    }
    v = pa.resource_verdict("processes", bomb)
    assert v.startswith(
        "stopped at EAGAIN (fork failed) after 477 children: the host's process limit was reached"
    )
    assert "the host could NOT fork a process (EAGAIN" in v
    cap = {
        "stop_reason": "cap",
        "cap_effective": 50,
        "processes_started": 50,
        "host_threads_delta": 50,
        "landed_on_host_ratio": 1.0,
        "host_fork_ok": True,
        "host_pid_max": 32768,
        "host_threads_max": 192731,
    }
    v = pa.resource_verdict("processes", cap)
    assert v.startswith("stopped at the cap of 50 children with no pids limit")
    assert v.endswith("(pid_max 32,768, threads-max 192,731)")
    # a limited container cut short by the agent's time (a slow VM): not a finding either way
    slow = {
        "stop_reason": "timeout",
        "pids_limit": 64,
        "limit_applied": True,
        "timeout_source": "agent-deadline",
        "processes_started": 19,
        "timeout_s_effective": 25.7,
        "host_procs_delta": 19,
        "ratio_denominator": 20,
        "landed_on_host_ratio": 0.95,
        "host_threads_delta": 28,
        "host_fork_ok": True,
    }
    v = pa.resource_verdict("processes-limited", slow)
    assert v.startswith("not measured: stopped at the agent's own time limit")
    assert "after 19 children, below its --pids-limit of 64 (the limit was never reached" in v
    assert "no pids limit" not in v and "a container can" not in v


def test_fmt_helpers() -> None:
    assert pa.fmt_bytes(32 * MIB) == "32 MiB"
    assert pa.fmt_bytes(1536) == "1.5 KiB"
    assert pa.fmt_bytes(966 * MIB) == "966 MiB"
    assert pa.fmt_bytes(None) == "?"
    assert pa.fmt_count(19960) == "19,960" and pa.fmt_count(-1234567) == "-1,234,567"


# -- the command line ------------------------------------------------------------------------


def test_cli_rejects_bad_mode_and_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["run", "--run-id", "r1", "--host", "h", "--out", str(tmp_path / "o.json")]
    for extra, needle in (
        (["--mode", "wild"], "--mode must be bounded or exhaust"),
        (["--limit", "disk_cap_bytes=lots"], "size like 512M"),
        (["--limit", "nope=1"], "unknown limit"),
        (["--experiments", "disk,bogus"], "unknown experiment(s) bogus"),
    ):
        with pytest.raises(SystemExit) as exc:
            pa.main(base + extra)
        assert exc.value.code == 2
        assert needle in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


def test_experiment_names_and_all() -> None:
    assert pa.EXPERIMENT_ORDER == catalog.ORDER
    assert set(pa.EXPERIMENTS) == set(pa.EXPERIMENT_ORDER)
    assert pa.DEFAULT_EXPERIMENTS == ("storage-location",)


def test_the_resource_table_covers_the_catalog() -> None:
    """Every resource check of the catalog is an Experiment of its resource's class, every
    variant a class declares is in the catalog, and what the run reads of a resource is there."""
    from labctl.agent import catalog

    assert set(pa.EXPERIMENT_SPECS) == set(catalog.RESOURCE_EXPERIMENTS)
    for name, exp in pa.EXPERIMENT_SPECS.items():
        assert exp.name == name and exp.kind.name == catalog.RESOURCE_OF[name]
    assert set(pa.RESOURCES) == set(catalog.RESOURCE_OF.values())
    for kind in pa.RESOURCE_KINDS:
        assert set(kind.variants) <= set(catalog.RESOURCE_EXPERIMENTS), kind.name
        assert all(catalog.RESOURCE_OF[v] == kind.name for v in kind.variants), kind.name
        assert kind.free_key in kind.series_keys, kind.name
        assert kind.free_before_key in dict(kind.before_keys), kind.name
        for key in (kind.cap_key, kind.cap_fraction_key, kind.floor_key, kind.floor_fraction_key):
            assert key in pa.DEFAULT_LIMITS, (kind.name, key)
        assert kind.limit_key is None or kind.limit_key in pa.DEFAULT_LIMITS
        assert kind.progress_key and kind.rate_key and kind.ratio_definition, kind.name
    assert pa.EXPERIMENT_SPECS["disk-shared"].shared
    assert pa.EXPERIMENT_SPECS["memory-limited"].limited
    assert not pa.EXPERIMENT_SPECS["processes"].limited


def test_the_usage_names_the_catalog() -> None:
    from labctl.agent import catalog

    text = " ".join(pa.USAGE.split())
    listed = "experiments: all, " + ", ".join(
        n + (" (default)" if n in catalog.DEFAULT else "") for n in catalog.ORDER
    )
    assert listed in text
    assert pa.DEFAULT_EXPERIMENTS == catalog.DEFAULT


def test_reap_removes_dead_runs_shared_folders(tmp_path: Path) -> None:
    parent = tmp_path / "lib"
    dead = parent / "labctl-probe-deadrun-fs" / "disk-shared" / "shared"
    dead.mkdir(parents=True)
    (dead / "fill").write_bytes(b"x")
    live = parent / "labctl-probe-liverun-fs"
    live.mkdir()
    other = parent / "labctl-other-fs"
    other.mkdir()
    removed = pa.reap(str(tmp_path / "work"), None, own_run_id="liverun", fs_parents=(str(parent),))
    assert str(parent / "labctl-probe-deadrun-fs") in removed["workdirs"]
    assert not (parent / "labctl-probe-deadrun-fs").exists()
    assert live.exists() and other.exists()
    assert pa.fs_parents_of("/var/lib/docker/") == ("/var/lib", "/var/lib/docker/")


# -- Python 2.7 ------------------------------------------------------------------------------

PY2_SCRIPT = r"""
import json
MIB = 1024 * 1024
cap, floor = pa.cap_and_floor("disk", "bounded", {}, 480 * MIB, 512 * MIB)
series = {"t": list(range(1500)), "x": list(range(1500))}
out = {
    "py": list(sys.version_info[:2]),
    "limits": pa.parse_limit_options(["disk_cap_bytes=32M", "inodes_cap=2k",
                                      "experiment_timeout_s=90s"]),
    "cap_floor": [cap, floor],
    "within": list(pa.cap_within_floor(None, 150, 200)),
    "breach": pa.floor_breached(1000, 100, 2000, 0.5),
    "down": len(pa.downsample(series, 600)["t"]),
    "gate": list(pa.pids_gate("1.10.3", ["pids"])),
    "gate11": list(pa.pids_gate("1.11.0", ["pids"])),
    "oom": pa.attribute_oom(True, 137, False, 1, [], None)["oom_victim"],
    "reason": pa.decide_stop_reason({"container_error": "eagain", "limit_applied": True,
                                     "near_limit": True}),
    "verdict": pa.resource_verdict("disk", {
        "stop_reason": "enospc", "written_bytes": 966 * MIB, "landed_on_host_ratio": 1.0,
        "host_free_bytes_delta": 966 * MIB, "target_path": "/var/lib/docker",
        "target_fstype": "ext4", "host_write_ok": False,
        "host_write_error": "ENOSPC: No space left on device", "host_create_ok": False,
        "host_create_error": "ENOSPC: No space left on device", "host_write_bytes": MIB}),
    "count": pa.fmt_count(19960),
    "sample": sorted(k for k, v in pa.HostSampler("/").sample().items() if v is not None),
    "fork": list(pa.host_try_fork()),
}
print(json.dumps(out))
"""


def test_resource_logic_runs_under_python27(tmp_path: Path) -> None:
    out = run_py27(tmp_path, PY2_SCRIPT)
    assert out["py"] == [2, 7]
    assert out["limits"] == {
        "disk_cap_bytes": 32 * MIB,
        "inodes_cap": 2000,
        "experiment_timeout_s": 90.0,
    }
    assert out["cap_floor"] == [120 * MIB, 256 * MIB]
    assert out["within"] == [50, True]
    assert out["breach"] is True
    assert 590 <= out["down"] <= 600
    assert out["gate"][0] is False and out["gate"][1].startswith("not supported by Docker 1.10.3")
    assert out["gate11"] == [True, None]
    assert out["oom"] == "container"
    assert out["reason"] == "container-limit"
    assert out["verdict"].startswith("stopped at ENOSPC after 966 MiB")
    assert out["count"] == "19,960"
    assert {"free_bytes", "free_inodes", "mem_available", "threads", "free_pids"} <= set(
        out["sample"]
    )
    assert out["fork"] == [True, None]


# -- exhaust mode: the container holds its peak, the agent survives and stops it -------------

FORK_FAIL = """
import json, os, resource, sys
sys.path.insert(0, sys.argv[1])  # the built .pyz
from labctl_agent import sampling as pa
r, w = os.pipe()
pid = os.fork()
if pid == 0:  # a child with no room for one more process: the agent's own fork must fail
    os.close(r)
    u"x".encode("ascii")  # load the codec while root can still read the interpreter's files
    os.setgid(65534)
    os.setuid(65534)
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    os.write(w, json.dumps(list(pa.host_try_fork())).encode("ascii"))
    os._exit(0)
os.close(w)
os.waitpid(pid, 0)
print(os.read(r, 4096).decode("ascii"))
"""


@pytest.mark.parametrize("python", ["python3", "python2.7"])
def test_host_fork_check_survives_eagain(tmp_path: Path, python: str) -> None:
    """At an exhausted host the agent's own fork fails: caught, recorded with its errno."""
    if os.getuid() != 0:
        pytest.skip("needs root to drop to uid 65534 (root ignores RLIMIT_NPROC)")
    exe = need_py27() if python == "python2.7" else sys.executable
    script = tmp_path / "forkfail.py"
    script.write_text(FORK_FAIL)
    proc = subprocess.run(
        [exe, str(script), str(built_agent())],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
    )
    assert proc.returncode == 0, proc.stderr
    ok, error = json.loads(proc.stdout)
    assert ok is False and error.startswith("EAGAIN: ")


def test_processes_script_holds_its_peak_in_both_modes() -> None:
    bounded = pa.container_script("processes", 50, 180)
    assert "trap '" in bounded and "exec sleep 180' EXIT" in bounded
    assert pa.SOAK_FILE not in bounded
    exhaust = pa.container_script("processes", None, 180, 60)
    assert f"> {pa.SOAK_FILE}" in exhaust and f"exec sh {pa.SOAK_FILE} $i" in exhaust
    assert str(pa.BIG_COUNT) in exhaust and "+ 60))" in exhaust


def _as_uid_with_nproc(uid: int, limit: int) -> Any:
    def pre() -> None:
        os.setsid()
        os.setgid(65534)
        os.setuid(uid)
        rlimits.setrlimit(rlimits.RLIMIT_NPROC, (limit, limit))

    return pre


@pytest.mark.parametrize("soak", [0, 8])
def test_processes_script_in_a_real_shell_keeps_every_pid(soak: int) -> None:
    """The fork loop in dash with a process limit: when a fork fails, the shell's EXIT trap
    keeps its pid (exec), reports, and (exhaust) retries: a pid freed outside is taken."""
    dash = "/bin/dash"
    if os.getuid() != 0 or not os.path.exists(dash):
        pytest.skip("needs root (to run as uid 65534 under RLIMIT_NPROC) and dash")
    tmp_path = Path(tempfile.mkdtemp(prefix="labctl-test-"))  # pytest's is root-only
    tmp_path.chmod(0o777)
    try:
        _run_fork_loop(tmp_path, soak, dash)
    finally:
        shutil.rmtree(tmp_path, True)


def _run_fork_loop(tmp_path: Path, soak: int, dash: str) -> None:
    script = pa.container_script("processes", None, 30, soak)
    script = script.replace("/dev/labctl-", str(tmp_path / "labctl-"))
    # a process of the same user outside the "container": freed later
    # a uid of its own: RLIMIT_NPROC counts every process of the uid, also the unreaped
    # ones another test left behind
    uid = 61000 + os.getpid() % 1000 * 2 + (1 if soak else 0)
    outside = subprocess.Popen(["sleep", "30"], preexec_fn=_as_uid_with_nproc(uid, 1000))
    limit = 24
    out = (tmp_path / "out").open("w")
    proc = subprocess.Popen(
        [dash, "-c", script],
        stdout=out,
        stderr=subprocess.STDOUT,
        preexec_fn=_as_uid_with_nproc(uid, limit),
    )
    try:
        state = tmp_path / "labctl-state"
        for _ in range(100):
            if state.exists():
                break
            time.sleep(0.05)
        assert state.read_text().strip() == "done"
        time.sleep(0.3)
        assert proc.poll() is None  # the shell's pid is still taken
        group = [p for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == proc.pid]
        log = (tmp_path / "out").read_text()
        assert len(group) >= limit - 3, (group, log)  # the children and the shell (or its soak)
        log = (tmp_path / "out").read_text()
        assert "Cannot fork" in log and pa.parse_container_log(log)["error"] == "eagain"
        first = pa.parse_container_log(log)["count"]
        assert first is not None and first >= limit - 4
        outside.kill()
        outside.wait()
        time.sleep(0.5)
        count = int((tmp_path / "labctl-count").read_text().strip() or 0)
        if soak:
            assert count == first + 1  # the freed pid was taken again
        else:
            assert count == first
    finally:
        outside.kill()
        outside.wait()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        out.close()


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def test_signal_process_checks_the_start_time() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        start = pa.proc_start_time(child.pid)
        assert start
        assert pa.signal_process(child.pid, "1") is False  # another process's start time
        assert child.poll() is None
        assert pa.signal_process(child.pid, start) is True
        assert child.wait(timeout=10) == -signal.SIGKILL
        assert pa.signal_process(child.pid, start) is False
        assert pa.signal_process(None) is False
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_kill_container_prefers_the_signal_and_never_touches_other_names() -> None:
    class NoCli:
        def run(self, args: list[str], timeout: float = 0) -> Any:
            raise AssertionError(f"the CLI would fork: {args}")

    child = subprocess.Popen(["sleep", "30"])
    try:
        start = pa.proc_start_time(child.pid)
        assert pa.kill_container(NoCli(), "other-name", 1, child.pid, start, True) is None
        assert child.poll() is None
        got = pa.kill_container(
            NoCli(), pa.NAME_PREFIX + "x-processes", 1, child.pid, start, prefer_signal=True
        )
        assert got == "signal" and child.wait(timeout=10) == -signal.SIGKILL
        # nothing alive and no engine: no CLI either when the host has no pids left
        os.environ["DOCKER_HOST"] = "tcp://127.0.0.1:1"
        try:
            assert (
                pa.kill_container(
                    NoCli(), pa.NAME_PREFIX + "x-processes", 1, child.pid, start, prefer_signal=True
                )
                is None
            )
        finally:
            del os.environ["DOCKER_HOST"]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.parametrize(
    ("observed", "reason"),
    [
        # the agent's own SIGKILL, or one nobody explains, is not an OOM kill of a fork loop
        ({"resource": "processes", "exit_code": 137, "container_error": "eagain"}, "eagain"),
        (
            {
                "resource": "processes",
                "exit_code": 137,
                "killed_by_agent": True,
                "container_error": "eagain",
            },
            "eagain",
        ),
        ({"resource": "processes", "exit_code": 137}, "error"),
        ({"resource": "processes", "exit_code": 137, "oom_killed": True}, "oom-kill"),
        (
            {
                "resource": "inodes",
                "exit_code": 137,
                "killed_by_agent": True,
                "host_exhausted": True,
            },
            "enospc",
        ),
        # memory: a SIGKILL nobody claims is the OOM killer's (old kernels leave no other trace)
        ({"resource": "memory", "exit_code": 137}, "oom-kill"),
    ],
)
def test_decide_stop_reason_sigkill_is_not_always_oom(
    observed: dict[str, object], reason: str
) -> None:
    assert pa.decide_stop_reason(observed) == reason


# -- OOM kills of other lab hosts on the same kernel -----------------------------------------

LAB = "f" * 64
OTHER_LAB = "e" * 64
OTHER_CID = "d" * 64


def _oom(memcg: str, pid: int) -> list[str]:
    return [
        f"[2694.2] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=x,"
        f"mems_allowed=0,oom_memcg={memcg},task_memcg={memcg},task=tail,pid={pid},uid=0",
        f"[2694.2] Memory cgroup out of memory: Killed process {pid} (tail) "
        "total-vm:979956kB, anon-rss:977408kB, file-rss:116kB, shmem-rss:0kB, UID:0",
    ]


def test_oom_host_scope_real_host_and_lab_hosts() -> None:
    mine = _oom(f"/docker/{LAB}/docker/{CID}", 8129)
    # a real host: everything on the kernel is the host
    assert pa.oom_host_scope(f"/docker/{CID}", "/", _oom(f"/docker/{CID}", 1), CID) == ""
    # a lab host without a cgroup namespace (cgroup v1): it names its cgroups in full
    assert (
        pa.oom_host_scope(f"/docker/{LAB}/docker/{CID}", f"/docker/{LAB}", mine, CID)
        == f"/docker/{LAB}"
    )
    assert (
        pa.oom_host_scope(f"/docker/{LAB}/docker/{CID}", f"/docker/{LAB}", [], CID)
        == f"/docker/{LAB}"
    )
    # a lab host with its own cgroup namespace: the kernel's prefix comes from the line
    assert pa.oom_host_scope(f"/docker/{CID}", "/", mine, CID) == f"/docker/{LAB}"
    assert pa.oom_host_scope(f"/docker/{CID}", "/", [], CID) is None
    assert pa.oom_host_scope(None, "/", mine, CID) is None


def test_attribute_oom_leaves_out_kills_of_other_lab_hosts() -> None:
    mine = _oom(f"/docker/{LAB}/docker/{CID}", 8129)
    theirs = _oom(f"/docker/{OTHER_LAB}/docker/{OTHER_CID}", 7913) + _oom(
        f"/docker/{OTHER_LAB}/docker/{OTHER_CID}", 8291
    )
    lines = theirs[:2] + mine + theirs[2:]
    scope = pa.oom_host_scope(f"/docker/{LAB}/docker/{CID}", f"/docker/{LAB}", lines, CID)
    got = pa.attribute_oom(True, 137, False, 3, lines, CID, scope)
    assert got["oom_victim"] == "container"
    assert got["oom_kills_total"] == 1 and got["oom_kills_other"] == 0
    assert got["oom_kills_outside"] == 2 and got["oom_outside_victims"] == "tail,tail"
    # the run's bug: without the scope the other hosts' kills read as this host's
    assert pa.attribute_oom(True, 137, False, 3, lines, CID)["oom_victim"] == "container+host"
    # a process of this host outside the container still counts as the host's
    host_proc = _oom(f"/docker/{LAB}/system.slice/sshd", 77)
    got = pa.attribute_oom(True, 137, False, 2, mine + host_proc, CID, scope)
    assert got["oom_victim"] == "container+host" and got["oom_kills_outside"] == 0


def test_cgroup_view_v1_nested_and_v2() -> None:
    mounts = pa.parse_cgroup_mounts(MOUNTINFO_V1_NESTED)
    proc = pa.parse_proc_cgroup("4:memory:/docker/outer/docker/inner\n")
    assert pa.cgroup_view(proc, mounts, "memory") == ("/docker/outer/docker/inner", "/docker/outer")
    mounts = pa.parse_cgroup_mounts(MOUNTINFO_V2)
    proc = pa.parse_proc_cgroup("0::/system.slice/docker-abc.scope\n")
    assert pa.cgroup_view(proc, mounts, "memory") == ("/system.slice/docker-abc.scope", "/")
    assert pa.cgroup_view({}, [], "pids") == (None, None)


# -- one probe image per run, the disk given back after each experiment ------------------------


def test_probe_image_is_made_once_per_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, ...]] = []

    def fake(
        docker: Any, work_dir: str, tools: tuple[str, ...], timeout: float = 0
    ) -> dict[str, Any]:
        calls.append(tuple(tools))
        return {
            "probe_image": "labctl-probe:abc",
            "probe_image_files": 9,
            "probe_image_built": True,
            "probe_image_bytes": 1000,
        }

    monkeypatch.setattr(agent_context, "ensure_probe_image", fake)  # where Agent finds it
    agent = pa.Agent("r1", "h", str(tmp_path), 60)
    first = agent.probe_image()
    second = agent.probe_image()
    assert len(calls) == 1 and set(calls[0]) >= {"sh", "dd", "tail", "sleep", "mkdir"}
    assert first["probe_image_built"] is True and first["probe_image_bytes"] == 1000
    assert second["probe_image"] == "labctl-probe:abc" and second["probe_image_built"] is False


def test_fs_free(tmp_path: Path) -> None:
    got = pa.fs_free(str(tmp_path))
    assert got["free_bytes"] > 0 and got["size_bytes"] >= got["free_bytes"]
    assert set(got) == {"free_bytes", "free_inodes", "size_bytes", "inodes_total"}
    assert pa.fs_free(str(tmp_path / "missing")) == {}


def test_a_stall_without_a_limit_is_its_own_stop_reason() -> None:
    # seen on an emulated (TCG) VM: no new process for stall_s, then the agent stopped it
    o = {"agent_stop": "stall", "resource": "processes", "exit_code": 137}
    assert pa.decide_stop_reason(o) == "stall"
    o.update(limit_applied=True, near_limit=True)
    assert pa.decide_stop_reason(o) == "container-limit"
    assert "stall" in pa.STOP_REASONS


# -- a stall must mean the writer really stalled (issue 9) ---------------------------------------


def test_stall_window_scales_with_the_slowest_step() -> None:
    assert pa.stall_window(3.0, 0.0) == 3.0  # a fast machine: the configured 3 s
    assert pa.stall_window(3.0, 0.4) == 3.0
    assert pa.stall_window(3.0, 2.0) == 10.0  # TCG: 2 s between bursts -> 10 s
    assert pa.stall_window(3.0, 40.0) == pa.STALL_WINDOW_MAX_S
    assert pa.stall_window(90.0, 1.0) == 90.0  # never below stall_s, even above the max


def test_stall_decision() -> None:
    sleeping = {"pid": 4242, "name": "dd", "state": "S"}
    blocked = {"pid": 4242, "name": "dd", "state": "D"}
    # the host still moves (writeback, the pool file grows): not a stall, whatever the writer
    assert pa.stall_decision(30.0, 0.5, 10.0, sleeping) == (False, None)
    # the container's own counter still moves: not a stall
    assert pa.stall_decision(0.2, 30.0, 10.0, sleeping) == (False, None)
    stalled, why = pa.stall_decision(12.5, 11.0, 10.0, sleeping)
    assert stalled and why == (
        "dd (pid 4242) is alive in state S and nothing moved in the container (its progress, its "
        "own write counter) or on the host (free space, pool file, dirty pages) for 11.0 s "
        "(window 10.0 s)"
    )
    # blocked in I/O: three windows before it counts
    assert pa.stall_decision(25.0, 25.0, 10.0, blocked) == (False, None)
    stalled, why = pa.stall_decision(31.0, 31.0, 10.0, blocked)
    assert stalled and why.startswith(
        "dd (pid 4242) is alive in state D (blocked in I/O) and nothing moved"
    )
    stalled, why = pa.stall_decision(11.0, 11.0, 10.0, None)
    assert stalled and why.startswith("the writer is gone")


def test_proc_io_and_stat_parsers() -> None:
    io = (
        "rchar: 10485760\nwchar: 219152384\nsyscr: 201\nsyscw: 209\nread_bytes: 0\n"
        "write_bytes: 216006656\ncancelled_write_bytes: 0\n"
    )
    assert pa.parse_proc_io(io)["wchar"] == 219152384
    assert pa.parse_proc_io(None) == {}
    stat = "4242 (dd) D 4200 4200 4200 0 -1 4194560 150 0 0 0 3 120 0 0 20 0 1 0 9876 ..."
    assert pa.parse_proc_stat_fields(stat) == ("dd", "D", 4200)
    assert pa.parse_proc_stat_fields("77 (my (odd) name) S 1 77") == ("my (odd) name", "S", 1)
    assert pa.parse_proc_stat_fields("") is None


def test_writer_counter_of_a_real_child(tmp_path: Path) -> None:
    """find_child and /proc/PID/io on a real child process of this test (no Docker)."""
    proc = subprocess.Popen(
        [
            "sh",
            "-c",
            "dd if=/dev/zero of=%s bs=64k count=16 2>/dev/null; exec sleep 30" % (tmp_path / "f"),
        ]
    )
    try:
        deadline = time.time() + 10
        while (tmp_path / "f").exists() is False or os.path.getsize(tmp_path / "f") < 16 * 65536:
            assert time.time() < deadline
            time.sleep(0.05)
        # dd has written it all and exits (on a busy machine a moment later); the shell then
        # exec's sleep: no dd under it
        while pa.find_child(proc.pid, "dd") is not None:
            assert time.time() < deadline
            time.sleep(0.05)
        info = pa.parse_proc_stat_fields(pa.read_text(f"/proc/{proc.pid}/stat"))
        assert info is not None and info[0] == "sleep" and info[2] == os.getpid()
        assert pa.find_child(os.getpid(), "sleep") == proc.pid
    finally:
        proc.kill()
        proc.wait()


# -- the processes ratio, explained (issue 9: 0.0 to 2.4 between hosts of one run) --------------


def test_process_ratio_is_host_visible_processes_per_container_process() -> None:
    assert pa.process_ratio(120, 1121, 1001) == (1.0, 1001, 1001)
    # kernel-wide threads would also count another lab host's fork bomb; /proc of this host
    # (its pid namespace) does not
    assert pa.process_ratio(120, 120, 1001) == (0.0, 0, 1001)
    assert pa.process_ratio(None, 1121, 1001) == (None, None, 1001)
    assert pa.process_ratio(120, 1121, 0) == (None, None, 0)
    assert "pid namespace" in pa.RATIO_DEFINITIONS["processes"]


def test_verdict_processes_names_numerator_and_denominator() -> None:
    m = {
        "stop_reason": "cap",
        "processes_started": 1000,
        "cap_effective": 1000,
        "host_procs_delta": 1001,
        "ratio_denominator": 1001,
        "landed_on_host_ratio": 1.0,
        "host_threads_delta": 2403,
        "host_fork_ok": True,
        "host_pid_max": 4194304,
        "host_threads_max": 7612,
    }
    v = pa.resource_verdict("processes", m)
    assert (
        "the host saw 1,001 more processes at the container's peak for 1,001 in the "
        "container (ratio 1.00; kernel-wide threads rose by 2,403)"
    ) in v


def test_processes_limited_before_docker_111_is_a_finding() -> None:
    _ok, why = pa.pids_gate("1.5.0", ["cpu", "memory"])
    m = {"host_pid_max": 32768, "host_threads_max": 7612}
    v = pa.pids_unavailable_verdict("1.5.0", why, m)
    assert v.startswith(
        "not available: --pids-limit arrived in Docker 1.11; Docker 1.5.0 has "
        "no per-container process limit, so nothing but the host's own limits "
        "(pid_max 32,768, threads-max 7,612) stops a container's processes"
    )
    _ok, why = pa.pids_gate("20.10.5", ["cpu", "memory"])
    assert pa.pids_unavailable_verdict("20.10.5", why, m).startswith(
        "not available: this kernel has no pids cgroup (Linux 4.3+)"
    )
    assert "not-available" in pa.STOP_REASONS
    from labctl.report.classify import AFFECTED, classify

    rec = {
        "status": "ok",
        "verdict": v,
        "metrics": {"stop_reason": "not-available", "limit_available": False},
    }
    assert classify(rec).cls == AFFECTED


def test_own_cgroup_tells_the_container_s_from_the_daemon_s() -> None:
    cid = "3f1c2a9b8d7e6f5a4b3c2d1e0f"
    assert pa.own_cgroup("/sys/fs/cgroup/pids/docker/" + cid, cid)
    assert pa.own_cgroup(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope", cid)
    # Docker 1.5.0 started from an ssh session: no pids cgroup of the container's own
    assert not pa.own_cgroup("/sys/fs/cgroup/pids/user.slice/user-0.slice/session-3.scope", cid)
    assert pa.own_cgroup("/sys/fs/cgroup/pids/whatever", None)  # no id known: trusted


def test_the_throwaway_daemon_of_drivers_available_is_the_engines_own_apart() -> None:
    """Its own root, socket, pid file and (from 19.03) containerd namespaces; no networking."""
    place = {"dir": "/w/driver-vfs", "root": "/w/r", "exec": "/w/e", "sock": "/w/s", "pid": "/w/p"}
    old = pa.daemon_command(["/usr/bin/docker", "-d", "-H", "fd://"], "1.5.0", "vfs", place)
    assert old == ["/usr/bin/docker", "-d", "-g", "/w/r", "-H", "unix:///w/s", "-p", "/w/p",
                   "--bridge=none", "--iptables=false", "-s", "vfs"]  # fmt: skip
    new = pa.daemon_command(["/usr/sbin/dockerd", "-H", "fd://"], "20.10.24", "", place)
    assert new[:3] == ["/usr/sbin/dockerd", "--data-root", "/w/r"]
    assert "--containerd-namespace" in new and "-s" not in new
    assert "labctl-drivers-driver-vfs" in new


def test_the_driver_switch_goes_to_a_driver_that_starts_anywhere_and_says_what_it_saw() -> None:
    assert pa.second_driver("devicemapper") == "vfs" and pa.second_driver("vfs") == "overlay"
    seen = {"first_driver": "devicemapper", "second_driver": "vfs",
            "container_listed_after_switch": False, "image_listed_after_switch": True,
            "image_runs_after_switch": False, "image_run_error": "no such id",
            "restored_reads_file": True}  # fmt: skip
    assert pa.switch_verdict(seen) == (
        "a container made with devicemapper, after the daemon switched to vfs: it is no longer "
        "listed; its image is listed but does not run (no such id); export, delete the root, "
        "start, import gives the file back; as the article says"
    )
    # what 1.5.0 did on the article lab's c66d: the image is gone too (and is never run, which
    # would send the engine to a registry for it)
    gone = dict(seen, image_listed_after_switch=False, image_run_error=None)
    assert "its image is gone; export" in pa.switch_verdict(gone)
