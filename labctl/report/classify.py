"""Verdict classes and units: pure rules, no pandas, no matplotlib.

Every experiment record on every host falls in one class, shown as a colour in the reports:

``affected`` ("host affected")
    what the container did reached the host: the host could not do the same thing any more
    (a ``host_*_ok`` check failed), or what the container used showed up one-for-one on the
    host (``landed_on_host_ratio`` >= 0.2), or it ended in a host-wide shortage (``stop_reason``
    ``oom-kill`` without a limit, ``eagain``: the host's process limit), or the engine has no
    such limit at all (``stop_reason`` ``not-available``: no ``--pids-limit`` before Docker
    1.11), or (storage checks) the host can read or change the container's files.
``contained``
    the container's own limit stopped it (``stop_reason`` ``container-limit``), a limit was
    applied and held (``limit_applied`` with a cap or floor stop), its use did not show up on
    the host (ratio < 0.2), or (storage checks) the container's files are out of the host's
    reach.
``not-measured``
    skipped, not run (the safety floor was already
    reached before the start), or not asked for on that host.
``error``
    the experiment or the whole host failed.

The rules are tried in this order; a boolean ``host_affected`` metric, when an agent writes one,
wins over everything but the status. A verdict no rule recognises is ``unclassified``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

AFFECTED = "affected"
CONTAINED = "contained"
NOT_MEASURED = "not-measured"
ERROR = "error"
UNCLASSIFIED = "unclassified"

CLASSES: tuple[str, ...] = (AFFECTED, CONTAINED, NOT_MEASURED, ERROR, UNCLASSIFIED)
LABELS: dict[str, str] = {
    AFFECTED: "host affected",
    CONTAINED: "contained",
    NOT_MEASURED: "not measured",
    ERROR: "error",
    UNCLASSIFIED: "unclassified",
}
#: the share of the container's use that must show up on the host to call it "affected"
LANDED_RATIO = 0.2

RULES: tuple[str, ...] = (
    "no record: the host failed -> error; else not measured",
    "status skipped -> not measured; any other status but ok -> error",
    "metric host_affected true/false -> host affected / contained",
    "a host_*_ok metric is false (the host could not write, create, allocate, fork) "
    "-> host affected",
    "stop_reason: floor before the container started -> not measured; error -> error; "
    "container-limit -> contained; oom-kill or eagain -> host affected; not-available (the "
    "engine has no such limit, e.g. --pids-limit before Docker 1.11) -> host affected",
    "limit_applied and it stopped at its cap or floor -> contained; at a timeout or stall "
    "before reaching it -> not measured",
    f"landed_on_host_ratio >= {LANDED_RATIO} -> host affected, below -> contained",
    "host_can_read or host_can_write true -> host affected (its files are in the host's "
    "tree); both false -> contained",
    "the verdict's words: 'not run'/'skipped' -> not measured, 'error' -> error, "
    "'contained' -> contained, 'a container can' -> host affected",
)


@dataclass(frozen=True)
class Verdict:
    cls: str
    #: why this class, in a few words (which rule)
    why: str

    @property
    def label(self) -> str:
        return LABELS[self.cls]


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def classify(record: dict[str, Any] | None, host_failed: bool = False) -> Verdict:
    """The class of one experiment record (``None``: the host has no record of it)."""
    if record is None:
        if host_failed:
            return Verdict(ERROR, "the host failed")
        return Verdict(NOT_MEASURED, "not run on this host")
    status = record.get("status")
    if status == "skipped":
        return Verdict(NOT_MEASURED, "skipped")
    if status != "ok":
        return Verdict(ERROR, f"status {status}")
    raw = record.get("metrics")
    m: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if isinstance(m.get("host_affected"), bool):
        return Verdict(AFFECTED if m["host_affected"] else CONTAINED, "host_affected")
    failed = sorted(
        k for k, v in m.items() if v is False and k.startswith("host_") and k.endswith("_ok")
    )
    if failed:
        return Verdict(AFFECTED, f"{failed[0]} is false")
    reason = m.get("stop_reason")
    if reason == "floor" and m.get("container_started") is False:
        return Verdict(NOT_MEASURED, "safety floor reached before the start")
    if reason == "error":
        return Verdict(ERROR, "stop_reason error")
    if reason == "container-limit":
        return Verdict(CONTAINED, "stopped by its own limit")
    if reason == "not-available":
        return Verdict(AFFECTED, "no such limit in this engine (a finding)")
    if reason in ("oom-kill", "eagain"):
        return Verdict(AFFECTED, f"stop_reason {reason}")
    if m.get("limit_applied") is True and reason in ("cap", "floor"):
        return Verdict(CONTAINED, f"limit applied, stopped at the {reason}")
    if m.get("limit_applied") is True and reason in ("timeout", "stall"):
        return Verdict(NOT_MEASURED, f"limit applied, never reached ({reason})")
    ratio = _num(m.get("landed_on_host_ratio"))
    if ratio is not None:
        if ratio >= LANDED_RATIO:
            return Verdict(AFFECTED, f"landed on host (ratio {ratio:.2f})")
        return Verdict(CONTAINED, f"did not land on host (ratio {ratio:.2f})")
    read, write = m.get("host_can_read"), m.get("host_can_write")
    if read is True or write is True:
        return Verdict(AFFECTED, "host can read/change its files")
    if read is False and write is False:
        return Verdict(CONTAINED, "host cannot reach its files")
    return _by_words(str(record.get("verdict") or ""))


def _by_words(text: str) -> Verdict:
    low = text.lower()
    if low.startswith(("not run", "skipped")):
        return Verdict(NOT_MEASURED, "verdict says not run")
    if low.startswith("error"):
        return Verdict(ERROR, "verdict says error")
    if low.startswith("contained"):
        return Verdict(CONTAINED, "verdict says contained")
    if "a container can" in low or low.startswith("shares host"):
        return Verdict(AFFECTED, "verdict says the host is reachable")
    if low.startswith("separate"):
        return Verdict(CONTAINED, "verdict says separate")
    return Verdict(UNCLASSIFIED, "no rule matched")


def short_verdict(text: Any, limit: int = 60) -> str:
    """The head of a verdict sentence: 'stopped at the cap of 256 MiB', 'contained'."""
    if not text:
        return ""
    head = str(text).split(":", 1)[0].split(";", 1)[0].strip()
    return head if len(head) <= limit else head[: limit - 1].rstrip() + "\u2026"


# -- units --------------------------------------------------------------------------------------
_BYTES_WORDS = ("mem_available", "mem_free", "swap_free", "swap_total", "mem_total")
_COUNT_WORDS = (
    "inode",
    "files",
    "dirs",
    "pids",
    "pid_max",
    "procs",
    "processes",
    "threads",
    "children",
    "samples",
    "points",
    "kills",
    "count",
    "lines",
    "containers",
    "images",
    "ncpu",
)


def unit_of(metric: str, value: Any = 0) -> str:
    """The unit of a numeric value from its name: bytes, s, bytes/s, 1/s, ratio, count, ''.

    Non-numbers (and booleans) have no unit (booleans: 'bool'). ``metric`` may carry a section
    prefix (``limits.mem_total_bytes``).
    """
    if isinstance(value, bool):
        return "bool"
    if not isinstance(value, int | float):
        return ""
    return name_unit(metric)


@functools.lru_cache(maxsize=4096)
def name_unit(metric: str) -> str:
    """:func:`unit_of` a number, from its name alone (a few hundred names: cached)."""
    name = metric.rsplit(".", 1)[-1].lower()
    if name.endswith("_bytes_per_s"):
        return "bytes/s"
    if name.endswith("_per_s"):
        return "1/s"
    if name.endswith(("_bytes", "_size")) or "_bytes_" in name or name == "bytes":
        return "bytes"
    if any(w in name for w in _BYTES_WORDS):
        return "bytes"
    if name.endswith("_ratio") or "_ratio_" in name:
        return "ratio"
    if name.endswith("_fraction"):
        return "fraction"
    if name.endswith(("_pct", "_percent")):
        return "%"
    if name.endswith(("_s", "_seconds")) or name == "t":
        return "s"
    if any(w in name for w in _COUNT_WORDS):
        return "count"
    return ""


def series_unit(key: str, record: dict[str, Any]) -> str:
    """Unit of one series: the container's own series follows the experiment's progress."""
    if key == "container":
        raw = record.get("metrics")
        m = raw if isinstance(raw, dict) else {}
        for k in ("written_bytes", "resident_bytes"):
            if k in m:
                return "bytes"
        name = str(record.get("name", ""))
        return "bytes" if name.startswith(("disk", "memory")) else "count"
    return unit_of(key, 0) or "count"
