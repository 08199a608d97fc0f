"""The 2015 study as data (``labctl/baseline/article.json``) and a run's hosts beside it.

Every system of the article's Table 1 (CentOS 6.6, CentOS 7.0, Ubuntu 14.04) is listed, each
paired with the closest host of the run, or "no comparable host in this run". Closeness is a
score over criteria, each kept as data with the words that explain it (:class:`Criterion`):

- the engine: Docker 1.5.0 (the article's) scores highest, a 1.x engine of the same era less;
- the storage driver: the same driver, or a stand-in (overlay for aufs, which Debian kernels no
  longer carry); a host on none of them is no partner at all (the driver decides where a
  container's files live, the only finding the article's text gives);
- the daemon's mount namespace, measured (``facts.docker.mount_namespace``), else expected from
  the init style the inventory asked for (``labctl_engine_init``): what tells the CentOS 7.0
  finding (private namespace: Docker 1.5.0's systemd unit had ``MountFlags=slave``) from the
  CentOS 6.6 one;
- the distribution family, its version and the kernel line (which only real CentOS / Ubuntu
  hosts can match).

Each host partners at most one system; the pairing with the highest total score wins (ties: the
article's order, then host names). Host names and the ``labctl_stands_for`` hint are never used.
Then, fact by fact and finding by finding: what matches, what differs and why.

The article's text has results only for the storage check; for the resource checks the baseline
holds era facts (expectations), shown beside the run's findings, never scored.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, fields, is_dataclass
from importlib import resources
from itertools import product
from typing import Any

from .errors import ConfigError
from .report.model import HostEntry, dig, distribution_family, redact_ids
from .samekernel import SameKernelGroup, same_kernel_groups, version_tuple

BASELINES = ("article",)

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


@dataclass
class BaselineComparison:
    baseline: str
    title: str
    docker: str
    systems: list[SystemPairing]
    hosts: list[HostNote]
    same_kernel: list[SameKernelGroup] = field(default_factory=list)

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

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = _plain(self)
        data["comparable"] = self.comparable
        data["summary"] = self.summary()
        for s, src in zip(data["systems"], self.systems, strict=True):
            s["paired"] = src.paired
        for h, hsrc in zip(data["hosts"], self.hosts, strict=True):
            h["comparable"] = hsrc.comparable
        data["same_kernel"] = [g.to_dict() for g in self.same_kernel]
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


def load_baseline(name: str = "article") -> dict[str, Any]:
    if name not in BASELINES:
        raise ConfigError(
            f"unknown baseline {name!r}", hint=f"known baselines: {', '.join(BASELINES)}"
        )
    text = (resources.files("labctl") / "baseline" / f"{name}.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _major(version: Any) -> str:
    return str(version or "").split(".")[0]


def kernel_line(kernel: Any) -> str:
    """'3.10.0-123.el7.x86_64' -> '3.10'."""
    parts = str(kernel or "").split("-")[0].split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else str(kernel or "")


def _driver(entry: HostEntry) -> str | None:
    """The engine's storage driver (the inventory's label only when the engine never said)."""
    d = dig(entry.result.facts, "docker", "storage_driver") or entry.result.labels.get(
        "storage_driver"
    )
    return str(d) if d else None


def _storage_metrics(entry: HostEntry) -> dict[str, Any]:
    rec = entry.experiment("storage-location")
    raw = rec.get("metrics") if rec and rec.get("status") == "ok" else None
    return raw if isinstance(raw, dict) else {}


def mount_namespace(entry: HostEntry) -> str | None:
    """'host' | 'private' | None: is the daemon in init's mount namespace (measured)?"""
    for value in (
        dig(entry.result.facts, "docker", "mount_namespace"),
        _storage_metrics(entry).get("daemon_mount_ns"),
    ):
        if value in ("host", "private"):
            return str(value)
    return None


@dataclass(frozen=True)
class Profile:
    """What pairing looks at on one host: facts first, the inventory's asks as a fallback."""

    host: str
    probed: bool
    engine: str | None
    driver: str | None
    mount_ns: str | None
    init: str | None
    family: str | None
    version: str
    pretty: str
    kernel: str


def host_profile(entry: HostEntry) -> Profile:
    facts = entry.result.facts
    init = entry.result.labels.get("engine_init")
    return Profile(
        host=entry.name,
        probed=bool(facts),
        engine=str(dig(facts, "docker", "server_version") or "") or None,
        driver=_driver(entry),
        mount_ns=mount_namespace(entry),
        init=str(init) if init else None,
        family=distribution_family(facts) if facts else None,
        version=str(dig(facts, "distribution", "version") or ""),
        pretty=str(dig(facts, "distribution", "pretty") or ""),
        kernel=str(facts.get("kernel") or ""),
    )


def _stand_in(system: dict[str, Any], driver: str | None) -> str | None:
    """The data's sentence when ``driver`` stands in for the system's driver, else None."""
    text = (system.get("stand_ins") or {}).get(driver or "")
    return str(text) if text else None


def _ns_words(ns: str) -> str:
    return "a private mount namespace" if ns == "private" else "the host's mount namespace"


def _expected_ns(p: Profile, base: dict[str, Any]) -> str | None:
    """The namespace the asked-for init style gives (systemd's MountFlags only before 1.12)."""
    style = (base.get("init_styles") or {}).get(p.init or "")
    if not style:
        return None
    if p.init == "systemd" and p.engine and version_tuple(p.engine) >= (1, 12):
        return "host"
    return str(style["mount_namespace"])


def score(p: Profile, system: dict[str, Any], base: dict[str, Any]) -> Candidate:
    """How close one host is to one of the article's systems, criterion by criterion."""
    crit: list[Criterion] = []
    article_engine = str(base["docker"]["version"])

    def add(name: str, points: int, verdict: str, text: str) -> None:
        crit.append(Criterion(name, points, WEIGHTS[name], verdict, text))

    # engine
    w = WEIGHTS["engine"]
    if not p.engine:
        add("engine", 0, UNKNOWN, "Docker version unknown")
    elif version_tuple(p.engine)[:2] == version_tuple(article_engine)[:2]:
        add("engine", w, MATCH, f"Docker {p.engine}")
    elif version_tuple(p.engine) < (1, 11):
        add("engine", 1, PARTIAL, f"Docker {p.engine} (same era as {article_engine})")
    else:
        add("engine", 0, DIFFERS, f"Docker {p.engine}, not {article_engine}")
    # storage driver
    sd = str(system["storage_driver"])
    stand_in = _stand_in(system, p.driver)
    if p.driver == sd:
        add("storage driver", WEIGHTS["storage driver"], MATCH, sd)
    elif stand_in:
        add("storage driver", 3, PARTIAL, stand_in.split(":")[0])
    elif p.driver:
        add("storage driver", 0, DIFFERS, f"storage driver {p.driver}, not {sd}")
    else:
        add("storage driver", 0, UNKNOWN, "storage driver unknown")
    # daemon mount namespace (measured), else the init style asked for
    sys_ns = str(system.get("daemon_mount_namespace") or "")
    styles = base.get("init_styles") or {}
    init_text = str((styles.get(p.init or "") or {}).get("text") or "")
    name = "daemon mount namespace"
    if p.mount_ns and sys_ns:
        if p.mount_ns == sys_ns:
            bonus = 1 if p.init == system.get("init") else 0
            how = f" ({init_text})" if init_text and _expected_ns(p, base) == p.mount_ns else ""
            add(name, 3 + bonus, MATCH, f"daemon in {_ns_words(p.mount_ns)}{how}")
        else:
            add(name, 0, DIFFERS, f"daemon in {_ns_words(p.mount_ns)}, not {_ns_words(sys_ns)}")
    elif (expected := _expected_ns(p, base)) and sys_ns:
        if expected == sys_ns:
            add(
                name,
                1,
                PARTIAL,
                f"{p.init} init: daemon expected in {_ns_words(expected)} (asked, not measured)",
            )
        else:
            add(
                name,
                0,
                DIFFERS,
                f"{p.init} init: daemon expected in {_ns_words(expected)}, "
                f"not {_ns_words(sys_ns)} (asked, not measured)",
            )
    else:
        add(name, 0, UNKNOWN, "daemon mount namespace not measured")
    # family, distribution version, kernel line
    fam = str(system["family"])
    fam_name = FAMILY_NAMES.get(fam, fam)
    host_fam = FAMILY_NAMES.get(p.family or "", p.family or "unknown")
    variant = next(
        (
            v
            for s in base["systems"]
            for v in s.get("variants", [])
            if v["behaves_like"] == system["id"]
            and v["storage_driver"] == p.driver
            and s["family"] == p.family
            and _major(s["version"]) == _major(p.version)
        ),
        None,
    )
    if p.family == fam:
        add("family", WEIGHTS["family"], MATCH, f"{fam_name} family")
    elif variant:
        add("family", 1, PARTIAL, f"{host_fam} family ({variant['note']})")
    else:
        add("family", 0, DIFFERS, f"{host_fam}, not {fam_name}")
    if p.family == fam:
        if _major(p.version) == _major(system["version"]):
            add("distribution version", WEIGHTS["distribution version"], MATCH, p.pretty)
        else:
            add(
                "distribution version",
                0,
                DIFFERS,
                f"version {p.version or 'unknown'}, not {system['version']}",
            )
    else:
        add("distribution version", 0, UNKNOWN, "")
    kl, akl = kernel_line(p.kernel), kernel_line(system["kernel"])
    if kl and kl == akl:
        add("kernel line", WEIGHTS["kernel line"], MATCH, f"kernel {kl} line")
    else:
        add("kernel line", 0, DIFFERS, f"kernel {kl or 'unknown'}, not {akl}")
    eligible = p.probed and crit[1].points > 0
    return Candidate(p.host, sum(c.points for c in crit), sum(WEIGHTS.values()), eligible, crit)


def assign(table: list[list[Candidate]]) -> list[Candidate | None]:
    """One host per system at most, the highest total score; ties: earlier systems and host
    names first. ``table[i]``: system i's candidates. Each system's top three eligible
    candidates are enough for an optimal assignment of three systems."""
    options: list[list[Candidate | None]] = []
    for cands in table:
        ranked = sorted((c for c in cands if c.eligible), key=lambda c: (-c.score, c.host))
        options.append([*ranked[: len(table)], None])
    best: tuple[int, list[Candidate | None]] = (-1, [None] * len(table))
    for combo in product(*options):
        hosts = [c.host for c in combo if c is not None]
        if len(hosts) != len(set(hosts)):
            continue
        total = sum(c.score for c in combo if c is not None)
        if total > best[0]:
            best = (total, list(combo))
    return best[1]


def _yes(v: Any) -> str:
    return "yes" if v is True else "no" if v is False else "not measured"


def _setup_diffs(p: Profile, system: dict[str, Any], docker: str) -> list[str]:
    out = []
    if p.driver != system["storage_driver"]:
        stand_in = _stand_in(system, p.driver)
        out.append(
            stand_in.split(":")[0]
            if stand_in
            else f"storage driver {p.driver} (article {system['storage_driver']})"
        )
    sys_ns = system.get("daemon_mount_namespace")
    if p.mount_ns and sys_ns and p.mount_ns != sys_ns:
        out.append(f"daemon in {_ns_words(p.mount_ns)} (article: {_ns_words(str(sys_ns))})")
    kl, akl = kernel_line(p.kernel), kernel_line(system["kernel"])
    if kl != akl:
        out.append(f"kernel {kl} line (article {akl})")
    if (p.engine or "") != docker:
        out.append(f"Docker {p.engine or 'unknown'} (article {docker})")
    return out


def files_in_tree(m: dict[str, Any]) -> bool | None:
    """Are the container's files in the host's own tree? (``in_host_tree`` when measured)."""
    if isinstance(m.get("in_host_tree"), bool):
        return bool(m["in_host_tree"])
    if m.get("host_path"):
        return True
    if m.get("container_root_is_block_device") is True or m.get("host_can_read") is False:
        return False
    return None


def pair_rows(
    entry: HostEntry, p: Profile, system: dict[str, Any], base: dict[str, Any]
) -> list[Row]:
    """Fact by fact and finding by finding, the host beside the system it partners."""
    docker = str(base["docker"]["version"])
    diffs = _setup_diffs(p, system, docker)
    why = "; ".join(diffs) if diffs else "same driver, kernel line and Docker version"
    rows: list[Row] = []
    same_version = _major(p.version) == _major(system["version"])
    rows.append(
        Row(
            "distribution",
            system["distribution"],
            p.pretty or "unknown",
            MATCH
            if p.family == system["family"] and same_version
            else PARTIAL
            if p.family == system["family"]
            else DIFFERS,
        )
    )
    kernel = p.kernel or "unknown"
    rows.append(
        Row(
            "kernel",
            system["kernel"],
            kernel,
            MATCH
            if kernel == system["kernel"]
            else PARTIAL
            if kernel_line(kernel) == kernel_line(system["kernel"])
            else DIFFERS,
        )
    )
    server = p.engine or "unknown"
    rows.append(Row("Docker version", docker, server, MATCH if server == docker else DIFFERS))
    driver = p.driver or "unknown"
    stand_in = _stand_in(system, p.driver)
    rows.append(
        Row(
            "storage driver",
            system["storage_driver"],
            driver,
            MATCH if driver == system["storage_driver"] else PARTIAL if stand_in else DIFFERS,
            stand_in or "",
        )
    )
    sys_ns = system.get("daemon_mount_namespace")
    if sys_ns:
        init = f", init {p.init} (asked)" if p.init else ""
        rows.append(
            Row(
                "daemon's mount namespace",
                f"{sys_ns} ({system.get('mount_namespace_note', '')})",
                f"{p.mount_ns}{init}" if p.mount_ns else f"not measured{init}",
                (MATCH if p.mount_ns == sys_ns else DIFFERS) if p.mount_ns else NOT_MEASURED,
            )
        )
    m = _storage_metrics(entry)
    if not m:
        where = "not measured (no storage-location result)"
    elif m.get("host_path"):
        where = redact_ids(str(m["host_path"]))
    elif m.get("daemon_ns_path"):
        where = f"only in the daemon's mount namespace: {redact_ids(str(m['daemon_ns_path']))}"
    else:
        where = f"{m.get('container_root_source') or 'unknown'} ({m.get('container_root_fstype')})"
    rows.append(Row("where container files live", system["container_files"], where, ""))
    for item, key, run_value in (
        ("files in the host's tree", "in_host_tree", files_in_tree(m) if m else None),
        ("host can read container files", "host_can_read", m.get("host_can_read")),
        ("host can change container files", "host_can_write", m.get("host_can_write")),
    ):
        article_value = system[key]
        if run_value is None:
            rows.append(Row(item, _yes(article_value), "not measured", NOT_MEASURED))
            continue
        agrees = MATCH if run_value == article_value else DIFFERS
        row_why = "" if agrees == MATCH else why
        if agrees == MATCH and diffs:
            row_why = f"same answer despite: {why}"
        rows.append(Row(item, _yes(article_value), _yes(run_value), agrees, row_why))
    via_r, via_w = m.get("host_can_read_via_daemon_ns"), m.get("host_can_write_via_daemon_ns")
    if isinstance(via_r, bool) or isinstance(via_w, bool):
        rows.append(
            Row(
                "host reaches them through /proc/<dockerd>/root",
                str(system.get("note") or "not covered by the article"),
                f"read {_yes(via_r)}, change {_yes(via_w)}",
                NO_BASELINE,
            )
        )
    expectations = base.get("expectations", {})
    for exp in entry.result.experiments:
        name = str(exp.get("name", ""))
        if name in expectations:
            v = entry.verdict(name)
            verdict = str(exp.get("verdict") or "")
            rows.append(
                Row(
                    f"{name} (no result in the article)",
                    expectations[name],
                    verdict
                    if verdict.lower().startswith((v.label, v.cls, "contained", "error"))
                    else f"{v.label}: {verdict}"
                    if verdict
                    else v.label,
                    NO_BASELINE,
                )
            )
    return rows


def _setup_words(system: dict[str, Any], base: dict[str, Any]) -> str:
    ns = system.get("daemon_mount_namespace")
    init = str(system.get("init") or "")
    parts = [f"Docker {base['docker']['version']}", str(system["storage_driver"])]
    if init:
        parts.append(f"init {init}" + (f" (daemon in {_ns_words(str(ns))})" if ns else ""))
    parts.append(f"kernel {system['kernel']}")
    return ", ".join(parts)


def _unpaired_reason(
    system: dict[str, Any],
    ranked: list[Candidate],
    chosen: dict[str, str],
    failed: list[str],
) -> str:
    eligible = [c for c in ranked if c.eligible]
    drivers = [str(system["storage_driver"]), *(system.get("stand_ins") or {})]
    if not eligible:
        why = f"no probed host runs {' or '.join(drivers)}"
    else:
        best = eligible[0]
        why = (
            f"the closest, {best.host} ({best.score}/{best.max_score}), partners "
            f"{chosen.get(best.host, 'another system')}"
        )
    if failed:
        why += f"; {len(failed)} host(s) failed before they were probed: {', '.join(failed)}"
    return f"{NO_PARTNER}: {why}"


def compare_to_baseline(entries: list[HostEntry], name: str = "article") -> BaselineComparison:
    base = load_baseline(name)
    systems: list[dict[str, Any]] = base["systems"]
    profiles = [host_profile(e) for e in entries]
    by_name = {e.name: e for e in entries}
    table = [[score(p, s, base) for p in profiles if p.probed] for s in systems]
    picks = assign(table)
    chosen = {c.host: str(s["name"]) for s, c in zip(systems, picks, strict=True) if c}
    failed = [p.host for p in profiles if not p.probed]
    pairings: list[SystemPairing] = []
    for system, cands, pick in zip(systems, table, picks, strict=True):
        ranked = sorted(cands, key=lambda c: (not c.eligible, -c.score, c.host))
        out = SystemPairing(
            system=str(system["id"]),
            system_name=str(system["name"]),
            setup=_setup_words(system, base),
            host=pick.host if pick else None,
            score=pick.score if pick else 0,
            max_score=sum(WEIGHTS.values()),
            reason=pick.reason if pick else _unpaired_reason(system, ranked, chosen, failed),
            criteria=pick.criteria if pick else [],
            candidates=[
                {
                    "host": c.host,
                    "score": c.score,
                    "eligible": c.eligible,
                    "paired_with": chosen.get(c.host),
                    "reason": c.reason,
                }
                for c in ranked
            ],
        )
        if pick is not None:
            p = next(x for x in profiles if x.host == pick.host)
            out.rows = pair_rows(by_name[pick.host], p, system, base)
            meant = by_name[pick.host].result.labels.get("stands_for")
            if meant and meant != system["id"]:
                out.reason += f" (the inventory meant it to stand for {meant})"
        pairings.append(out)
    notes: list[HostNote] = []
    by_host = {s.host: s for s in pairings if s.host}
    # each host's eligible candidates, once (not a scan of the whole table per host)
    eligible_of: dict[str, list[tuple[Candidate, dict[str, Any]]]] = {}
    for s, cands in zip(systems, table, strict=True):
        for c in cands:
            if c.eligible:
                eligible_of.setdefault(c.host, []).append((c, s))
    for p in profiles:
        if p.host in by_host:
            sp = by_host[p.host]
            notes.append(HostNote(p.host, sp.system, sp.system_name, sp.reason))
            continue
        if not p.probed:
            notes.append(
                HostNote(p.host, None, None, "no facts: the host failed before it could be probed")
            )
            continue
        mine = eligible_of.get(p.host, [])
        if mine:
            c, s = max(mine, key=lambda cs: cs[0].score)
            other = next((x.host for x in pairings if x.system == s["id"]), None)
            notes.append(
                HostNote(
                    p.host,
                    None,
                    None,
                    f"not paired: closest to {s['name']} ({c.score}/{c.max_score}), which "
                    f"is paired with {other or 'no host'}",
                )
            )
        else:
            notes.append(
                HostNote(
                    p.host,
                    None,
                    None,
                    f"not comparable: storage driver {p.driver or 'unknown'} is none of the "
                    "article's (devicemapper, aufs) nor a stand-in for them",
                )
            )
    return BaselineComparison(
        name,
        str(base["title"]),
        str(base["docker"]["version"]),
        pairings,
        notes,
        same_kernel_groups(entries, base.get("engine_changes", [])),
    )
