# -*- coding: utf-8 -*-
"""The memory check (the study's Table 2): a container allocates memory, without a limit or
under its own -m (memory-limited); who the OOM killer took, and whether --memory-swap held."""

from __future__ import absolute_import, division, print_function

import os
import time

from .container import STATE_FILE, kernel_log
from .disklimit import swap_limit_applied
from .oom import attribute_oom, kernel_oom_lines, oom_host_scope, oom_line_rss
from .osparse import parse_meminfo, parse_vmstat
from .reskind import Resource, difference, ratio_parts
from .sampling import host_try_alloc
from .text import fmt_bytes, one_line, read_text
from .verdicts import host_effect, ratio_text


class Memory(Resource):
    """The host's memory (MemAvailable, and the visible memory cgroup's room)."""

    name = "memory"
    variants = {"memory-limited": {"limited": True}}
    free_key = "mem_available"
    free_before_key = "host_mem_available_before"
    series_keys = ("mem_available", "swap_free")
    before_keys = (("host_mem_available_before", "mem_available"),
                   ("host_swap_free_before", "swap_free"))
    cap_key, cap_fraction_key = "memory_cap_bytes", "memory_cap_fraction"
    floor_key, floor_fraction_key = "memory_floor_bytes", "memory_floor_fraction"
    limit_key = "memory_limit_bytes"
    applied_keys = ("memory_limit_bytes", "memory_swap_limit_bytes")
    progress_key = "resident_bytes"
    rate_key = "alloc_rate_bytes_per_s"
    in_bytes = True
    cgroup_controller = "memory"
    reports_cgroup = True
    ratio_definition = ("the largest fall of the host's MemAvailable / the container's peak "
                        "memory use")

    def __init__(self, exp):
        Resource.__init__(self, exp)
        self.vm0 = None     # /proc/vmstat oom_kill before the container
        self.dmesg0 = None  # the kernel log before the container

    def script(self, amount, sleep_s, soak_s=0):
        # killed (by the OOM killer): the shell stays a second, so the container's memory
        # cgroup, and its peak, outlive the kill long enough for the agent to read them
        linger = "r=$?; echo \"labctl-rc $r\"; if [ $r -ne 0 ]; then sleep 1; fi; exit $r"
        if amount is None:
            return "tail /dev/zero; " + linger
        # under its own limit (-m), both sides of the pipe ask the killer to take them before
        # the container's first process (raising one's own oom_score_adj needs no privilege):
        # seen in CI, head's next pipe write met the limit again before tail's charge was
        # gone, the killer took the shell (bigger than head) and the container ended at once.
        # Without a limit the kernel's own choice between container and host is the finding.
        first = "echo 1000 2>/dev/null > /proc/self/oom_score_adj; " if self.exp.limited \
            else ""
        reader = "(%sexec tail)" % first if first else "tail"
        return ("(%shead -c %d /dev/zero && echo held > %s && exec sleep %d) | %s; %s"
                % (first, int(amount), STATE_FILE, sleep_s, reader, linger))

    def limit_options(self, vt, limits):
        args = []
        applied = {"memory_limit_bytes": None, "memory_swap_limit_bytes": None}
        if self.exp.limited:
            mem = int(limits["memory_limit_bytes"])
            args += ["-m", "%db" % mem]
            applied["memory_limit_bytes"] = mem
            if vt >= (1, 5):  # --memory-swap came with Docker 1.5 (API 1.17)
                args += ["--memory-swap", "%db" % mem]
                applied["memory_swap_limit_bytes"] = mem
        return args, applied

    @classmethod
    def host_checks(cls, directory, limits):
        m = {"host_alloc_bytes": int(limits["host_alloc_bytes"])}
        m["host_alloc_ok"], m["host_alloc_error"] = host_try_alloc(limits["host_alloc_bytes"])
        return m

    # -- the run -----------------------------------------------------------------------
    def prepare_late(self, run, dfacts, server):
        run.m["engine_swap_limit_warning"] = dfacts.get("swap_limit_warning")
        run.m["host_swap_total_bytes"] = parse_meminfo(read_text("/proc/meminfo")).get(
            "SwapTotal")

    def total(self, run, s0):
        sampler = run.sampler
        total = parse_meminfo(read_text("/proc/meminfo")).get("MemTotal")
        if sampler.cg.get("memory_limit"):
            total = min(total or sampler.cg["memory_limit"], sampler.cg["memory_limit"])
        run.m["host_mem_available_source"] = sampler.mem_source
        return total

    def baselines(self, run):
        # for the OOM attribution
        self.vm0 = parse_vmstat(read_text("/proc/vmstat")).get("oom_kill")
        self.dmesg0 = kernel_log()

    def after_start(self, run, insp, s0):
        if self.exp.limited:
            self.swap_applied(run, insp)

    def progress(self, run):
        box = run.box
        return box.cg_number(box.cg_file("memory.usage_in_bytes", "memory.current"))

    def cgroup_peak(self, run):
        box = run.box
        run.log.raise_peak(box.cg_number(box.cg_file("memory.max_usage_in_bytes",
                                                     "memory.peak")))

    def on_sample(self, run):
        self.cgroup_peak(run)

    def room_left(self, kernel_limit, box, s):
        # the whole limit: its usage counts page cache that it can trade for anonymous memory
        if not kernel_limit or not box.cg_dir:
            return None
        return kernel_limit

    def resample_at_peak(self, run, start):
        time.sleep(min(0.3, run.limits["sample_interval_s"] * 3))
        s = run.take_sample(start)
        self.cgroup_peak(run)
        return s

    def after_exit(self, run, insp):
        self.oom_words(run, insp)

    def progress_metrics(self, run, parsed, live):
        self.cgroup_peak(run)
        run.m["resident_bytes"] = run.log.peak
        run.m["resident_source"] = "cgroup" if run.box.cg_dir else None

    def near_limit(self, run):
        m = run.m
        if self.exp.limited and m.get("resident_bytes"):
            return m["resident_bytes"] >= 0.85 * run.limits["memory_limit_bytes"], None
        return False, None

    def reached(self, run, amount, stop):
        got = run.m.get(self.progress_key)
        return stop == "done" or (got is not None and got >= 0.9 * amount)

    def finish_metrics(self, run, back):
        m, log = run.m, run.log
        before = m.get("host_mem_available_before")
        low = log.min("mem_available")
        m["host_mem_available_min"] = low
        m["host_mem_available_delta"] = difference(before, low)
        m["host_mem_available_after"] = back["mem_available"] if back else None
        m["host_swap_free_min"] = log.min("swap_free")
        res = m.get("resident_bytes")
        d = m["host_mem_available_delta"]
        m["landed_on_host_ratio"] = round(float(d) / res, 3) if (res and d is not None) \
            else None
        ratio_parts(m, d, res, self.ratio_definition)

    # -- what the kernel and the engine said -----------------------------------------
    def swap_applied(self, run, insp):
        """memory-limited: was --memory-swap applied (the container's cgroup, the engine's
        stored HostConfig, its warnings)?  Into the metrics."""
        m, box, last_err = run.m, run.box, run.agent.last_run_err
        requested = m.get("memory_swap_limit_bytes")
        cg_val = None
        if requested and box.cg_dir and os.path.isdir(box.cg_dir):
            path = os.path.join(box.cg_dir, box.cg_file("memory.memsw.limit_in_bytes",
                                                        "memory.swap.max"))
            cg_val = (read_text(path, 64) or "").strip() if os.path.exists(path) else ""
            if not os.path.isdir(box.cg_dir):
                cg_val = None  # the container (and its cgroup) went meanwhile
        host_cfg = insp.get("HostConfig") or {}
        stored = host_cfg.get("MemorySwap")
        if stored is None:  # Docker before 1.6 keeps Memory and MemorySwap in Config
            stored = (insp.get("Config") or {}).get("MemorySwap")
        m["engine_memory_swap_stored"] = stored
        m["engine_run_warning"] = one_line(" ".join(
            [ln.strip() for ln in (last_err or "").splitlines()
             if "warning" in ln.lower() or "limitation discarded" in ln.lower()]), 300) or None
        applied, source = swap_limit_applied(requested, last_err,
                                             m.get("engine_swap_limit_warning"), cg_val,
                                             box.cg_version, stored)
        m["memory_swap_limit_applied"] = applied
        m["memory_swap_limit_source"] = source

    def oom_words(self, run, insp):
        """What the kernel and /proc/vmstat say about an OOM kill, and whose."""
        m, vm0, dmesg0 = run.m, self.vm0, self.dmesg0
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
        scope = oom_host_scope(run.box.cg_view_path, run.box.cg_mount_root, lines,
                               insp.get("Id"))
        m["oom_host_cgroup"] = scope
        m.update(attribute_oom(m["oom_killed"], m["container_exit_code"],
                               m["killed_by_agent"], m["vmstat_oom_kill_delta"], lines,
                               insp.get("Id"), scope))

    # -- the verdict ------------------------------------------------------------------
    def verdict_text(self, m, reason, stopped, where):
        got = fmt_bytes(m.get("resident_bytes"))
        effect = host_effect(m, ("host_alloc",))
        floor_note = "host MemAvailable stayed above %s" % fmt_bytes(
            m.get("host_mem_available_min"))
        swap = swap_note(m)
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
                                   ratio_text(m.get("landed_on_host_ratio")), effect))


def swap_note(m):
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
