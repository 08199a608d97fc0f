# -*- coding: utf-8 -*-
"""ResourceRun's end on every path: the container stopped and removed, its files gone, and
the host's disk, inodes and pids given back before the next experiment (a bounded wait)."""

from __future__ import absolute_import, division, print_function

import os
import shutil
import time

from .cgroups import (
    read_cg_number,
)
from .consts import MIB
from .container import (
    container_alive,
)
from .image import find_tool
from .osparse import path_under
from .sampling import (
    fs_free,
    kill_container,
)
from .text import read_text, run_cmd


class RunCleanup(object):
    """ResourceRun's cleanup (a mixin: ResourceRun holds the state)."""

    def wait_gone(self, seconds):
        """After a kill: until the container's first process is gone and its cgroup holds
        no process any more (its pids are the host's again), at most ``seconds``."""
        end = time.time() + seconds
        while container_alive(self.pid) and time.time() < end:
            time.sleep(0.02)
        if self.cg_dir:
            name = "pids.current" if self.resource == "processes" else "cgroup.procs"
            while time.time() < end:
                path = os.path.join(self.cg_dir, name)
                if not os.path.exists(path):
                    break
                if name == "pids.current":
                    if not read_cg_number(path):
                        break
                elif not (read_text(path, 64) or "").strip():
                    break
                time.sleep(0.02)

    def cleanup(self):
        """Every path: the container gone (killed without forking when still alive), its
        files and the experiment's folder removed, and the host's docker root (and pids)
        given back before the next experiment starts (a bounded wait, recorded)."""
        if self.cleaned:
            return
        self.cleaned = True
        agent = self.agent
        cname = agent.container_name(self.name)
        if cname in agent.containers:
            if self.pid and container_alive(self.pid):
                kill_container(agent.docker, cname, 5, self.pid, self.pid_start,
                               prefer_signal=True)
                self.wait_gone(10)
            agent.remove_container(cname)
        if self.fsdir:
            if self.sampler is not None and self.sampler.fs_path and (
                    path_under(self.sampler.fs_path, self.fsdir) or
                    os.path.realpath(self.sampler.fs_path) == os.path.realpath(self.fsdir)):
                # go on measuring the same filesystem once the folder is gone
                self.sampler.fs_path = os.path.dirname(self.fsdir.rstrip("/")) or "/"
            shutil.rmtree(self.fsdir, True)
        self.recover()

    def recover(self):
        """Wait (at most recovery_wait_s) until the docker root's free space and inodes, and
        the host's free pids, are back to what they were before this experiment; record it.
        Retries the container's removal meanwhile (an exhausted host can make it fail)."""
        agent, m = self.agent, self.m
        base = self.root_base or {}
        if not self.root_fs or not base:
            return
        try:
            wait = float(self.limits.get("recovery_wait_s") or 0)
            if agent.mode != "exhaust":  # on a busy real host others move the numbers too
                wait = min(wait, 10.0)
            wait = min(wait, max(0.0, agent.deadline.end - time.time() - 20))
        except (TypeError, ValueError):
            wait = 0.0
        cname = agent.container_name(self.name)
        size, itotal = base.get("size_bytes") or 0, base.get("inodes_total") or 0
        tol_bytes = max(8 * MIB, size // 100)
        tol_inodes = max(64, itotal // 100)
        pids0 = self.samples[0].get("free_pids") if self.samples else None
        start = time.time()
        synced = False
        next_rm = start + 1
        while True:
            now = fs_free(self.root_fs)
            short = []
            if base.get("free_bytes") is not None and \
                    (now.get("free_bytes") or 0) < base["free_bytes"] - tol_bytes:
                short.append("free_bytes")
            if itotal and base.get("free_inodes") is not None and \
                    (now.get("free_inodes") or 0) < base["free_inodes"] - tol_inodes:
                short.append("free_inodes")
            pids = None
            if self.resource == "processes" and self.sampler is not None:
                pids = self.sampler.sample().get("free_pids")
                if pids0 is not None and pids is not None and pids < pids0 - max(32, pids0 // 50):
                    short.append("free_pids")
            if cname in agent.containers:
                short.append("container")
            elapsed = time.time() - start
            if not short or elapsed >= wait:
                break
            if cname in agent.containers and time.time() >= next_rm:
                next_rm = time.time() + 2
                agent.remove_container(cname)
            if not synced and elapsed >= 1.0 and ("free_bytes" in short
                                                  or "free_inodes" in short):
                synced = True  # ext4 gives freed blocks back at its journal commit
                sync = find_tool("sync")
                if sync:
                    run_cmd([sync, "-f", self.root_fs], timeout=10)
                btrfs = find_tool("btrfs")
                if btrfs and m.get("target_fstype") == "btrfs":
                    # btrfs frees a removed container's subvolume in the background
                    run_cmd([btrfs, "subvolume", "sync", self.root_fs],
                            timeout=max(1.0, min(30.0, wait - elapsed)))
                    run_cmd([btrfs, "filesystem", "sync", self.root_fs], timeout=10)
            time.sleep(0.2)
        m["recovery_path"] = self.root_fs
        m["recovery_free_bytes_before"] = base.get("free_bytes")
        m["recovery_free_bytes"] = now.get("free_bytes")
        m["recovery_free_inodes_before"] = base.get("free_inodes")
        m["recovery_free_inodes"] = now.get("free_inodes")
        if self.resource == "processes":
            m["recovery_free_pids_before"] = pids0
            m["recovery_free_pids"] = pids
        m["recovered"] = not short
        m["recovery_short"] = ",".join(short) or None
        m["recovery_s"] = round(time.time() - start, 3)
