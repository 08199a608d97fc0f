"""The comparison with the study as data: verdict words, criterion weights and the records a
comparison is made of (pairings, rows, host notes), with their plain-JSON form."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from ..samekernel import SameKernelGroup

MATCH = "match"
PARTIAL = "partial"
DIFFERS = "differs"
UNKNOWN = "unknown"
NO_BASELINE = "no baseline"
NOT_MEASURED = "not measured"

#: points per criterion (the most a host can score on it)
WEIGHTS: dict[str, int] = {
    "engine": 3,
    "storage driver": 4,
    "daemon mount namespace": 4,
    "family": 2,
    "distribution version": 2,
    "kernel line": 1,
}
#: the study's data file (article.json) and one of its systems, as loaded
Base = dict[str, Any]
System = dict[str, Any]
FAMILY_NAMES = {"rhel": "Red Hat", "debian": "Debian", "suse": "SUSE"}
NO_PARTNER = "no comparable host in this run"


@dataclass
class Row:
    item: str
    article: str
    run: str
    agrees: str
    why: str = ""


@dataclass
class Criterion:
    name: str
    points: int
    max_points: int
    #: match | partial | differs | unknown
    verdict: str
    text: str


@dataclass
class Candidate:
    host: str
    score: int
    max_score: int
    #: on the system's storage driver or a stand-in, and probed: a reasonable partner
    eligible: bool
    criteria: list[Criterion]

    @property
    def reason(self) -> str:
        good = [c.text for c in self.criteria if c.verdict in (MATCH, PARTIAL) and c.text]
        bad = [c.text for c in self.criteria if c.verdict in (DIFFERS, UNKNOWN) and c.text]
        text = ", ".join(good) or "nothing in common"
        return f"{self.host}: {text}" + (f"; {', '.join(bad)}" if bad else "")


@dataclass
class SystemPairing:
    system: str
    system_name: str
    #: the article's setup in a few words
    setup: str
    host: str | None
    score: int
    max_score: int
    reason: str
    criteria: list[Criterion] = field(default_factory=list)
    #: every probed host ranked for this system: host, score, eligible, reason
    candidates: list[dict[str, Any]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)

    @property
    def paired(self) -> bool:
        return self.host is not None


@dataclass
class HostNote:
    """Where one host of the run stands: the system it partners, or why none."""

    host: str
    system: str | None
    system_name: str | None
    reason: str

    @property
    def comparable(self) -> bool:
        return self.system is not None


#: how a claim of the article stands in a run (claims.py settles them)
REPRODUCED = "reproduced"
CONTRADICTED = "contradicted"
NOT_SETTLED = "not settled by this run"
UNTESTABLE = "cannot be tested here"
CLAIM_VERDICTS = (REPRODUCED, CONTRADICTED, NOT_SETTLED, UNTESTABLE)


@dataclass
class ClaimResult:
    id: str
    text: str
    verdict: str
    #: the hosts the verdict rests on
    hosts: list[str] = field(default_factory=list)
    #: "host: metric row = value" lines
    evidence: list[str] = field(default_factory=list)
    #: for a contradiction the likely cause; for the two unsettled verdicts, why
    why: str = ""


@dataclass
class BaselineComparison:
    baseline: str
    title: str
    docker: str
    systems: list[SystemPairing]
    hosts: list[HostNote]
    same_kernel: list[SameKernelGroup] = field(default_factory=list)
    #: every claim of the article, settled by this run
    claims: list[ClaimResult] = field(default_factory=list)

    @property
    def comparable(self) -> bool:
        return any(s.paired for s in self.systems)

    def summary(self) -> str:
        if not self.hosts:
            return "the run has no hosts: nothing to compare with the article"
        if not self.comparable:
            return (
                "nothing in this run is comparable with the article: no host uses its storage "
                "drivers (devicemapper, aufs) or a stand-in for them (overlay, overlay2)"
            )
        pairs = [f"{s.host} ↔ {s.system_name}" for s in self.systems if s.paired]
        counts: dict[str, int] = {}
        for s in self.systems:
            for r in s.rows:
                counts[r.agrees] = counts.get(r.agrees, 0) + 1
        parts = [f"{counts.get(k, 0)} {k}" for k in (MATCH, PARTIAL, DIFFERS) if counts.get(k)]
        return f"{len(pairs)} of {len(self.systems)} systems paired ({', '.join(pairs)}); " + (
            ", ".join(parts) or "no checks"
        )

    def claims_summary(self) -> str:
        """``"5 reproduced, 1 contradicted, ..."`` over the claims."""
        counts = {v: sum(1 for c in self.claims if c.verdict == v) for v in CLAIM_VERDICTS}
        return ", ".join(f"{n} {v}" for v, n in counts.items() if n) or "no claims"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = _plain(self)
        data["comparable"] = self.comparable
        data["summary"] = self.summary()
        for s, src in zip(data["systems"], self.systems, strict=True):
            s["paired"] = src.paired
        for h, hsrc in zip(data["hosts"], self.hosts, strict=True):
            h["comparable"] = hsrc.comparable
        data["same_kernel"] = [g.to_dict() for g in self.same_kernel]
        data["claims_summary"] = self.claims_summary()
        return data


_ATOMS = (str, int, float, bool, type(None))


def _plain(obj: Any) -> Any:
    """:func:`dataclasses.asdict` for the comparison's plain data (dataclasses, lists, dicts,
    scalars) without its deep copy of every scalar: a run of 1,000 hosts ranks 3,000
    candidates."""
    kind = type(obj)
    if kind in _ATOMS:
        return obj
    if kind is list:
        return [_plain(v) for v in obj]
    if kind is dict:
        return {_plain(k): _plain(v) for k, v in obj.items()}
    if kind is tuple:
        return tuple(_plain(v) for v in obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    return copy.deepcopy(obj)
