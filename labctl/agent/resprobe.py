# -*- coding: utf-8 -*-
"""ResourceRun's probes of the host and the container during a run: per-container
limits, the thin pool, the container's filesystem and progress, samples."""

from __future__ import absolute_import, division, print_function

import json
import os
import shutil
import socket

from .cgroups import read_cg_number
from .consts import NAME_PREFIX
from .container import COUNT_FILE, container_alive, stat_size
from .disklimit import (
    base_device_size,
    disk_limit_plan,
    dm_base_size,
    dm_pool_file,
    dm_pool_space,
    docker_daemon_argv,
    swap_limit_applied,
    thin_pool_overcommit,
)
from .docker import engine_request
from .errors import ExperimentError, SkipExperiment
from .hostpaths import UnsafePath, ensure_local_dir
from .limits import SERIES_KEYS
from .osparse import find_mount
from .sampling import (
    find_child,
    inspect_state,
    parse_proc_io,
    parse_proc_stat_fields,
)
from .text import one_line, read_text, to_int


class RunProbes(object):
    """ResourceRun's probes (a mixin: ResourceRun holds the state)."""

    # -- per-container limits: disk size, swap ------------------------------------
    def try_storage_opt(self, size):
        """Ask the engine for a container of the probe image with --storage-opt size=
        (created, never started, removed at once): ("ok", "") or ("failed", stderr)."""
        agent = self.agent
        cname = agent.container_name(self.name + "-sizeopt")
        args = ["create", "--name", cname]
        if agent.docker.supports((1, 6)):
            args += ["--label", "labctl.run=%s" % agent.run_id]
        args += ["--storage-opt", "size=%d" % int(size), self.m["probe_image"], "/bin/sh", "-c",
                 "true"]
        agent.containers.append(cname)
        try:
            res = agent.docker_cmd(args, 60)
        finally:
            if not agent.remove_container(cname) and cname in agent.containers and \
                    not inspect_state(agent.docker, cname):
                agent.containers.remove(cname)  # refused: nothing was made
        if res.ok:
            return "ok", ""
        if res.timed_out or res.missing:
            return "failed", res.describe()
        return "failed", (res.err or "") + "\n" + (res.out or "")

    def disk_limit(self, dfacts, server, fstype):
        """disk, disk-limited: the limit in effect, into the metrics; raises SkipExperiment
        (disk-limited, where the engine has no per-container size) or ExperimentError."""
        m, name = self.m, self.name
        driver = dfacts.get("storage_driver")
        requested = int(self.limits["disk_limit_bytes"])
        status = dfacts.get("driver_status")
        argv = docker_daemon_argv(dfacts.get("daemon_pid")) if (
            driver == "devicemapper" and not base_device_size(driver, status)) else None
        base, m["base_device_size_source"] = dm_base_size(driver, status, argv)
        m["base_device_size_bytes"] = base
        plan = disk_limit_plan(name, driver, server, requested, base, None, fstype)
        if plan["try_opt"]:
            probe = self.try_storage_opt(requested)
            plan = disk_limit_plan(name, driver, server, requested, base, probe, fstype)
        if name == "disk-limited":
            m["disk_limit_requested_bytes"] = requested
            m["storage_opt_size"] = "supported" if plan["storage_opt"] else (
                "refused" if plan["refusal"] else ("error" if plan["error"] else "not-tried"))
            m["storage_opt_refusal"] = plan["refusal"]
            m["storage_opt_error"] = plan["message"]
        m["disk_limit_bytes"] = plan["limit"]
        m["disk_limit_source"] = plan["source"]
        m["limit_applied"] = bool(plan["limit"])
        if plan["error"]:
            raise ExperimentError("docker-create", "could not create a container with "
                                  "--storage-opt size=%d (%s)" % (requested, plan["error"]))
        if plan["skip"]:
            raise SkipExperiment(plan["skip"])
        self.storage_opt_size = requested if plan["storage_opt"] else None

    def swap_applied(self, insp):
        """memory-limited: was --memory-swap applied (the container's cgroup, the engine's
        stored HostConfig, its warnings)?  Into the metrics."""
        m = self.m
        requested = m.get("memory_swap_limit_bytes")
        cg_val = None
        if requested and self.cg_dir and os.path.isdir(self.cg_dir):
            fname = "memory.memsw.limit_in_bytes" if self.cg_version == 1 else \
                "memory.swap.max"
            path = os.path.join(self.cg_dir, fname)
            cg_val = (read_text(path, 64) or "").strip() if os.path.exists(path) else ""
            if not os.path.isdir(self.cg_dir):
                cg_val = None  # the container (and its cgroup) went meanwhile
        host_cfg = insp.get("HostConfig") or {}
        stored = host_cfg.get("MemorySwap")
        if stored is None:  # Docker before 1.6 keeps Memory and MemorySwap in Config
            stored = (insp.get("Config") or {}).get("MemorySwap")
        m["engine_memory_swap_stored"] = stored
        m["engine_run_warning"] = one_line(" ".join(
            [ln.strip() for ln in (self.agent.last_run_err or "").splitlines()
             if "warning" in ln.lower() or "limitation discarded" in ln.lower()]), 300) or None
        applied, source = swap_limit_applied(requested, self.agent.last_run_err,
                                             m.get("engine_swap_limit_warning"), cg_val,
                                             self.cg_version, stored)
        m["memory_swap_limit_applied"] = applied
        m["memory_swap_limit_source"] = source

    # -- devicemapper: the container's own thin device, the pool file on the host ---------
    def thin_pool_setup(self, dfacts, target, mounts):
        """devicemapper loop-lvm: sample the thin pool's sparse data file (its allocated
        bytes) and the filesystem that holds it; the pool's own data space (engine)."""
        m = self.m
        pool = dm_pool_file(dfacts.get("storage_driver"), dfacts.get("driver_status"),
                            root_dir=dfacts.get("root_dir"))
        if dfacts.get("storage_driver") == "devicemapper":
            m["pool_data_file"] = pool
        if not pool or not os.path.exists(pool):
            return
        self.sampler.pool_file = pool
        try:
            same = os.stat(pool).st_dev == os.stat(target).st_dev
        except (OSError, TypeError):
            same = None
        if same is False:
            self.sampler.pool_fs = os.path.dirname(pool)
        pm = find_mount(mounts, os.path.realpath(pool))
        m.update({"pool_file_on_target_fs": same, "pool_file_fstype": pm and pm["fstype"],
                  "pool_file_size_bytes": stat_size(pool)})
        self.pool_space("before")

    def pool_space(self, when):
        """The thin pool's data space as the engine reports it (GET /info over its socket: no
        fork); into pool_data_space_used_<when> etc."""
        if not self.m.get("pool_data_file") and \
                self.m.get("storage_driver") != "devicemapper":
            return
        try:
            status, body = engine_request("GET", "/info", 10)
            info = json.loads(body) if status == 200 else {}
        except (socket.error, OSError, ValueError):
            info = {}
        pairs = info.get("DriverStatus") if isinstance(info, dict) else None
        ds = dict((p[0], p[1]) for p in (pairs or []) if isinstance(p, list) and len(p) == 2)
        used, total, avail = dm_pool_space(ds)
        self.m["pool_data_space_used_%s_bytes" % when] = used
        if when == "before":
            self.m["pool_data_space_total_bytes"] = total
            self.m["pool_data_space_available_before_bytes"] = avail

    def container_fs(self, when, s0=None):
        """The container's own / as the host sees it (/proc/PID/root): its size and inodes;
        on devicemapper its own ext4 on its thin device, not the host's filesystem."""
        m = self.m
        try:
            st = os.statvfs(self._cproc("/"))
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

    # -- where ----------------------------------------------------------------
    def same_fs_dir(self, root):
        """A per-run folder on the filesystem that holds the docker root, for the shared
        folder and the host's own checks: the agent's run folder when it is on that
        filesystem, else <root>/../labctl-probe-<run>-fs, else <root>/labctl-probe-<run>-fs
        (the only place on a docker root that is a mount of its own).  Registered for
        cleanup; returns (path, on_docker_root_fs or None when unknown)."""
        agent = self.agent
        try:
            root_dev = os.stat(root).st_dev
        except (OSError, TypeError):
            root_dev = None
        cands = [(os.path.join(agent.run_dir, "fs-" + self.name), None)]
        if root:
            top_name = "%s%s-fs" % (NAME_PREFIX, agent.run_id)
            for parent in (os.path.dirname(root.rstrip("/")), root):
                top = os.path.join(parent, top_name)
                cands.append((os.path.join(top, self.name), top))
        for path, top in cands:
            try:
                ensure_local_dir(path)  # a place another user can change is no candidate
            except (OSError, UnsafePath):
                continue
            if top and top not in agent.paths:
                agent.paths.append(top)
            if root_dev is None:
                return path, None
            try:
                if os.stat(path).st_dev == root_dev:
                    return path, True
            except OSError:
                pass
            shutil.rmtree(top or path, True)
            if top in agent.paths:
                agent.paths.remove(top)
        path = cands[0][0]
        return ensure_local_dir(path), False

    # -- reading the container from the host ------------------------------------
    def _cproc(self, rel):
        if not self.pid:
            return None
        return "/proc/%d/root%s" % (self.pid, rel)

    def container_progress(self):
        """The container's progress as the host sees it: bytes written, files, resident
        bytes, processes (None when it cannot be read)."""
        r = self.resource
        if r == "disk":
            if self.name == "disk-shared":
                return stat_size(os.path.join(self.shared_dir, "fill"))
            return stat_size(self._cproc("/fill"))
        if r == "inodes":
            return to_int(read_text(self._cproc(COUNT_FILE) or "", 32))
        if r == "memory":
            if self.cg_dir:
                return read_cg_number(os.path.join(
                    self.cg_dir, "memory.usage_in_bytes" if self.cg_version == 1
                    else "memory.current"))
            return None
        if self.cg_dir:
            v = read_cg_number(os.path.join(self.cg_dir, "pids.current"))
            if v is not None:
                return v
        return to_int(read_text(self._cproc(COUNT_FILE) or "", 32))

    def writer_info(self):
        """The writing process: dd under the container's shell (disk), else the container's
        first process -> {'pid', 'name', 'state'}, or None when it is gone."""
        pid = self.writer_pid()
        f = parse_proc_stat_fields(read_text("/proc/%d/stat" % pid, 512)) if pid else None
        if not f or f[1] in ("Z", "X"):
            return None
        return {"pid": pid, "name": f[0], "state": f[1]}

    def writer_pid(self):
        if not self.pid:
            return None
        if self.resource != "disk":
            return self.pid
        if self.writer is None or not container_alive(self.writer):
            self.writer = find_child(self.pid, "dd")
        return self.writer

    def writer_counter(self):
        """disk: the bytes dd handed to write() (/proc/PID/io wchar), its own progress
        counter, which moves even while the file's size waits for the page cache."""
        if self.resource != "disk" or not self.pid:
            return None
        pid = self.writer_pid()
        if not pid:
            return None
        return parse_proc_io(read_text("/proc/%d/io" % pid, 1024)).get("wchar")

    def take_sample(self, sampler, start):
        s = sampler.sample()
        s["container"] = self.container_progress()
        self.samples.append(s)
        self.series["t"].append(round(s["t"] - start, 3))
        self.series["container"].append(s["container"])
        for k in SERIES_KEYS[self.resource]:
            self.series[k].append(s[k])
        if s["container"] is not None and (self.peak_container is None
                                           or s["container"] > self.peak_container):
            self.peak_container = s["container"]
        if self.resource == "memory":
            self._cgroup_peak()
        return s

    # -- the run ----------------------------------------------------------------
