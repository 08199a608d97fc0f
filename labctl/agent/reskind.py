# -*- coding: utf-8 -*-
"""The resource table's shape: ``Resource``, the class each shared resource of the study
(disk, inodes, memory, processes: the res* modules) fills in with what is its own, and
``Experiment``, one resource check of the catalog (a resource and its variant).

A resource says, as class attributes: the free amount the host is watched by and the sample
keys kept as series; its DEFAULT_LIMITS keys (cap, floor, the fractions, the per-container
limit); the metric its progress goes to; and, as methods, its container script, its own
`docker run` options, how the host reads its progress, its metrics, its stop reason's
observations and its verdict.  The run (resrun.ResourceRun) calls these hooks, phase by
phase; a hook a resource does not need is the base's (no-op) one here.

One instance is made per run (``Experiment.new_kind``): it holds the variant's flags and the
little state only that resource keeps during a run (the OOM baseline of memory, say).
"""

from __future__ import absolute_import, division, print_function

from .limits import resolve_cap_floor
from .text import fmt_bytes, fmt_count, version_tuple
from .verdicts import error_verdict, not_run_verdict, stopped_words, too_little_verdict


class Experiment(object):
    """One resource check of the catalog: ``name``, ``kind`` (its resource's class) and the
    variant: ``limited`` (the container gets its per-container limit: -m, --pids-limit,
    --storage-opt size=), ``shared`` (it writes into a folder the host shares with it)."""

    def __init__(self, name, kind, limited=False, shared=False):
        self.name = name
        self.kind = kind
        self.limited = limited
        self.shared = shared

    def new_kind(self):
        """The resource's object for one run of this experiment."""
        return self.kind(self)


class Resource(object):
    """One shared resource of the host (the defaults; each res* module fills in its own)."""

    name = None
    #: experiment name -> the variant's flags (Experiment's keywords); the catalog names the
    #: experiment and its resource, this says how it differs from the plain check
    variants = {}
    #: the sample key of the free amount the floor protects, and its metric before the run
    free_key = None
    free_before_key = None
    #: the sample keys kept as series (besides t and container)
    series_keys = ()
    #: (metric, sample key) pairs recorded from the baseline sample
    before_keys = ()
    #: DEFAULT_LIMITS names: cap, cap fraction, floor, floor fraction
    cap_key = cap_fraction_key = floor_key = floor_fraction_key = None
    #: DEFAULT_LIMITS name of the per-container kernel limit (-m, --pids-limit), or None
    limit_key = None
    #: the `docker run` options' applied limits this resource reports (keys of run_options)
    applied_keys = ()
    #: the metric of how far the container got, and of its rate
    progress_key = None
    rate_key = None
    #: the least amount worth starting a container for
    min_amount = 1
    #: amounts are bytes (else counts)
    in_bytes = False
    #: the cgroup controller the container's use is read from; report a foreign one
    cgroup_controller = "pids"
    reports_cgroup = False
    #: the cgroup file that empties once the container's processes are gone
    gone_file = "cgroup.procs"
    #: the process under the container's shell that writes (None: the shell itself)
    writer_name = None
    #: the host's free pids are waited for after the run
    waits_for_pids = False
    #: what the ratio means (landed_on_host_ratio)
    ratio_definition = None
    #: the per-container disk size the engine took (only the disk check asks for one)
    storage_opt_size = None

    def __init__(self, exp):
        self.exp = exp

    # -- the table's pure parts ----------------------------------------------------------
    def fmt(self, value):
        return fmt_bytes(value) if self.in_bytes else fmt_count(value)

    @classmethod
    def cap_and_floor(cls, mode, overrides, free, total):
        return resolve_cap_floor((cls.cap_key, cls.cap_fraction_key, cls.floor_key,
                                  cls.floor_fraction_key), mode, overrides, free, total)

    @classmethod
    def host_checks(cls, directory, limits):
        """The host tries the same thing the container did; flat metrics."""
        return {}

    def script(self, amount, sleep_s, soak_s=0):
        """The POSIX shell script (dash, bash as sh, busybox ash) the container runs;
        ``amount`` is the cap it is given, None for none."""
        raise NotImplementedError

    def limit_options(self, vt, limits):
        """This resource's own `docker run` options on an engine of version ``vt`` ->
        (args, applied: {applied_keys: value or None})."""
        return [], {}

    def ratio_words(self, m):
        return self.ratio_definition

    # -- the run's hooks (resrun.ResourceRun calls them, phase by phase) ----------------
    def unavailable(self, run):
        """A verdict when the check cannot mean anything here (before anything is made)."""
        return None

    def prepare_early(self, run, dfacts):
        """Before the probe image's metrics: what must be seen first."""

    def prepare_late(self, run, dfacts, server):
        """After them, before the baseline sample."""

    def total(self, run, s0):
        """The host's total of the resource (the floor's fractions are of it)."""
        return None

    def plan_limits(self, run, cap, floor, s0):
        """The variant's word on the cap and the floor -> (cap, floor)."""
        return cap, floor

    def before_metrics(self, m, s0):
        """The baseline's numbers of the resource, into the metrics."""
        for metric, key in self.before_keys:
            m[metric] = s0[key]

    def extra_floors(self, run, s0):
        """Floors of other sample keys this check also protects: {key: floor}."""
        return {}

    def baselines(self, run):
        """What the host says before the container starts (kernel log, OOM counter)."""

    def limit_applied(self, applied, m):
        return bool(applied.get(self.limit_key)) if self.limit_key else False

    def after_start(self, run, insp, s0):
        """Once the container runs (``insp``: its inspect document)."""

    def progress(self, run):
        """The container's progress as the host sees it (None when it cannot be read)."""
        return None

    def on_sample(self, run):
        """After each sample."""

    def room_left(self, kernel_limit, box, s):
        """The most the container can still take under its own kernel limit (None: no limit,
        or its own cgroup is not readable)."""
        return None

    def resample_at_peak(self, run, start):
        """At the peak, before the host's own checks: a later sample (None: the last one)."""
        return None

    def read_live(self, run, live):
        """What the container's files say at its peak, into ``live``."""

    def at_peak(self, run):
        """At the peak (the container still running), before the host's own checks."""

    def after_exit(self, run, insp):
        """Once the container is gone: what the kernel said meanwhile."""

    def progress_metrics(self, run, parsed, live):
        """How far the container got, from the best source available."""

    def near_limit(self, run):
        """(near: the container was at its own limit, host_had_room or None)."""
        return False, None

    def reached(self, run, amount, stop):
        """The container did all it was asked (its cap)."""
        got = run.m.get(self.progress_key)
        return got is not None and got >= amount

    def exhausted(self, run, s0):
        """The host ran out of the resource."""
        return False

    def finish_metrics(self, run, back):
        """The host-side numbers (before/min/delta/after) and the ratio."""

    # -- the verdict ------------------------------------------------------------------
    def verdict(self, m):
        """A plain sentence: what was observed, and what follows from it."""
        reason = m.get("stop_reason")
        where = "%s filesystem (%s)" % (m.get("target_path") or "?",
                                        m.get("target_fstype") or "?")
        if reason == "floor" and not m.get("container_started"):
            return not_run_verdict(m, self.free_key, m.get(self.free_before_key))
        if m.get("below_minimum") and not m.get("container_started"):
            return too_little_verdict(m, self.free_key, m.get(self.free_before_key),
                                      self.min_amount)
        if reason == "error":
            return error_verdict(m)
        stopped = stopped_words(m, reason, self.fmt, self.free_key)
        return self.verdict_text(m, reason, stopped, where)

    def verdict_text(self, m, reason, stopped, where):
        raise NotImplementedError


def difference(a, b):
    """a - b, or None when either is unknown."""
    if a is None or b is None:
        return None
    return a - b


def ratio_parts(m, numerator, denominator, definition):
    """Every ratio explainable: its numerator, denominator and definition."""
    m["ratio_numerator"] = numerator
    m["ratio_denominator"] = denominator
    m["ratio_definition"] = definition


def run_options(kind, server_version, limits, selinux=False, shared_dir=None,
                storage_opt_size=None):
    """Extra `docker run` options of one experiment, gated by the server's version: the
    per-container disk size (``storage_opt_size``, where the engine accepted it when tried),
    the resource's own limits, the shared folder.  -> (args, applied)."""
    vt = version_tuple(server_version) or (0, 0, 0)
    args = []
    if storage_opt_size:
        args += ["--storage-opt", "size=%d" % int(storage_opt_size)]
    own, applied = kind.limit_options(vt, limits)
    args += own
    if shared_dir:
        suffix = ":z" if (selinux and vt >= (1, 7)) else ""
        args += ["-v", "%s:/shared%s" % (shared_dir, suffix)]
    return args, applied
