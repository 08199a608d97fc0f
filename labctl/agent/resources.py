# -*- coding: utf-8 -*-
"""The study's resource experiments (Table 2): ResourceRun runs one, phase by phase
(prepare, plan, launch, watch, at_peak, exit_state, stop_reason, cleanup)."""

from __future__ import absolute_import, division, print_function

import os
import time

from .cgroups import (
    cgroup_dir,
    cgroup_view,
    own_cgroup,
    parse_cgroup_mounts,
    parse_proc_cgroup,
)
from .consts import MIB
from .container import (
    COUNT_FILE,
    LOW_FREE_PIDS,
    STATE_FILE,
    container_alive,
    container_script,
    kernel_log,
    parse_container_log,
    stat_size,
)
from .disklimit import disk_limited_cap, host_had_room
from .hostpaths import ensure_local_dir
from .image import find_tool
from .limits import (
    _CAP_KEYS,
    _FLOOR_KEYS,
    FREE_KEY,
    RESOURCE_OF,
    SERIES_KEYS,
    cap_and_floor,
    cap_within_floor,
    decline_rate,
    floor_breached,
    pids_gate,
    resource_run_options,
)
from .oom import (
    attribute_oom,
    decide_stop_reason,
    kernel_oom_lines,
    oom_host_scope,
    oom_line_rss,
    thin_pool_kernel_lines,
)
from .osparse import find_mount, host_mounts, parse_meminfo, parse_vmstat
from .resclean import RunCleanup
from .resmetrics import RunMetrics
from .resprobe import RunProbes
from .runstate import proc_start_time
from .sampling import (
    HostSampler,
    fs_free,
    host_checks,
    inspect_state,
    kill_container,
    self_cpu_seconds,
    self_maxrss_bytes,
    selinux_enforcing,
    stall_decision,
    stall_window,
)
from .text import one_line, read_int, read_text, run_cmd, to_int
from .verdicts import pids_unavailable_verdict, resource_verdict


class ResourceRun(RunProbes, RunMetrics, RunCleanup):
    """One resource experiment: start the container, sample the host, stop at the peak."""

    def __init__(self, agent, name, metrics):
        self.agent = agent
        self.name = name
        self.resource = RESOURCE_OF[name]
        self.m = metrics
        self.limits = agent.limits()
        self.series = {"t": [], "container": []}
        for k in SERIES_KEYS[self.resource]:
            self.series[k] = []
        self.samples = []
        self.pid = None
        self.cg_dir = None
        self.cg_version = None
        self.cstate_path = None
        self.peak_container = None
        self.peak_sample = None   # the last sample before the host's own checks
        self.pid_start = None     # /proc/PID/stat start time of the container's first process
        self.cg_view_path = None  # the container's cgroup as this host names it
        self.cg_mount_root = None  # the part of the cgroup tree this host sees
        self.fsdir = None
        self.root_fs = None       # the docker root's filesystem: waited on after the run
        self.root_base = None
        self.sampler = None
        self.cleaned = False
        self.storage_opt_size = None  # disk-limited: --storage-opt size= (engine took it)
        self.writer = None        # disk: dd's pid (the writer whose own counter is read)
        self.kernel_limit = None  # the container's --pids-limit / -m, when the engine took it
        self.shared_dir = None    # disk-shared: the host folder the container writes to
        self.vm0 = None           # memory: /proc/vmstat oom_kill before the container
        self.dmesg0 = None        # the kernel log before the container (memory, thin pool)

    # -- the run, phase by phase ---------------------------------------------------
    def run(self):
        verdict = self.pids_unavailable()
        if verdict is not None:
            return verdict
        self.prepare()
        start = time.time()
        s0 = self.take_sample(self.sampler, start)
        amount, by_floor, floors = self.plan(s0)
        minimum = MIB if self.resource in ("disk",) else 1
        if amount is not None and amount < minimum:
            self.m["stop_reason"] = "floor" if by_floor else "cap"
            self._zero_progress()
            self.finish(s0, start)
            return resource_verdict(self.name, self.m)
        cname, run_start = self.launch(amount, s0)
        stop = self.watch_timed(start, floors, cname, run_start)
        log = self.at_peak(stop, cname, start)
        self.m["run_s"] = round(time.time() - run_start, 3)
        self.m["agent_stop"] = stop if stop in ("floor", "timeout", "stall") else None
        after = self.take_sample(self.sampler, start)
        insp = self.exit_state(cname, log)
        if self.resource == "memory":
            self.oom_words(insp)
        if self.resource in ("disk", "inodes") and self.dmesg0 is not None:
            self.thin_pool_words()
        self.stop_reason(s0, amount, by_floor, stop)
        # what the host got back once the container, its files and folder are gone
        self.agent.remove_container(cname)
        self.cleanup()
        self.pid = None
        back = self.take_sample(self.sampler, start)
        self.finish(after, start, back)
        return resource_verdict(self.name, self.m)

    def pids_unavailable(self):
        """processes-limited on an engine (or kernel) without a per-container process limit:
        the finding's verdict (not a skip: only the host's own limits stop a container's
        processes); None when the limit is there."""
        if self.name != "processes-limited":
            return None
        agent, m, lim = self.agent, self.m, self.limits
        facts = agent.facts or {}
        server = agent.docker.server_version
        ok, why = pids_gate(server, (facts.get("cgroup") or {}).get("controllers"))
        if ok:
            return None
        m.update({"mode": agent.mode, "pids_limit": lim["pids_limit"],
                  "limit_applied": False, "limit_available": False,
                  "limit_unavailable_reason": why, "docker_server_version": server,
                  "stop_reason": "not-available", "container_started": False,
                  "host_pid_max": read_int("/proc/sys/kernel/pid_max"),
                  "host_threads_max": read_int("/proc/sys/kernel/threads-max")})
        return pids_unavailable_verdict(server, why, m)

    def prepare(self):
        """The folders, the target filesystem, the host sampler, the probe image and the
        per-container limits, before the baseline sample."""
        agent, m, lim, name, resource = self.agent, self.m, self.limits, self.name, \
            self.resource
        dfacts = (agent.facts or {}).get("docker") or {}
        root = dfacts.get("root_dir")
        server = agent.docker.server_version
        agent.ensure_run_dir()
        fsdir, on_root = self.same_fs_dir(root)
        self.fsdir = fsdir
        self.shared_dir = None
        target = root if (root and os.path.isdir(root)) else fsdir
        if name == "disk-shared":
            # open to the container's users (a user namespace maps its root to another uid);
            # fsdir above it is the agent's own (0700), so no user of the host reaches it
            self.shared_dir = ensure_local_dir(os.path.join(fsdir, "shared"))
            os.chmod(self.shared_dir, 0o777)
            target = self.shared_dir
        mounts = host_mounts()
        tm = find_mount(mounts, os.path.realpath(target)) if target else None
        m.update({"mode": agent.mode, "docker_server_version": server,
                  "storage_driver": dfacts.get("storage_driver"),
                  "target_path": target, "target_fstype": tm and tm["fstype"],
                  "target_device": tm and tm["source"],
                  "hostcheck_dir_on_docker_root_fs": on_root,
                  "experiment_timeout_s": lim["experiment_timeout_s"],
                  "sample_interval_s": lim["sample_interval_s"],
                  "container_started": False, "killed_by_agent": False, "kill_method": None})
        if self.shared_dir:
            sm = find_mount(mounts, os.path.realpath(self.shared_dir))
            m["shared_dir"] = self.shared_dir
            m["shared_dir_fstype"] = sm and sm["fstype"]
            m["shared_dir_on_docker_root_fs"] = on_root
        sampler = self.sampler = HostSampler(target)
        self.root_fs = root if (root and os.path.isdir(root)) else fsdir
        self.root_base = fs_free(self.root_fs)
        m.update({"host_pid_max": sampler.pid_max, "host_threads_max": sampler.threads_max,
                  "host_pids_cgroup_limit": sampler.cg.get("pids_limit"),
                  "host_memory_cgroup_limit_bytes": sampler.cg.get("memory_limit")})
        if resource in ("disk", "inodes"):
            self.thin_pool_setup(dfacts, target, mounts)
        m.update(agent.probe_image())
        if name in ("disk", "disk-limited"):
            # the per-container limit in effect: --storage-opt size= where the engine takes
            # it (disk-limited, tried first), devicemapper's base device size (both)
            self.disk_limit(dfacts, server, tm and tm["fstype"])
        if resource == "memory":
            m["engine_swap_limit_warning"] = dfacts.get("swap_limit_warning")
            m["host_swap_total_bytes"] = parse_meminfo(read_text("/proc/meminfo")).get(
                "SwapTotal")
        if resource in ("disk", "inodes") and agent.mode == "bounded":
            # settle what earlier experiments freed (ext4 returns freed blocks at the journal
            # commit), so the baseline is not moved by our own past
            sync = find_tool("sync")
            if sync:
                run_cmd([sync], timeout=agent.deadline.remaining(30))

    def plan(self, s0):
        """The cap and the floors from the baseline sample -> (amount, by_floor, floors)."""
        agent, m, lim, name, resource = self.agent, self.m, self.limits, self.name, \
            self.resource
        sampler = self.sampler
        free_key = FREE_KEY[resource]
        free0 = s0[free_key]
        total = {"disk": s0["size_bytes"], "inodes": s0["inodes_total"],
                 "memory": None, "processes": sampler.pids_total()}[resource]
        if resource == "memory":
            meminfo = parse_meminfo(read_text("/proc/meminfo"))
            total = meminfo.get("MemTotal")
            if sampler.cg.get("memory_limit"):
                total = min(total or sampler.cg["memory_limit"], sampler.cg["memory_limit"])
            m["host_mem_available_source"] = sampler.mem_source
        cap, floor = cap_and_floor(resource, agent.mode, agent.limit_overrides, free0, total)
        if name == "disk-limited":  # past the limit if it does not hold, still bounded
            cap = disk_limited_cap(cap, m.get("disk_limit_bytes"))
        if resource == "inodes" and not s0["inodes_total"]:
            floor = 0  # no fixed inode count (btrfs): nothing to run out of
        amount, by_floor = cap_within_floor(cap, floor, free0)
        floors = {free_key: floor}
        if resource == "inodes":  # creating files also takes a little disk space
            floors["free_bytes"] = cap_and_floor("disk", agent.mode, agent.limit_overrides,
                                                 s0["free_bytes"], s0["size_bytes"])[1]
        m.update({_CAP_KEYS[resource]: cap, _FLOOR_KEYS[resource]: floor, "cap": cap,
                  "floor": floor, "cap_effective": amount, "cap_limited_by_floor": by_floor})
        if name == "memory-limited":
            m["memory_limit_bytes"] = lim["memory_limit_bytes"]
        if name == "processes-limited":
            m["pids_limit"] = lim["pids_limit"]
        self._before(s0)
        for key, fl in sorted(floors.items()):  # any floor already reached: do not start
            if key != free_key and floor_breached(s0[key], fl, 0, 0):
                amount, by_floor = 0, True
                m["cap_effective"], m["cap_limited_by_floor"] = 0, True
                m.update({"floor_tripped": key, "floor_tripped_value": s0[key],
                          "floor_tripped_at": fl})
        return amount, by_floor, floors

    def launch(self, amount, s0):
        """The OOM baselines, then the container (its pid and cgroups) -> (name, start)."""
        agent, m, lim, name, resource = self.agent, self.m, self.limits, self.name, \
            self.resource
        server = agent.docker.server_version
        # memory: baseline for OOM attribution
        self.vm0 = parse_vmstat(read_text("/proc/vmstat")).get("oom_kill")
        self.dmesg0 = kernel_log() if (resource == "memory" or m.get("pool_data_file")) else None
        sleep_s = int(lim["experiment_timeout_s"]) + 60
        args, applied = resource_run_options(name, server, lim, selinux_enforcing(),
                                             self.shared_dir, self.storage_opt_size)
        for key, value in applied.items():
            if value is not None:
                m[key] = value
        m["limit_applied"] = bool(applied["memory_limit_bytes"] or applied["pids_limit"]
                                  or m.get("disk_limit_bytes"))
        self.kernel_limit = applied["pids_limit"] if resource == "processes" else \
            applied["memory_limit_bytes"] if resource == "memory" else None
        soak_s = int(lim["experiment_timeout_s"]) if agent.mode == "exhaust" else 0
        script = container_script(name, amount, sleep_s, soak_s)
        cname, cid = agent.start_container(name, m["probe_image"],
                                           ["/bin/sh", "-c", script], args)
        m["container_started"] = True
        m["container_name"] = cname
        run_start = time.time()
        insp = inspect_state(agent.docker, cname)
        self.pid = to_int((insp.get("State") or {}).get("Pid")) or None
        m["container_id"] = (insp.get("Id") or cid or "")[:12] or None
        if self.pid:
            self.container_cgroup()
        if name == "memory-limited":
            self.swap_applied(insp)
        if resource in ("disk", "inodes") and self.pid:
            self.container_fs("start", s0)
        return cname, run_start

    def container_cgroup(self):
        """The container's cgroup (memory or pids), where the host can read it."""
        m, resource = self.m, self.resource
        self.pid_start = proc_start_time(self.pid)
        cg_ctrl = "memory" if resource == "memory" else "pids"
        proc_cg = parse_proc_cgroup(read_text("/proc/%d/cgroup" % self.pid))
        cg_mounts = parse_cgroup_mounts(read_text("/proc/self/mountinfo"))
        self.cg_dir, self.cg_version = cgroup_dir(proc_cg, cg_mounts, cg_ctrl)
        if self.cg_dir and not os.path.isdir(self.cg_dir):
            self.cg_dir = None
        self.cg_view_path, self.cg_mount_root = cgroup_view(proc_cg, cg_mounts, cg_ctrl)
        if self.cg_dir and not own_cgroup(self.cg_dir, m["container_id"]):
            # Docker 1.5.0 makes no pids cgroup: the container sits in the daemon's (with
            # the agent's ssh session, say); its count is not the container's, and it
            # never empties (wait_gone would wait its full time)
            if resource in ("memory", "processes"):
                m["container_%s_cgroup_own" % cg_ctrl] = False
                m["container_%s_cgroup" % cg_ctrl] = self.cg_view_path
            self.cg_dir = None

    def watch_timed(self, start, floors, cname, run_start):
        """watch(), with the agent's own CPU time and memory while it watched."""
        m = self.m
        cpu0, w0 = self_cpu_seconds(), time.time()
        stop = self.watch(self.sampler, start, floors, cname)
        cpu1, w1 = self_cpu_seconds(), time.time()
        m["watch_s"] = round(w1 - run_start, 3)   # container start -> its peak seen
        m["agent_watch_cpu_s"] = round(cpu1 - cpu0, 3) if (
            cpu0 is not None and cpu1 is not None) else None
        m["agent_watch_cpu_fraction"] = round((cpu1 - cpu0) / (w1 - w0), 4) if (
            cpu0 is not None and cpu1 is not None and w1 > w0) else None
        m["agent_maxrss_bytes"] = self_maxrss_bytes()
        return stop

    def at_peak(self, stop, cname, start):
        """At the peak (the container still running): the host tries the same thing, then
        the agent stops the container -> what the container's own files said live."""
        agent, m, lim, resource = self.agent, self.m, self.limits, self.resource
        peak = self.peak_sample = self.samples[-1]
        log = {}
        if stop != "exited" and container_alive(self.pid):
            if resource == "memory":
                time.sleep(min(0.3, lim["sample_interval_s"] * 3))
                peak = self.peak_sample = self.take_sample(self.sampler, start)
                self._cgroup_peak()
            cnt = to_int(read_text(self._cproc(COUNT_FILE) or "", 32))
            if cnt is not None:
                log["count_live"] = cnt
            if resource == "disk" and self.name in ("disk", "disk-limited"):
                log["size_live"] = stat_size(self._cproc("/fill"))
            m["host_check_at"] = "peak"
            if resource in ("disk", "inodes"):
                self.container_fs("at_peak")
                self.pool_space("at_peak")
            m.update(host_checks(resource, self.fsdir, lim))
            # the host has (almost) no pids left: the engine would have to fork runc to stop
            # the container, so the agent signals the container's first process itself
            low_pids = peak.get("free_pids") is not None and peak["free_pids"] < LOW_FREE_PIDS
            method = kill_container(agent.docker, cname, 10, self.pid, self.pid_start,
                                    prefer_signal=low_pids)
            m["killed_by_agent"] = method is not None
            m["kill_method"] = method
            self.wait_gone(10)
        else:
            m["host_check_at"] = "after-exit"
            m.update(host_checks(resource, self.fsdir, lim))
        return log

    def exit_state(self, cname, log):
        """The container's exit as the engine saw it and what its log says -> inspect."""
        agent, m = self.agent, self.m
        insp = inspect_state(agent.docker, cname)
        end = time.time() + 10   # the engine may not have seen the exit yet
        while (insp.get("State") or {}).get("Running") and time.time() < end:
            time.sleep(0.1)
            insp = inspect_state(agent.docker, cname) or insp
        st = insp.get("State") or {}
        m["container_exit_code"] = to_int(st.get("ExitCode"))
        if m["container_exit_code"] == 137 and not m["killed_by_agent"] and \
                not st.get("OOMKilled"):
            time.sleep(0.5)  # the engine may handle the OOM event after the exit event
            st = inspect_state(agent.docker, cname).get("State") or st
        m["oom_killed_docker"] = bool(st.get("OOMKilled"))
        m["oom_killed"] = m["oom_killed_docker"]
        res = agent.docker.run(["logs", "--tail", "60", cname], 30)
        parsed = parse_container_log((res.out or "") + "\n" + (res.err or ""))
        m["container_error"] = parsed["error"]
        m["container_error_line"] = parsed["error_line"]
        m["script_rc"] = parsed["rc"]
        self._progress_metrics(parsed, log, self.peak_sample)
        return insp

    def oom_words(self, insp):
        """memory: what the kernel and /proc/vmstat say about an OOM kill, and whose."""
        m = self.m
        vm0, dmesg0 = self.vm0, self.dmesg0
        vm1 = parse_vmstat(read_text("/proc/vmstat")).get("oom_kill")
        m["vmstat_oom_kill_before"] = vm0
        m["vmstat_oom_kill_after"] = vm1
        m["vmstat_oom_kill_delta"] = (vm1 - vm0) if (vm0 is not None and vm1 is not None) \
            else None
        dmesg1 = kernel_log() if dmesg0 is not None else None
        m["kernel_log_readable"] = dmesg1 is not None
        lines = kernel_oom_lines(dmesg0, dmesg1) if dmesg1 is not None else []
        m["oom_kernel_lines"] = len(lines)
        m["oom_kernel_line"] = one_line(lines[-1], 300) if lines else None
        # the engine's flag can miss a kill (it races the exit): the kernel's word counts
        if not m["oom_killed"] and m["container_exit_code"] == 137 and \
                not m["killed_by_agent"]:
            cid12 = (insp.get("Id") or "")[:12]
            memcg = [ln for ln in lines if "memory cgroup out of memory" in ln.lower()
                     or (cid12 and cid12 in ln)]
            if memcg or (m["vmstat_oom_kill_delta"] or 0) >= 1:
                m["oom_killed"] = True
        rss = oom_line_rss(lines)
        if rss and m.get("oom_killed") and rss > (m.get("resident_bytes") or 0):
            m["resident_bytes"], m["resident_source"] = rss, "kernel-oom-line"
        scope = oom_host_scope(self.cg_view_path, self.cg_mount_root, lines,
                               insp.get("Id"))
        m["oom_host_cgroup"] = scope
        m.update(attribute_oom(m["oom_killed"], m["container_exit_code"],
                               m["killed_by_agent"], m["vmstat_oom_kill_delta"], lines,
                               insp.get("Id"), scope))

    def thin_pool_words(self):
        """devicemapper: what the kernel said about the thin pool (out of space, read-only)."""
        m = self.m
        lines = thin_pool_kernel_lines(self.dmesg0, kernel_log())
        m["thin_pool_kernel_lines"] = len(lines)
        m["thin_pool_kernel_line"] = one_line(lines[-1], 300) if lines else None
        m["thin_pool_read_only"] = bool([ln for ln in lines if "read-only" in ln.lower()
                                         or "read_only" in ln.lower()])

    def stop_reason(self, s0, amount, by_floor, stop):
        """Why the container stopped: its own limit, the host's exhaustion, a cap, ..."""
        m, lim, name, resource = self.m, self.limits, self.name, self.resource
        # the container's own limit reached?
        near = False
        if name == "memory-limited" and m.get("resident_bytes"):
            near = m["resident_bytes"] >= 0.85 * lim["memory_limit_bytes"]
        if name == "processes-limited":
            peak_p = m.get("container_pids_peak") or 0
            near = peak_p >= lim["pids_limit"] - 2 or \
                (m.get("processes_started") or 0) + 3 >= lim["pids_limit"]
        room = None
        if resource == "disk":
            # ENOSPC with room left on the host: the container's own limit (near it, or no
            # limit known); a known limit far from reached: not the limit
            dl, w = m.get("disk_limit_bytes"), m.get("written_bytes")
            near = (w >= 0.5 * dl) if (dl and w is not None) else None
            room = host_had_room(w, self._min("free_bytes_root"), dl)
            m["host_had_room"] = room
        reached = False
        if amount is not None:
            got = {"disk": m.get("written_bytes"), "inodes": m.get("files_created"),
                   "memory": m.get("resident_bytes"),
                   "processes": m.get("processes_started")}[resource]
            if resource == "memory":
                reached = stop == "done" or (got is not None and got >= 0.9 * amount)
            elif got is not None:
                want = (int(amount) // MIB) * MIB if resource == "disk" else amount
                reached = got >= want
        exhausted = False
        if resource == "disk":
            # ext4 keeps a few MiB even from root (seen: 16 MiB "free" while root's own write
            # failed): the host's write failing with ENOSPC at the peak is the proof
            exhausted = (self._min("free_bytes_root") or 0) < 8 * MIB or (
                m.get("host_write_ok") is False and
                "ENOSPC" in (m.get("host_write_error") or ""))
        elif resource == "inodes":
            # out of inodes, or out of the blocks new directory entries need
            exhausted = (s0["inodes_total"] and (self._min("free_inodes") or 0) < 16) or \
                (self._min("free_bytes_root") is not None and self._min("free_bytes_root") < MIB)
        elif resource == "processes":
            exhausted = (self._min("free_pids") or 0) < 4
        m["host_exhausted"] = bool(exhausted)
        m["stop_reason"] = decide_stop_reason({
            "resource": resource, "agent_stop": m["agent_stop"], "reached_target": reached,
            "cap_limited_by_floor": by_floor, "container_error": m["container_error"],
            "oom_killed": m["oom_killed"], "exit_code": m["container_exit_code"],
            "killed_by_agent": m["killed_by_agent"], "limit_applied": m["limit_applied"],
            "near_limit": near, "host_exhausted": exhausted, "host_had_room": room})

    def room_left(self, s):
        """The most the container can still take of its resource under its own kernel limit
        (None: no limit, or its own cgroup is not readable).  Pids: the limit minus its
        pids.current, exact.  Memory: the whole limit, since its usage counts page cache that
        it can trade for anonymous memory."""
        if not self.kernel_limit or not self.cg_dir:
            return None
        if self.resource == "processes":
            return None if s.get("container") is None else self.kernel_limit - s["container"]
        return self.kernel_limit

    def watch(self, sampler, start, floors, cname):
        """Sample until the container is done, exits, or must be stopped; -> why."""
        lim = self.limits
        interval = float(lim["sample_interval_s"])
        horizon = 2 * interval + 0.3  # the next sample, and the time a kill takes
        deadline = start + float(lim["experiment_timeout_s"])
        if self.agent.deadline.end - 15 < deadline:  # the agent's --timeout comes first
            deadline = self.agent.deadline.end - 15
            self.m["timeout_source"] = "agent-deadline"
            self.m["timeout_s_effective"] = round(max(0.0, deadline - start), 1)
        stall_s = float(lim["stall_s"])
        last_change = time.time()
        last_value = None
        host_change, host_sig = last_change, None
        slowest = 0.0   # the longest one step of progress took (bursts on a slow machine)
        next_note = time.time() + 5
        while True:
            s = self.take_sample(sampler, start)
            now = s["t"]
            if not container_alive(self.pid):
                return "exited"
            back = self.samples[-4] if len(self.samples) >= 4 else self.samples[0]
            for key, floor in sorted(floors.items()):
                rate = decline_rate((back["t"], back[key]), (now, s[key]))
                room = self.room_left(s) if key == FREE_KEY[self.resource] else None
                if floor_breached(s[key], floor, rate, horizon, room):
                    self.m["floor_tripped"] = key
                    self.m["floor_tripped_value"] = s[key]
                    self.m["floor_tripped_at"] = floor
                    return "floor"
            state = (read_text(self._cproc(STATE_FILE) or "", 32) or "").strip()
            if state in ("done", "held"):
                return "done"
            value = (s["container"], self.writer_counter())
            if value != last_value:
                if last_value is not None and last_value[0]:
                    slowest = max(slowest, now - last_change)
                last_value = value
                last_change = now
            sig = (s.get("free_bytes_root"), s.get("free_inodes"), s.get("pool_bytes"),
                   s.get("pool_fs_free_bytes"), s.get("dirty_bytes"))
            if sig != host_sig:
                host_sig, host_change = sig, now
            if last_value[0] and now - last_change > stall_s:
                window = stall_window(stall_s, slowest)
                if min(now - last_change, now - host_change) > window:
                    stalled, detail = stall_decision(now - last_change, now - host_change,
                                                     window, self.writer_info())
                    if stalled:
                        self.m.update({"stall_detail": detail, "stall_window_s":
                                       round(window, 2), "stall_slowest_step_s":
                                       round(slowest, 2)})
                        return "stall"
            if now >= deadline:
                return "timeout"
            if now >= next_note:
                next_note = now + 5
                self.agent.progress("experiment-progress", self.name, "%s so far, host %s %s"
                                    % (self._fmt_progress(s["container"]),
                                       FREE_KEY[self.resource], s[FREE_KEY[self.resource]]))
            time.sleep(interval)


def _resource_experiment(name):
    def experiment(agent, metrics):
        run = ResourceRun(agent, name, metrics)
        try:
            return run.run()
        finally:  # an error must not leave the container holding the host's resources,
            try:  # nor its files filling the disk for the next experiment
                run.cleanup()
            except Exception:
                cname = agent.container_name(name)
                if cname in agent.containers:
                    kill_container(agent.docker, cname, 5)
                    agent.remove_container(cname)
    experiment.__name__ = "experiment_" + name.replace("-", "_")
    return experiment
