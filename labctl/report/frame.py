"""Run folders as one tidy pandas DataFrame; the matrix and the verdicts are pivots of it.

For analysis in Python or Jupyter (``labctl report`` writes the same CSVs from the same rows
with the same pivots, in plain Python: :mod:`.tables`; tests hold both to the same bytes)::

    from labctl.report.frame import load_frame, matrix_frame, verdicts_frame

    frame = load_frame(["results/A", "results/B"])  # one row per run x host x experiment x metric
    matrix_frame(frame)  # matrix.csv: a row per metric, a column per host
    verdicts_frame(frame)  # verdicts.csv: a row per experiment x host

The frame's columns: ``run``, ``host`` (``host@run`` where several runs have that host),
``experiment`` (empty for the host's own rows), ``metric``, ``value`` (as the CSVs write it:
text; None where the host has nothing to say, see :data:`~.matrix.Row`), ``unit``, ``kind``
(:data:`~.matrix.KINDS`: host, label, fact, experiment, metric), then the host's labels on every
row (:data:`HOST_COLUMNS`: distribution, kernel, engine version, storage driver, init style,
cgroup version, the engine and the matrix's column heading). Hosts come sorted by name, each
host's rows in :func:`~.matrix.host_rows`' order. A host whose file is damaged or another host's
is loaded as the report loads it (:func:`~.model.load_entries`): ``status`` error, and its
``error`` row is the problem ``labctl report`` prints for it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..files import write_atomic
from ..results import HostResult
from .formats import check_installed
from .matrix import (
    EXPERIMENT,
    HOST,
    KINDS,
    METRIC,
    NOT_IN_MATRIX,
    ClassOf,
    Row,
    _dig,
    class_memo,
    column_label,
    engine_label,
    format_value,
    host_rows,
    write_csv,
)
from .model import HostEntry, load_entries, open_run
from .tables import RESULT_COLUMNS, VERDICT_COLUMNS, VERDICT_FIELDS, unrecorded


def _fact(*path: str) -> Callable[[HostResult], str | None]:
    def read(result: HostResult) -> str | None:
        value = _dig(result.facts, path)
        return None if value is None else format_value(value)

    return read


#: a host's labels, one column each on every row of the host: name -> how to read it
HOST_COLUMNS: dict[str, Callable[[HostResult], str | None]] = {
    "distribution": _fact("distribution", "pretty"),
    "kernel": _fact("kernel"),
    "engine_version": _fact("docker", "server_version"),
    "storage_driver": _fact("docker", "storage_driver"),
    # the init style the engine runs under is the inventory's (no host reports it)
    "init": lambda r: format_value(r.labels["engine_init"]) if "engine_init" in r.labels else None,
    "cgroup_version": _fact("cgroup", "version"),
    # verdicts.csv's engine (what answered, or what was asked where the engine never said)
    "engine": lambda r: engine_label(r) or None,
    # the matrix's column heading
    "host_label": column_label,
}
COLUMNS = [*RESULT_COLUMNS, "kind", *HOST_COLUMNS]


def _per_row(values: list[str | None], at: np.ndarray[Any, Any]) -> pd.Categorical:
    """A value per host, repeated on each of its rows (``at``: each row's host index)."""
    categories = pd.Index(sorted({v for v in values if v is not None}), dtype=object)
    per_host = pd.Categorical(values, categories=categories)
    return pd.Categorical.from_codes(per_host.codes[at], categories=categories)


_KIND_CODES = {kind: code for code, kind in enumerate(KINDS)}


def tidy_frame(
    results: Sequence[HostResult],
    runs: Mapping[str, str] | None = None,
    class_of: ClassOf | None = None,
) -> pd.DataFrame:
    """The tidy frame of these hosts (``runs``: host name -> run id, else the file's own)."""
    hosts = sorted(results, key=lambda r: r.host)
    rows: list[Row] = []
    counts: list[int] = []
    for r in hosts:
        before = len(rows)
        rows.extend(host_rows(r, class_of))
        counts.append(len(rows) - before)
    at = np.repeat(np.arange(len(hosts)), counts)
    run_ids: list[str | None] = [
        (runs or {}).get(r.host) or str(r.data.get("run_id") or "") for r in hosts
    ]
    columns: dict[str, Any] = {
        "run": _per_row(run_ids, at),
        "host": _per_row([r.host for r in hosts], at),
    }
    kind, experiment, metric, value, unit = zip(*rows, strict=True) if rows else ((),) * 5
    del rows
    # object columns, not pandas' str dtype: the values go back to the CSV writer as they are
    columns["experiment"] = pd.Series(experiment, dtype=object)
    columns["metric"] = pd.Series(metric, dtype=object)
    columns["value"] = pd.Series(value, dtype=object)
    columns["unit"] = pd.Series(unit, dtype=object)
    codes = np.fromiter(map(_KIND_CODES.__getitem__, kind), dtype=np.int8, count=len(kind))
    columns["kind"] = pd.Categorical.from_codes(codes, categories=pd.Index(KINDS, dtype=object))
    for name, read in HOST_COLUMNS.items():
        columns[name] = _per_row([read(r) for r in hosts], at)
    tidy: pd.DataFrame = pd.DataFrame(columns, copy=False)
    return tidy


def entries_frame(entries: Sequence[HostEntry]) -> pd.DataFrame:
    """The tidy frame of a report's hosts, under the report's names for them."""
    return tidy_frame(
        [e.result for e in entries], {e.name: e.run_id for e in entries}, class_memo()
    )


def load_frame(run_paths: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """One or several run folders as one tidy frame, loaded as ``labctl report`` loads them
    (series left out; a folder that is not a run is a ResultError)."""
    runs = [open_run(Path(p)) for p in run_paths]
    if not runs:
        raise ConfigError("no run folder given", hint="e.g. load_frame(['results/<run-id>'])")
    return entries_frame(load_entries(runs))


def _hosts(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per host (its ``status`` row, in the frame's order), with ``error``: the
    host's problem ("" when it has none)."""
    mine = frame[frame["kind"] == HOST]
    hosts: pd.DataFrame = mine[mine["metric"] == "status"].set_index("host", drop=False)
    errors = mine[mine["metric"] == "error"].set_index("host")["value"]
    hosts["error"] = errors.reindex(hosts.index).fillna("").to_numpy(dtype=object)
    return hosts


def matrix_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """matrix.csv: one row per fact or value (index ``metric``, first seen across the hosts in
    the frame's order), one column per host (headed by its ``host_label``), "" where empty.

    A host that says the same thing twice (a check run twice) shows the last."""
    hosts = _hosts(frame)
    kinds = frame["kind"].to_numpy(dtype=object)
    keep = (kinds != EXPERIMENT) | ~frame["metric"].isin(NOT_IN_MATRIX).to_numpy()
    metric = frame["metric"].to_numpy(dtype=object)[keep]
    experiment = frame["experiment"].to_numpy(dtype=object)[keep]
    own = np.isin(kinds[keep], (EXPERIMENT, METRIC))  # named after their experiment
    codes, keys = pd.factorize(np.where(own, experiment + "." + metric, metric))  # first seen
    values = frame["value"].to_numpy(dtype=object)[keep]
    values[pd.isna(values)] = ""
    host = frame["host"].array
    levels: list[Any] = [pd.Index(keys, dtype=object), host.categories]
    index = pd.MultiIndex(
        levels=levels,
        codes=[codes, host.codes[keep]],
        names=["metric", "host"],
        verify_integrity=False,
    )
    cells = pd.Series(values, index=index, dtype=object)
    if index.has_duplicates:
        cells = cells[~index.duplicated(keep="last")]
    wide: pd.DataFrame = (
        cells.unstack(fill_value="") if len(cells) else pd.DataFrame(index=pd.Index([]))
    )
    wide = wide.reindex(columns=hosts.index, fill_value="")
    wide.columns = pd.Index(hosts["host_label"].to_numpy(dtype=object))
    wide.index.name = "metric"
    return wide


def _unrecorded(hosts: pd.DataFrame) -> pd.DataFrame:
    """Per host, what verdicts.csv says of a check it has no record of (see
    :func:`~.tables.unrecorded`)."""
    failed = (hosts["value"] != "ok").tolist()
    rows = [unrecorded(f, p) for f, p in zip(failed, hosts["error"].tolist(), strict=True)]
    table: pd.DataFrame = pd.DataFrame(
        rows, columns=list(VERDICT_FIELDS), index=hosts.index, dtype=object
    )
    return table


def verdicts_frame(frame: pd.DataFrame, experiments: Iterable[str] = ()) -> pd.DataFrame:
    """verdicts.csv: one row per experiment x host, by experiment then host: the engine, the
    record's status, verdict and class; a host without a record of a check still has its row.

    ``experiments`` adds checks asked for but absent from every host (run.json's list)."""
    hosts = _hosts(frame)
    recorded = frame[(frame["kind"] == EXPERIMENT) & frame["metric"].isin(VERDICT_FIELDS)]
    recorded = pd.DataFrame(
        {c: recorded[c].to_numpy(dtype=object) for c in ("experiment", "host", "metric", "value")}
    ).drop_duplicates(["experiment", "host", "metric"], keep="last")
    names = sorted(set(recorded["experiment"]) | {e for e in experiments if e})
    if names:
        index = pd.MultiIndex.from_product([names, hosts.index], names=["experiment", "host"])
        wide = recorded.pivot(index=["experiment", "host"], columns="metric", values="value")
        table = wide.reindex(index=index, columns=list(VERDICT_FIELDS)).reset_index()
        fill = _unrecorded(hosts).reindex(table["host"]).set_axis(table.index)
        table = table.fillna(fill)
    else:  # no check at all: a failed host still says why
        table = _failed_without_checks(hosts)
    table["engine"] = hosts["engine"].reindex(table["host"]).to_numpy(dtype=object)
    table["run"] = hosts["run"].reindex(table["host"]).to_numpy(dtype=object)
    verdicts: pd.DataFrame = table[VERDICT_COLUMNS].fillna("").astype(object)
    return verdicts


def _failed_without_checks(hosts: pd.DataFrame) -> pd.DataFrame:
    failed = _unrecorded(hosts).loc[hosts["value"] != "ok"]
    table: pd.DataFrame = failed.reset_index(names="host").assign(experiment="")
    return table


def results_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """results.csv: the frame's rows that hold a value, in its columns."""
    results: pd.DataFrame = frame.loc[frame["value"].notna(), RESULT_COLUMNS]
    return results


def _rows(table: pd.DataFrame, where: np.ndarray[Any, Any] | None = None) -> list[Sequence[str]]:
    """A table's rows (``where`` true) as tuples of text, for the CSV writer."""
    columns = []
    for name in table.columns:
        held = table[name].to_numpy(dtype=object)
        columns.append((held if where is None else held[where]).tolist())
    return list(zip(*columns, strict=True))


def write_csvs(
    frame: pd.DataFrame, out_dir: Path, experiments: Iterable[str] = ()
) -> dict[str, Path]:
    """matrix.csv, results.csv and verdicts.csv of the frame into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("matrix.csv", "results.csv", "verdicts.csv")}
    matrix = matrix_frame(frame)
    matrix_rows: list[Sequence[str]] = [
        [key, *cells] for key, cells in zip(matrix.index, matrix.to_numpy().tolist(), strict=True)
    ]
    write_csv((["metric", *matrix.columns], matrix_rows), paths["matrix.csv"])
    # results_frame's rows, without copying the frame first
    results = _rows(frame[RESULT_COLUMNS], frame["value"].notna().to_numpy())
    write_csv((RESULT_COLUMNS, results), paths["results.csv"])
    write_csv((VERDICT_COLUMNS, _rows(verdicts_frame(frame, experiments))), paths["verdicts.csv"])
    return paths


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    """The frame as a Parquet file (with pyarrow: ``pip install 'labctl[parquet]'``); read it
    back with ``pandas.read_parquet``. Written whole or not at all, like the CSVs."""
    check_installed(["parquet"])
    buffer = io.BytesIO()
    frame.to_parquet(buffer, engine="pyarrow", index=False)
    return write_atomic(path, buffer.getvalue())
