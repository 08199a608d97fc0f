"""Host results -> a long table -> the cross-host matrix (CSV). The only importer of pandas.

Rows of the matrix are facts and measured values (``section.metric``), columns are hosts
labelled with distribution, kernel, Docker version and storage driver. A host that failed keeps
its column: its ``status`` and ``error`` rows say why, its other cells stay empty.

Three CSVs, each in a stable order so they diff cleanly between runs:

- ``matrix.csv``: wide, rows are metrics, columns are hosts (sorted by name);
- ``results.csv``: long and tidy, one row per run x host x experiment x metric, with a unit
  (facts have an empty experiment);
- ``verdicts.csv``: one row per experiment x host (with its engine), the verdict and its class
  (see :mod:`labctl.report.classify`); a failed host or an experiment a host did not run still
  has its row.

Column labels and verdicts.csv's ``engine`` name the engine that answered (``facts.docker``:
``docker 1.5.0 | devicemapper``). An inventory label that asks for an engine or a driver is the
row ``lab.<label> (asked)``, and ``docker.as_asked`` says whether the engine is what was asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .report.classify import classify, unit_of
from .results import HostResult, RunDir

#: fact rows, in the order people read them (the article's Table 1, then engine, then limits)
FACT_ROWS: list[tuple[str, tuple[str, ...]]] = [
    ("host.distribution", ("distribution", "pretty")),
    ("host.distribution_id", ("distribution", "id")),
    ("host.distribution_version", ("distribution", "version")),
    ("host.kernel", ("kernel",)),
    ("host.arch", ("arch",)),
    ("host.hostname", ("hostname",)),
    ("host.cgroup_version", ("cgroup", "version")),
    ("host.cgroup_controllers", ("cgroup", "controllers")),
    ("docker.client_version", ("docker", "client_version")),
    ("docker.server_version", ("docker", "server_version")),
    ("docker.api_version", ("docker", "api_version")),
    ("docker.storage_driver", ("docker", "storage_driver")),
    ("docker.backing_filesystem", ("docker", "backing_filesystem")),
    ("docker.root_dir", ("docker", "root_dir")),
    ("docker.cgroup_driver", ("docker", "cgroup_driver")),
    ("docker.warnings", ("docker", "warnings")),
    ("limits.pid_max", ("limits", "pid_max")),
    ("limits.threads_max", ("limits", "threads_max")),
    ("limits.mem_total_bytes", ("limits", "mem_total_bytes")),
    ("limits.swap_total_bytes", ("limits", "swap_total_bytes")),
    ("limits.docker_root_fstype", ("limits", "docker_root_fs", "fstype")),
    ("limits.docker_root_device", ("limits", "docker_root_fs", "device")),
    ("limits.docker_root_size_bytes", ("limits", "docker_root_fs", "size_bytes")),
    ("limits.docker_root_free_bytes", ("limits", "docker_root_fs", "free_bytes")),
    ("limits.docker_root_inodes", ("limits", "docker_root_fs", "inodes")),
    ("limits.docker_root_inodes_free", ("limits", "docker_root_fs", "inodes_free")),
]


#: inventory labels that ask for something the engine itself reports: label -> fact path.
#: Their rows read ``lab.<label> (asked)`` and ``docker.as_asked`` says where they disagree.
ASKED_LABELS: dict[str, tuple[str, ...]] = {
    "storage_driver": ("docker", "storage_driver"),
    "engine": ("docker", "server_version"),
    "docker_version": ("docker", "server_version"),
}
#: label values that ask for no particular version
_ANY_VERSION = ("", "distro", "any", "latest")


def label_row(key: str) -> str:
    """``lab.suite``; ``lab.storage_driver (asked)`` for a label the engine reports too."""
    return f"lab.{key} (asked)" if key in ASKED_LABELS else f"lab.{key}"


def _version_matches(asked: str, running: str) -> bool:
    """'1.5.0' asks for 1.5.0; '20.10' for any 20.10.x (a whole dotted part, not '20.1')."""
    return running == asked or running.startswith((f"{asked}.", f"{asked}+", f"{asked}-"))


def asked_mismatches(result: HostResult) -> list[str]:
    """Where the engine that answered differs from what the inventory asked for (plain words)."""
    if not result.facts:
        return []
    out = []
    for key, path in ASKED_LABELS.items():
        asked = str(result.labels.get(key) or "")
        running = _dig(result.facts, path)
        if not running or asked.lower() in _ANY_VERSION:
            continue
        running = str(running)
        same = asked == running if key == "storage_driver" else _version_matches(asked, running)
        if not same:
            what = "storage driver" if key == "storage_driver" else "Docker"
            out.append(f"{what} {asked} asked, the engine runs {running}")
    return out


@dataclass(frozen=True)
class Cell:
    host: str
    metric: str
    value: str


def format_value(value: Any) -> str:
    """One CSV cell: booleans as true/false, lists joined, missing as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return "; ".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}={format_value(v)}" for k, v in sorted(value.items()))
    return str(value)


def _dig(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    cur: Any = data
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


def host_cells(result: HostResult) -> Iterator[Cell]:
    """The long-table rows of one host, in display order."""
    h = result.host
    yield Cell(h, "status", "ok" if result.ok else "error")
    yield Cell(h, "error", format_value(result.error["message"]) if result.error else "")
    if result.error:
        yield Cell(h, "error_kind", result.error.get("kind", ""))
    for key, value in sorted(result.labels.items()):
        yield Cell(h, label_row(key), format_value(value))
    facts = result.facts
    for metric, path in FACT_ROWS:
        yield Cell(h, metric, format_value(_dig(facts, path)))
    if facts and any(k in result.labels for k in ASKED_LABELS):
        yield Cell(h, "docker.as_asked", _as_asked(result))
    for exp in result.experiments:
        name = str(exp.get("name", "experiment"))
        yield Cell(h, f"{name}.status", format_value(exp.get("status")))
        yield Cell(h, f"{name}.verdict", format_value(exp.get("verdict")))
        err = exp.get("error")
        if isinstance(err, dict):
            yield Cell(h, f"{name}.error", format_value(err.get("message")))
        metrics = exp.get("metrics")
        if isinstance(metrics, dict):
            for key in sorted(metrics):
                yield Cell(h, f"{name}.{key}", format_value(metrics[key]))


def _as_asked(result: HostResult) -> str:
    bad = asked_mismatches(result)
    return "no: " + "; ".join(bad) if bad else "yes"


def long_table(results: Iterable[HostResult]) -> pd.DataFrame:
    rows = [(c.host, c.metric, c.value) for r in results for c in host_cells(r)]
    return pd.DataFrame(rows, columns=["host", "metric", "value"])


def engine_label(result: HostResult) -> str:
    """``docker 1.5.0 | devicemapper``: the engine that answered (facts); an inventory label
    stands in only where the engine never said, marked ``asked``."""
    facts = result.facts
    version = _dig(facts, ("docker", "server_version"))
    driver = _dig(facts, ("docker", "storage_driver"))
    asked_version = result.labels.get("engine") or result.labels.get("docker_version")
    if not version and asked_version and str(asked_version).lower() not in _ANY_VERSION:
        version = f"{asked_version} asked"
    if not driver and result.labels.get("storage_driver"):
        driver = f"{result.labels['storage_driver']} asked"
    parts = [f"docker {version}" if version else None, str(driver) if driver else None]
    return " | ".join(p for p in parts if p)


def column_label(result: HostResult) -> str:
    """``bookworm (Debian GNU/Linux 12 | 6.1.0 | docker 20.10.24 | overlay2)``."""
    facts = result.facts
    if not result.ok and not facts:
        return f"{result.host} (failed)"
    parts = [
        _dig(facts, ("distribution", "pretty")) or result.labels.get("suite"),
        facts.get("kernel"),
        engine_label(result),
    ]
    known = [str(p) for p in parts if p]
    return f"{result.host} ({' | '.join(known)})" if known else result.host


def _metric_order(table: pd.DataFrame) -> list[str]:
    """Metrics in first-seen order across hosts (fixed fact order, then experiments)."""
    seen: dict[str, None] = {}
    for metric in table["metric"]:
        seen.setdefault(metric, None)
    return list(seen)


def build_matrix(results: list[HostResult]) -> pd.DataFrame:
    """Wide matrix: one row per metric, one column per host (sorted by host name)."""
    ordered = sorted(results, key=lambda r: r.host)
    table = long_table(ordered)
    if table.empty:
        return pd.DataFrame(columns=["metric"])
    wide = table.pivot(index="metric", columns="host", values="value")
    wide = wide.reindex(index=_metric_order(table), columns=[r.host for r in ordered])
    wide = wide.fillna("")
    wide.columns = [column_label(r) for r in ordered]
    wide.index.name = "metric"
    return wide.reset_index()


def _experiment_names(results: Iterable[HostResult]) -> list[str]:
    seen: dict[str, None] = {}
    for r in results:
        for exp in r.experiments:
            seen.setdefault(str(exp.get("name", "")), None)
    seen.pop("", None)
    return sorted(seen)


def build_verdicts(
    results: list[HostResult],
    runs: Mapping[str, str] | None = None,
    experiments: Iterable[str] = (),
) -> pd.DataFrame:
    """One row per experiment x host: status, verdict, class (and run when known).

    ``experiments`` adds names asked for but absent from every host (e.g. run.json's list).
    """
    names = sorted(set(_experiment_names(results)) | {e for e in experiments if e})
    rows = []
    for r in sorted(results, key=lambda r: r.host):
        run_id = (runs or {}).get(r.host, str(r.data.get("run_id") or ""))
        by_name = {str(e.get("name", "")): e for e in r.experiments}
        if not names and r.error:
            rows.append(_verdict_row("", r, run_id, "error", r.error["message"], "error"))
        for name in names:
            exp = by_name.get(name)
            cls = classify(exp, host_failed=not r.ok).cls
            if exp is not None:
                row = _verdict_row(
                    name, r, run_id, str(exp.get("status", "")), exp.get("verdict"), cls
                )
            elif r.error:
                row = _verdict_row(name, r, run_id, "error", r.error["message"], cls)
            else:
                row = _verdict_row(name, r, run_id, "", "not run on this host", cls)
            rows.append(row)
    frame = pd.DataFrame(
        rows, columns=["experiment", "host", "engine", "status", "verdict", "class", "run"]
    )
    return frame.sort_values(["experiment", "host"], kind="stable").reset_index(drop=True)


def _verdict_row(
    name: str, r: HostResult, run_id: str, status: str, verdict: Any, cls: str
) -> dict[str, str]:
    return {
        "experiment": name,
        "host": r.host,
        "engine": engine_label(r),
        "status": status,
        "verdict": format_value(verdict),
        "class": cls,
        "run": run_id,
    }


RESULT_COLUMNS = ["run", "host", "experiment", "metric", "value", "unit"]


def result_rows(result: HostResult, run_id: str = "") -> Iterator[tuple[str, ...]]:
    """The tidy rows of one host: status, labels, facts, then each experiment's values."""
    h = result.host
    run_id = run_id or str(result.data.get("run_id") or "")
    yield (run_id, h, "", "status", "ok" if result.ok else "error", "")
    if result.error:
        yield (run_id, h, "", "error", result.error["message"], "")
        yield (run_id, h, "", "error_kind", result.error.get("kind", ""), "")
    for key, value in sorted(result.labels.items()):
        yield (run_id, h, "", label_row(key), format_value(value), "")
    facts = result.facts
    for metric, path in FACT_ROWS:
        value = _dig(facts, path)
        if value is not None:
            yield (run_id, h, "", metric, format_value(value), unit_of(metric, value))
    if facts and any(k in result.labels for k in ASKED_LABELS):
        yield (run_id, h, "", "docker.as_asked", _as_asked(result), "")
    for exp in result.experiments:
        name = str(exp.get("name", "experiment"))
        yield (run_id, h, name, "status", format_value(exp.get("status")), "")
        yield (run_id, h, name, "class", classify(exp, host_failed=not result.ok).cls, "")
        yield (run_id, h, name, "verdict", format_value(exp.get("verdict")), "")
        err = exp.get("error")
        if isinstance(err, dict):
            yield (run_id, h, name, "error", format_value(err.get("message")), "")
        if exp.get("duration_s") is not None:
            yield (run_id, h, name, "duration_s", format_value(exp["duration_s"]), "s")
        metrics = exp.get("metrics")
        if isinstance(metrics, dict):
            for key in sorted(metrics):
                value = metrics[key]
                yield (run_id, h, name, key, format_value(value), unit_of(key, value))


def build_results(results: list[HostResult], runs: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The long, tidy table: one row per run x host x experiment x metric, with its unit."""
    rows = [
        row
        for r in sorted(results, key=lambda r: r.host)
        for row in result_rows(r, (runs or {}).get(r.host, ""))
    ]
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


@dataclass(frozen=True)
class Report:
    matrix_csv: Path
    verdicts_csv: Path
    hosts: int
    failed_hosts: list[HostResult]
    results_csv: Path | None = None
    #: every file written: kind (csv name, "md", "html", "json", "plots") -> path
    outputs: dict[str, Path] = field(default_factory=dict)


def write_report(run: RunDir) -> Report:
    """Render ``matrix.csv``, ``results.csv`` and ``verdicts.csv`` of a run folder (offline)."""
    results = run.load_hosts()
    for r in results:  # the series are for plots, not for the CSVs
        for exp in r.experiments:
            exp.pop("series", None)
    declared: list[str] = []
    if run.run_file.exists():
        exps = run.read_run().get("experiments")
        declared = [str(e) for e in exps] if isinstance(exps, list) else []
    runs = {r.host: run.run_id for r in results}
    return write_exports(results, run.path, runs=runs, experiments=declared)


def write_exports(
    results: list[HostResult],
    out_dir: Path,
    *,
    runs: Mapping[str, str] | None = None,
    experiments: Iterable[str] = (),
) -> Report:
    """The three CSVs of these hosts into ``out_dir`` (``runs``: host name -> run id)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "matrix.csv": out_dir / "matrix.csv",
        "results.csv": out_dir / "results.csv",
        "verdicts.csv": out_dir / "verdicts.csv",
    }
    _write_csv(build_matrix(results), paths["matrix.csv"])
    _write_csv(build_results(results, runs), paths["results.csv"])
    _write_csv(build_verdicts(results, runs, experiments), paths["verdicts.csv"])
    return Report(
        paths["matrix.csv"],
        paths["verdicts.csv"],
        len(results),
        [r for r in results if not r.ok],
        results_csv=paths["results.csv"],
        outputs=paths,
    )


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False, lineterminator="\n")
    tmp.replace(path)
