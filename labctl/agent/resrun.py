# -*- coding: utf-8 -*-
"""The study's resource experiments (Table 2): ResourceRun runs one, phase by phase
(prepare, plan, launch, watch, at_peak, exit_state, stop_reason, cleanup).

What is the same for every resource is here; what differs is the resource's (``kind``, a
reskind.Resource of the resource table), asked at each phase.  A run holds its collaborators:
``box`` (container.ContainerView: the container from the host), ``log`` (sampling.SampleLog:
its samples and series), ``place`` (resplace.RunPlace: its folders and filesystems) and the
host ``sampler``."""

from __future__ import absolute_import, division, print_function

import time

from .container import LOW_FREE_PIDS, ContainerView, parse_container_log
from .limits import cap_within_floor, decline_rate, downsample, floor_breached
from .oom import decide_stop_reason
from .resclean import cleanup_run
from .reskind import run_options
from .resplace import RunPlace
from .sampling import (
    HostSampler,
    SampleLog,
    inspect_state,
    kill_container,
    self_cpu_seconds,
    self_maxrss_bytes,
    selinux_enforcing,
    stall_decision,
    stall_window,
)
from .text import monotonic, to_int


class ResourceRun(object):
    """One resource experiment: start the container, sample the host, stop at the peak."""

    def __init__(self, agent, exp, metrics):
        self.agent = agent
        self.exp = exp
        self.kind = exp.new_kind()
        self.m = metrics
        self.limits = agent.limits()
        self.box = ContainerView()
        self.log = SampleLog(self.kind.series_keys)
        self.place = RunPlace()
        self.sampler = None
        self.kernel_limit = None  # the container's --pids-limit / -m, when the engine took it
        self.cleaned = False

    # -- the run, phase by phase ---------------------------------------------------
    def run(self):
        kind, m = self.kind, self.m
        verdict = kind.unavailable(self)
        if verdict is not None:
            return verdict
        self.prepare()
        start = monotonic()
        s0 = self.take_sample(start)
        amount, by_floor, floors = self.plan(s0)
        if amount is not None and amount < kind.min_amount:
            m["stop_reason"] = "floor" if by_floor else "cap"
            m["below_minimum"] = not by_floor  # the cap itself (a share of the free) is tiny
            m[kind.progress_key] = 0
            m["landed_on_host_ratio"] = None
            m["limit_applied"] = False
            self.finish()
            return kind.verdict(m)
        cname, run_start = self.launch(amount, s0)
        stop = self.watch_timed(start, floors, cname, run_start)
        live = self.at_peak(stop, cname, start)
        m["run_s"] = round(monotonic() - run_start, 3)
        m["agent_stop"] = stop if stop in ("floor", "timeout", "stall") else None
        self.take_sample(start)
        insp = self.exit_state(cname, live)
        kind.after_exit(self, insp)
        self.stop_reason(s0, amount, by_floor, stop)
        # what the host got back once the container, its files and folder are gone
        self.agent.remove_container(cname)
        self.cleanup()
        self.box.pid = None
        back = self.take_sample(start)
        self.finish(back)
        return kind.verdict(m)

    def cleanup(self):
        cleanup_run(self)

    def take_sample(self, start):
        s = self.sampler.sample()
        s["container"] = self.kind.progress(self)
        self.log.add(s, start)
        self.kind.on_sample(self)
        return s

    def prepare(self):
        """The folders, the target filesystem, the host sampler, the probe image and the
        per-container limits, before the baseline sample."""
        agent, m, lim, kind, place = self.agent, self.m, self.limits, self.kind, self.place
        dfacts = (agent.facts or {}).get("docker") or {}
        root = dfacts.get("root_dir")
        server = agent.docker.server_version
        agent.ensure_run_dir()
        place.setup(agent, self.exp.name, root, self.exp.shared)
        m.update({"mode": agent.mode, "docker_server_version": server,
                  "storage_driver": dfacts.get("storage_driver"),
                  "experiment_timeout_s": lim["experiment_timeout_s"],
                  "sample_interval_s": lim["sample_interval_s"],
                  "container_started": False, "killed_by_agent": False, "kill_method": None})
        m.update(place.metrics())
        sampler = self.sampler = HostSampler(place.target)
        place.watch_root(root)
        m.update({"host_pid_max": sampler.pid_max, "host_threads_max": sampler.threads_max,
                  "host_pids_cgroup_limit": sampler.cg.get("pids_limit"),
                  "host_memory_cgroup_limit_bytes": sampler.cg.get("memory_limit")})
        kind.prepare_early(self, dfacts)
        m.update(agent.probe_image())
        kind.prepare_late(self, dfacts, server)

    def plan(self, s0):
        """The cap and the floors from the baseline sample -> (amount, by_floor, floors)."""
        agent, m, kind = self.agent, self.m, self.kind
        free_key = kind.free_key
        free0 = s0[free_key]
        cap, floor = kind.cap_and_floor(agent.mode, agent.limit_overrides, free0,
                                        kind.total(self, s0))
        cap, floor = kind.plan_limits(self, cap, floor, s0)
        amount, by_floor = cap_within_floor(cap, floor, free0)
        floors = {free_key: floor}
        floors.update(kind.extra_floors(self, s0))
        m.update({kind.cap_key: cap, kind.floor_key: floor, "cap": cap,
                  "floor": floor, "cap_effective": amount, "cap_limited_by_floor": by_floor})
        if self.exp.limited and kind.limit_key:
            m[kind.limit_key] = self.limits[kind.limit_key]
        kind.before_metrics(m, s0)
        for key, fl in sorted(floors.items()):  # any floor already reached: do not start
            if key != free_key and floor_breached(s0[key], fl, 0, 0):
                amount, by_floor = 0, True
                m["cap_effective"], m["cap_limited_by_floor"] = 0, True
                m.update({"floor_tripped": key, "floor_tripped_value": s0[key],
                          "floor_tripped_at": fl})
        return amount, by_floor, floors

    def launch(self, amount, s0):
        """The baselines, then the container (its pid and cgroups) -> (name, start)."""
        agent, m, lim, kind = self.agent, self.m, self.limits, self.kind
        kind.baselines(self)
        sleep_s = int(lim["experiment_timeout_s"]) + 60
        args, applied = run_options(kind, agent.docker.server_version, lim,
                                    selinux_enforcing(), self.place.shared_dir,
                                    kind.storage_opt_size)
        for key, value in applied.items():
            if value is not None:
                m[key] = value
        m["limit_applied"] = kind.limit_applied(applied, m)
        self.kernel_limit = applied.get(kind.limit_key) if kind.limit_key else None
        soak_s = int(lim["experiment_timeout_s"]) if agent.mode == "exhaust" else 0
        script = kind.script(amount, sleep_s, soak_s)
        cname, cid = agent.start_container(self.exp.name, m["probe_image"],
                                           ["/bin/sh", "-c", script], args)
        m["container_started"] = True
        m["container_name"] = cname
        run_start = monotonic()
        insp = inspect_state(agent.docker, cname)
        pid = to_int((insp.get("State") or {}).get("Pid")) or None
        m["container_id"] = (insp.get("Id") or cid or "")[:12] or None
        if pid:
            self.container_cgroup(pid)
        kind.after_start(self, insp, s0)
        return cname, run_start

    def container_cgroup(self, pid):
        """The container's first process and its cgroup (its resource's controller), where
        the host can read it."""
        ctrl = self.kind.cgroup_controller
        if not self.box.attach(pid, ctrl, self.m["container_id"]) and self.kind.reports_cgroup:
            # Docker 1.5.0 makes no pids cgroup: the container sits in the daemon's (with the
            # agent's ssh session, say); its count is not the container's, and it never
            # empties (wait_gone would wait its full time)
            self.m["container_%s_cgroup_own" % ctrl] = False
            self.m["container_%s_cgroup" % ctrl] = self.box.cg_view_path

    def watch_timed(self, start, floors, cname, run_start):
        """watch(), with the agent's own CPU time and memory while it watched."""
        m = self.m
        cpu0, w0 = self_cpu_seconds(), monotonic()
        stop = self.watch(start, floors)
        cpu1, w1 = self_cpu_seconds(), monotonic()
        m["watch_s"] = round(w1 - run_start, 3)   # container start -> its peak seen
        m["agent_watch_cpu_s"] = round(cpu1 - cpu0, 3) if (
            cpu0 is not None and cpu1 is not None) else None
        m["agent_watch_cpu_fraction"] = round((cpu1 - cpu0) / (w1 - w0), 4) if (
            cpu0 is not None and cpu1 is not None and w1 > w0) else None
        m["agent_maxrss_bytes"] = self_maxrss_bytes()
        return stop

    def floor_hit(self, s, floors, horizon):
        """The key of a floor the host will cross before the agent can act, or None."""
        kind, samples = self.kind, self.log.samples
        back = samples[-4] if len(samples) >= 4 else samples[0]
        for key, floor in sorted(floors.items()):
            rate = decline_rate((back["t"], back[key]), (s["t"], s[key]))
            room = kind.room_left(self.kernel_limit, self.box, s) if key == kind.free_key \
                else None
            if floor_breached(s[key], floor, rate, horizon, room):
                self.m.update({"floor_tripped": key, "floor_tripped_value": s[key],
                               "floor_tripped_at": floor})
                return key
        return None

    def watch(self, start, floors):
        """Sample until the container is done, exits, or must be stopped; -> why."""
        lim, kind, box, m = self.limits, self.kind, self.box, self.m
        interval = float(lim["sample_interval_s"])
        horizon = 2 * interval + 0.3  # the next sample, and the time a kill takes
        deadline = start + float(lim["experiment_timeout_s"])
        if self.agent.deadline.end - 15 < deadline:  # the agent's --timeout comes first
            deadline = self.agent.deadline.end - 15
            m["timeout_source"] = "agent-deadline"
            m["timeout_s_effective"] = round(max(0.0, deadline - start), 1)
        stall_s = float(lim["stall_s"])
        last_change = monotonic()
        last_value = None
        host_change, host_sig = last_change, None
        slowest = 0.0   # the longest one step of progress took (bursts on a slow machine)
        next_note = monotonic() + 5
        while True:
            s = self.take_sample(start)
            now = s["t"]
            if not box.alive():
                return "exited"
            if self.floor_hit(s, floors, horizon):
                return "floor"
            if box.state() in ("done", "held"):
                return "done"
            value = (s["container"], box.writer_counter(kind.writer_name))
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
                                                     window, box.writer_info(kind.writer_name))
                    if stalled:
                        m.update({"stall_detail": detail, "stall_window_s": round(window, 2),
                                  "stall_slowest_step_s": round(slowest, 2)})
                        return "stall"
            if now >= deadline:
                return "timeout"
            if now >= next_note:
                next_note = now + 5
                self.agent.progress("experiment-progress", self.exp.name,
                                    "%s so far, host %s %s" % (kind.fmt(s["container"]),
                                                               kind.free_key, s[kind.free_key]))
            time.sleep(interval)

    def at_peak(self, stop, cname, start):
        """At the peak (the container still running): the host tries the same thing, then
        the agent stops the container -> what the container's own files said live."""
        agent, m, lim, kind, box = self.agent, self.m, self.limits, self.kind, self.box
        peak = self.log.peak_sample = self.log.samples[-1]
        live = {}
        if stop != "exited" and box.alive():
            later = kind.resample_at_peak(self, start)
            if later is not None:
                peak = self.log.peak_sample = later
            cnt = box.count()
            if cnt is not None:
                live["count_live"] = cnt
            kind.read_live(self, live)
            m["host_check_at"] = "peak"
            kind.at_peak(self)
            m.update(kind.host_checks(self.place.fsdir, lim))
            # the host has (almost) no pids left: the engine would have to fork runc to stop
            # the container, so the agent signals the container's first process itself
            low_pids = peak.get("free_pids") is not None and peak["free_pids"] < LOW_FREE_PIDS
            method = kill_container(agent.docker, cname, 10, box.pid, box.pid_start,
                                    prefer_signal=low_pids)
            m["killed_by_agent"] = method is not None
            m["kill_method"] = method
            box.wait_gone(10, kind.gone_file)
        else:
            m["host_check_at"] = "after-exit"
            m.update(kind.host_checks(self.place.fsdir, lim))
        return live

    def exit_state(self, cname, live):
        """The container's exit as the engine saw it and what its log says -> inspect."""
        agent, m = self.agent, self.m
        insp = inspect_state(agent.docker, cname)
        end = monotonic() + 10   # the engine may not have seen the exit yet
        while (insp.get("State") or {}).get("Running") and monotonic() < end:
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
        self.kind.progress_metrics(self, parsed, live)
        return insp

    def stop_reason(self, s0, amount, by_floor, stop):
        """Why the container stopped: its own limit, the host's exhaustion, a cap, ..."""
        m, kind = self.m, self.kind
        near, room = kind.near_limit(self)
        reached = kind.reached(self, amount, stop) if amount is not None else False
        exhausted = kind.exhausted(self, s0)
        m["host_exhausted"] = bool(exhausted)
        m["stop_reason"] = decide_stop_reason({
            "resource": kind.name, "agent_stop": m["agent_stop"], "reached_target": reached,
            "cap_limited_by_floor": by_floor, "container_error": m["container_error"],
            "oom_killed": m["oom_killed"], "exit_code": m["container_exit_code"],
            "killed_by_agent": m["killed_by_agent"], "limit_applied": m["limit_applied"],
            "near_limit": near, "host_exhausted": exhausted, "host_had_room": room})

    def finish(self, back=None):
        """Host-side numbers (before/min/delta/after), the ratio, rates, the series."""
        m, kind, log = self.m, self.kind, self.log
        kind.finish_metrics(self, back)
        run_s = m.get("watch_s") or m.get("run_s")
        got = m.get(kind.progress_key)
        m[kind.rate_key] = round(got / run_s, 1) if (got and run_s) else None
        m["samples"] = len(log.samples)
        m["series_points"] = min(len(log.samples), int(self.limits["max_series_points"]))
        m["__series__"] = downsample(log.series, int(self.limits["max_series_points"]))


def resource_experiment(exp):
    """The experiment function (agent, metrics) -> verdict of the resource check ``exp``."""
    def experiment(agent, metrics):
        run = ResourceRun(agent, exp, metrics)
        try:
            return run.run()
        finally:  # an error must not leave the container holding the host's resources,
            try:  # nor its files filling the disk for the next experiment
                run.cleanup()
            except Exception:
                cname = agent.container_name(exp.name)
                if cname in agent.containers:
                    kill_container(agent.docker, cname, 5)
                    agent.remove_container(cname)
    experiment.__name__ = "experiment_" + exp.name.replace("-", "_")
    return experiment

