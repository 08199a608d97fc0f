# -*- coding: utf-8 -*-
"""A resource experiment's end on every path: the container stopped and removed, its files
gone, and the host's disk, inodes and pids given back before the next experiment (a bounded
wait).  ``run`` is a resrun.ResourceRun."""

from __future__ import absolute_import, division, print_function

import time

from .consts import MIB
from .image import find_tool
from .sampling import fs_free, kill_container
from .text import monotonic, run_cmd


def cleanup_run(run):
    """Every path: the container gone (killed without forking when still alive), its files
    and the experiment's folder removed, and the host's docker root (and pids) given back
    before the next experiment starts (a bounded wait, recorded)."""
    if run.cleaned:
        return
    run.cleaned = True
    agent, box = run.agent, run.box
    cname = agent.container_name(run.exp.name)
    if cname in agent.containers:
        if box.pid and box.alive():
            kill_container(agent.docker, cname, 5, box.pid, box.pid_start, prefer_signal=True)
            box.wait_gone(10, run.kind.gone_file)
        agent.remove_container(cname)
    run.place.remove(run.sampler)
    recover(run)


def _recovery_wait(run):
    try:
        wait = float(run.limits.get("recovery_wait_s") or 0)
        if run.agent.mode != "exhaust":  # on a busy real host others move the numbers too
            wait = min(wait, 10.0)
        return min(wait, max(0.0, run.agent.deadline.end - monotonic() - 20))
    except (TypeError, ValueError):
        return 0.0


def _settle(run, wait, elapsed):
    """Ask the filesystem to give freed space back now (ext4 at its journal commit, btrfs
    frees a removed container's subvolume in the background)."""
    root_fs = run.place.root_fs
    sync = find_tool("sync")
    if sync:
        run_cmd([sync, "-f", root_fs], timeout=10)
    btrfs = find_tool("btrfs")
    if btrfs and run.m.get("target_fstype") == "btrfs":
        run_cmd([btrfs, "subvolume", "sync", root_fs],
                timeout=max(1.0, min(30.0, wait - elapsed)))
        run_cmd([btrfs, "filesystem", "sync", root_fs], timeout=10)


def recover(run):
    """Wait (at most recovery_wait_s) until the docker root's free space and inodes, and
    the host's free pids, are back to what they were before this experiment; record it.
    Retries the container's removal meanwhile (an exhausted host can make it fail)."""
    agent, m, place = run.agent, run.m, run.place
    base = place.root_base or {}
    if not place.root_fs or not base:
        return
    wait = _recovery_wait(run)
    cname = agent.container_name(run.exp.name)
    size, itotal = base.get("size_bytes") or 0, base.get("inodes_total") or 0
    tol_bytes = max(8 * MIB, size // 100)
    tol_inodes = max(64, itotal // 100)
    pids0 = run.log.first("free_pids")
    watch_pids = run.kind.waits_for_pids and run.sampler is not None
    start = monotonic()
    synced = False
    next_rm = start + 1
    while True:
        now = fs_free(place.root_fs)
        short = []
        if base.get("free_bytes") is not None and \
                (now.get("free_bytes") or 0) < base["free_bytes"] - tol_bytes:
            short.append("free_bytes")
        if itotal and base.get("free_inodes") is not None and \
                (now.get("free_inodes") or 0) < base["free_inodes"] - tol_inodes:
            short.append("free_inodes")
        pids = None
        if watch_pids:
            pids = run.sampler.sample().get("free_pids")
            if pids0 is not None and pids is not None and pids < pids0 - max(32, pids0 // 50):
                short.append("free_pids")
        if cname in agent.containers:
            short.append("container")
        elapsed = monotonic() - start
        if not short or elapsed >= wait:
            break
        if cname in agent.containers and monotonic() >= next_rm:
            next_rm = monotonic() + 2
            agent.remove_container(cname)
        if not synced and elapsed >= 1.0 and ("free_bytes" in short or "free_inodes" in short):
            synced = True
            _settle(run, wait, elapsed)
        time.sleep(0.2)
    m["recovery_path"] = place.root_fs
    m["recovery_free_bytes_before"] = base.get("free_bytes")
    m["recovery_free_bytes"] = now.get("free_bytes")
    m["recovery_free_inodes_before"] = base.get("free_inodes")
    m["recovery_free_inodes"] = now.get("free_inodes")
    if run.kind.waits_for_pids:
        m["recovery_free_pids_before"] = pids0
        m["recovery_free_pids"] = pids
    m["recovered"] = not short
    m["recovery_short"] = ",".join(short) or None
    m["recovery_s"] = round(monotonic() - start, 3)
