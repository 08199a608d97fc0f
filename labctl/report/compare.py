"""``labctl compare RUN_A RUN_B``: what changed between two runs, check by check.

Hosts are matched by name; hosts left over on both sides are matched by their ``suite`` label,
then by an identical set of labels. For each matched pair: facts that changed (the matrix's fact
rows), experiment metrics that changed (numbers within a relative tolerance are equal; long hex
ids in text are ignored), statuses and verdicts that changed (the class first, then the words).
Timing-like metrics that differ on every run are left out unless asked for (``volatile``).

When hosts of the two runs share a kernel release but run engines of different release lines
(Docker 1.5.0 in one run, 20.10 in the other), the comparison also holds the "same kernel,
2015 engine vs today's" table (:mod:`labctl.samekernel`).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .matrix import FACT_ROWS, format_value
from .model import HostEntry, dig, load_entries, open_run, redact_ids
from .samekernel import SameKernelGroup, same_kernel_groups

#: metrics that differ on every run by nature; skipped unless ``include_volatile``
VOLATILE: tuple[str, ...] = (
    "*.duration_s",
    "*.watch_s",
    "*.run_s",
    "*_rate_*",
    "*.samples",
    "*.series_points",
    "*cpu*",
    "*maxrss*",
    "*.container_id",
    "*.container_name",
    "*.container_file",
    "*.probe_image_built",
    "limits.docker_root_free_bytes",
    "limits.docker_root_inodes_free",
    "host.hostname",
)
DEFAULT_RTOL = 0.05


@dataclass
class Change:
    host: str
    #: "host", "fact", "status", "verdict", "metric"
    kind: str
    item: str
    a: str
    b: str
    note: str = ""


@dataclass
class Comparison:
    run_a: str
    run_b: str
    pairs: list[tuple[str, str, str]] = field(default_factory=list)  # (a, b, matched by)
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    checked: int = 0
    #: same kernel, different engine lines, across both runs
    same_kernel: list[SameKernelGroup] = field(default_factory=list)
    #: one line per host whose result file could not be used (it is left out of the pairs)
    problems: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.only_a or self.only_b)

    def summary(self) -> str:
        kinds: dict[str, int] = {}
        for c in self.changes:
            kinds[c.kind] = kinds.get(c.kind, 0) + 1
        parts = [f"{n} {k}" for k, n in sorted(kinds.items())]
        extra = []
        if self.only_a:
            extra.append(f"{len(self.only_a)} host(s) only in A")
        if self.only_b:
            extra.append(f"{len(self.only_b)} host(s) only in B")
        head = f"{len(self.pairs)} hosts matched, {self.checked} checks compared: " + (
            ", ".join(parts) + " changed" if parts else "nothing changed"
        )
        return "; ".join([head, *extra])

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "labctl-compare",
            "run_a": self.run_a,
            "run_b": self.run_b,
            "pairs": [{"a": a, "b": b, "matched_by": by} for a, b, by in self.pairs],
            "only_a": self.only_a,
            "only_b": self.only_b,
            "checked": self.checked,
            "changed": self.changed,
            "summary": self.summary(),
            "changes": [asdict(c) for c in self.changes],
            "same_kernel": [g.to_dict() for g in self.same_kernel],
            "problems": self.problems,
        }


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def same_value(a: Any, b: Any, rtol: float) -> tuple[bool, str]:
    """(equal?, note): numbers within ``rtol`` of each other are equal; ids in text ignored."""
    if _is_number(a) and _is_number(b):
        fa, fb = float(a), float(b)
        if fa == fb or (math.isnan(fa) and math.isnan(fb)):
            return True, ""
        base = max(abs(fa), abs(fb))
        rel = abs(fa - fb) / base if base else 0.0
        note = f"{(fb - fa) / abs(fa):+.1%}" if fa else f"from 0 to {format_value(b)}"
        return rel <= rtol, note
    if isinstance(a, str) and isinstance(b, str):
        return redact_ids(a) == redact_ids(b), ""
    return format_value(a) == format_value(b), ""


def match_hosts(
    a: list[HostEntry], b: list[HostEntry]
) -> tuple[list[tuple[HostEntry, HostEntry, str]], list[HostEntry], list[HostEntry]]:
    pairs: list[tuple[HostEntry, HostEntry, str]] = []
    left = {e.host: e for e in a}
    right = {e.host: e for e in b}
    for name in sorted(set(left) & set(right)):
        pairs.append((left.pop(name), right.pop(name), "name"))
    keys: list[tuple[str, Callable[[HostEntry], Any]]] = [
        ("label suite", lambda e: e.result.labels.get("suite") or None),
        ("labels", lambda e: tuple(sorted(e.result.labels.items())) or None),
    ]
    for how, key in keys:
        for name_a in sorted(left):
            ka = key(left[name_a])
            if ka is None:
                continue
            hits = [n for n in sorted(right) if key(right[n]) == ka]
            if len(hits) == 1:
                pairs.append((left.pop(name_a), right.pop(hits[0]), how))
    return pairs, list(left.values()), list(right.values())


def _metrics(record: dict[str, Any] | None) -> dict[str, Any]:
    raw = record.get("metrics") if record else None
    return raw if isinstance(raw, dict) else {}


def _facts(e: HostEntry) -> dict[str, Any]:
    return {metric: dig(e.result.facts, *path) for metric, path in FACT_ROWS}


def compare_entries(
    a: HostEntry,
    b: HostEntry,
    *,
    rtol: float = DEFAULT_RTOL,
    ignore: Sequence[str] = VOLATILE,
) -> tuple[list[Change], int]:
    host = a.host if a.host == b.host else f"{a.host} / {b.host}"
    changes: list[Change] = []
    checked = 0

    def skip(item: str) -> bool:
        return any(fnmatch.fnmatchcase(item, pat) for pat in ignore)

    def check(kind: str, item: str, va: Any, vb: Any) -> None:
        nonlocal checked
        if skip(item):
            return
        checked += 1
        same, note = same_value(va, vb, rtol)
        if not same:
            changes.append(Change(host, kind, item, format_value(va), format_value(vb), note))

    check(
        "status", "host.status", "ok" if a.result.ok else "error", "ok" if b.result.ok else "error"
    )
    fa, fb = _facts(a), _facts(b)
    for metric, _path in FACT_ROWS:
        if fa[metric] is None and fb[metric] is None:
            continue
        check("fact", metric, fa[metric], fb[metric])
    names = list(
        dict.fromkeys(
            [
                *(str(x.get("name")) for x in a.result.experiments),
                *(str(x.get("name")) for x in b.result.experiments),
            ]
        )
    )
    for name in names:
        ra, rb = a.experiment(name), b.experiment(name)
        va, vb = a.verdict(name), b.verdict(name)
        check(
            "status",
            f"{name}.status",
            ra.get("status") if ra else "not run",
            rb.get("status") if rb else "not run",
        )
        if va.cls != vb.cls:
            checked += 1
            changes.append(
                Change(
                    host, "verdict", f"{name}.class", va.label, vb.label, f"{va.why} -> {vb.why}"
                )
            )
        else:
            check(
                "verdict",
                f"{name}.verdict",
                (ra or {}).get("verdict") or "",
                (rb or {}).get("verdict") or "",
            )
        ma, mb = _metrics(ra), _metrics(rb)
        for key in sorted(set(ma) | set(mb)):
            check("metric", f"{name}.{key}", ma.get(key), mb.get(key))
    return changes, checked


def unusable_files(entries: Sequence[HostEntry], side: str) -> list[str]:
    """One line per host whose result file is damaged (kind ``result``), naming the run side."""
    return [
        f"{e.host} ({side}): {e.result.error['message']}"
        for e in entries
        if e.result.error is not None and e.result.error.get("kind") == "result"
    ]


def compare_runs(
    path_a: Path,
    path_b: Path,
    *,
    rtol: float = DEFAULT_RTOL,
    include_volatile: bool = False,
    ignore: Sequence[str] = (),
) -> Comparison:
    run_a, run_b = open_run(path_a), open_run(path_b)
    a = load_entries([run_a])
    b = load_entries([run_b])
    problems = unusable_files(a, "A") + unusable_files(b, "B")
    pairs, only_a, only_b = match_hosts(a, b)
    patterns = [*([] if include_volatile else VOLATILE), *ignore]
    out = Comparison(run_a.run_id, run_b.run_id, problems=problems)
    for ea, eb, how in sorted(pairs, key=lambda p: p[0].host):
        out.pairs.append((ea.host, eb.host, how))
        changes, checked = compare_entries(ea, eb, rtol=rtol, ignore=patterns)
        out.changes.extend(changes)
        out.checked += checked
    out.only_a = sorted(e.host for e in only_a)
    out.only_b = sorted(e.host for e in only_b)
    out.same_kernel = _same_kernel(a, b)
    return out


def _same_kernel(a: list[HostEntry], b: list[HostEntry]) -> list[SameKernelGroup]:
    """The same-kernel table over both runs (a host name in both: ``host@run``)."""
    from .baseline import load_baseline

    both = {e.host for e in a} & {e.host for e in b}
    named = [replace(e, name=f"{e.host}@{e.run_id}") if e.host in both else e for e in a + b]
    return same_kernel_groups(named, load_baseline().get("engine_changes", []))
