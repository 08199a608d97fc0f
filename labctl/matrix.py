"""Host results -> a long table -> the cross-host matrix (CSV). The only importer of pandas.

Rows of the matrix are facts and measured values (``section.metric``), columns are hosts
labelled with distribution, kernel, Docker version and storage driver. A host that failed keeps
its column: its ``status`` and ``error`` rows say why, its other cells stay empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

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
        yield Cell(h, f"lab.{key}", format_value(value))
    facts = result.facts
    for metric, path in FACT_ROWS:
        yield Cell(h, metric, format_value(_dig(facts, path)))
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


def long_table(results: Iterable[HostResult]) -> pd.DataFrame:
    rows = [(c.host, c.metric, c.value) for r in results for c in host_cells(r)]
    return pd.DataFrame(rows, columns=["host", "metric", "value"])


def column_label(result: HostResult) -> str:
    """``bookworm (Debian GNU/Linux 12 | 6.1.0 | docker 20.10.24 | overlay2)``."""
    facts = result.facts
    if not result.ok and not facts:
        return f"{result.host} (failed)"
    parts = [
        _dig(facts, ("distribution", "pretty")) or result.labels.get("suite"),
        facts.get("kernel"),
        f"docker {v}" if (v := _dig(facts, ("docker", "server_version"))) else None,
        _dig(facts, ("docker", "storage_driver")) or result.labels.get("storage_driver"),
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


def build_verdicts(results: list[HostResult]) -> pd.DataFrame:
    rows = []
    for r in sorted(results, key=lambda r: r.host):
        for exp in r.experiments:
            rows.append(
                {
                    "experiment": exp.get("name", ""),
                    "host": r.host,
                    "status": exp.get("status", ""),
                    "verdict": format_value(exp.get("verdict")),
                }
            )
        if not r.experiments and r.error:
            rows.append(
                {"experiment": "", "host": r.host, "status": "error", "verdict": r.error["message"]}
            )
    frame = pd.DataFrame(rows, columns=["experiment", "host", "status", "verdict"])
    return frame.sort_values(["experiment", "host"], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class Report:
    matrix_csv: Path
    verdicts_csv: Path
    hosts: int
    failed_hosts: list[HostResult]


def write_report(run: RunDir) -> Report:
    """Render ``matrix.csv`` and ``verdicts.csv`` of a run folder (works offline)."""
    results = run.load_hosts()
    matrix = build_matrix(results)
    verdicts = build_verdicts(results)
    matrix_csv = run.path / "matrix.csv"
    verdicts_csv = run.path / "verdicts.csv"
    _write_csv(matrix, matrix_csv)
    _write_csv(verdicts, verdicts_csv)
    return Report(matrix_csv, verdicts_csv, len(results), [r for r in results if not r.ok])


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False, lineterminator="\n")
    tmp.replace(path)
