# -*- coding: utf-8 -*-
"""The filesystem checks' (disk, inodes) view below the container: devicemapper's thin pool
(its sparse data file on the host, its data space as the engine reports it, the kernel's words
about it) and the container's own / (its size and inodes, as /proc/PID/root shows it).  Each
function writes its metrics into ``m``, the experiment's metrics."""

from __future__ import absolute_import, division, print_function

import json
import os
import socket

from .container import kernel_log, stat_size
from .disklimit import dm_pool_file, dm_pool_space, thin_pool_overcommit
from .docker import engine_request
from .oom import thin_pool_kernel_lines
from .osparse import find_mount
from .text import one_line


def thin_pool_setup(m, sampler, dfacts, target, mounts):
    """devicemapper loop-lvm: sample the thin pool's sparse data file (its allocated bytes)
    and the filesystem that holds it; the pool's own data space (engine)."""
    pool = dm_pool_file(dfacts.get("storage_driver"), dfacts.get("driver_status"),
                        root_dir=dfacts.get("root_dir"))
    if dfacts.get("storage_driver") == "devicemapper":
        m["pool_data_file"] = pool
    if not pool or not os.path.exists(pool):
        return
    sampler.pool_file = pool
    try:
        same = os.stat(pool).st_dev == os.stat(target).st_dev
    except (OSError, TypeError):
        same = None
    if same is False:
        sampler.pool_fs = os.path.dirname(pool)
    pm = find_mount(mounts, os.path.realpath(pool))
    m.update({"pool_file_on_target_fs": same, "pool_file_fstype": pm and pm["fstype"],
              "pool_file_size_bytes": stat_size(pool)})
    pool_space(m, "before")


def pool_space(m, when):
    """The thin pool's data space as the engine reports it (GET /info over its socket: no
    fork); into pool_data_space_used_<when> etc."""
    if not m.get("pool_data_file") and m.get("storage_driver") != "devicemapper":
        return
    try:
        status, body = engine_request("GET", "/info", 10)
        info = json.loads(body) if status == 200 else {}
    except (socket.error, OSError, ValueError):
        info = {}
    pairs = info.get("DriverStatus") if isinstance(info, dict) else None
    ds = dict((p[0], p[1]) for p in (pairs or []) if isinstance(p, list) and len(p) == 2)
    used, total, avail = dm_pool_space(ds)
    m["pool_data_space_used_%s_bytes" % when] = used
    if when == "before":
        m["pool_data_space_total_bytes"] = total
        m["pool_data_space_available_before_bytes"] = avail


def container_fs(m, root, when, s0=None):
    """The container's own / as the host sees it (``root``: /proc/PID/root): its size and
    inodes; on devicemapper its own ext4 on its thin device, not the host's filesystem."""
    try:
        st = os.statvfs(root)
    except (OSError, TypeError, AttributeError):
        return
    frsize = st.f_frsize or st.f_bsize
    m["container_fs_free_bytes_%s" % when] = st.f_bfree * frsize
    m["container_fs_free_inodes_%s" % when] = st.f_ffree
    if when != "start":
        return
    m["container_fs_size_bytes"] = st.f_blocks * frsize
    m["container_fs_inodes_total"] = st.f_files
    if s0 is not None and s0.get("size_bytes") is not None:
        m["container_fs_own"] = (st.f_blocks * frsize, st.f_files) != (
            s0["size_bytes"], s0["inodes_total"])
    base = m.get("base_device_size_bytes")
    if m.get("pool_data_file") or base:
        free = s0.get("pool_fs_free_bytes") if s0 and s0.get("pool_fs_free_bytes") \
            is not None else (s0 or {}).get("free_bytes_root")
        avail = m.get("pool_data_space_available_before_bytes")
        if avail is None and m.get("pool_data_space_total_bytes") and \
                m.get("pool_data_space_used_before_bytes") is not None:
            avail = m["pool_data_space_total_bytes"] - m["pool_data_space_used_before_bytes"]
        over, room = thin_pool_overcommit(base or m["container_fs_size_bytes"], free, avail)
        m["thin_pool_overcommitted"] = over
        m["thin_pool_room_bytes"] = room
        m["thin_pool_host_free_bytes"] = free


def thin_pool_words(m, dmesg0):
    """devicemapper: what the kernel said about the thin pool (out of space, read-only)
    since ``dmesg0``, the kernel's log before the container."""
    lines = thin_pool_kernel_lines(dmesg0, kernel_log())
    m["thin_pool_kernel_lines"] = len(lines)
    m["thin_pool_kernel_line"] = one_line(lines[-1], 300) if lines else None
    m["thin_pool_read_only"] = bool([ln for ln in lines if "read-only" in ln.lower()
                                     or "read_only" in ln.lower()])


def pool_metrics(m, log, used, back, per_byte):
    """devicemapper: how much of what the container wrote grew the pool's loop file
    (allocated bytes, st_blocks) and the pool's data space, and whether the container's
    own filesystem (not the host's) took its inodes.  ``log``: the run's SampleLog;
    ``per_byte``: ``used`` is bytes, so the growth per byte written is a ratio."""
    if log.first("pool_bytes") is not None:
        b0 = log.first("pool_bytes")
        high = log.max("pool_bytes")
        m["pool_file_allocated_before_bytes"] = b0
        m["pool_file_allocated_max_bytes"] = high
        m["pool_file_growth_bytes"] = (high - b0) if high is not None else None
        m["pool_file_allocated_after_bytes"] = back.get("pool_bytes") if back else None
        g = m["pool_file_growth_bytes"]
        m["pool_growth_ratio"] = round(float(g) / used, 3) if (
            used and g is not None and per_byte) else None
    u0, u1 = m.get("pool_data_space_used_before_bytes"), \
        m.get("pool_data_space_used_at_peak_bytes")
    if u0 is not None and u1 is not None:
        m["pool_data_space_growth_bytes"] = u1 - u0
    f0, f1 = m.get("container_fs_free_inodes_start"), \
        m.get("container_fs_free_inodes_at_peak")
    if f0 is not None and f1 is not None:
        m["container_fs_free_inodes_delta"] = f0 - f1
    b0, b1 = m.get("container_fs_free_bytes_start"), m.get("container_fs_free_bytes_at_peak")
    if b0 is not None and b1 is not None:
        m["container_fs_free_bytes_delta"] = b0 - b1
