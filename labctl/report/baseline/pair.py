"""Pairing: each of the article's systems with the closest host of a run (one host per system
at most, the highest total score; ties: the article's order, then host names), then fact by
fact and finding by finding, the host beside the system it partners. Host names and the
``labctl_stands_for`` hint are never used to pair (a hint that disagrees is noted)."""

from __future__ import annotations

from itertools import product
from typing import Any

from ..model import HostEntry, redact_ids
from ..samekernel import same_kernel_groups
from .claims import settle
from .load import Profile, files_in_tree, host_profile, kernel_line, load_baseline, major
from .load import storage_metrics as storage_metrics_of
from .model import (
    DIFFERS,
    MATCH,
    NO_BASELINE,
    NO_PARTNER,
    NOT_MEASURED,
    PARTIAL,
    WEIGHTS,
    Base,
    BaselineComparison,
    Candidate,
    HostNote,
    Row,
    System,
    SystemPairing,
)
from .score import ns_words, score, stand_in


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


def _setup_diffs(p: Profile, system: System, docker: str) -> list[str]:
    out = []
    if p.driver != system["storage_driver"]:
        instead = stand_in(system, p.driver)
        out.append(
            instead.split(":")[0]
            if instead
            else f"storage driver {p.driver} (article {system['storage_driver']})"
        )
    sys_ns = system.get("daemon_mount_namespace")
    if p.mount_ns and sys_ns and p.mount_ns != sys_ns:
        out.append(f"daemon in {ns_words(p.mount_ns)} (article: {ns_words(str(sys_ns))})")
    kl, akl = kernel_line(p.kernel), kernel_line(system["kernel"])
    if kl != akl:
        out.append(f"kernel {kl} line (article {akl})")
    if (p.engine or "") != docker:
        out.append(f"Docker {p.engine or 'unknown'} (article {docker})")
    return out


def _graded(same: bool, close: bool) -> str:
    return MATCH if same else PARTIAL if close else DIFFERS


def setup_rows(p: Profile, system: System, docker: str) -> list[Row]:
    """The host's setup beside the system's: distribution, kernel, Docker, driver, namespace."""
    same_family = p.family == system["family"]
    kernel = p.kernel or "unknown"
    server, driver = p.engine or "unknown", p.driver or "unknown"
    instead = stand_in(system, p.driver)
    rows = [
        Row("distribution", system["distribution"], p.pretty or "unknown",
            _graded(same_family and major(p.version) == major(system["version"]), same_family)),
        Row("kernel", system["kernel"], kernel,
            _graded(kernel == system["kernel"],
                    kernel_line(kernel) == kernel_line(system["kernel"]))),
        Row("Docker version", docker, server, MATCH if server == docker else DIFFERS),
        Row("storage driver", system["storage_driver"], driver,
            _graded(driver == system["storage_driver"], bool(instead)), instead or ""),
    ]  # fmt: skip
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
    return rows


def _where(m: dict[str, Any]) -> str:
    if not m:
        return "not measured (no storage-location result)"
    if m.get("host_path"):
        return redact_ids(str(m["host_path"]))
    if m.get("daemon_ns_path"):
        return f"only in the daemon's mount namespace: {redact_ids(str(m['daemon_ns_path']))}"
    return f"{m.get('container_root_source') or 'unknown'} ({m.get('container_root_fstype')})"


def storage_rows(m: dict[str, Any], system: System, diffs: list[str]) -> list[Row]:
    """The storage findings (the only results the article's text gives) beside the run's."""
    why = "; ".join(diffs) if diffs else "same driver, kernel line and Docker version"
    rows = [Row("where container files live", system["container_files"], _where(m), "")]
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
    return rows


def expectation_rows(entry: HostEntry, base: Base) -> list[Row]:
    """The resource checks beside the era's facts (the article's text has no results there)."""
    expectations = base.get("expectations", {})
    rows = []
    for exp in entry.result.experiments:
        name = str(exp.get("name", ""))
        if name not in expectations:
            continue
        v = entry.verdict(name)
        verdict = str(exp.get("verdict") or "")
        if verdict.lower().startswith((v.label, v.cls, "contained", "error")):
            said = verdict
        else:
            said = f"{v.label}: {verdict}" if verdict else v.label
        rows.append(
            Row(f"{name} (no result in the article)", expectations[name], said, NO_BASELINE)
        )
    return rows


def pair_rows(entry: HostEntry, p: Profile, system: System, base: Base) -> list[Row]:
    """Fact by fact and finding by finding, the host beside the system it partners."""
    docker = str(base["docker"]["version"])
    diffs = _setup_diffs(p, system, docker)
    return (
        setup_rows(p, system, docker)
        + storage_rows(storage_metrics_of(entry), system, diffs)
        + expectation_rows(entry, base)
    )


def _setup_words(system: System, base: Base) -> str:
    ns = system.get("daemon_mount_namespace")
    init = str(system.get("init") or "")
    parts = [f"Docker {base['docker']['version']}", str(system["storage_driver"])]
    if init:
        parts.append(f"init {init}" + (f" (daemon in {ns_words(str(ns))})" if ns else ""))
    parts.append(f"kernel {system['kernel']}")
    return ", ".join(parts)


def _unpaired_reason(
    system: System, ranked: list[Candidate], chosen: dict[str, str], failed: list[str]
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


def _pairing(
    system: System,
    cands: list[Candidate],
    pick: Candidate | None,
    chosen: dict[str, str],
    failed: list[str],
    base: Base,
) -> SystemPairing:
    """One system: its partner (or why none) and every probed host ranked for it."""
    ranked = sorted(cands, key=lambda c: (not c.eligible, -c.score, c.host))
    return SystemPairing(
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


def host_notes(
    profiles: list[Profile],
    pairings: list[SystemPairing],
    systems: list[System],
    table: list[list[Candidate]],
) -> list[HostNote]:
    """Where each host of the run stands: the system it partners, or why none."""
    by_host = {s.host: s for s in pairings if s.host}
    # each host's eligible candidates, once (not a scan of the whole table per host)
    eligible_of: dict[str, list[tuple[Candidate, System]]] = {}
    for s, cands in zip(systems, table, strict=True):
        for c in cands:
            if c.eligible:
                eligible_of.setdefault(c.host, []).append((c, s))
    notes: list[HostNote] = []
    for p in profiles:
        if p.host in by_host:
            sp = by_host[p.host]
            notes.append(HostNote(p.host, sp.system, sp.system_name, sp.reason))
        elif not p.probed:
            why = "no facts: the host failed before it could be probed"
            notes.append(HostNote(p.host, None, None, why))
        elif mine := eligible_of.get(p.host, []):
            c, s = max(mine, key=lambda cs: cs[0].score)
            other = next((x.host for x in pairings if x.system == s["id"]), None)
            why = (
                f"not paired: closest to {s['name']} ({c.score}/{c.max_score}), which "
                f"is paired with {other or 'no host'}"
            )
            notes.append(HostNote(p.host, None, None, why))
        else:
            why = (
                f"not comparable: storage driver {p.driver or 'unknown'} is none of the "
                "article's (devicemapper, aufs) nor a stand-in for them"
            )
            notes.append(HostNote(p.host, None, None, why))
    return notes


def compare_to_baseline(entries: list[HostEntry], name: str = "article") -> BaselineComparison:
    """Every system of the article with its partner in the run, and every host's place."""
    base = load_baseline(name)
    systems: list[System] = base["systems"]
    profiles = [host_profile(e) for e in entries]
    by_name = {e.name: e for e in entries}
    table = [[score(p, s, base) for p in profiles if p.probed] for s in systems]
    picks = assign(table)
    chosen = {c.host: str(s["name"]) for s, c in zip(systems, picks, strict=True) if c}
    failed = [p.host for p in profiles if not p.probed]
    pairings: list[SystemPairing] = []
    for system, cands, pick in zip(systems, table, picks, strict=True):
        out = _pairing(system, cands, pick, chosen, failed, base)
        if pick is not None:
            p = next(x for x in profiles if x.host == pick.host)
            out.rows = pair_rows(by_name[pick.host], p, system, base)
            meant = by_name[pick.host].result.labels.get("stands_for")
            if meant and meant != system["id"]:
                out.reason += f" (the inventory meant it to stand for {meant})"
        pairings.append(out)
    return BaselineComparison(
        name,
        str(base["title"]),
        str(base["docker"]["version"]),
        pairings,
        host_notes(profiles, pairings, systems, table),
        same_kernel_groups(entries, base.get("engine_changes", [])),
        settle(base, entries, {p.system: p.host for p in pairings}),
    )
