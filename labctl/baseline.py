"""The 2015 study as data (``labctl/baseline/article.json``) and a run's hosts beside it.

Each host of a run is matched to one of the article's systems: by storage driver first (the
driver decides where a container's files live), then by distribution family (rhel / debian),
distribution version and kernel line to choose between the two device-mapper systems. Then, fact
by fact and finding by finding: what matches, what differs and why (the setup differences:
driver, kernel line, Docker version). A host that matches on neither driver nor family is said
to be not comparable, plainly.

The article's text has results only for the storage check; for the resource checks the baseline
holds era facts (expectations), shown beside the run's findings, never scored.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from .errors import ConfigError
from .report.model import HostEntry, dig, distribution_family, redact_ids

BASELINES = ("article",)

MATCH = "match"
PARTIAL = "partial"
DIFFERS = "differs"
NO_BASELINE = "no baseline"
NOT_MEASURED = "not measured"


@dataclass
class Row:
    item: str
    article: str
    run: str
    agrees: str
    why: str = ""


@dataclass
class HostBaseline:
    host: str
    system: str | None
    system_name: str | None
    #: "driver+family", "driver", "family" or "none"
    level: str
    reason: str
    rows: list[Row] = field(default_factory=list)

    @property
    def comparable(self) -> bool:
        return self.level != "none"


@dataclass
class BaselineComparison:
    baseline: str
    title: str
    docker: str
    hosts: list[HostBaseline]

    @property
    def comparable(self) -> bool:
        return any(h.comparable for h in self.hosts)

    def summary(self) -> str:
        if not self.hosts:
            return "the run has no hosts: nothing to compare with the article"
        if not self.comparable:
            return (
                "nothing in this run is comparable with the article: no host uses its storage "
                "drivers (devicemapper, aufs) or its distribution families (CentOS, Ubuntu)"
            )
        n = sum(h.comparable for h in self.hosts)
        counts: dict[str, int] = {}
        for h in self.hosts:
            for r in h.rows:
                counts[r.agrees] = counts.get(r.agrees, 0) + 1
        parts = [f"{counts.get(k, 0)} {k}" for k in (MATCH, PARTIAL, DIFFERS) if counts.get(k)]
        return f"{n} of {len(self.hosts)} hosts comparable; " + (", ".join(parts) or "no checks")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["comparable"] = self.comparable
        data["summary"] = self.summary()
        for h, src in zip(data["hosts"], self.hosts, strict=True):
            h["comparable"] = src.comparable
        return data


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
    d = dig(entry.result.facts, "docker", "storage_driver") or entry.result.labels.get(
        "storage_driver"
    )
    return str(d) if d else None


def match_system(entry: HostEntry, systems: list[dict[str, Any]]) -> tuple[Any, str, str]:
    """(system or None, level, reason) for one host."""
    facts = entry.result.facts
    if not facts:
        return None, "none", "no facts: the host failed before it could be probed"
    driver = _driver(entry)
    family = distribution_family(facts)
    version = _major(dig(facts, "distribution", "version"))
    kline = kernel_line(facts.get("kernel"))
    by_id = {s["id"]: s for s in systems}
    same_driver = [s for s in systems if s["storage_driver"] == driver]
    if same_driver:
        fam = [s for s in same_driver if s["family"] == family]
        if fam:
            best = sorted(fam, key=lambda s: (_major(s["version"]) != version, s["id"]))[0]
            if _major(best["version"]) != version and driver == "devicemapper":
                best = by_id["centos66"] if kline.startswith("2.") else by_id["centos70"]
            return best, "driver+family", f"same storage driver ({driver}) and family ({family})"
        for s in systems:
            for v in s.get("variants", []):
                if v["storage_driver"] == driver and s["family"] == family:
                    like = by_id[v["behaves_like"]]
                    return like, "driver+family", v["note"]
        best = same_driver[0]
        if driver == "devicemapper":
            best = by_id["centos66"] if kline.startswith("2.") else by_id["centos70"]
        return best, "driver", f"same storage driver ({driver}); other family ({family})"
    fam = [s for s in systems if s["family"] == family]
    if fam:
        best = sorted(fam, key=lambda s: (_major(s["version"]) != version, s["id"]))[0]
        return (
            best,
            "family",
            f"same family ({family}) only: this host uses {driver or 'an unknown driver'}, "
            f"the article's {best['name']} used {best['storage_driver']}",
        )
    return (
        None,
        "none",
        f"not comparable: storage driver {driver or 'unknown'} and family {family or 'unknown'} "
        "are not in the article",
    )


def _yes(v: Any) -> str:
    return "yes" if v is True else "no" if v is False else "not measured"


def _setup_diffs(entry: HostEntry, system: dict[str, Any], docker: str) -> list[str]:
    facts = entry.result.facts
    out = []
    driver = _driver(entry)
    if driver != system["storage_driver"]:
        out.append(f"storage driver {driver} (article {system['storage_driver']})")
    kl, akl = kernel_line(facts.get("kernel")), kernel_line(system["kernel"])
    if kl != akl:
        out.append(f"kernel {kl} line (article {akl})")
    server = str(dig(facts, "docker", "server_version") or "")
    if server != docker:
        out.append(f"Docker {server or 'unknown'} (article {docker})")
    return out


def _files_in_tree(m: dict[str, Any]) -> bool | None:
    if m.get("host_path"):
        return True
    if m.get("container_root_is_block_device") is True or m.get("host_can_read") is False:
        return False
    return None


def compare_host(entry: HostEntry, base: dict[str, Any]) -> HostBaseline:
    docker = str(base["docker"]["version"])
    system, level, reason = match_system(entry, base["systems"])
    out = HostBaseline(
        entry.name,
        system["id"] if system else None,
        system["name"] if system else None,
        level,
        reason,
    )
    if system is None:
        return out
    facts = entry.result.facts
    diffs = _setup_diffs(entry, system, docker)
    why = "; ".join(diffs) if diffs else "same driver, kernel line and Docker version"
    pretty = str(dig(facts, "distribution", "pretty") or "unknown")
    family = distribution_family(facts)
    same_version = _major(dig(facts, "distribution", "version")) == _major(system["version"])
    out.rows.append(
        Row(
            "distribution",
            system["distribution"],
            pretty,
            MATCH
            if family == system["family"] and same_version
            else PARTIAL
            if family == system["family"]
            else DIFFERS,
        )
    )
    kernel = str(facts.get("kernel") or "unknown")
    out.rows.append(
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
    server = str(dig(facts, "docker", "server_version") or "unknown")
    out.rows.append(Row("Docker version", docker, server, MATCH if server == docker else DIFFERS))
    driver = _driver(entry) or "unknown"
    out.rows.append(
        Row(
            "storage driver",
            system["storage_driver"],
            driver,
            MATCH if driver == system["storage_driver"] else DIFFERS,
        )
    )
    storage = entry.experiment("storage-location")
    m_raw = storage.get("metrics") if storage and storage.get("status") == "ok" else None
    m: dict[str, Any] = m_raw if isinstance(m_raw, dict) else {}
    if not m:
        where = "not measured (no storage-location result)"
    elif m.get("host_path"):
        where = redact_ids(str(m["host_path"]))
    else:
        where = f"{m.get('container_root_source') or 'unknown'} ({m.get('container_root_fstype')})"
    out.rows.append(Row("where container files live", system["container_files"], where, ""))
    for item, key, run_value in (
        ("files in the host's tree", "in_host_tree", _files_in_tree(m) if m else None),
        ("host can read container files", "host_can_read", m.get("host_can_read")),
        ("host can change container files", "host_can_write", m.get("host_can_write")),
    ):
        article_value = system[key]
        if run_value is None:
            out.rows.append(Row(item, _yes(article_value), "not measured", NOT_MEASURED))
            continue
        agrees = MATCH if run_value == article_value else DIFFERS
        row_why = "" if agrees == MATCH else why
        if agrees == MATCH and diffs:
            row_why = f"same answer despite: {why}"
        out.rows.append(Row(item, _yes(article_value), _yes(run_value), agrees, row_why))
    expectations = base.get("expectations", {})
    for exp in entry.result.experiments:
        name = str(exp.get("name", ""))
        if name in expectations:
            v = entry.verdict(name)
            verdict = str(exp.get("verdict") or "")
            out.rows.append(
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
    return out


def compare_to_baseline(entries: list[HostEntry], name: str = "article") -> BaselineComparison:
    base = load_baseline(name)
    return BaselineComparison(
        name,
        str(base["title"]),
        str(base["docker"]["version"]),
        [compare_host(e, base) for e in entries],
    )
