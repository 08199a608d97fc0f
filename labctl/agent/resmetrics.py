# -*- coding: utf-8 -*-
"""ResourceRun's metrics: what the samples and the container's files say at the end."""

from __future__ import absolute_import, division, print_function

import os

from .cgroups import read_cg_number
from .container import stat_size
from .limits import downsample
from .text import fmt_bytes, fmt_count
from .verdicts import RATIO_DEFINITIONS, process_ratio


class RunMetrics(object):
    """ResourceRun's end metrics (a mixin: ResourceRun holds the state)."""

    def _fmt_progress(self, v):
        if self.resource in ("disk", "memory"):
            return fmt_bytes(v)
        return fmt_count(v)

    def _cgroup_peak(self):
        if not self.cg_dir:
            return
        v = read_cg_number(os.path.join(self.cg_dir, "memory.max_usage_in_bytes"
                                         if self.cg_version == 1 else "memory.peak"))
        if v is not None and (self.peak_container is None or v > self.peak_container):
            self.peak_container = v

    def _at_peak(self, key):
        """The value at the container's peak (before the host's own checks), else the
        extreme seen."""
        if self.peak_sample is not None and self.peak_sample.get(key) is not None:
            return self.peak_sample[key]
        return self._min(key)

    def _min(self, key):
        vals = [s[key] for s in self.samples if s.get(key) is not None]
        return min(vals) if vals else None

    def _max(self, key):
        vals = [s[key] for s in self.samples if s.get(key) is not None]
        return max(vals) if vals else None

    def _before(self, s0):
        m = self.m
        r = self.resource
        if r == "disk":
            m["host_free_bytes_before"] = s0["free_bytes"]
            m["host_fs_size_bytes"] = s0["size_bytes"]
        elif r == "inodes":
            m["host_free_inodes_before"] = s0["free_inodes"]
            m["host_inodes_total"] = s0["inodes_total"]
            m["host_free_bytes_before"] = s0["free_bytes"]
        elif r == "memory":
            m["host_mem_available_before"] = s0["mem_available"]
            m["host_swap_free_before"] = s0["swap_free"]
        else:
            m["host_threads_before"] = s0["threads"]
            m["host_procs_before"] = s0["procs"]
            m["host_free_pids_before"] = s0["free_pids"]

    def _zero_progress(self):
        key = {"disk": "written_bytes", "inodes": "files_created", "memory": "resident_bytes",
               "processes": "processes_started"}[self.resource]
        self.m[key] = 0
        self.m["landed_on_host_ratio"] = None
        self.m["limit_applied"] = False

    def _progress_metrics(self, parsed, live, peak):
        """How far the container got, from the best source available."""
        m, r = self.m, self.resource
        if r == "disk":
            sources = []
            if parsed["dd_bytes"] is not None:
                sources.append((parsed["dd_bytes"], "dd"))
            if self.name == "disk-shared":
                size = stat_size(os.path.join(self.shared_dir, "fill"))
                if size is not None:
                    sources.append((size, "host-file"))
            elif live.get("size_live") is not None:
                sources.append((live["size_live"], "container-file"))
            if self.peak_container is not None:
                sources.append((self.peak_container, "container-file"))
            written, src = (sources[0] if sources else (None, None))
            m["written_bytes"], m["written_bytes_source"] = written, src
            if parsed["dd_bytes"] and parsed["dd_seconds"]:  # dd's own view of its speed
                m["container_dd_rate_bytes_per_s"] = round(
                    parsed["dd_bytes"] / max(parsed["dd_seconds"], 1e-6), 1)
        elif r == "inodes":
            files, src = parsed["count"], "script"
            if files is None:
                files, src = live.get("count_live"), "live-count"
            if files is None and self.peak_container is not None:
                files, src = self.peak_container, "live-count"
            if files is None:  # killed before its first report: what the host lost
                b0 = self.samples[0]["free_inodes"] if self.samples else None
                low = self._min("free_inodes")
                files = max(0, b0 - low) if (b0 is not None and low is not None) else None
                src = "host-inodes"
            m["files_created"], m["files_created_source"] = files, src
            if parsed["dirs"] is not None:
                m["dirs_created"] = parsed["dirs"] + 1
            elif files is not None:
                m["dirs_created"] = (files + 999) // 1000 + 1
            else:
                m["dirs_created"] = None
        elif r == "memory":
            self._cgroup_peak()
            m["resident_bytes"] = self.peak_container
            m["resident_source"] = "cgroup" if self.cg_dir else None
        else:
            # exhaust mode: the container kept retrying after its first failed fork, so the
            # live count (read at the peak) can be above the one its script printed
            counts = [c for c in (parsed["count"], live.get("count_live")) if c is not None]
            m["processes_started"] = max(counts) if counts else None
            m["container_pids_peak"] = self.peak_container if self.cg_dir else None

    def _ratio_parts(self, numerator, denominator, kind):
        """Every ratio explainable: its numerator, denominator and definition."""
        self.m["ratio_numerator"] = numerator
        self.m["ratio_denominator"] = denominator
        self.m["ratio_definition"] = RATIO_DEFINITIONS.get(kind)

    def _pool_metrics(self, used, back):
        """devicemapper: how much of what the container wrote grew the pool's loop file
        (allocated bytes, st_blocks) and the pool's data space, and whether the container's
        own filesystem (not the host's) took its inodes."""
        m = self.m
        if self.samples and self.samples[0].get("pool_bytes") is not None:
            b0 = self.samples[0]["pool_bytes"]
            high = self._max("pool_bytes")
            m["pool_file_allocated_before_bytes"] = b0
            m["pool_file_allocated_max_bytes"] = high
            m["pool_file_growth_bytes"] = (high - b0) if high is not None else None
            m["pool_file_allocated_after_bytes"] = back.get("pool_bytes") if back else None
            g = m["pool_file_growth_bytes"]
            m["pool_growth_ratio"] = round(float(g) / used, 3) if (
                used and g is not None and self.resource == "disk") else None
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

    def finish(self, after, start, back=None):
        """Host-side numbers (before/min/delta/after), the ratio, rates, the series."""
        m, r = self.m, self.resource
        if r in ("disk", "inodes"):
            key, pre = ("free_bytes", "host_free_bytes") if r == "disk" else \
                ("free_inodes", "host_free_inodes")
            before = m.get(pre + "_before")
            low = self._min(key)
            m[pre + "_min"] = low
            at_peak = self._at_peak(key)
            m[pre + "_at_peak"] = at_peak
            m[pre + "_delta"] = (before - at_peak) if (
                before is not None and at_peak is not None) else None
            m[pre + "_after"] = back[key] if back else None
            if r == "inodes":
                m["host_free_bytes_min"] = self._min("free_bytes")
            used = m.get("written_bytes") if r == "disk" else (
                (m.get("files_created") or 0) + (m.get("dirs_created") or 0))
            if r == "disk":
                # root's view (reserved blocks included) is what a root container fills; the
                # largest drop seen while the container held its data: ext4 hands back part of
                # its delayed-allocation reservation before the peak sample (seen: 0.78 at the
                # peak sample, 1.00 at the low point, for the same 118 MiB file)
                b0 = self.samples[0]["free_bytes_root"] if self.samples else None
                lowr = self._min("free_bytes_root")
                delta = (b0 - lowr) if (b0 is not None and lowr is not None) else \
                    m[pre + "_delta"]
            else:
                delta = m[pre + "_delta"]
            m["landed_on_host_ratio"] = round(float(delta) / used, 3) if (
                used and delta is not None) else None
            self._ratio_parts(delta, used, "disk-dm" if (
                r == "disk" and m.get("pool_data_file")) else r)
            self._pool_metrics(used, back)
            if r == "disk" and m.get("thin_pool_overcommitted") and \
                    (m["landed_on_host_ratio"] or 0) >= 0.8:
                # a per-container limit exists, but the host runs out before it: the host's
                # disk is what the container fills (the classification's word)
                m["host_affected"] = True
        elif r == "memory":
            before = m.get("host_mem_available_before")
            low = self._min("mem_available")
            m["host_mem_available_min"] = low
            m["host_mem_available_delta"] = (before - low) if (
                before is not None and low is not None) else None
            m["host_mem_available_after"] = back["mem_available"] if back else None
            m["host_swap_free_min"] = self._min("swap_free")
            res = m.get("resident_bytes")
            d = m["host_mem_available_delta"]
            m["landed_on_host_ratio"] = round(float(d) / res, 3) if (res and d is not None) \
                else None
            self._ratio_parts(d, res, r)
        else:
            before = m.get("host_threads_before")
            high = self._max("threads")
            m["host_threads_max_seen"] = high
            m["host_threads_delta"] = (high - before) if (
                before is not None and high is not None) else None
            m["host_procs_max_seen"] = self._max("procs")
            m["host_free_pids_min"] = self._min("free_pids")
            m["host_threads_after"] = back["threads"] if back else None
            # kernel-wide threads (/proc/loadavg) count every lab host on a shared kernel and
            # every thread: kept for reference, not the ratio.  The ratio: the processes
            # this host sees (its pid namespace) at the container's peak, per process the
            # container held (its pids cgroup, else its children + its shell)
            m["host_threads_scope"] = "kernel"
            m["host_procs_at_peak"] = self._at_peak("procs")
            started = m.get("processes_started")
            own = m.get("container_pids_peak") or ((started + 1) if started else None)
            m["container_procs_source"] = "pids-cgroup" if m.get("container_pids_peak") \
                else "script-count+1"
            ratio, num, den = process_ratio(m.get("host_procs_before"),
                                            m["host_procs_at_peak"], own)
            m["host_procs_delta"] = num
            m["landed_on_host_ratio"] = ratio
            self._ratio_parts(num, den, r)
        run_s = m.get("watch_s") or m.get("run_s")
        got = {"disk": m.get("written_bytes"), "inodes": m.get("files_created"),
               "memory": m.get("resident_bytes"), "processes": m.get("processes_started")}[r]
        rate_key = {"disk": "fill_rate_bytes_per_s", "inodes": "create_rate_per_s",
                    "memory": "alloc_rate_bytes_per_s", "processes": "fork_rate_per_s"}[r]
        m[rate_key] = round(got / run_s, 1) if (got and run_s) else None
        m["samples"] = len(self.samples)
        m["series_points"] = min(len(self.samples), int(self.limits["max_series_points"]))
        m["__series__"] = downsample(self.series, int(self.limits["max_series_points"]))
