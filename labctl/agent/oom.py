# -*- coding: utf-8 -*-
"""OOM attribution, container errors and stop reasons (pure)."""

from __future__ import absolute_import, division, print_function

import re

from .consts import KIB

_KILLED_RE = re.compile(r"Killed process (\d+)(?:,\s*UID \d+,)?\s*\(([^)]*)\)")
_OOMKILL_RE = re.compile(r"oom-kill:.*?task_memcg=([^,\s]*).*?task=([^,\s]*),pid=(\d+)")


def kernel_oom_lines(before_text, after_text):
    """OOM lines that appeared in the kernel log between two `dmesg` outputs."""
    before = (before_text or "").splitlines()
    after = (after_text or "").splitlines()
    start = 0
    if before:
        last = before[-1]
        for i in range(len(after) - 1, -1, -1):
            if after[i] == last:
                start = i + 1
                break
    new = after[start:]
    return [ln.strip() for ln in new
            if "Killed process" in ln or "oom-kill:" in ln or "out of memory" in ln.lower()]


def thin_pool_kernel_lines(before_text, after_text):
    """devicemapper thin-pool lines (out of data space, read-only mode, I/O errors) that
    appeared in the kernel log between two `dmesg` outputs."""
    before = (before_text or "").splitlines()
    after = (after_text or "").splitlines()
    start = 0
    if before:
        for i in range(len(after) - 1, -1, -1):
            if after[i] == before[-1]:
                start = i + 1
                break
    return [ln.strip() for ln in after[start:] if "device-mapper: thin" in ln]


def oom_line_rss(lines):
    """Resident bytes (anon + file) of the last process the OOM killer named, or None."""
    for line in reversed(lines or []):
        m = re.search(r"anon-rss:(\d+)kB,\s*file-rss:(\d+)kB", line)
        if m:
            return (int(m.group(1)) + int(m.group(2))) * KIB
    return None


def _memcg_inside(path, scope):
    return not scope or path == scope or path.startswith(scope + "/")


def oom_host_scope(view_path, mount_root, kernel_lines, container_id):
    """The cgroup (as the kernel log names it) that holds this whole host, or None when it
    cannot be told (then every kill counts as the host's).

    On a real host that is the root ('').  A lab host in a container shares the kernel (and
    its log and /proc/vmstat) with other lab hosts: a kill of theirs is not this host's.
    The kernel names the container's cgroup in full (task_memcg=/docker/LAB/docker/CID);
    this host names it ``view_path`` (/docker/CID in its own cgroup namespace, or the full
    path without one) and sees the tree below ``mount_root``."""
    if view_path is None:
        return None
    root = (mount_root or "/").rstrip("/")
    view = view_path.rstrip("/")
    kernel_path = None
    cid = (container_id or "")[:12]
    if cid:
        for line in kernel_lines or []:
            m = _OOMKILL_RE.search(line)
            if m and cid in m.group(1):
                kernel_path = m.group(1).rstrip("/")
                break
    under_root = not root or view == root or view.startswith(root + "/")
    if kernel_path is not None:
        if not under_root or not kernel_path.endswith(view):
            return None
        # what the kernel puts before the host's name of it, then the host's own subtree
        return (kernel_path[:len(kernel_path) - len(view)] + root).rstrip("/")
    # no line of the container: the host's names are the kernel's when they include the
    # root of the tree it sees (no cgroup namespace of its own); else it cannot be told
    if root and under_root:
        return root
    return None


def attribute_oom(oom_killed, exit_code, killed_by_agent, vmstat_delta, kernel_lines,
                  container_id=None, host_scope=None):
    """Who did the OOM killer kill during an experiment?

    Returns {'oom_victim': 'container'|'host'|'container+host'|'container-likely'|'none',
    'oom_kills_total', 'oom_kills_container', 'oom_kills_other', 'oom_other_victims',
    'oom_kills_outside', 'oom_outside_victims'}.
    vmstat's oom_kill is machine-wide (kernel 4.13+); kernel lines name the victims (and,
    since 4.19, their cgroup).  Only a process of this run's container counts as the
    container; with ``host_scope`` (oom_host_scope) a kill in a cgroup outside this host
    (another lab host on the same kernel) counts as neither: it is "outside".
    """
    killed = []   # (pid, name, in_container or None)
    memcg = {}
    outside = []
    for line in kernel_lines or []:
        m = _OOMKILL_RE.search(line)
        if m:
            path = m.group(1)
            if host_scope and not _memcg_inside(path, host_scope):
                outside.append((m.group(3), m.group(2)))
                continue
            memcg[m.group(3)] = (container_id is not None and len(container_id) >= 12
                                 and container_id[:12] in path)
    outside_pids = set([o[0] for o in outside])
    for line in kernel_lines or []:
        m = _KILLED_RE.search(line)
        if m and m.group(1) not in outside_pids:
            killed.append((m.group(1), m.group(2), memcg.get(m.group(1))))
    counted = vmstat_delta
    if counted is not None and outside:
        counted = max(0, counted - len(outside))
    total = max(counted or 0, len(killed))
    in_container = len([k for k in killed if k[2]])
    other_named = [k for k in killed if k[2] is False]
    if oom_killed:
        in_container = max(in_container, 1)
    other = max(0, total - in_container)
    if other_named:
        other = max(other, len(other_named))
    if in_container and other:
        victim = "container+host"
    elif in_container:
        victim = "container"
    elif other:
        victim = "host"
    elif exit_code == 137 and not killed_by_agent:
        victim = "container-likely"
    else:
        victim = "none"
    names = [k[1] for k in other_named]
    if not names and other and not memcg:
        names = [k[1] for k in killed[in_container:]] if oom_killed else [k[1] for k in killed]
    return {"oom_victim": victim, "oom_kills_total": total,
            "oom_kills_container": in_container, "oom_kills_other": other,
            "oom_other_victims": ",".join(names[:5]) or None,
            "oom_kills_outside": len(outside),
            "oom_outside_victims": ",".join([o[1] for o in outside][:5]) or None}


def classify_container_error(text):
    """Container stderr -> 'enospc' | 'edquot' | 'eagain' | 'enomem' | None."""
    low = (text or "").lower()
    if "no space left" in low:
        return "enospc"
    if "quota exceeded" in low:
        return "edquot"
    if ("cannot fork" in low or "resource temporarily unavailable" in low
            or "can't fork" in low or "fork: retry" in low):
        return "eagain"
    if "cannot allocate memory" in low or "memory exhausted" in low:
        return "enomem"
    return None


def decide_stop_reason(o):
    """Why the container stopped, from what was observed (a dict):

    resource ('disk'|'inodes'|'memory'|'processes'; None: as memory),
    agent_stop ('floor'|'timeout'|None), reached_target (bool: it did all it was asked),
    cap_limited_by_floor, container_error (classify_container_error), oom_killed,
    exit_code, killed_by_agent, limit_applied, near_limit (usage at its own limit),
    host_exhausted (the host's free amount hit 0), host_had_room (disk: the host's
    filesystem clearly still had room, see host_had_room()).

    disk: ENOSPC while the host's filesystem still had room is the container's own limit
    (--storage-opt size=, devicemapper's base device size, a quota), not the host's disk;
    near_limit False (a known limit far from reached) keeps it "enospc".
    """
    if o.get("agent_stop") == "floor":
        return "floor"
    # exit 137 is a SIGKILL; without the engine's or the kernel's word it counts as an OOM
    # kill only where memory was the resource (an old kernel may leave no other trace)
    unexplained_kill = o.get("exit_code") == 137 and not o.get("killed_by_agent") and \
        o.get("resource") in (None, "memory")
    if o.get("oom_killed") or unexplained_kill:
        return "container-limit" if o.get("limit_applied") else "oom-kill"
    err = o.get("container_error")
    if err == "edquot":
        return "container-limit"
    if err == "eagain":
        if o.get("limit_applied") and o.get("near_limit"):
            return "container-limit"
        return "eagain"
    if err == "enospc" and o.get("resource") == "disk" and o.get("host_had_room") and \
            not o.get("host_exhausted") and o.get("near_limit") is not False:
        return "container-limit"
    if err == "enospc" or (o.get("host_exhausted") and not o.get("reached_target")):
        return "enospc"
    if o.get("reached_target"):
        return "floor" if o.get("cap_limited_by_floor") else "cap"
    if o.get("agent_stop") == "timeout":
        return "timeout"
    if o.get("agent_stop") == "stall":
        # no progress for stall_s: at its own limit that is the limit; otherwise the container
        # (or a slow host, e.g. an emulated VM) stopped making progress before any limit
        return "container-limit" if o.get("limit_applied") and o.get("near_limit") else "stall"
    return "error"
