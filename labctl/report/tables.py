"""``labctl report``'s CSVs without pandas: the pivots of :mod:`.frame`, in plain Python.

The same rows (:func:`~.matrix.host_rows`) in, the same bytes out as
:func:`labctl.report.frame.write_csvs` (the golden-file tests hold both to them). It exists for
the report's time and memory budget alone (issue 12: 1,000 hosts in <= 2 s, <= 300 MiB):
importing pandas costs the report process 0.25-0.4 s of CPU and 60 MiB (130 MiB when pyarrow
is installed, which pandas then imports too) before any work, more than the budget has left.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ..results import HostResult
from .classify import classify
from .matrix import (
    EXPERIMENT,
    METRIC,
    NOT_IN_MATRIX,
    ClassOf,
    Table,
    class_memo,
    column_label,
    engine_label,
    host_rows,
    write_csv,
)

RESULT_COLUMNS = ["run", "host", "experiment", "metric", "value", "unit"]
VERDICT_COLUMNS = ["experiment", "host", "engine", "status", "verdict", "class", "run"]
#: what verdicts.csv shows of an experiment's record
VERDICT_FIELDS = ("status", "verdict", "class")
#: verdicts.csv's verdict where a host that did not fail has no record of a check
NOT_RUN = "not run on this host"


def unrecorded(failed: bool, problem: str) -> tuple[str, str, str]:
    """(status, verdict, class) of a check a host has no record of."""
    cls = classify(None, host_failed=failed).cls
    return ("error", problem, cls) if failed else ("", NOT_RUN, cls)


def csv_tables(
    results: Sequence[HostResult],
    runs: Mapping[str, str] | None = None,
    experiments: Iterable[str] = (),
    class_of: ClassOf | None = None,
) -> dict[str, Table]:
    """matrix.csv, results.csv and verdicts.csv of these hosts, as (header, rows) each."""
    hosts = sorted(results, key=lambda r: r.host)
    class_of = class_of or class_memo()
    long: list[Sequence[str]] = []
    cells: dict[str, dict[str, str]] = {}  # matrix key (first seen first) -> host -> value
    recorded: dict[str, dict[str, dict[str, str]]] = {}  # host -> experiment -> field -> value
    for r in hosts:
        h = r.host
        run_id = (runs or {}).get(h) or str(r.data.get("run_id") or "")
        mine = recorded[h] = {}
        for kind, experiment, metric, value, unit in host_rows(r, class_of):
            if value is None:
                key = metric
                value = ""
            else:
                long.append((run_id, h, experiment, metric, value, unit))
                key = metric
                if kind == METRIC:
                    key = f"{experiment}.{metric}"
                elif kind == EXPERIMENT:
                    if metric in VERDICT_FIELDS:
                        mine.setdefault(experiment, {})[metric] = value
                    if metric in NOT_IN_MATRIX:
                        continue
                    key = f"{experiment}.{metric}"
            by_host = cells.get(key)
            if by_host is None:
                by_host = cells[key] = {}
            by_host[h] = value
    names = [r.host for r in hosts]
    matrix: list[Sequence[str]] = [[k, *(by.get(h, "") for h in names)] for k, by in cells.items()]
    return {
        "matrix.csv": (["metric", *(column_label(r) for r in hosts)], matrix),
        "results.csv": (list(RESULT_COLUMNS), long),
        "verdicts.csv": (
            list(VERDICT_COLUMNS),
            _verdict_rows(hosts, recorded, runs or {}, experiments),
        ),
    }


def _verdict_rows(
    hosts: Sequence[HostResult],
    recorded: dict[str, dict[str, dict[str, str]]],
    runs: Mapping[str, str],
    experiments: Iterable[str],
) -> list[Sequence[str]]:
    """One row per experiment x host, by experiment then host (hosts come sorted)."""
    names = sorted({x for by in recorded.values() for x in by} | {e for e in experiments if e})
    rows: list[Sequence[str]] = []
    about = []
    for r in hosts:
        run_id = runs.get(r.host) or str(r.data.get("run_id") or "")
        problem = r.error["message"] if r.error else ""
        about.append((r.host, engine_label(r), run_id, unrecorded(not r.ok, problem)))
    if not names:  # no check at all: a failed host still says why
        return [("", h, eng, *none, run) for h, eng, run, none in about if none[0] == "error"]
    for name in names:
        for h, engine, run_id, none in about:
            fields = recorded[h].get(name)
            if fields is None:
                rows.append((name, h, engine, *none, run_id))
            else:
                status, verdict, cls = (fields[f] for f in VERDICT_FIELDS)
                rows.append((name, h, engine, status, verdict, cls, run_id))
    return rows


def write_tables(
    results: Sequence[HostResult],
    out_dir: Path,
    *,
    runs: Mapping[str, str] | None = None,
    experiments: Iterable[str] = (),
) -> dict[str, Path]:
    """The three CSVs of these hosts into ``out_dir`` (``runs``: host name -> run id)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, table in csv_tables(results, runs, experiments).items():
        paths[name] = out_dir / name
        write_csv(table, paths[name])
    return paths
