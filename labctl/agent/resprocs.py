# -*- coding: utf-8 -*-
"""The processes check (the study's Table 2): a container forks many children, without a
limit or under its own --pids-limit (processes-limited)."""

from __future__ import absolute_import, division, print_function

from .container import BIG_COUNT, COUNT_FILE, SOAK_FILE, STATE_FILE
from .limits import pids_gate
from .reskind import Resource, difference, ratio_parts
from .sampling import host_try_fork
from .text import fmt_count, read_int
from .verdicts import host_effect, pids_unavailable_verdict, process_ratio, ratio_text


class Processes(Resource):
    """The host's process table (free pids: the least of pid_max, threads-max and a pids
    cgroup limit visible at the root, minus the threads in use)."""

    name = "processes"
    variants = {"processes-limited": {"limited": True}}
    free_key = "free_pids"
    free_before_key = "host_free_pids_before"
    series_keys = ("threads", "procs", "free_pids")
    before_keys = (("host_threads_before", "threads"), ("host_procs_before", "procs"),
                   ("host_free_pids_before", "free_pids"))
    cap_key, cap_fraction_key = "processes_cap", "processes_cap_fraction"
    floor_key, floor_fraction_key = "processes_floor", "processes_floor_fraction"
    limit_key = "pids_limit"
    applied_keys = ("pids_limit",)
    progress_key = "processes_started"
    rate_key = "fork_rate_per_s"
    reports_cgroup = True
    gone_file = "pids.current"
    waits_for_pids = True
    ratio_definition = ("the rise of the processes this host sees in /proc (its pid namespace) "
                        "at the container's peak / the container's own processes at the peak "
                        "(its pids cgroup, else the children it started + its shell)")

    def script(self, amount, sleep_s, soak_s=0):
        """The forking shell holds its peak through an EXIT trap: when a fork fails the shell
        exits, and the trap exec's sleep (exec keeps the pid: nothing is given back).  With
        ``soak_s`` (exhaust mode) the trap exec's a retry loop instead, as a fork bomb does:
        any pid the host frees is taken again, for ``soak_s`` seconds, then it holds."""
        n = BIG_COUNT if amount is None else int(amount)
        script = ""
        keep = "exec sleep @S@"
        if soak_s:
            # the retry loop lives in a file on the container's /dev (a tmpfs); each failed
            # fork ends that shell, whose EXIT trap exec's it again (same pid), until the soak
            # ends
            soak = ("i=$1; trap 'exec sh @K@ $i 2>/dev/null' EXIT; read up rest < /proc/uptime; "
                    "if [ ${up%%.*} -ge @END@ ]; then exec sleep @S@; fi; "
                    "while :; do sleep @S@ & i=$((i+1)); echo $i > @C@; done")
            soak = soak.replace("$", "\\$").replace("@END@", "$end")  # written, not run, here
            script = ("read up rest < /proc/uptime; end=$((${up%%.*} + @T@)); "
                      "echo \"" + soak + "\" > @K@; ")
            keep = "if [ $r -ne 0 ]; then exec sh @K@ $i 2>/dev/null; fi; exec sleep @S@"
        script += ("i=0; trap 'r=$?; echo $i > @C@; echo \"labctl-count $i\"; "
                   "echo \"labctl-rc $r\"; echo done > @D@; %s' EXIT; "
                   "while [ $i -lt @N@ ]; do sleep @S@ & i=$((i+1)); echo $i > @C@; done; "
                   "exit 0" % keep)
        for token, value in (("@C@", COUNT_FILE), ("@D@", STATE_FILE), ("@K@", SOAK_FILE),
                             ("@S@", str(int(sleep_s))), ("@N@", str(n)),
                             ("@T@", str(int(soak_s)))):
            script = script.replace(token, value)
        return script

    def limit_options(self, vt, limits):
        if self.exp.limited and vt >= (1, 11):
            return ["--pids-limit", str(int(limits["pids_limit"]))], \
                {"pids_limit": int(limits["pids_limit"])}
        return [], {"pids_limit": None}

    @classmethod
    def host_checks(cls, directory, limits):
        m = {}
        m["host_fork_ok"], m["host_fork_error"] = host_try_fork()
        return m

    # -- the run -----------------------------------------------------------------------
    def unavailable(self, run):
        """processes-limited on an engine (or kernel) without a per-container process limit:
        the finding's verdict (not a skip: only the host's own limits stop a container's
        processes); None when the limit is there."""
        if not self.exp.limited:
            return None
        agent, m, lim = run.agent, run.m, run.limits
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

    def total(self, run, s0):
        return run.sampler.pids_total()

    def progress(self, run):
        v = run.box.cg_number("pids.current")
        if v is not None:
            return v
        return run.box.count()

    def room_left(self, kernel_limit, box, s):
        # the limit minus its pids.current, exact
        if not kernel_limit or not box.cg_dir:
            return None
        return None if s.get("container") is None else kernel_limit - s["container"]

    def progress_metrics(self, run, parsed, live):
        # exhaust mode: the container kept retrying after its first failed fork, so the live
        # count (read at the peak) can be above the one its script printed
        m = run.m
        counts = [c for c in (parsed["count"], live.get("count_live")) if c is not None]
        m["processes_started"] = max(counts) if counts else None
        m["container_pids_peak"] = run.log.peak if run.box.cg_dir else None

    def near_limit(self, run):
        if not self.exp.limited:
            return False, None
        m, limit = run.m, run.limits["pids_limit"]
        peak_p = m.get("container_pids_peak") or 0
        return (peak_p >= limit - 2 or (m.get("processes_started") or 0) + 3 >= limit), None

    def exhausted(self, run, s0):
        return (run.log.min("free_pids") or 0) < 4

    def finish_metrics(self, run, back):
        m, log = run.m, run.log
        before = m.get("host_threads_before")
        high = log.max("threads")
        m["host_threads_max_seen"] = high
        m["host_threads_delta"] = difference(high, before)
        m["host_procs_max_seen"] = log.max("procs")
        m["host_free_pids_min"] = log.min("free_pids")
        m["host_threads_after"] = back["threads"] if back else None
        # kernel-wide threads (/proc/loadavg) count every lab host on a shared kernel and
        # every thread: kept for reference, not the ratio.  The ratio: the processes this host
        # sees (its pid namespace) at the container's peak, per process the container held
        # (its pids cgroup, else its children + its shell)
        m["host_threads_scope"] = "kernel"
        m["host_procs_at_peak"] = log.at_peak("procs")
        started = m.get("processes_started")
        own = m.get("container_pids_peak") or ((started + 1) if started else None)
        m["container_procs_source"] = "pids-cgroup" if m.get("container_pids_peak") \
            else "script-count+1"
        ratio, num, den = process_ratio(m.get("host_procs_before"), m["host_procs_at_peak"],
                                        own)
        m["host_procs_delta"] = num
        m["landed_on_host_ratio"] = ratio
        ratio_parts(m, num, den, self.ratio_definition)

    # -- the verdict ------------------------------------------------------------------
    def verdict_text(self, m, reason, stopped, where):
        got = fmt_count(m.get("processes_started"))
        effect = host_effect(m, ("host_fork",))
        if reason == "container-limit":
            return ("contained: the container stopped at its --pids-limit of %s (EAGAIN after "
                    "%s children, %s pids in the container); %s" % (
                        fmt_count(m.get("pids_limit")), got,
                        fmt_count(m.get("container_pids_peak")), effect))
        if m.get("host_procs_delta") is not None:
            rose = ("the host saw %s more processes at the container's peak for %s in the "
                    "container (ratio %s; kernel-wide threads rose by %s)"
                    % (fmt_count(m.get("host_procs_delta")),
                       fmt_count(m.get("ratio_denominator")),
                       ratio_text(m.get("landed_on_host_ratio")),
                       fmt_count(m.get("host_threads_delta"))))
        else:
            rose = ("the host's thread count rose by %s (ratio %s)"
                    % (fmt_count(m.get("host_threads_delta")),
                       ratio_text(m.get("landed_on_host_ratio"))))
        if reason == "eagain":
            return ("%s after %s children: the host's process limit was reached (%s free pids "
                    "at the peak); %s; %s: a container can exhaust the host's processes"
                    % (stopped, got, fmt_count(m.get("host_free_pids_min")), rose, effect))
        if m.get("pids_limit") and reason in ("timeout", "stall"):
            return ("not measured: %s after %s children, below its --pids-limit of %s (the "
                    "limit was never reached; give the host more time with --timeout); %s; %s"
                    % (stopped, got, fmt_count(m.get("pids_limit")), rose, effect))
        return ("%s%s with no pids limit: %s; %s; nothing in the container stopped it: a "
                "container can exhaust the host's process table (pid_max %s, threads-max %s)"
                % (stopped, " children" if reason == "cap" else " after %s children" % got,
                   rose, effect, fmt_count(m.get("host_pid_max")),
                   fmt_count(m.get("host_threads_max"))))
