# -*- coding: utf-8 -*-
"""What the two filesystem checks (disk and inodes) share: the thin pool and the container's
own / below them, the host writing and creating a file at the peak, the host-side numbers of
the filesystem and the ratio of what landed on it."""

from __future__ import absolute_import, division, print_function

from .container import kernel_log
from .image import find_tool
from .reskind import Resource, difference, ratio_parts
from .sampling import host_try_create, host_try_write
from .text import run_cmd
from .thinpool import container_fs, pool_metrics, pool_space, thin_pool_setup, thin_pool_words


class FsResource(Resource):
    """A resource of the filesystem that holds the docker root (disk, inodes)."""

    #: the metrics' prefix of the free amount (host_free_bytes_before, ..._min, ...)
    host_prefix = None

    def __init__(self, exp):
        Resource.__init__(self, exp)
        self.dmesg0 = None  # the kernel log before the container (devicemapper's thin pool)

    @classmethod
    def host_checks(cls, directory, limits):
        m = {"host_write_bytes": int(limits["host_write_bytes"])}
        m["host_write_ok"], m["host_write_error"] = host_try_write(
            directory, limits["host_write_bytes"])
        m["host_create_ok"], m["host_create_error"] = host_try_create(directory)
        return m

    def prepare_early(self, run, dfacts):
        thin_pool_setup(run.m, run.sampler, dfacts, run.place.target, run.place.mounts)

    def prepare_late(self, run, dfacts, server):
        agent = run.agent
        if agent.mode == "bounded":
            # settle what earlier experiments freed (ext4 returns freed blocks at the journal
            # commit), so the baseline is not moved by our own past
            sync = find_tool("sync")
            if sync:
                run_cmd([sync], timeout=agent.deadline.remaining(30))

    def baselines(self, run):
        self.dmesg0 = kernel_log() if run.m.get("pool_data_file") else None

    def after_start(self, run, insp, s0):
        if run.box.pid:
            container_fs(run.m, run.box.cproc("/"), "start", s0)

    def at_peak(self, run):
        container_fs(run.m, run.box.cproc("/"), "at_peak")
        pool_space(run.m, "at_peak")

    def after_exit(self, run, insp):
        if self.dmesg0 is not None:
            thin_pool_words(run.m, self.dmesg0)

    def used(self, m):
        """What the container used of the resource (the ratio's denominator)."""
        raise NotImplementedError

    def landed(self, run, delta):
        """The fall of the host's free amount the ratio counts."""
        return delta

    def finish_metrics(self, run, back):
        m, log = run.m, run.log
        key, pre = self.free_key, self.host_prefix
        before = m.get(pre + "_before")
        m[pre + "_min"] = log.min(key)
        at_peak = log.at_peak(key)
        m[pre + "_at_peak"] = at_peak
        m[pre + "_delta"] = difference(before, at_peak)
        m[pre + "_after"] = back[key] if back else None
        self.more_host_metrics(run)
        used = self.used(m)
        delta = self.landed(run, m[pre + "_delta"])
        m["landed_on_host_ratio"] = round(float(delta) / used, 3) if (
            used and delta is not None) else None
        ratio_parts(m, delta, used, self.ratio_words(m))
        pool_metrics(m, log, used, back, self.in_bytes)

    def more_host_metrics(self, run):
        """Host-side numbers of other sample keys."""
