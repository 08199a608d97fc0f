"""Same kernel, different engines: which answers changed, and which protection arrived.

Hosts of one kernel release (``facts.kernel``) whose Docker engines belong to different release
lines (major.minor: 1.5 vs 20.10) isolate what the engine changed: the kernel is the same, so a
verdict class that differs comes from the engine (or from a storage driver or mount namespace
that differs too, which is said beside it). For each experiment: the class on every host, what
changed between each newer-engine host and its closest older-engine host (same storage driver
first, then the same kind of driver), and the engine features that explain it, from the data
file's ``engine_changes`` (``report/baseline/article.json``): which protection arrived with the
newer engine (``--pids-limit`` since 1.11, ``--storage-opt size=`` since 1.12/1.13), which was
already there (devicemapper's base size), and what changed the other way (``MountFlags=slave``
left the upstream unit in 1.12).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .model import HostEntry, dig, experiment_order

#: drivers that keep a container's files as folders of the host's filesystem (union mounts)
UNION_DRIVERS = frozenset({"aufs", "overlay", "overlay2"})
_NUM = re.compile(r"\d+")
#: engines before this one are "the study's era" (1.5.0 came out in 2015; 1.10 in 2016)
ERA_END = (1, 10)


def version_tuple(version: Any) -> tuple[int, ...]:
    """'20.10.5+dfsg1' -> (20, 10, 5); '1.5.0' -> (1, 5, 0); unparsable -> ()."""
    out: list[int] = []
    for part in str(version or "").split("+")[0].split("-")[0].split("."):
        m = _NUM.match(part)
        if not m:
            break
        out.append(int(m.group()))
    return tuple(out)


def engine_line(version: Any) -> str:
    """'20.10.5+dfsg1' -> '20.10'."""
    return ".".join(str(x) for x in version_tuple(version)[:2])


@dataclass
class EngineHost:
    name: str
    engine: str
    driver: str
    mount_ns: str
    backing_fs: str
    #: old (the oldest engine line of the kernel), new (the newest) or "" (in between)
    side: str

    @property
    def label(self) -> str:
        return f"{self.name} ({self.engine}, {self.driver or 'unknown driver'})"


@dataclass
class EngineRow:
    experiment: str
    #: host name -> class label ("host affected", "contained", ...)
    classes: dict[str, str]
    #: host name -> class id (for colours)
    cls: dict[str, str]
    changed: bool
    what_changed: str
    #: each: what, since, effect, status (arrived | already | gone | note), applies, text
    protections: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SameKernelGroup:
    kernel: str
    old_engine: str
    new_engine: str
    hosts: list[EngineHost]
    rows: list[EngineRow]

    @property
    def title(self) -> str:
        return f"kernel {self.kernel}: Docker {self.old_engine} vs {self.new_engine}"

    @property
    def heading(self) -> str:
        """'Same kernel, 2015 engine vs today's' when the older engine is of the study's era."""
        if version_tuple(self.old_engine) < ERA_END:
            return "Same kernel, 2015 engine vs today's"
        return "Same kernel, older engine vs newer"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["title"] = self.title
        data["heading"] = self.heading
        for h, src in zip(data["hosts"], self.hosts, strict=True):
            h["label"] = src.label
        return data


def _mount_ns(e: HostEntry) -> str:
    ns = dig(e.result.facts, "docker", "mount_namespace")
    if ns not in ("host", "private"):
        rec = e.experiment("storage-location")
        m = rec.get("metrics") if rec else None
        ns = m.get("daemon_mount_ns") if isinstance(m, dict) else None
    return str(ns) if ns in ("host", "private") else ""


def _counterpart(new: EngineHost, olds: Sequence[EngineHost]) -> EngineHost:
    """The older-engine host most like ``new``: same driver, then the same kind of driver."""

    def key(o: EngineHost) -> tuple[int, int, str]:
        if o.driver == new.driver:
            d = 0
        elif o.driver in UNION_DRIVERS and new.driver in UNION_DRIVERS:
            d = 1
        else:
            d = 2
        return (d, 0 if o.mount_ns == new.mount_ns else 1, o.name)

    return min(olds, key=key)


def _also(old: EngineHost, new: EngineHost) -> str:
    diffs = []
    if old.driver != new.driver:
        diffs.append(f"storage driver {old.driver or '?'} -> {new.driver or '?'}")
    if old.mount_ns and new.mount_ns and old.mount_ns != new.mount_ns:
        diffs.append(f"daemon mount namespace {old.mount_ns} -> {new.mount_ns}")
    return f" (also {', '.join(diffs)})" if diffs else ""


def _protections(
    experiment: str,
    old_version: tuple[int, ...],
    news: Sequence[EngineHost],
    group: Sequence[EngineHost],
    changes: Iterable[dict[str, Any]],
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    drivers_here = {h.driver for h in group}
    for ch in changes:
        if experiment not in ch.get("experiments", []):
            continue
        since = version_tuple(ch.get("since"))
        until = version_tuple(ch.get("until")) if ch.get("until") else None
        drivers = ch.get("drivers")
        effect = str(ch.get("effect") or "note")
        what = str(ch["what"])
        newest = max(version_tuple(h.engine) for h in news)
        if effect == "note":
            status = "note"
        elif old_version < since <= newest:
            status = "arrived"
        elif since <= old_version:
            if drivers and not drivers_here & set(drivers):
                continue
            status = "gone" if until and newest >= until else "already"
        else:
            continue
        applies: bool | None = None
        where = ""
        if drivers:
            fs = ch.get("backing_filesystems")
            on = [h.name for h in news if h.driver in drivers and (not fs or h.backing_fs in fs)]
            off = [
                f"{h.name} runs {h.driver}"
                if h.driver not in drivers
                else f"{h.name}'s /var/lib/docker is {h.backing_fs or 'unknown'}"
                for h in news
                if h.name not in on
            ]
            applies = bool(on)
            if status == "already":
                olds = sorted(h.name for h in group if h.driver in drivers)
                where = f" (on {', '.join(olds)})"
            elif off:
                where = f" (not usable here: {', '.join(off)})"
        word = {
            "arrived": f"arrived in Docker {ch.get('since')}"
            if effect == "protects"
            else f"changed in Docker {ch.get('since')}",
            "already": f"already in Docker {'.'.join(map(str, old_version))}",
            "gone": f"gone in Docker {ch.get('until')}",
            "note": "note",
        }[status]
        note = f"; {ch['note']}" if ch.get("note") else ""
        out.append(
            {
                "what": what,
                "since": ch.get("since"),
                "effect": effect,
                "status": status,
                "applies": applies,
                "text": f"{word}: {what}{where}{note}",
            }
        )
    return out


def same_kernel_groups(
    entries: Sequence[HostEntry], changes: Iterable[dict[str, Any]] = ()
) -> list[SameKernelGroup]:
    """One group per kernel release run by hosts of at least two engine lines."""
    changes = list(changes)
    by_kernel: dict[str, list[HostEntry]] = {}
    for e in entries:
        kernel = e.result.facts.get("kernel") if e.result.facts else None
        version = dig(e.result.facts, "docker", "server_version")
        if kernel and version_tuple(version):
            by_kernel.setdefault(str(kernel), []).append(e)
    groups: list[SameKernelGroup] = []
    for kernel in sorted(by_kernel):
        members = by_kernel[kernel]
        lines = sorted(
            {
                version_tuple(engine_line(dig(e.result.facts, "docker", "server_version")))
                for e in members
            }
        )
        if len(lines) < 2:
            continue
        old_line, new_line = lines[0], lines[-1]
        hosts: list[EngineHost] = []
        for e in sorted(
            members,
            key=lambda e: (version_tuple(dig(e.result.facts, "docker", "server_version")), e.name),
        ):
            v = str(dig(e.result.facts, "docker", "server_version"))
            line = version_tuple(engine_line(v))
            side = "old" if line == old_line else "new" if line == new_line else ""
            driver = str(dig(e.result.facts, "docker", "storage_driver") or "")
            backing = str(dig(e.result.facts, "docker", "backing_filesystem") or "")
            hosts.append(EngineHost(e.name, v, driver, _mount_ns(e), backing, side))
        olds = [h for h in hosts if h.side == "old"]
        news = [h for h in hosts if h.side == "new"]
        old_version = min(version_tuple(h.engine) for h in olds)
        by_name = {e.name: e for e in members}
        rows: list[EngineRow] = []
        for x in experiment_order(members):
            verdicts = {h.name: by_name[h.name].verdict(x) for h in hosts}
            changed_parts: list[str] = []
            same_parts: list[str] = []
            for new in news:
                b = verdicts[new.name]
                differ = [o for o in olds if verdicts[o.name].cls != b.cls]
                for old in differ:
                    a = verdicts[old.name]
                    changed_parts.append(
                        f"{old.name} {a.label} -> {new.name} {b.label}{_also(old, new)}"
                    )
                closest = _counterpart(new, olds)
                if closest not in differ:
                    same_parts.append(f"{new.name} as {closest.name} (closest setup): {b.label}")
            if changed_parts:
                what = "; ".join(changed_parts + same_parts)
            elif len({v.cls for v in verdicts.values()}) == 1:
                what = f"no: {next(iter(verdicts.values())).label} on every host"
            else:
                what = "no: " + "; ".join(same_parts)
            rows.append(
                EngineRow(
                    x,
                    {h: v.label for h, v in verdicts.items()},
                    {h: v.cls for h, v in verdicts.items()},
                    bool(changed_parts),
                    what,
                    _protections(x, old_version, news, hosts, changes),
                )
            )
        groups.append(
            SameKernelGroup(
                kernel,
                min(olds, key=lambda h: version_tuple(h.engine)).engine,
                max(news, key=lambda h: version_tuple(h.engine)).engine,
                hosts,
                rows,
            )
        )
    return groups
