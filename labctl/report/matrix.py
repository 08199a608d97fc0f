"""What a host's result says, row by row: the vocabulary of the report's tables and its CSV writer.

:func:`host_rows` turns one host's result into the rows of the tidy table, each tagged with its
kind (:data:`KINDS`). :mod:`labctl.report.tables` pivots them into the CSVs ``labctl report``
writes; :mod:`labctl.report.frame` gathers them into one pandas DataFrame (for analysis) whose
pivots are the same tables, byte for byte:

- ``matrix.csv``: wide, rows are facts and measured values (``section.metric``, first seen
  across hosts sorted by name), columns are hosts labelled with distribution, kernel, Docker
  version and storage driver (:func:`column_label`). A host that failed keeps its column: its
  ``status`` and ``error`` rows say why, its other cells stay empty;
- ``results.csv``: long and tidy, one row per run x host x experiment x metric, with a unit
  (facts have an empty experiment);
- ``verdicts.csv``: one row per experiment x host (with its engine), the verdict and its class
  (see :mod:`labctl.report.classify`); a failed host or an experiment a host did not run still
  has its row;
- ``series.csv`` (only when asked, ``labctl report --format series``): the series the agent
  sampled, long, one row per host x experiment x key x sample (``t``, value, unit); written here,
  host by host, without pandas.

Column labels and verdicts.csv's ``engine`` name the engine that answered (``facts.docker``:
``docker 1.5.0 | devicemapper``). An inventory label that asks for an engine or a driver is the
row ``lab.<label> (asked)``, and ``docker.as_asked`` says whether the engine is what was asked.

The CSV text is joined here (:func:`csv_text`: the bytes pandas' ``to_csv`` writes, in well
under half its time on 1,000 hosts: 0.2 s for the three CSVs, to_csv 0.36 s for results.csv and
0.34 s for matrix.csv alone).
"""

from __future__ import annotations

import csv
import io
import itertools
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import atomic_open, write_atomic
from ..results import HostResult
from .classify import classify, name_unit, series_unit, unit_of

#: a CSV as (header, rows)
Table = tuple[list[str], list[Sequence[str]]]

#: what a row of the tidy table is about: the host's own state (status, error, error_kind,
#: docker.as_asked), an inventory label, a fact, an experiment's own fields (status, class,
#: verdict, error, duration_s), a value the experiment measured
HOST, LABEL, FACT, EXPERIMENT, METRIC = "host", "label", "fact", "experiment", "metric"
KINDS: tuple[str, ...] = (HOST, LABEL, FACT, EXPERIMENT, METRIC)
#: an experiment's fields that results.csv has and the matrix leaves out
NOT_IN_MATRIX = ("class", "duration_s")
#: one row of a host: (kind, experiment, metric, value, unit); the value is None where the
#: host has nothing to say (no error, a fact it did not report): the matrix shows an empty
#: cell there, results.csv has no row
Row = tuple[str, str, str, str | None, str]

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


def host_rows(result: HostResult, class_of: ClassOf | None = None) -> Iterator[Row]:
    """The rows of one host, in the order the tables show them: status, error, labels, facts,
    then each experiment's own fields and its values (sorted by name)."""
    class_of = class_of or _class_of
    yield HOST, "", "status", "ok" if result.ok else "error", ""
    if result.error:
        yield HOST, "", "error", result.error["message"], ""
        yield HOST, "", "error_kind", result.error.get("kind", ""), ""
    else:
        yield HOST, "", "error", None, ""
    for key, label in sorted(result.labels.items()):
        yield LABEL, "", label_row(key), format_value(label), ""
    facts = result.facts
    for metric, path in FACT_ROWS:
        fact = _dig(facts, path)
        if fact is None:
            yield FACT, "", metric, None, ""
        else:
            yield FACT, "", metric, format_value(fact), unit_of(metric, fact)
    if facts and any(k in result.labels for k in ASKED_LABELS):
        yield HOST, "", "docker.as_asked", _as_asked(result), ""
    for exp in result.experiments:
        name = str(exp.get("name", "experiment"))
        yield EXPERIMENT, name, "status", format_value(exp.get("status")), ""
        yield EXPERIMENT, name, "class", class_of(exp, not result.ok), ""
        yield EXPERIMENT, name, "verdict", format_value(exp.get("verdict")), ""
        err = exp.get("error")
        if isinstance(err, dict):
            yield EXPERIMENT, name, "error", format_value(err.get("message")), ""
        if exp.get("duration_s") is not None:
            yield EXPERIMENT, name, "duration_s", format_value(exp["duration_s"]), "s"
        metrics = exp.get("metrics")
        if isinstance(metrics, dict):
            yield from _metric_rows(name, metrics)


def _metric_rows(name: str, metrics: dict[str, Any]) -> Iterator[Row]:
    for key in sorted(metrics):
        value = metrics[key]
        kind = type(value)  # exact types first: most values are strings or numbers
        if kind is str:
            yield METRIC, name, key, value, ""
        elif kind is int:
            yield METRIC, name, key, str(value), name_unit(key)
        elif kind is float:
            yield METRIC, name, key, f"{value:.6g}", name_unit(key)
        else:
            yield METRIC, name, key, format_value(value), unit_of(key, value)


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


@dataclass(frozen=True)
class Report:
    matrix_csv: Path
    verdicts_csv: Path
    hosts: int
    failed_hosts: list[HostResult]
    results_csv: Path | None = None
    #: every file written: kind (csv name, "md", "html", "json", "plots") -> path
    outputs: dict[str, Path] = field(default_factory=dict)


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
        fh.write(csv_text([SERIES_COLUMNS]))
        for r in results:
            rows: list[Sequence[str]] = list(series_rows(r, (runs or {}).get(r.host, "")))
            if rows:
                fh.write(csv_text(rows))
    return path


def write_csv(table: Table, path: Path) -> None:
    """A table (header, rows) as a CSV file, see :func:`csv_text`."""
    header, rows = table
    write_atomic(path, csv_text([header, *rows]))


def csv_text(rows: list[Sequence[str]]) -> str:
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
