# -*- coding: utf-8 -*-
"""cgroups: a process's cgroup, the hierarchies this host sees (from mountinfo), and the
limits of the host's own cgroup root."""

from __future__ import absolute_import, division, print_function

import os

from .osparse import parse_mountinfo
from .text import read_text, to_int


def own_cgroup(path, container_id):
    """Is this cgroup the container's own (its id in the path: /docker/<id>,
    /system.slice/docker-<id>.scope)?  Docker 1.5.0 makes no pids cgroup, so a container's
    pids path is its daemon's (e.g. /user.slice/.../session-3.scope)."""
    cid = (container_id or "")[:12]
    return not cid or cid in (path or "")



UNLIMITED_CGROUP = 2 ** 60  # v1 reports "no limit" as a huge number


def parse_proc_cgroup(text):
    """/proc/PID/cgroup -> {controller: path}; the v2 (unified) entry is under ''."""
    result = {}
    for line in (text or "").splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        names = parts[1].split(",") if parts[1] else [""]
        for n in names:
            if n.startswith("name="):
                continue
            result[n] = parts[2]
    return result


def parse_cgroup_mounts(mountinfo_text):
    """cgroup mounts from mountinfo -> [{'root', 'mountpoint', 'version', 'controllers'}]."""
    mounts = []
    for m in parse_mountinfo(mountinfo_text):
        if m["fstype"] == "cgroup2":
            mounts.append({"root": m["root"], "mountpoint": m["mountpoint"],
                           "version": 2, "controllers": []})
        elif m["fstype"] == "cgroup":
            opts = m["super_options"].split(",") if m["super_options"] else []
            mounts.append({"root": m["root"], "mountpoint": m["mountpoint"],
                           "version": 1, "controllers": opts})
    return mounts


def cgroup_dir(proc_cgroup, mounts, controller):
    """Host directory of a process's cgroup for ``controller`` -> (path, version) or (None, None).

    Handles nested hosts (a lab host in a container sees only its own subtree: the mount's
    root is stripped from the process's path)."""
    for m in mounts:
        if m["version"] == 1 and controller in m["controllers"]:
            path = proc_cgroup.get(controller)
            if path is None:
                continue
            return _join_cgroup(m, path), 1
    for m in mounts:
        if m["version"] == 2 and "" in proc_cgroup:
            return _join_cgroup(m, proc_cgroup[""]), 2
    return None, None


def _join_cgroup(mount, path):
    root = mount["root"].rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root):]
    return mount["mountpoint"].rstrip("/") + "/" + path.lstrip("/")


def cgroup_root_dir(mounts, controller):
    """(mountpoint, version) of the hierarchy holding ``controller`` as this host sees it."""
    for m in mounts:
        if m["version"] == 1 and controller in m["controllers"]:
            return m["mountpoint"], 1
    for m in mounts:
        if m["version"] == 2:
            return m["mountpoint"], 2
    return None, None


def cgroup_view(proc_cgroup, mounts, controller):
    """(the process's cgroup path as this host names it, the root of the tree this host
    sees) for ``controller``; (None, None) when unknown.  A lab host in a container sees
    only its own subtree: the mount's root (mountinfo field 4) says which one."""
    for m in mounts:
        if m["version"] == 1 and controller in m["controllers"]:
            path = proc_cgroup.get(controller)
            if path is not None:
                return path, m["root"]
    for m in mounts:
        if m["version"] == 2 and "" in proc_cgroup:
            return proc_cgroup[""], m["root"]
    return None, None


def read_cg_number(path):
    text = read_text(path, 64)
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return None
    value = to_int(text)
    if value is not None and value >= UNLIMITED_CGROUP:
        return None
    return value


def host_cgroup_limits(mountinfo_text=None):
    """Limits of the visible cgroup root: what bounds the whole host when it is itself a
    container (a lab host); None where there is none (a real host's root has none)."""
    if mountinfo_text is None:
        mountinfo_text = read_text("/proc/self/mountinfo")
    mounts = parse_cgroup_mounts(mountinfo_text)
    result = {"memory_dir": None, "memory_limit": None, "pids_dir": None, "pids_limit": None}
    d, v = cgroup_root_dir(mounts, "memory")
    if d:
        limit = read_cg_number(os.path.join(d, "memory.limit_in_bytes" if v == 1
                                             else "memory.max"))
        if limit is not None:
            result["memory_dir"], result["memory_limit"] = d, limit
            result["memory_usage_file"] = os.path.join(
                d, "memory.usage_in_bytes" if v == 1 else "memory.current")
    d, v = cgroup_root_dir(mounts, "pids")
    if d:
        limit = read_cg_number(os.path.join(d, "pids.max"))
        if limit is not None:
            result["pids_dir"], result["pids_limit"] = d, limit
    return result
