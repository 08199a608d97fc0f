# -*- coding: utf-8 -*-
"""Verdict wording of the resource experiments (pure): what the numbers say, in the
study's words.  The words every resource shares are here; each resource's own sentence is its
``verdict_text`` (the res* modules), reached through ``Resource.verdict``."""

from __future__ import absolute_import, division, print_function

from .limits import DEFAULT_LIMITS
from .text import fmt_bytes, fmt_count, version_tuple


def process_ratio(host_procs_before, host_procs_at_peak, container_pids):
    """The processes check's ratio, explained: (host-visible processes at the container's
    peak - before) / the container's own process count.  -> (ratio, numerator,
    denominator); ratio None when a part is unknown."""
    if host_procs_before is None or host_procs_at_peak is None or not container_pids:
        return None, None, container_pids
    num = host_procs_at_peak - host_procs_before
    return round(float(num) / container_pids, 3), num, container_pids


def host_effect(m, keys):
    """'the host could still write a 1 MiB file and create a file' or the failure."""
    failed = []
    ok = []
    words = {"host_write": "write a %s file" % fmt_bytes(m.get("host_write_bytes")),
             "host_create": "create a file", "host_alloc": "allocate %s"
             % fmt_bytes(m.get("host_alloc_bytes")), "host_fork": "fork a process"}
    for k in keys:
        v = m.get(k + "_ok")
        if v is None:
            continue
        if v:
            ok.append(words[k])
        else:
            failed.append("%s (%s)" % (words[k], m.get(k + "_error") or "failed"))
    if failed:
        return "the host could NOT %s" % " or ".join(failed)
    if ok:
        return "the host could still %s" % " and ".join(ok)
    return "the host was not checked"


def floor_text(key, value):
    """'256 MiB free', '10,000 free inodes', '512 MiB MemAvailable', '2,000 free pids'."""
    if key == "free_bytes":
        return "%s free" % fmt_bytes(value)
    if key == "free_inodes":
        return "%s free inodes" % fmt_count(value)
    if key == "mem_available":
        return "%s MemAvailable" % fmt_bytes(value)
    return "%s free pids" % fmt_count(value)


def ratio_text(r):
    return "n/a" if r is None else "%.2f" % r


def disk_limit_words(m):
    """('its 64 MiB disk limit', '--storage-opt size=') or ("its 10 GiB disk limit",
    "devicemapper's base device size"); (None, None) when no limit is known."""
    limit = m.get("disk_limit_bytes")
    if not limit:
        return None, None
    how = {"base-device-size": "devicemapper's base device size",
           "storage-opt": "--storage-opt size="}.get(m.get("disk_limit_source"))
    return "its %s disk limit" % fmt_bytes(limit), how


def own_fs_words(m):
    """'the container's / is a filesystem of its own (9.8 GiB, 655,360 inodes, on its own
    devicemapper thin device) whose free inodes fell by 2,002', or None."""
    if not m.get("container_fs_own"):
        return None
    text = "the container's / is a filesystem of its own (%s, %s inodes%s)" % (
        fmt_bytes(m.get("container_fs_size_bytes")), fmt_count(m.get("container_fs_inodes_total")),
        ", on its own devicemapper thin device" if m.get("storage_driver") == "devicemapper"
        else "")
    if m.get("container_fs_free_inodes_delta") is not None:
        text += " whose free inodes fell by %s" % fmt_count(m["container_fs_free_inodes_delta"])
    return text


def overcommit_words(m):
    size = fmt_bytes(m.get("disk_limit_bytes") or m.get("container_fs_size_bytes"))
    room = fmt_bytes(m.get("thin_pool_room_bytes"))
    if m.get("thin_pool_overcommitted"):
        return ("the thin pool over-commits: each container may fill its %s device, but the "
                "pool has only %s to grow into on this host, so the host runs out before a "
                "container reaches its own limit" % (size, room))
    if m.get("thin_pool_overcommitted") is False:
        return ("the pool has %s to grow into on this host, more than one container's %s "
                "device" % (room, size))
    return None


def dm_disk_words(m, overcommit=True):
    """devicemapper loop-lvm: where the container's bytes went, in plain words; None else."""
    pool = m.get("pool_data_file")
    if m.get("storage_driver") != "devicemapper" or "pool_data_file" not in m:
        return None
    size = m.get("container_fs_size_bytes") or m.get("base_device_size_bytes")
    if not pool:
        text = ("devicemapper: the container wrote into its own %s thin device; the pool's "
                "data file was not found (direct-lvm: a block device, not a file on the host's "
                "filesystem)" % fmt_bytes(size))
    else:
        text = ("devicemapper: the container wrote into its own %s thin device, which lives "
                "in the sparse pool file %s on the host's filesystem" % (fmt_bytes(size), pool))
        if m.get("pool_file_growth_bytes") is not None:
            text += ("; the pool file grew by %s (allocated blocks, ratio %s) and the host's "
                     "free space fell by %s (ratio %s)"
                     % (fmt_bytes(m["pool_file_growth_bytes"]),
                        ratio_text(m.get("pool_growth_ratio")),
                        fmt_bytes(m.get("ratio_numerator")),
                        ratio_text(m.get("landed_on_host_ratio"))))
    if m.get("pool_data_space_growth_bytes") is not None:
        text += "; the pool's Data Space Used rose by %s" % fmt_bytes(
            m["pool_data_space_growth_bytes"])
    oc = overcommit_words(m) if overcommit else None
    if oc:
        text += "; " + oc
    if m.get("thin_pool_read_only"):
        text += ("; the kernel switched the thin pool to read-only (%s): every container of "
                 "this engine lost its writable disk until the pool is repaired"
                 % (m.get("thin_pool_kernel_line") or "?"))
    return text


def pids_unavailable_verdict(server_version, why, m):
    """processes-limited where no per-container process limit exists: the finding."""
    vt = version_tuple(server_version)
    if vt is None or vt < (1, 11):
        head = ("not available: --pids-limit arrived in Docker 1.11; Docker %s has no "
                "per-container process limit" % (server_version or "(unknown version)"))
    else:
        head = ("not available: this kernel has no pids cgroup (Linux 4.3+), so Docker %s "
                "cannot limit a container's processes" % server_version)
    return ("%s, so nothing but the host's own limits (pid_max %s, threads-max %s) stops a "
            "container's processes: see the processes check for how far one gets (%s)"
            % (head, fmt_count(m.get("host_pid_max")), fmt_count(m.get("host_threads_max")),
               why))


def not_run_verdict(m, free_key, before):
    """The container was never started: the host was at (or below) a safety floor.
    ``free_key``: the resource's free amount, ``before`` its value before the run."""
    floor = m.get("floor")
    if m.get("floor_tripped"):
        free_key, before, floor = (m["floor_tripped"], m.get("floor_tripped_value"),
                                   m.get("floor_tripped_at"))
    return ("not run: the host has only %s, at or below the safety floor of %s; lower the "
            "floor with --set (e.g. --set disk_floor_bytes=64M) or free some to run it" % (
                floor_text(free_key, before), floor_text(free_key, floor)))


def too_little_verdict(m, free_key, before, minimum):
    """The container was never started: what the cap left it (a share of what is free) is
    below what the check can tell from the host's own noise."""
    fmt = fmt_bytes if free_key in ("free_bytes", "mem_available") else fmt_count
    return ("not run: the host has only %s, too little to measure (the container would get "
            "%s, under the %s the check needs); free some to run it"
            % (floor_text(free_key, before), fmt(m.get("cap_effective") or 0), fmt(minimum)))


def error_verdict(m):
    return "error: the container stopped without a known cause (exit %s: %s)" % (
        m.get("container_exit_code"), m.get("container_error_line") or "no output")


def stopped_words(m, reason, fmt_amount, free_key):
    """How the container stopped, in words ('stopped at the cap of 1 GiB', ...);
    ``fmt_amount`` writes the resource's amounts (bytes or counts)."""
    stop_words = {
        "cap": "stopped at the cap of %s" % fmt_amount(m.get("cap_effective")),
        "floor": "stopped by the agent at the host's safety floor of %s" % (
            floor_text(m.get("floor_tripped") or free_key,
                       m.get("floor_tripped_at", m.get("floor")))),
        "enospc": "stopped at ENOSPC",
        "eagain": "stopped at EAGAIN (fork failed)",
        "oom-kill": "OOM-killed",
        "container-limit": "stopped by its own limit",
        "timeout": ("stopped at the agent's own time limit (--timeout: %g s left for this "
                    "experiment)" % m["timeout_s_effective"])
        if m.get("timeout_source") == "agent-deadline" else
        "stopped at the time limit of %g s" % (m.get("experiment_timeout_s") or 0),
        "stall": ("stopped by the agent: the writer stalled (%s)" % m["stall_detail"])
        if m.get("stall_detail") else "stopped by the agent when it made no progress for "
        "%g s" % (m.get("stall_s") or DEFAULT_LIMITS.get("stall_s") or 0),
    }
    return stop_words.get(reason, "stopped (%s)" % reason)
