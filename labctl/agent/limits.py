# -*- coding: utf-8 -*-
"""The resource experiments' limits: caps and safety floors (bounded by default), the
--limit overrides, the floor's look-ahead and the --pids-limit gate.  Which limit belongs to
which resource is the resource's own word (its *_key attributes, the res* modules)."""

from __future__ import absolute_import, division, print_function

import re

from .consts import GIB, KIB, MIB
from .text import version_tuple

MODES = ("bounded", "exhaust")
STOP_REASONS = ("cap", "floor", "enospc", "eagain", "oom-kill", "container-limit", "timeout",
                "stall", "error", "not-available")

# Bounded mode (the default).  A cap is the most a container is asked to use; a floor is what
# must stay free on the host: the agent samples the host several times a second and kills the
# container before the floor is crossed (it also gives the container no more than free - floor).
# Defaults that are not set with --set scale with the host:
#   cap   = min(<resource>_cap,   <resource>_cap_fraction   * free at the start)
#   floor = min(max(<resource>_floor, <resource>_floor_fraction * total), total / 2)
# so a 512 MiB lab disk gets a 256 MiB floor and a cap of a quarter of what is free, and a
# 250 GB disk a 25 GB floor and a 1 GiB cap.  "free pids" is the smallest of pid_max,
# threads-max and a pids cgroup limit visible at the root of the hierarchy, minus the
# threads in use; "memory" is MemAvailable (and the visible memory cgroup's room).
# Exhaust mode (--mode exhaust) drops the caps and sets the floors to 0 unless a --limit sets
# them: the agent then protects itself instead (oom_score_adj -1000, the result file's space
# reserved before the run, the container stopped through the engine's socket, no fork).
DEFAULT_LIMITS = {
    "disk_cap_bytes": 1 * GIB,
    "disk_cap_fraction": 0.25,
    "disk_floor_bytes": 256 * MIB,
    "disk_floor_fraction": 0.10,
    "inodes_cap": 100000,
    "inodes_cap_fraction": 0.25,
    "inodes_floor": 10000,
    "inodes_floor_fraction": 0.10,
    "memory_cap_bytes": 1 * GIB,
    "memory_cap_fraction": 0.25,
    "memory_floor_bytes": 512 * MIB,
    "memory_floor_fraction": 0.10,
    "memory_limit_bytes": 64 * MIB,       # -m (and --memory-swap) of memory-limited
    "disk_limit_bytes": 64 * MIB,         # --storage-opt size= of disk-limited
    "processes_cap": 1000,
    "processes_cap_fraction": 0.25,
    "processes_floor": 2000,              # free pids
    "processes_floor_fraction": 0.10,
    "pids_limit": 64,                     # --pids-limit of processes-limited
    "experiment_timeout_s": 120.0,        # each experiment, in both modes
    "sample_interval_s": 0.1,             # host sampling period
    "stall_s": 3.0,                       # least no-progress window (see stall_window)
    "host_write_bytes": 1 * MIB,          # the host's own check at the peak
    "host_alloc_bytes": 16 * MIB,
    "result_reserve_bytes": 4 * MIB,      # space kept for the result file
    "max_series_points": 600,
    "recovery_wait_s": 60.0,              # after each experiment: the host's disk/pids back
}

_LIMIT_OFF = ("off", "none", "no", "unlimited")
_BIN_UNITS = {"": 1, "b": 1, "k": KIB, "kb": KIB, "kib": KIB, "m": MIB, "mb": MIB, "mib": MIB,
              "g": GIB, "gb": GIB, "gib": GIB, "t": 1024 ** 4, "tb": 1024 ** 4,
              "tib": 1024 ** 4}
_COUNT_UNITS = {"": 1, "k": 1000, "m": 1000 ** 2}


def parse_limit_value(name, text):
    """The value of one --set: sizes for *_bytes ('512M', '1G', '1.5GiB': binary units, as
    docker's -m), plain or k/m-suffixed counts ('100k'), seconds for *_s ('90', '90s'),
    fractions for *_fraction; 'off'/'none' turn a cap or floor off (None).  ValueError if bad.
    """
    if name not in DEFAULT_LIMITS:
        raise ValueError("unknown limit %r; known: %s" % (name, ", ".join(sorted(DEFAULT_LIMITS))))
    raw = (text or "").strip().lower()
    if len(raw) > 32:
        raise ValueError("%s: %r is too long to be a value" % (name, raw[:40] + "..."))
    if raw in _LIMIT_OFF:
        if name.endswith("_cap") or name.endswith("_cap_bytes") or \
                name.endswith("_floor") or name.endswith("_floor_bytes"):
            return None
        raise ValueError("%s cannot be turned off" % name)
    if name.endswith("_s"):
        m = re.match(r"^([0-9]+(?:\.[0-9]+)?)\s*s?$", raw)
        if not m or float(m.group(1)) <= 0:
            raise ValueError("%s needs a positive number of seconds, got %r" % (name, text))
        return float(m.group(1))
    if name.endswith("_fraction"):
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0.0 <= value <= 1.0:
            raise ValueError("%s needs a fraction between 0 and 1, got %r" % (name, text))
        return value
    units = _BIN_UNITS if name.endswith("_bytes") else _COUNT_UNITS
    m = re.match(r"^([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)$", raw)
    if not m or m.group(2) not in units:
        what = "a size like 512M or 1G" if units is _BIN_UNITS else "a count like 2000 or 100k"
        raise ValueError("%s needs %s, got %r" % (name, what, text))
    return int(round(float(m.group(1)) * units[m.group(2)]))


def parse_limit_options(items):
    """['disk_cap_bytes=32M', ...] -> {name: value}; ValueError naming the bad item."""
    result = {}
    for item in items or []:
        name, sep, value = (item or "").partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise ValueError("--set needs NAME=VALUE, got %r" % item)
        result[name] = parse_limit_value(name, value)
    return result


def limit_value(overrides, name):
    if overrides and name in overrides:
        return overrides[name]
    return DEFAULT_LIMITS[name]


def resolve_cap_floor(keys, mode, overrides, free, total):
    """(cap, floor) for one resource; cap None means no cap, floor 0 means no floor.

    ``keys``: the names in DEFAULT_LIMITS of the resource's (cap, cap fraction, floor, floor
    fraction); each resource names its own (the res* modules)."""
    overrides = overrides or {}
    cap_key, cap_fraction_key, floor_key, floor_fraction_key = keys
    if cap_key in overrides:
        cap = overrides[cap_key]
    elif mode == "exhaust":
        cap = None
    else:
        cap = DEFAULT_LIMITS[cap_key]
        frac = limit_value(overrides, cap_fraction_key)
        if free is not None and frac:
            cap = min(cap, int(free * frac))
    if floor_key in overrides:
        floor = overrides[floor_key] or 0
    elif mode == "exhaust":
        floor = 0
    else:
        floor = DEFAULT_LIMITS[floor_key]
        frac = limit_value(overrides, floor_fraction_key)
        if total:
            floor = min(max(floor, int(total * frac)), int(total // 2))
    return cap, floor


def cap_within_floor(cap, floor, free):
    """The amount the container is given: the cap, but never more than free - floor.

    Returns (amount or None for unbounded, limited_by_floor).
    """
    if not floor or free is None:
        return cap, False
    room = max(0, int(free) - int(floor))
    if cap is None or cap > room:
        return room, True
    return cap, False


def floor_breached(value, floor, rate, horizon, room=None):
    """True when the free amount ``value`` is at the floor, or will be within ``horizon``
    seconds at the current rate of decline ``rate`` (units per second).  ``room``, when known,
    is the most the container can still take under its own kernel limit (--pids-limit, -m):
    a burst of forks up to a 64-pid limit cannot take more than 64 pids, however fast."""
    if value is None or not floor:
        return False
    drop = max(rate or 0.0, 0.0) * horizon
    if room is not None:
        drop = min(drop, max(room, 0))
    return value - drop <= floor


def decline_rate(prev, cur):
    """Units per second by which a free amount fell between two samples (t, value)."""
    if not prev or not cur or prev[1] is None or cur[1] is None:
        return 0.0
    dt = cur[0] - prev[0]
    if dt <= 0:
        return 0.0
    return max(0.0, (prev[1] - cur[1]) / dt)


def downsample(series, max_points=600):
    """Keep at most ``max_points`` evenly spread points (the first and last always)."""
    t = series.get("t") or []
    n = len(t)
    if n <= max_points or max_points < 2:
        return series
    idx = []
    for i in range(max_points):
        j = int(round(i * (n - 1) / float(max_points - 1)))
        if not idx or idx[-1] != j:
            idx.append(j)
    out = {}
    for key, values in series.items():
        out[key] = [values[j] for j in idx]
    return out


def pids_gate(server_version, cgroup_controllers):
    """(supported, reason) for --pids-limit: Docker 1.11+ and a kernel with the pids cgroup."""
    vt = version_tuple(server_version)
    if vt is None or vt < (1, 11):
        return False, "not supported by Docker %s (--pids-limit needs Docker 1.11 or later)" % (
            server_version or "(unknown version)")
    if cgroup_controllers is not None and "pids" not in cgroup_controllers:
        return False, ("not supported by this kernel (no pids cgroup; it needs Linux 4.3 or "
                       "later)")
    return True, None
