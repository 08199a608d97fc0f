# -*- coding: utf-8 -*-
"""The disk check (the study's Table 2): a container writes one huge file with dd; the
variants give it a per-container size limit (disk-limited) or make it write into a folder the
host shares with it (disk-shared)."""

from __future__ import absolute_import, division, print_function

import os

from .consts import MIB
from .container import hold_script, stat_size
from .disklimit import (
    base_device_size,
    disk_limit_plan,
    disk_limited_cap,
    dm_base_size,
    docker_daemon_argv,
    host_had_room,
)
from .errors import ExperimentError, SkipExperiment
from .resfs import FsResource
from .sampling import inspect_state
from .text import fmt_bytes
from .verdicts import disk_limit_words, dm_disk_words, host_effect, overcommit_words, ratio_text


class Disk(FsResource):
    """Bytes of the filesystem that holds the docker root (or of the shared folder)."""

    name = "disk"
    variants = {"disk-limited": {"limited": True}, "disk-shared": {"shared": True}}
    free_key = "free_bytes"
    free_before_key = "host_free_bytes_before"
    host_prefix = "host_free_bytes"
    series_keys = ("free_bytes", "free_bytes_root")
    before_keys = (("host_free_bytes_before", "free_bytes"),
                   ("host_fs_size_bytes", "size_bytes"))
    cap_key, cap_fraction_key = "disk_cap_bytes", "disk_cap_fraction"
    floor_key, floor_fraction_key = "disk_floor_bytes", "disk_floor_fraction"
    progress_key = "written_bytes"
    rate_key = "fill_rate_bytes_per_s"
    min_amount = MIB
    in_bytes = True
    writer_name = "dd"
    ratio_definition = ("the largest fall of the host filesystem's free space (root's view) "
                        "while the container held its data / the bytes the container wrote")
    ratio_definition_dm = ("the largest fall of the host filesystem's free space (root's view, "
                           "the filesystem that holds the thin pool's loop file) / the bytes "
                           "the container wrote into its own thin device")

    def __init__(self, exp):
        FsResource.__init__(self, exp)
        self.storage_opt_size = None  # --storage-opt size= (the engine took it when tried)

    def fill_path(self):
        return "/shared/fill" if self.exp.shared else "/fill"

    def script(self, amount, sleep_s, soak_s=0):
        count = "" if amount is None else " count=%d" % (int(amount) // MIB)
        return ("dd if=/dev/zero of=%s bs=1M%s; r=$?; echo \"labctl-rc $r\"; %s"
                % (self.fill_path(), count, hold_script(sleep_s)))

    def ratio_words(self, m):
        return self.ratio_definition_dm if m.get("pool_data_file") else self.ratio_definition

    # -- the per-container limit: --storage-opt size=, devicemapper's base device size ----
    def prepare_late(self, run, dfacts, server):
        if not self.exp.shared:  # a bind mount is outside any per-container limit
            self.disk_limit(run, dfacts, server, run.place.fstype())
        FsResource.prepare_late(self, run, dfacts, server)

    def try_storage_opt(self, run, size):
        """Ask the engine for a container of the probe image with --storage-opt size=
        (created, never started, removed at once): ("ok", "") or ("failed", stderr)."""
        agent = run.agent
        cname = agent.container_name(self.exp.name + "-sizeopt")
        args = ["create", "--name", cname]
        if agent.docker.supports((1, 6)):
            args += ["--label", "labctl.run=%s" % agent.run_id]
        args += ["--storage-opt", "size=%d" % int(size), run.m["probe_image"], "/bin/sh", "-c",
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

    def disk_limit(self, run, dfacts, server, fstype):
        """The limit in effect, into the metrics; raises SkipExperiment (disk-limited, where
        the engine has no per-container size) or ExperimentError."""
        m, limited = run.m, self.exp.limited
        driver = dfacts.get("storage_driver")
        requested = int(run.limits["disk_limit_bytes"])
        status = dfacts.get("driver_status")
        argv = docker_daemon_argv(dfacts.get("daemon_pid")) if (
            driver == "devicemapper" and not base_device_size(driver, status)) else None
        base, m["base_device_size_source"] = dm_base_size(driver, status, argv)
        m["base_device_size_bytes"] = base
        plan = disk_limit_plan(limited, driver, server, requested, base, None, fstype)
        if plan["try_opt"]:
            probe = self.try_storage_opt(run, requested)
            plan = disk_limit_plan(limited, driver, server, requested, base, probe, fstype)
        if limited:
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

    # -- the run -----------------------------------------------------------------------
    def total(self, run, s0):
        return s0["size_bytes"]

    def plan_limits(self, run, cap, floor, s0):
        if self.exp.limited:  # past the limit if it does not hold, still bounded
            cap = disk_limited_cap(cap, run.m.get("disk_limit_bytes"))
        return cap, floor

    def limit_applied(self, applied, m):
        return bool(m.get("disk_limit_bytes"))

    def progress(self, run):
        if self.exp.shared:
            return stat_size(os.path.join(run.place.shared_dir, "fill"))
        return stat_size(run.box.cproc("/fill"))

    def read_live(self, run, live):
        if not self.exp.shared:
            live["size_live"] = stat_size(run.box.cproc("/fill"))

    def progress_metrics(self, run, parsed, live):
        m = run.m
        sources = []
        if parsed["dd_bytes"] is not None:
            sources.append((parsed["dd_bytes"], "dd"))
        if self.exp.shared:
            size = stat_size(os.path.join(run.place.shared_dir, "fill"))
            if size is not None:
                sources.append((size, "host-file"))
        elif live.get("size_live") is not None:
            sources.append((live["size_live"], "container-file"))
        if run.log.peak is not None:
            sources.append((run.log.peak, "container-file"))
        written, src = (sources[0] if sources else (None, None))
        m["written_bytes"], m["written_bytes_source"] = written, src
        if parsed["dd_bytes"] and parsed["dd_seconds"]:  # dd's own view of its speed
            m["container_dd_rate_bytes_per_s"] = round(
                parsed["dd_bytes"] / max(parsed["dd_seconds"], 1e-6), 1)

    def near_limit(self, run):
        # ENOSPC with room left on the host: the container's own limit (near it, or no limit
        # known); a known limit far from reached: not the limit
        m = run.m
        dl, w = m.get("disk_limit_bytes"), m.get("written_bytes")
        near = (w >= 0.5 * dl) if (dl and w is not None) else None
        room = host_had_room(w, run.log.min("free_bytes_root"), dl)
        m["host_had_room"] = room
        return near, room

    def reached(self, run, amount, stop):
        got = run.m.get(self.progress_key)
        return got is not None and got >= (int(amount) // MIB) * MIB

    def exhausted(self, run, s0):
        # ext4 keeps a few MiB even from root (seen: 16 MiB "free" while root's own write
        # failed): the host's write failing with ENOSPC at the peak is the proof
        m = run.m
        return (run.log.min("free_bytes_root") or 0) < 8 * MIB or (
            m.get("host_write_ok") is False and "ENOSPC" in (m.get("host_write_error") or ""))

    def used(self, m):
        return m.get("written_bytes")

    def landed(self, run, delta):
        # root's view (reserved blocks included) is what a root container fills; the largest
        # drop seen while the container held its data: ext4 hands back part of its
        # delayed-allocation reservation before the peak sample (seen: 0.78 at the peak
        # sample, 1.00 at the low point, for the same 118 MiB file)
        b0 = run.log.first("free_bytes_root")
        lowr = run.log.min("free_bytes_root")
        return (b0 - lowr) if (b0 is not None and lowr is not None) else delta

    def finish_metrics(self, run, back):
        FsResource.finish_metrics(self, run, back)
        m = run.m
        if m.get("thin_pool_overcommitted") and (m["landed_on_host_ratio"] or 0) >= 0.8:
            # a per-container limit exists, but the host runs out before it: the host's disk
            # is what the container fills (the classification's word)
            m["host_affected"] = True

    # -- the verdict ------------------------------------------------------------------
    def verdict_text(self, m, reason, stopped, where):
        text = self.disk_words(m, reason, stopped, where)
        dm = dm_disk_words(m, "over-commits" not in text)
        return ("%s; %s" % (text, dm)) if dm else text

    def refused_words(self, m):
        if self.exp.limited and m.get("storage_opt_size") == "refused":
            return " (--storage-opt size=%s was refused, the engine says: %s)" % (
                fmt_bytes(m.get("disk_limit_requested_bytes")), m.get("storage_opt_error")
                or "?")
        return ""

    def disk_words(self, m, reason, stopped, where):
        got = fmt_bytes(m.get("written_bytes"))
        written = m.get("written_bytes") or 0
        ratio = m.get("landed_on_host_ratio")
        effect = host_effect(m, ("host_write", "host_create"))
        limit = m.get("disk_limit_bytes")
        limit_words, how = disk_limit_words(m)
        refused = self.refused_words(m)
        landed = landed_words(m, ratio, where)
        if reason == "container-limit":
            return contained_words(m, got, limit_words, how, refused, effect)
        past = bool(limit) and written > 1.05 * limit
        if reason == "enospc":
            follows = ("a container can fill the host disk" if not m.get("host_write_ok", True)
                       or not m.get("host_create_ok", True) else
                       "the container's disk filled, not the host's")
            if limit_words:
                follows += "; %s (%s) did not stop it first" % (limit_words, how or "?")
            return "%s after %s%s: %s, and %s: %s" % (stopped, got, refused, landed, effect,
                                                     follows)
        at_cap = reason == "cap"
        if limit_words and past:
            return ("NOT contained: the container wrote %s, past %s (%s), until it was %s; %s; "
                    "%s: the limit did not hold%s" % (got, limit_words, how or "?", stopped,
                                                      landed, effect, refused))
        if limit_words and reason in ("cap", "floor", "timeout", "stall") and not past and \
                m.get("disk_limit_source") == "base-device-size" and \
                m.get("thin_pool_overcommitted"):
            return ("%s after %s, far below %s (%s, a per-container limit that exists), which "
                    "cannot be reached on this host: %s; %s; %s: a container can fill the host "
                    "disk" % (stopped, got, limit_words, how or "?", overcommit_words(m),
                              landed, effect))
        if limit_words and reason in ("cap", "floor"):
            return ("%s after %s, before %s (%s) was reached%s: whether the limit holds was "
                    "not tested (raise disk_cap_bytes above it, or run with --exhaust); %s; %s"
                    % (stopped, got, limit_words, how or "?", refused, landed, effect))
        follows = ("no container limit applied up to %s: a container can fill the host disk"
                   % got) if ratio is not None and ratio >= 0.8 else (
            "no container limit applied up to %s, but the host's free space did not follow"
            % got)
        if at_cap:
            return "%s: %s; %s; %s" % (stopped, landed, effect, follows)
        return "%s after %s: %s; %s; %s" % (stopped, got, landed, effect, follows)


def landed_words(m, ratio, where):
    """How much of what the container wrote the host's filesystem lost."""
    if ratio is not None and ratio >= 0.8:
        return ("every byte written landed on the host's %s (free space fell by %s, ratio %s)"
                % (where, fmt_bytes(m.get("ratio_numerator", m.get("host_free_bytes_delta"))),
                   ratio_text(ratio)))
    if ratio is not None and ratio >= 0.2:
        return ("part of what was written landed on the host's %s (ratio %s)"
                % (where, ratio_text(ratio)))
    return ("what was written did not show up as lost free space on the host's %s (ratio %s)"
            % (where, ratio_text(ratio)))


def contained_words(m, got, limit_words, how, refused, effect):
    """The container stopped at a limit of its own."""
    err = {"edquot": "EDQUOT", "enospc": "ENOSPC"}.get(m.get("container_error"),
                                                      "ENOSPC/EDQUOT")
    if limit_words:
        head = "contained: the container stopped at %s (%s%s after %s)" % (
            limit_words, how + "; " if how else "", err, got)
    else:
        head = ("contained: a limit of the container's own stopped it (%s after %s; no "
                "per-container limit is known for %s)" % (
                    err, got, m.get("storage_driver") or "this storage driver"))
    return "%s%s; the host's filesystem kept %s free and %s" % (
        head, refused, fmt_bytes(m.get("host_free_bytes_min")), effect)
