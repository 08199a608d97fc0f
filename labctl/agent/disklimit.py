# -*- coding: utf-8 -*-
"""Per-container disk and swap limits: --storage-opt size=, devicemapper's base device
size and thin pool, the daemon's storage options (pure where possible)."""

from __future__ import absolute_import, division, print_function

import os
import re

from .cgroups import UNLIMITED_CGROUP
from .consts import GIB, MIB
from .docker import find_daemon_pid, is_daemon_cmdline
from .text import TEXT_TYPE, one_line, parse_size, read_text, to_int, version_tuple

# -- per-container disk limits (disk-limited; devicemapper's base size) and swap accounting ------

DISK_LIMIT_CAP_FACTOR = 2     # disk-limited writes up to twice its limit: past it if it fails
STORAGE_OPT_MIN_VERSION = (1, 12)  # `docker run/create --storage-opt` came with Docker 1.12
HOST_ROOM_MIN_BYTES = 32 * MIB     # less free than this on the host is no "room"

# the engine's (or an old client's) words when it refuses a per-container size, lower case;
# -> kind: "client" (no such flag), "driver" (the storage driver has no size option),
# "quota" (its filesystem has no quota), "below-base" (devicemapper: not below the base size)
_STORAGE_OPT_REFUSALS = (
    ("flag provided but not defined", "client"),
    ("unknown flag: --storage-opt", "client"),
    ("unknown flag: storage-opt", "client"),
    ("cannot be smaller than", "below-base"),
    ("storage size cannot be less than", "below-base"),
    ("storage-opt is supported only for", "driver"),
    ("storage-opt is not supported", "driver"),
    ("does not support, or has not enabled quotas", "quota"),
    ("quota", "quota"),
    ("storage opt", "driver"),
    ("storage-opt", "driver"),
    ("storageopt", "driver"),
    ("unknown option size", "driver"),
    ("not supported", "driver"),
)


def engine_message(text):
    """The engine's own words from docker CLI stderr, on one line: 'docker: Error response
    from daemon: X.' and "See 'docker run --help'." stripped."""
    lines = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("See '") or line.startswith("WARNING"):
            continue
        if line.lower().startswith("usage:"):
            break
        lines.append(line)
    msg = " ".join(lines)
    msg = re.sub(r"^(docker: )?(Error response from daemon: )?", "", msg)
    msg = re.sub(r"^(Error: )", "", msg)
    msg = re.sub(r"^(failed to create .*?: )", "", msg)
    return one_line(msg.rstrip(". "), 300)


def storage_opt_refusal(text):
    """The kind of refusal ('client', 'driver', 'quota', 'below-base') when a `docker
    create --storage-opt size=` failed because of that option; None for any other error."""
    low = (text or "").lower()
    for needle, kind in _STORAGE_OPT_REFUSALS:
        if needle in low:
            if needle == "not supported" and "size" not in low and "storage" not in low:
                continue
            return kind
    return None


def base_device_size(driver, driver_status):
    """devicemapper's base device size (every container's / is a thin device this big) in
    bytes, from `docker info` ('Base Device Size: 10.74 GB'); None for other drivers."""
    if (driver or "").lower() != "devicemapper":
        return None
    for key, value in (driver_status or {}).items():
        if key.strip().lower() == "base device size":
            return parse_size(value)
    return None


_FS_NAMES = {"extfs": "ext4", "ext2/ext3": "ext4"}


def storage_opt_skip_verdict(driver, fstype, kind, message, server_version=None):
    """Why disk-limited cannot run here, in plain words, quoting the engine."""
    if kind == "client" or kind == "old-docker":
        said = (" (docker says: %s)" % message) if message else ""
        return ("not supported here: Docker %s has no per-container disk size limit "
                "(`docker run --storage-opt size=` came with Docker 1.12)%s"
                % (server_version or "(unknown version)", said))
    fs = _FS_NAMES.get((fstype or "").lower(), fstype or "its filesystem")
    return ("not supported here: %s on %s has no per-container size limit (the engine says: %s)"
            % (driver or "this storage driver", fs, message or "no reason given"))


def disk_limit_plan(limited, driver, server_version, requested, base_size, opt_probe=None,
                    fstype=None):
    """How the disk check runs with respect to a per-container disk limit (pure).

    ``limited``: the check asks for a per-container size (disk-limited); without it only
    devicemapper's base device size can be a limit.
    ``opt_probe``: what trying `docker create --storage-opt size=<requested>` gave: None (not
    tried), ("ok", "") or ("failed", docker's stderr).  Returns a dict: storage_opt (bool:
    pass the flag), limit (bytes in effect or None), source ('storage-opt',
    'base-device-size' or None), try_opt (bool: the caller should try the flag first), skip
    (the record's verdict when it cannot run here, or None), refusal (kind or None), message
    (the engine's words or None), error (the create failed for another reason: an error)."""
    plan = {"storage_opt": False, "limit": None, "source": None, "try_opt": False,
            "skip": None, "refusal": None, "message": None, "error": None}
    if base_size:  # devicemapper: every container's / is a thin device of this size
        plan["limit"], plan["source"] = base_size, "base-device-size"
    if not limited:
        return plan
    vt = version_tuple(server_version)
    if vt is not None and vt < STORAGE_OPT_MIN_VERSION:
        plan["refusal"] = "old-docker"
        if not base_size:
            plan["skip"] = storage_opt_skip_verdict(driver, None, "old-docker", None,
                                                    server_version)
        return plan
    if opt_probe is None:
        plan["try_opt"] = True
        return plan
    status, text = opt_probe
    if status == "ok":
        plan.update({"storage_opt": True, "limit": int(requested), "source": "storage-opt"})
        return plan
    plan["message"] = engine_message(text) or one_line(text) or None
    plan["refusal"] = storage_opt_refusal(text)
    if plan["refusal"] is None:
        plan["error"] = plan["message"] or "docker create failed"
    elif not base_size:
        plan["skip"] = storage_opt_skip_verdict(driver, fstype, plan["refusal"],
                                                plan["message"], server_version)
    return plan


def disk_limited_cap(cap, limit):
    """The write cap of disk-limited: twice the limit in effect, still under the cap."""
    if not limit:
        return cap
    want = int(limit) * DISK_LIMIT_CAP_FACTOR
    return want if cap is None else min(int(cap), want)


def host_had_room(written, free_min, limit=None):
    """Did the host's filesystem clearly still have room when the container got ENOSPC?
    ``free_min``: the least free space seen (root's view).  Room means at least 32 MiB
    free, and either as much free as was written, or the container wrote up to (80% of)
    a known per-container limit."""
    if free_min is None or free_min < HOST_ROOM_MIN_BYTES:
        return False
    if limit and written is not None and written >= 0.8 * limit:
        return True
    return free_min >= (written or 0)


def swap_limit_warning(warnings):
    """True when `docker info` warns that swap cannot be limited ('No swap limit support',
    the study's Ubuntu 14.04), False when it does not (or None when nothing was read)."""
    if warnings is None:
        return None
    for w in warnings:
        low = (w or "").lower()
        if "no swap limit support" in low or "swap limit capabilities" in low:
            return True
    return False


def swap_limit_applied(requested, run_stderr, info_warning, cgroup_value, cgroup_version,
                       inspect_swap=None):
    """Was --memory-swap applied?  -> (True/False/None, source 'cgroup'|'engine'|
    'engine-warning'|'assumed').

    ``cgroup_value``: the container cgroup's swap limit as read (v1
    memory.memsw.limit_in_bytes in bytes, v2 memory.swap.max as text), '' when the file is
    missing, None when the cgroup could not be read.  ``inspect_swap``: HostConfig.MemorySwap
    of `docker inspect` (an engine without swap accounting stores -1)."""
    if not requested:
        return None, None
    if cgroup_value is not None:
        v = TEXT_TYPE(cgroup_value).strip()
        if v == "":
            return False, "cgroup"  # no memsw / swap file: the kernel accounts no swap
        if cgroup_version == 2:
            return v != "max", "cgroup"
        n = to_int(v)
        if n is not None:
            return n < UNLIMITED_CGROUP and n <= int(requested) + MIB, "cgroup"
    if inspect_swap is not None and to_int(inspect_swap) == -1:
        return False, "engine"
    if "swap limit" in (run_stderr or "").lower() or "without swap" in (run_stderr or "").lower():
        return False, "engine-warning"
    if info_warning:
        return False, "engine-warning"
    if inspect_swap is not None and (to_int(inspect_swap) or 0) > 0:
        return True, "engine"  # stored as asked, and no warning about it
    return True, "assumed"


DM_DEFAULT_BASE_SIZE = 10 * GIB  # DefaultBaseFsSize of Docker 1.x (devmapper/deviceset.go)
# `docker info` shows "Base Device Size" only since Docker 1.8; before, the base size is
# dm.basesize of the daemon's command line, else the engine's default above


def daemon_storage_opts(argv):
    """The daemon's `--storage-opt k=v` options (every era's spelling) -> {k: v}."""
    opts = {}
    argv = list(argv or [])
    for i, arg in enumerate(argv):
        value = None
        if arg in ("--storage-opt", "-storage-opt") and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--storage-opt=") or arg.startswith("-storage-opt="):
            value = arg.split("=", 1)[1]
        if value and "=" in value:
            k, v = value.split("=", 1)
            opts[k.strip().lower()] = v.strip()
    return opts


def docker_daemon_argv(daemon_pid=None):
    """The running docker daemon's command line (list), or None; ``daemon_pid`` (the facts'
    daemon_pid, where known) saves the look through /proc."""
    pid = daemon_pid or find_daemon_pid()
    if not pid:
        return None
    argv = [a for a in (read_text("/proc/%s/cmdline" % pid, 8192) or "").split("\0") if a]
    return argv if is_daemon_cmdline(argv) else None


def dm_base_size(driver, driver_status, daemon_argv=None):
    """devicemapper's per-container size (every container's / is its own thin device of this
    size) -> (bytes, source): 'docker-info' (Docker 1.8+ shows it), 'daemon-option'
    (--storage-opt dm.basesize=), 'engine-default' (10 GiB, Docker 1.x before 1.8 shows
    nothing); (None, None) for other drivers."""
    if (driver or "").lower() != "devicemapper":
        return None, None
    size = base_device_size(driver, driver_status)
    if size:
        return size, "docker-info"
    opt = daemon_storage_opts(daemon_argv).get("dm.basesize")
    # docker's units.RAMInBytes: binary units, an optional b ("10G", "512m", "2gb")
    mt = re.match(r"^(\d+)([kmgtp])?b?$", (opt or "").strip().lower())
    if mt:
        return int(mt.group(1)) * 1024 ** " kmgtp".index(mt.group(2) or " "), "daemon-option"
    return DM_DEFAULT_BASE_SIZE, "engine-default"


def dm_pool_file(driver, driver_status, sys_root="/sys", root_dir=None):
    """The sparse loop file that holds devicemapper's thin pool data (loop-lvm): 'Data loop
    file' (20.10: 'Data file' is then /dev/loopN), else 'Data file' when it is not a device
    (Docker 1.5.0 prints the loop file itself there on some setups); None (direct-lvm: the
    pool is a block device, nothing grows on a filesystem)."""
    if (driver or "").lower() != "devicemapper":
        return None
    status = dict((k.strip().lower(), (v or "").strip())
                  for k, v in (driver_status or {}).items())
    for key in ("data loop file", "data file"):
        path = status.get(key)
        if path and path.startswith("/") and not path.startswith("/dev/"):
            return path
    # only the loop device named ("Data file: /dev/loop0"): the file the kernel backs it with
    dev = status.get("data file") or ""
    if re.match(r"^/dev/loop\d+$", dev):
        return loop_backing_file(dev, sys_root)
    if dev:
        return None  # a block device: direct-lvm
    # nothing named (Docker 1.5.0 restarted on an existing pool prints "Data file: "): the
    # loop device the kernel backs with the loop-lvm file under the docker root
    want = os.path.join(root_dir or "/var/lib/docker", "devicemapper", "devicemapper", "data")
    try:
        loops = sorted(d for d in os.listdir(os.path.join(sys_root, "block"))
                       if d.startswith("loop"))
    except OSError:
        return None
    for d in loops:
        if loop_backing_file(d, sys_root) == want:
            return want
    return None


def loop_backing_file(dev, sys_root="/sys"):
    """/dev/loop0 -> the file behind it (/sys/block/loop0/loop/backing_file), or None."""
    text = read_text(os.path.join(sys_root, "block", os.path.basename(dev), "loop",
                                  "backing_file"), 4096)
    path = (text or "").strip()
    if path.endswith(" (deleted)"):
        path = path[:-len(" (deleted)")]
    return path or None


def dm_pool_space(driver_status):
    """(used, total, available) bytes of the thin pool's data from `docker info`'s
    DriverStatus (None where not shown; 'Data Space Available' came with Docker 1.8)."""
    status = dict((k.strip().lower(), (v or "").strip())
                  for k, v in (driver_status or {}).items())
    return tuple([parse_size(status[k]) if status.get(k) else None
                  for k in ("data space used", "data space total", "data space available")])


def allocated_bytes(path):
    """What a (sparse) file really takes on its filesystem: st_blocks * 512; None if unknown."""
    try:
        st = os.stat(path)
    except (OSError, TypeError):
        return None
    blocks = getattr(st, "st_blocks", None)
    return blocks * 512 if blocks is not None else None


def thin_pool_overcommit(base_size, host_free, pool_available=None):
    """Can one container's own limit (the thin device's size) be reached before the host runs
    out?  -> (over_committed bool or None, the room the host really has): the room is the
    host filesystem's free space under the pool file, and the pool's own free data space
    when smaller."""
    rooms = [r for r in (host_free, pool_available) if r is not None]
    if not base_size or not rooms:
        return None, (min(rooms) if rooms else None)
    room = min(rooms)
    return room < base_size, room
