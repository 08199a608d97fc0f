"""The claims ledger: every statement of the article that a lab can test, settled by one run.

Each claim in ``article.json`` (``claims``) names the rule that settles it; a rule here reads the
run (the hosts that partner the article's systems, or every host of a kind) and answers with a
:class:`ClaimResult`: ``reproduced``, ``contradicted`` (with the most likely cause the run itself
shows), ``not settled by this run`` (why: no such host, no such check) or ``cannot be tested
here`` (why: e.g. aufs, which no Debian kernel carries). The evidence names the host and the
metric rows it rests on.
"""

from __future__ import annotations

from typing import Any

from ..model import HostEntry, dig
from .byhand import driver_switch, hand_mount
from .load import engine_driver, storage_metrics
from .model import (
    CONTRADICTED,
    NOT_SETTLED,
    REPRODUCED,
    UNTESTABLE,
    Base,
    ClaimResult,
)
from .ruleset import Outcome, Rule, Run, engine_of, evidence, kernel_of, metric, no_partner


def _init_words(e: HostEntry) -> str:
    init = e.result.labels.get("engine_init")
    ns = dig(e.result.facts, "docker", "mount_namespace")
    where = {"host": "the host's", "private": "a private"}.get(str(ns), "an unknown")
    return f"its daemon is in {where} mount namespace" + (f" (init {init})" if init else "")


def files_in_host_tree(claim: dict[str, Any], run: Run) -> Outcome:
    """The partner of ``claim["system"]`` finds the container's files in its own tree (or not,
    as ``claim["expect"]`` says) and can read and change them (or cannot)."""
    e = run.partners.get(claim["system"])
    if e is None:
        return no_partner(claim, claim["system"])
    m = storage_metrics(e)
    if not m:
        return NOT_SETTLED, [e.name], [], "no storage-location result"
    want = bool(claim["expect"])
    seen = {k: m.get(k) for k in ("in_host_tree", "host_can_read", "host_can_write")}
    ev = [evidence(e, f"storage-location.{k}", v) for k, v in seen.items()]
    if all(v is want for v in seen.values()):
        return REPRODUCED, [e.name], ev, ""
    return CONTRADICTED, [e.name], ev, _init_words(e)


def thin_sparse_file(claim: dict[str, Any], run: Run) -> Outcome:
    """device-mapper hosts keep images and container disks in a sparse loop file, thin
    provisioned: the pool file is much larger than what it holds on disk."""
    dm = [e for e in run.entries if engine_driver(e) == "devicemapper"]
    if not dm:
        return NOT_SETTLED, [], [], "no device-mapper host in this run"
    hosts, ev = [], []
    for e in dm:
        size, held = None, None
        for exp in ("disk-limited", "disk"):
            size = size or metric(e, exp, "pool_file_size_bytes")
            held = held or metric(e, exp, "pool_file_allocated_before_bytes")
        total = dig(e.result.facts, "docker", "driver_status", "Data Space Total")
        if size and held is not None:
            hosts.append(e.name)
            ev.append(evidence(e, "disk-limited.pool_file_size_bytes", size))
            ev.append(evidence(e, "disk-limited.pool_file_allocated_before_bytes", held))
            if held >= size / 2:
                return CONTRADICTED, hosts, ev, f"{e.name}'s pool file is not sparse"
        elif total:
            ev.append(evidence(e, "docker.driver_status.Data Space Total", total))
    if not hosts:
        why = "the pool file's size and allocation come from the disk or disk-limited check"
        return NOT_SETTLED, [e.name for e in dm], ev, why
    return REPRODUCED, hosts, ev, ""


def upstart_devicemapper_like_7_0(claim: dict[str, Any], run: Run) -> Outcome:
    """Ubuntu 14.04 with devicemapper behaves like CentOS 7.0: a 1.5.0 host started by the
    upstart job on devicemapper does not find the container's files in its tree."""
    hosts = [
        e
        for e in run.engines_1_5()
        if e.result.labels.get("engine_init") == "upstart" and engine_driver(e) == "devicemapper"
    ]
    if not hosts:
        why = "no 1.5.0 host started by the upstart job on devicemapper (the preset's u1404-dm)"
        return NOT_SETTLED, [], [], why
    e = hosts[0]
    m = storage_metrics(e)
    if not m:
        return NOT_SETTLED, [e.name], [], "no storage-location result"
    ev = [evidence(e, f"storage-location.{k}", m.get(k)) for k in ("in_host_tree", "host_can_read")]
    if m.get("in_host_tree") is False:
        return REPRODUCED, [e.name], ev, ""
    return (
        CONTRADICTED,
        [e.name],
        ev,
        (
            f"{_init_words(e)}: Docker 1.5.0's upstart job gives the daemon no mount namespace "
            "of its own, so device-mapper containers are mounted in the host's tree, as on "
            "CentOS 6.6"
        ),
    )


def _reading(e: HostEntry, claim: dict[str, Any]) -> tuple[str, Any]:
    """(row, value) that a fact claim reads on one host: a fact (``claim["fact"]``, a path in
    the host's facts) or one experiment's metric (``claim["experiment"]``, ``["metric"]``)."""
    if "fact" in claim:
        path = [str(p) for p in claim["fact"]]
        return ".".join(path), dig(e.result.facts, *path)
    return f"{claim['experiment']}.{claim['metric']}", metric(
        e, claim["experiment"], claim["metric"]
    )


def engine_fact(claim: dict[str, Any], run: Run) -> Outcome:
    """An era fact about the 1.5.0 engine, read on each of its hosts (a fact or a metric): the
    value must be ``claim["equals"]`` (or start with ``claim["starts"]``)."""
    hosts = [e for e in run.engines_1_5() if _reading(e, claim)[1] is not None]
    if claim.get("driver"):
        hosts = [e for e in hosts if engine_driver(e) == claim["driver"]]
    if not hosts:
        what = claim.get("experiment") or ".".join(claim.get("fact", []))
        return NOT_SETTLED, [], [], f"no Docker 1.5.0 host with {what} measured"
    ev = [evidence(e, *_reading(e, claim)) for e in hosts]

    def holds(value: Any) -> bool:
        if "equals" in claim:
            return bool(value == claim["equals"])
        return str(value).startswith(str(claim["starts"]))

    wrong = [e for e in hosts if not holds(_reading(e, claim)[1])]
    if wrong:
        return CONTRADICTED, [e.name for e in hosts], ev, f"{wrong[0].name} differs"
    return REPRODUCED, [e.name for e in hosts], ev, ""


def engine_class(claim: dict[str, Any], run: Run) -> Outcome:
    """The verdict class of one check on every 1.5.0 host must be ``claim["class"]``."""
    exp = claim["experiment"]
    hosts = [e for e in run.engines_1_5() if e.experiment(exp)]
    measured = [e for e in hosts if e.verdict(exp).cls in ("affected", "contained")]
    if not measured:
        return NOT_SETTLED, [e.name for e in hosts], [], f"no Docker 1.5.0 host measured {exp}"
    ev = [f"{e.name}: {exp} = {e.verdict(exp).cls}" for e in measured]
    wrong = [e for e in measured if e.verdict(exp).cls != claim["class"]]
    if wrong:
        return (
            CONTRADICTED,
            [e.name for e in measured],
            ev,
            (f"{wrong[0].name}: {(wrong[0].experiment(exp) or {}).get('verdict') or ''}"),
        )
    return REPRODUCED, [e.name for e in measured], ev, ""


def swap_unbounded(claim: dict[str, Any], run: Run) -> Outcome:
    """Ubuntu 14.04's kernel had swap accounting off: the engine warned "No swap limit support"
    and -m did not bound swap. Settled on the partner of ``claim["system"]``."""
    e = run.partners.get(claim["system"])
    if e is None:
        return no_partner(claim, claim["system"])
    keys = ("engine_swap_limit_warning", "memory_swap_limit_applied", "host_swap_total_bytes")
    got = {k: metric(e, "memory-limited", k) for k in keys}
    if got["engine_swap_limit_warning"] is None and got["memory_swap_limit_applied"] is None:
        return NOT_SETTLED, [e.name], [], "no memory-limited result"
    ev = [evidence(e, f"memory-limited.{k}", v) for k, v in got.items()]
    if got["engine_swap_limit_warning"] and not got["memory_swap_limit_applied"]:
        return REPRODUCED, [e.name], ev, ""
    return (
        CONTRADICTED,
        [e.name],
        ev,
        (
            "this host's kernel keeps swap accounting on (the engine gave no swap warning and set "
            "--memory-swap): Ubuntu 14.04's 3.13 kernel had it off (swapaccount=0 by default)"
        ),
    )


def drivers_offered(claim: dict[str, Any], run: Run) -> Outcome:
    """Table 3: the storage drivers a system's engine and kernel offered, and its default,
    against what drivers-available measured on the partners of ``claim["systems"]`` (or, where
    they did not run it, on a host of the same engine and kernel: what starts depends on those
    alone)."""
    hosts = [run.partners.get(s) for s in claim["systems"]]
    measured = [e for e in hosts if e is not None and metric(e, "drivers-available", "candidates")]
    if not measured:  # what drivers start depends on the engine and kernel: a twin will do
        twins = {(engine_of(e), kernel_of(e)) for e in hosts if e is not None}
        measured = [
            e
            for e in run.entries
            if (engine_of(e), kernel_of(e)) in twins
            and metric(e, "drivers-available", "candidates")
        ]
    if not measured:
        why = "needs the drivers-available check on a host that partners " + " or ".join(
            claim["systems"]
        )
        return NOT_SETTLED, [e.name for e in hosts if e], [], why
    missing = dict(claim.get("cannot", {}))
    ev, notes, wrong = [], [], []
    for e in measured:
        offered = str(metric(e, "drivers-available", "drivers_available") or "").split(",")
        default = metric(e, "drivers-available", "default_driver")
        ev.append(evidence(e, "drivers-available.drivers_available", ",".join(offered)))
        ev.append(evidence(e, "drivers-available.default_driver", default))
        wrong += [
            f"{e.name} lacks {d}" for d in claim["offers"] if d not in offered and d not in missing
        ]
        if claim["default"] not in missing and default != claim["default"]:
            wrong.append(f"{e.name} picks {default}, not {claim['default']}")
        extra = [d for d in offered if d and d not in claim["offers"]]
        if extra:
            notes.append(f"{e.name} also offers {', '.join(extra)} ({claim['extra_cause']})")
    names = [e.name for e in measured]
    if wrong:
        return CONTRADICTED, names, ev, "; ".join(wrong + notes)
    if missing:
        return (
            UNTESTABLE,
            names,
            ev,
            "; ".join(
                [f"{d}: {why}" for d, why in missing.items()]
                + ["the others are offered as the article says"]
                + notes
            ),
        )
    return REPRODUCED, names, ev, "; ".join(notes)


def untestable(claim: dict[str, Any], run: Run) -> Outcome:
    """What no host here can run (``claim["because"]``); the stand-in's answer as evidence."""
    e = run.partners.get(claim.get("system", ""))
    ev = []
    if e is not None and storage_metrics(e):
        m = storage_metrics(e)
        ev = [
            f"{e.name} ({engine_driver(e)}, the stand-in): storage-location.{k} = {m.get(k)}"
            for k in ("in_host_tree", "host_can_write")
        ]
    return UNTESTABLE, [e.name] if e is not None else [], ev, str(claim["because"])


RULES: dict[str, Rule] = {
    "files_in_host_tree": files_in_host_tree,
    "thin_sparse_file": thin_sparse_file,
    "upstart_devicemapper_like_7_0": upstart_devicemapper_like_7_0,
    "engine_fact": engine_fact,
    "engine_class": engine_class,
    "swap_unbounded": swap_unbounded,
    "drivers_offered": drivers_offered,
    "hand_mount": hand_mount,
    "driver_switch": driver_switch,
    "untestable": untestable,
}


def settle(
    base: Base, entries: list[HostEntry], partners: dict[str, str | None]
) -> list[ClaimResult]:
    """Every claim of the baseline, settled by this run (``partners``: system id -> host)."""
    by_name = {e.name: e for e in entries}
    run = Run(entries, {s: by_name.get(h or "") for s, h in partners.items()}, base)
    out = []
    for claim in base.get("claims", []):
        verdict, hosts, evidence, why = RULES[claim["rule"]](claim, run)
        out.append(ClaimResult(claim["id"], claim["text"], verdict, hosts, grouped(evidence), why))
    return out


def grouped(evidence: list[str]) -> list[str]:
    """``host: row = value`` lines with the same row and value as one line naming every host
    (``c66, c70: docker.git_commit = a8a31ef``), in first-seen order."""
    hosts_of: dict[str, list[str]] = {}
    for line in evidence:
        host, sep, said = line.partition(": ")
        if not sep or " " in host:
            hosts_of.setdefault(line, [])
            continue
        hosts_of.setdefault(said, []).append(host)
    return [f"{', '.join(h)}: {said}" if h else said for said, h in hosts_of.items()]
