"""Host results -> a long table -> the cross-host matrix (CSV). The only importer of pandas.

The CSVs are written from plain rows with :mod:`csv` (the same bytes pandas wrote, in a fraction
of the time on 1,000 hosts); pandas is imported lazily, only by the ``build_*`` functions that
hand a DataFrame to a caller.

Rows of the matrix are facts and measured values (``section.metric``), columns are hosts
labelled with distribution, kernel, Docker version and storage driver. A host that failed keeps
its column: its ``status`` and ``error`` rows say why, its other cells stay empty.

Three CSVs (and a fourth on request), each in a stable order so they diff cleanly between runs:

- ``matrix.csv``: wide, rows are metrics, columns are hosts (sorted by name);
- ``results.csv``: long and tidy, one row per run x host x experiment x metric, with a unit
  (facts have an empty experiment);
- ``verdicts.csv``: one row per experiment x host (with its engine), the verdict and its class
  (see :mod:`labctl.report.classify`); a failed host or an experiment a host did not run still
  has its row;
- ``series.csv`` (only when asked, ``labctl report --format series``): the series the agent
  sampled, long, one row per host x experiment x key x sample (``t``, value, unit).

Column labels and verdicts.csv's ``engine`` name the engine that answered (``facts.docker``:
``docker 1.5.0 | devicemapper``). An inventory label that asks for an engine or a driver is the
row ``lab.<label> (asked)``, and ``docker.as_asked`` says whether the engine is what was asked.
"""

from __future__ import annotations

import csv
import io
import itertools
import operator
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..files import atomic_open, write_atomic
from ..results import HostResult, RunDir
from .classify import classify, name_unit, series_unit, unit_of

if TYPE_CHECKING:
    import pandas as pd

#: a CSV as (header, rows)
Table = tuple[list[str], list[Sequence[str]]]

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
    ("docker.mount_namespace", ("docker", "mount_namespace")),
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


#: a record's verdict class: (record, or None when the host has none; the host failed) -> class
ClassOf = Callable[[dict[str, Any] | None, bool], str]


def _class_of(record: dict[str, Any] | None, host_failed: bool) -> str:
    return classify(record, host_failed=host_failed).cls


def class_memo() -> ClassOf:
    """:func:`~labctl.report.classify.classify` remembered per record, for one set of results
    that stays alive while it is used (records are told apart by identity)."""
    memo: dict[tuple[int, bool], str] = {}

    def class_of(record: dict[str, Any] | None, host_failed: bool) -> str:
        key = (id(record), host_failed)
        cls = memo.get(key)
        if cls is None:
            cls = memo[key] = classify(record, host_failed=host_failed).cls
        return cls

    return class_of


@dataclass(frozen=True)
class Cell:
    host: str
    metric: str
    value: str


def format_value(value: Any) -> str:
    """One CSV cell: booleans as true/false, lists joined, missing as empty."""
    kind = type(value)  # exact types first: the common cases of ~400,000 cells on 1,000 hosts
    if kind is str:
        return value
    if kind is int:
        return str(value)
    if kind is float:
        return f"{value:.6g}"
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
    for metric, value in host_values(result):
        yield Cell(h, metric, value)


def host_values(result: HostResult) -> Iterator[tuple[str, str]]:
    """(metric, value) of one host, in display order: :func:`host_cells` without the host."""
    yield "status", "ok" if result.ok else "error"
    yield "error", format_value(result.error["message"]) if result.error else ""
    if result.error:
        yield "error_kind", result.error.get("kind", "")
    for key, value in sorted(result.labels.items()):
        yield label_row(key), format_value(value)
    facts = result.facts
    for metric, path in FACT_ROWS:
        yield metric, format_value(_dig(facts, path))
    if facts and any(k in result.labels for k in ASKED_LABELS):
        yield "docker.as_asked", _as_asked(result)
    for exp in result.experiments:
        name = str(exp.get("name", "experiment"))
        yield f"{name}.status", format_value(exp.get("status"))
        yield f"{name}.verdict", format_value(exp.get("verdict"))
        err = exp.get("error")
        if isinstance(err, dict):
            yield f"{name}.error", format_value(err.get("message"))
        metrics = exp.get("metrics")
        if isinstance(metrics, dict):
            prefix = f"{name}."
            for key in sorted(metrics):
                value = metrics[key]
                kind = type(value)
                if kind is str:
                    yield prefix + key, value
                elif kind is int:
                    yield prefix + key, str(value)
                else:
                    yield prefix + key, format_value(value)


def _as_asked(result: HostResult) -> str:
    bad = asked_mismatches(result)
    return "no: " + "; ".join(bad) if bad else "yes"


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


def matrix_table(results: list[HostResult]) -> Table:
    """Wide matrix rows: one per metric (first seen across hosts), one column per host (by
    name), empty where a host has no such metric."""
    ordered = sorted(results, key=lambda r: r.host)
    # metric -> host -> value, metrics in first-seen order
    cells: defaultdict[str, dict[str, str]] = defaultdict(dict)
    for r in ordered:
        h = r.host
        for metric, value in host_values(r):
            cells[metric][h] = value
    hosts = [r.host for r in ordered]
    rows: list[Sequence[str]] = [
        [m, *map(by.get, hosts, itertools.repeat(""))] for m, by in cells.items()
    ]
    return ["metric", *(column_label(r) for r in ordered)], rows


def _frame(table: Table) -> pd.DataFrame:
    import pandas as pd

    header, rows = table
    return pd.DataFrame([list(r) for r in rows], columns=header)


def build_matrix(results: list[HostResult]) -> pd.DataFrame:
    """Wide matrix: one row per metric, one column per host (sorted by host name)."""
    return _frame(matrix_table(results))


def _experiment_names(results: Iterable[HostResult]) -> list[str]:
    seen: dict[str, None] = {}
    for r in results:
        for exp in r.experiments:
            seen.setdefault(str(exp.get("name", "")), None)
    seen.pop("", None)
    return sorted(seen)


VERDICT_COLUMNS = ["experiment", "host", "engine", "status", "verdict", "class", "run"]


def verdicts_table(
    results: list[HostResult],
    runs: Mapping[str, str] | None = None,
    experiments: Iterable[str] = (),
    class_of: ClassOf | None = None,
) -> Table:
    """One row per experiment x host: status, verdict, class (and run when known).

    ``experiments`` adds names asked for but absent from every host (e.g. run.json's list).
    """
    class_of = class_of or _class_of
    names = sorted(set(_experiment_names(results)) | {e for e in experiments if e})
    rows: list[Sequence[str]] = []
    for r in sorted(results, key=lambda r: r.host):
        run_id = (runs or {}).get(r.host, str(r.data.get("run_id") or ""))
        by_name = {str(e.get("name", "")): e for e in r.experiments}
        engine = engine_label(r)
        if not names and r.error:
            rows.append(("", r.host, engine, "error", r.error["message"], "error", run_id))
        for name in names:
            exp = by_name.get(name)
            cls = class_of(exp, not r.ok)
            if exp is not None:
                status, verdict = str(exp.get("status", "")), format_value(exp.get("verdict"))
            elif r.error:
                status, verdict = "error", r.error["message"]
            else:
                status, verdict = "", "not run on this host"
            rows.append((name, r.host, engine, status, verdict, cls, run_id))
    rows.sort(key=lambda row: (row[0], row[1]))  # stable: by experiment, then host
    return list(VERDICT_COLUMNS), rows


def build_verdicts(
    results: list[HostResult],
    runs: Mapping[str, str] | None = None,
    experiments: Iterable[str] = (),
) -> pd.DataFrame:
    """:func:`verdicts_table` as a DataFrame."""
    return _frame(verdicts_table(results, runs, experiments))


RESULT_COLUMNS = ["run", "host", "experiment", "metric", "value", "unit"]


def result_rows(
    result: HostResult, run_id: str = "", class_of: ClassOf | None = None
) -> Iterator[tuple[str, ...]]:
    """The tidy rows of one host: status, labels, facts, then each experiment's values."""
    class_of = class_of or _class_of
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
        yield (run_id, h, name, "class", class_of(exp, not result.ok), "")
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
                kind = type(value)  # exact types first: most values are strings or numbers
                if kind is str:
                    yield (run_id, h, name, key, value, "")
                elif kind is int:
                    yield (run_id, h, name, key, str(value), name_unit(key))
                elif kind is float:
                    yield (run_id, h, name, key, f"{value:.6g}", name_unit(key))
                else:
                    yield (run_id, h, name, key, format_value(value), unit_of(key, value))


def results_table(
    results: list[HostResult],
    runs: Mapping[str, str] | None = None,
    class_of: ClassOf | None = None,
) -> Table:
    """The long, tidy table: one row per run x host x experiment x metric, with its unit."""
    rows: list[Sequence[str]] = [
        row
        for r in sorted(results, key=lambda r: r.host)
        for row in result_rows(r, (runs or {}).get(r.host, ""), class_of)
    ]
    return list(RESULT_COLUMNS), rows


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
    paths = {name: out_dir / name for name in ("matrix.csv", "results.csv", "verdicts.csv")}
    class_of = class_memo()  # each record classified once for results.csv and verdicts.csv
    _write_csv(matrix_table(results), paths["matrix.csv"])
    _write_csv(results_table(results, runs, class_of), paths["results.csv"])
    _write_csv(verdicts_table(results, runs, experiments, class_of), paths["verdicts.csv"])
    return Report(
        paths["matrix.csv"],
        paths["verdicts.csv"],
        len(results),
        [r for r in results if not r.ok],
        results_csv=paths["results.csv"],
        outputs=paths,
    )


SERIES_COLUMNS = ["run", "host", "experiment", "key", "t", "value", "unit"]


def _sample(value: Any) -> str:
    """One sample as recorded: numbers in full (``repr`` of a float), a gap as empty."""
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is float:
        return repr(value)
    return format_value(value)


def series_rows(result: HostResult, run_id: str = "") -> Iterator[tuple[str, ...]]:
    """Every sample of one host's series (its file as loaded, series included): one row per
    experiment x key x sample, beside the sample's ``t`` (seconds since the experiment's start,
    paired by position) and the key's unit (``container``: the container's own usage)."""
    h = result.host
    run_id = run_id or str(result.data.get("run_id") or "")
    for exp in result.experiments:
        series = exp.get("series")
        t_raw = series.get("t") if isinstance(series, dict) else None
        if not isinstance(series, dict) or not isinstance(t_raw, list):
            continue
        name = str(exp.get("name", "experiment"))
        t = list(map(_sample, t_raw))
        for key in sorted(series):
            values = series[key]
            if key == "t" or not isinstance(values, list):
                continue
            unit = series_unit(key, exp)
            for when, value in zip(t, map(_sample, values), strict=False):
                yield (run_id, h, name, key, when, value, unit)


def write_series(
    results: Iterable[HostResult], path: Path, runs: Mapping[str, str] | None = None
) -> Path:
    """``series.csv``: :func:`series_rows` of each host in turn (hosts as given, written one at
    a time: a long run's samples never sit in memory together)."""
    with atomic_open(path) as fh:
        fh.write(_csv_text([SERIES_COLUMNS]))
        for r in results:
            rows: list[Sequence[str]] = list(series_rows(r, (runs or {}).get(r.host, "")))
            if rows:
                fh.write(_csv_text(rows))
    return path


def _write_csv(table: Table, path: Path) -> None:
    """A table (header, rows) as a CSV file, see :func:`_csv_text`."""
    header, rows = table
    write_atomic(path, _csv_text([header, *rows]))


def _csv_text(rows: list[Sequence[str]]) -> str:
    """Quoted only where needed, ``\n`` line ends (the bytes pandas' ``to_csv`` wrote).

    A row none of whose fields holds a comma, a quote or a line break is joined as it is (the
    csv module would not quote it either); the few others go through :mod:`csv`. Every row is
    joined at once and the others are found by counting (C loops: 200,000 rows on 1,000 hosts).
    """
    lines = list(map(",".join, rows))
    widths = list(map(len, rows))
    # a row whose line holds more commas than its separators has a comma in a field
    seps = map(operator.sub, widths, itertools.repeat(1))
    commas = map(str.count, lines, itertools.repeat(","))
    odd = set(itertools.compress(itertools.count(), map(operator.ne, commas, seps)))
    if widths and min(widths) < 2:
        odd.update(i for i, width in enumerate(widths) if width < 2)
    text = "\n".join(lines)
    if '"' in text or "\r" in text or text.count("\n") != len(lines) - 1:
        odd.update(i for i, line in enumerate(lines) if _CSV_SPECIAL.search(line))
    if odd:
        quoted = io.StringIO()
        writer = csv.writer(quoted, lineterminator="\n")
        for i in odd:
            writer.writerow(rows[i])
            lines[i] = quoted.getvalue()[:-1]
            quoted.seek(0)
            quoted.truncate()
        text = "\n".join(lines)
    return text + "\n"


_CSV_SPECIAL = re.compile('["\r\n]')
