# -*- coding: utf-8 -*-
"""Verdict wording of the resource experiments (pure): what the numbers say, in the
study's words."""

from __future__ import absolute_import, division, print_function

from .limits import DEFAULT_LIMITS, FREE_KEY, RESOURCE_OF
from .text import fmt_bytes, fmt_count, version_tuple


def process_ratio(host_procs_before, host_procs_at_peak, container_pids):
    """The processes check's ratio, explained: (host-visible processes at the container's
    peak - before) / the container's own process count.  -> (ratio, numerator,
    denominator); ratio None when a part is unknown."""
    if host_procs_before is None or host_procs_at_peak is None or not container_pids:
        return None, None, container_pids
    num = host_procs_at_peak - host_procs_before
    return round(float(num) / container_pids, 3), num, container_pids


RATIO_DEFINITIONS = {
    "disk": "the largest fall of the host filesystem's free space (root's view) while the "
            "container held its data / the bytes the container wrote",
    "disk-dm": "the largest fall of the host filesystem's free space (root's view, the "
               "filesystem that holds the thin pool's loop file) / the bytes the container "
               "wrote into its own thin device",
    "inodes": "the fall of the host filesystem's free inodes at the container's peak / the "
              "files and folders the container created",
    "memory": "the largest fall of the host's MemAvailable / the container's peak memory use",
    "processes": "the rise of the processes this host sees in /proc (its pid namespace) at "
                 "the container's peak / the container's own processes at the peak (its "
                 "pids cgroup, else the children it started + its shell)",
}


def _host_effect(m, keys):
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


def _floor_text(key, value):
    """'256 MiB free', '10,000 free inodes', '512 MiB MemAvailable', '2,000 free pids'."""
    if key == "free_bytes":
        return "%s free" % fmt_bytes(value)
    if key == "free_inodes":
        return "%s free inodes" % fmt_count(value)
    if key == "mem_available":
        return "%s MemAvailable" % fmt_bytes(value)
    return "%s free pids" % fmt_count(value)


def _ratio_text(r):
    return "n/a" if r is None else "%.2f" % r


def _disk_limit_words(m):
    """('its 64 MiB disk limit', '--storage-opt size=') or ("its 10 GiB disk limit",
    "devicemapper's base device size"); (None, None) when no limit is known."""
    limit = m.get("disk_limit_bytes")
    if not limit:
        return None, None
    how = {"base-device-size": "devicemapper's base device size",
           "storage-opt": "--storage-opt size="}.get(m.get("disk_limit_source"))
    return "its %s disk limit" % fmt_bytes(limit), how


def _own_fs_words(m):
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


def _overcommit_words(m):
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


def _dm_disk_words(m, overcommit=True):
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
                        _ratio_text(m.get("pool_growth_ratio")),
                        fmt_bytes(m.get("ratio_numerator")),
                        _ratio_text(m.get("landed_on_host_ratio"))))
    if m.get("pool_data_space_growth_bytes") is not None:
        text += "; the pool's Data Space Used rose by %s" % fmt_bytes(
            m["pool_data_space_growth_bytes"])
    oc = _overcommit_words(m) if overcommit else None
    if oc:
        text += "; " + oc
    if m.get("thin_pool_read_only"):
        text += ("; the kernel switched the thin pool to read-only (%s): every container of "
                 "this engine lost its writable disk until the pool is repaired"
                 % (m.get("thin_pool_kernel_line") or "?"))
    return text


def _disk_verdict(name, m, reason, stopped, where):
    got = fmt_bytes(m.get("written_bytes"))
    written = m.get("written_bytes") or 0
    ratio = m.get("landed_on_host_ratio")
    effect = _host_effect(m, ("host_write", "host_create"))
    limit = m.get("disk_limit_bytes")
    limit_words, how = _disk_limit_words(m)
    refused = ""
    if name == "disk-limited" and m.get("storage_opt_size") == "refused":
        refused = " (--storage-opt size=%s was refused, the engine says: %s)" % (
            fmt_bytes(m.get("disk_limit_requested_bytes")), m.get("storage_opt_error") or "?")
    if ratio is not None and ratio >= 0.8:
        landed = ("every byte written landed on the host's %s (free space fell by %s, "
                  "ratio %s)" % (where, fmt_bytes(m.get("ratio_numerator",
                                                        m.get("host_free_bytes_delta"))),
                                 _ratio_text(ratio)))
    elif ratio is not None and ratio >= 0.2:
        landed = ("part of what was written landed on the host's %s (ratio %s)"
                  % (where, _ratio_text(ratio)))
    else:
        landed = ("what was written did not show up as lost free space on the host's %s "
                  "(ratio %s)" % (where, _ratio_text(ratio)))
    if reason == "container-limit":
        err = {"edquot": "EDQUOT", "enospc": "ENOSPC"}.get(m.get("container_error"),
                                                          "ENOSPC/EDQUOT")
        if limit_words:
            head = "contained: the container stopped at %s (%s%s after %s)" % (
                limit_words, how + "; " if how else "", err, got)
        else:
            head = ("contained: a limit of the container's own stopped it (%s after %s; no "
                    "per-container limit is known for %s)" % (
                        err, got, m.get("storage_driver") or "this storage driver"))
        return "%s%s; the host's filesystem kept %s free and %s" % (
            head, refused, fmt_bytes(m.get("host_free_bytes_min")), effect)
    past = bool(limit) and written > 1.05 * limit
    if reason == "enospc":
        follows = ("a container can fill the host disk" if not m.get("host_write_ok", True)
                   or not m.get("host_create_ok", True) else
                   "the container's disk filled, not the host's")
        if limit_words:
            follows += "; %s (%s) did not stop it first" % (limit_words, how or "?")
        return "%s after %s%s: %s, and %s: %s" % (stopped, got, refused, landed, effect,
                                                 follows)
    at_cap = reason == "cap"
    if limit_words and past:
        return ("NOT contained: the container wrote %s, past %s (%s), until it was %s; %s; %s: "
                "the limit did not hold%s" % (got, limit_words, how or "?", stopped, landed,
                                              effect, refused))
    if limit_words and reason in ("cap", "floor", "timeout", "stall") and not past and \
            m.get("disk_limit_source") == "base-device-size" and m.get("thin_pool_overcommitted"):
        return ("%s after %s, far below %s (%s, a per-container limit that exists), which cannot "
                "be reached on this host: %s; %s; %s: a container can fill the host disk"
                % (stopped, got, limit_words, how or "?", _overcommit_words(m), landed, effect))
    if limit_words and reason in ("cap", "floor"):
        return ("%s after %s, before %s (%s) was reached%s: whether the limit holds was not "
                "tested (raise disk_cap_bytes above it, or run with --exhaust); %s; %s"
                % (stopped, got, limit_words, how or "?", refused, landed, effect))
    follows = ("no container limit applied up to %s: a container can fill the host disk"
               % got) if ratio is not None and ratio >= 0.8 else (
        "no container limit applied up to %s, but the host's free space did not follow"
        % got)
    if at_cap:
        return "%s: %s; %s; %s" % (stopped, landed, effect, follows)
    return "%s after %s: %s; %s; %s" % (stopped, got, landed, effect, follows)


def _swap_note(m):
    """memory-limited: '; swap was NOT limited (...)' when --memory-swap did not apply."""
    if m.get("memory_swap_limit_applied") is True:
        return ("; swap was limited too (--memory-swap applied: %s; no swap warning from the "
                "engine)" % {"cgroup": "the container's cgroup has its swap limit",
                             "engine": "the engine stored it"}.get(
                    m.get("memory_swap_limit_source"), "assumed"))
    if m.get("memory_swap_limit_applied") is not False:
        return ""
    if m.get("engine_run_warning") and "swap" in m["engine_run_warning"].lower():
        why = "docker run warned \"%s\"" % m["engine_run_warning"]
    elif m.get("engine_swap_limit_warning"):
        why = "the engine warns \"No swap limit support\""
    else:
        why = "the kernel accounts no swap for the container's cgroup"
    note = ("; swap was NOT limited: %s, so --memory-swap did not apply (the study's Ubuntu "
            "14.04 situation) and the container can go past its -m limit into the host's "
            "swap" % why)
    if m.get("host_swap_total_bytes") == 0:
        note += " (this host has no swap, so it made no difference here)"
    elif m.get("host_swap_total_bytes"):
        note += " (%s of swap on this host)" % fmt_bytes(m.get("host_swap_total_bytes"))
    return note


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


def resource_verdict(name, m):
    """A plain sentence: what was observed, and what follows from it."""
    resource = RESOURCE_OF[name]
    reason = m.get("stop_reason")
    where = "%s filesystem (%s)" % (m.get("target_path") or "?", m.get("target_fstype") or "?")
    if reason == "floor" and not m.get("container_started"):
        before = {"disk": m.get("host_free_bytes_before"),
                  "inodes": m.get("host_free_inodes_before"),
                  "memory": m.get("host_mem_available_before"),
                  "processes": m.get("host_free_pids_before")}[resource]
        key = FREE_KEY[resource]
        floor = m.get("floor")
        if m.get("floor_tripped"):
            key, before, floor = (m["floor_tripped"], m.get("floor_tripped_value"),
                                  m.get("floor_tripped_at"))
        return ("not run: the host has only %s, at or below the safety floor of %s; lower the "
                "floor with --limit or free some to run it" % (
                    _floor_text(key, before), _floor_text(key, floor)))
    if reason == "error":
        return "error: the container stopped without a known cause (exit %s: %s)" % (
            m.get("container_exit_code"), m.get("container_error_line") or "no output")
    stop_words = {
        "cap": "stopped at the cap of %s" % (fmt_bytes(m.get("cap_effective"))
                                            if resource in ("disk", "memory")
                                            else fmt_count(m.get("cap_effective"))),
        "floor": "stopped by the agent at the host's safety floor of %s" % (
            _floor_text(m.get("floor_tripped") or FREE_KEY[resource],
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
    stopped = stop_words.get(reason, "stopped (%s)" % reason)
    at_cap = reason == "cap"
    if resource == "disk":
        text = _disk_verdict(name, m, reason, stopped, where)
        dm = _dm_disk_words(m, "over-commits" not in text)
        return ("%s; %s" % (text, dm)) if dm else text
    if resource == "inodes":
        got = fmt_count(m.get("files_created"))
        if not m.get("host_inodes_total"):
            return ("%s after %s files: the host's %s has no fixed inode count, so inodes "
                    "cannot run out there (the files used disk space instead); %s"
                    % (stopped, got, where, _host_effect(m, ("host_write", "host_create"))))
        ratio = m.get("landed_on_host_ratio")
        effect = _host_effect(m, ("host_create", "host_write"))
        if ratio is not None and ratio >= 0.8:
            landed = ("every file created used an inode of the host's %s (free inodes fell by "
                      "%s, ratio %s)" % (where, fmt_count(m.get("host_free_inodes_delta")),
                                         _ratio_text(ratio)))
            follows = "a container can exhaust the host's inodes"
        else:
            landed = ("the files did not show up as used inodes on the host's %s (ratio %s)"
                      % (where, _ratio_text(ratio)))
            follows = "the container's inodes are separate from the host's"
            own = _own_fs_words(m)
            if own:
                landed += "; %s" % own
        if reason == "enospc":
            return "%s after %s files: %s, and %s: %s" % (stopped, got, landed, effect, follows)
        return ("%s%s: %s; %s; no container limit applied: %s"
                % (stopped, " files" if at_cap else " after %s files" % got, landed, effect,
                   follows))
    if resource == "memory":
        got = fmt_bytes(m.get("resident_bytes"))
        effect = _host_effect(m, ("host_alloc",))
        floor_note = "host MemAvailable stayed above %s" % fmt_bytes(
            m.get("host_mem_available_min"))
        swap = _swap_note(m)
        if reason == "container-limit":
            return ("contained: the container was OOM-killed at its %s limit (peak %s); %s and "
                    "%s%s" % (fmt_bytes(m.get("memory_limit_bytes")), got, floor_note, effect,
                              swap))
        if reason == "oom-kill":
            victim = m.get("oom_victim")
            who = {"container": "only the container was killed",
                   "container+host": "the kernel also killed %s other process(es) (%s)" % (
                       m.get("oom_kills_other"), m.get("oom_other_victims") or "unnamed"),
                   "host": "a host process was killed (%s)" % (
                       m.get("oom_other_victims") or "unnamed")}.get(victim, victim)
            return ("the host ran out of memory: the container was OOM-killed after %s with no "
                    "memory limit; %s; %s: a container can exhaust the host's memory"
                    % (got, who, effect))
        if m.get("memory_limit_bytes"):
            return ("%s with %s resident under a %s limit; %s; %s%s" % (
                stopped, got, fmt_bytes(m.get("memory_limit_bytes")), floor_note, effect, swap))
        return ("%s with %s resident and no memory limit: host MemAvailable fell by %s (ratio "
                "%s); %s; nothing in the container stopped it: a container can use up the "
                "host's memory" % (stopped, got, fmt_bytes(m.get("host_mem_available_delta")),
                                   _ratio_text(m.get("landed_on_host_ratio")), effect))
    # processes
    got = fmt_count(m.get("processes_started"))
    effect = _host_effect(m, ("host_fork",))
    if reason == "container-limit":
        return ("contained: the container stopped at its --pids-limit of %s (EAGAIN after %s "
                "children, %s pids in the container); %s" % (
                    fmt_count(m.get("pids_limit")), got,
                    fmt_count(m.get("container_pids_peak")), effect))
    if m.get("host_procs_delta") is not None:
        rose = ("the host saw %s more processes at the container's peak for %s in the "
                "container (ratio %s; kernel-wide threads rose by %s)"
                % (fmt_count(m.get("host_procs_delta")), fmt_count(m.get("ratio_denominator")),
                   _ratio_text(m.get("landed_on_host_ratio")),
                   fmt_count(m.get("host_threads_delta"))))
    else:
        rose = ("the host's thread count rose by %s (ratio %s)"
                % (fmt_count(m.get("host_threads_delta")),
                   _ratio_text(m.get("landed_on_host_ratio"))))
    if reason == "eagain":
        return ("%s after %s children: the host's process limit was reached (%s free pids at "
                "the peak); %s; %s: a container can exhaust the host's processes"
                % (stopped, got, fmt_count(m.get("host_free_pids_min")), rose, effect))
    if m.get("pids_limit") and reason in ("timeout", "stall"):
        return ("not measured: %s after %s children, below its --pids-limit of %s (the limit "
                "was never reached; give the host more time with --timeout); %s; %s"
                % (stopped, got, fmt_count(m.get("pids_limit")), rose, effect))
    return ("%s%s with no pids limit: %s; %s; nothing in the container stopped it: a "
            "container can exhaust the host's process table (pid_max %s, threads-max %s)"
            % (stopped, " children" if at_cap else " after %s children" % got, rose, effect,
               fmt_count(m.get("host_pid_max")), fmt_count(m.get("host_threads_max"))))
