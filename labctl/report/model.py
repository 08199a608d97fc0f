"""The report's data: run folders -> hosts (loaded one file at a time, series split off, named),
the drawn plots, and the whole report (:class:`ReportData`) that rendering and writing share.

A report may merge several runs; a host name that appears in more than one of them is shown as
``host@run-id`` everywhere (matrix columns, tables, plots). Series (the agent's host-side samples)
are handed to a callback while their file is loaded and then dropped, so 1,000 hosts with
several thousand samples each fit in little memory: the report's figures keep only a thinned
:class:`Line` per host and experiment (at most :data:`LINE_POINTS` points, as ``array('d')``).

The pure logic of the figures lives here too (which series a host's line shows, thinning,
sampling hosts for a crowded figure, grouping hosts by their verdicts); :mod:`.plots` draws.
"""

from __future__ import annotations

import base64
import math
import re
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ResultError
from ..experiments import EXPERIMENTS
from ..results import HostResult, RunDir, load_host_file
from .classify import CLASSES, Verdict, classify, series_unit

#: the study's checks in the order people read them; other experiments follow, first seen first
KNOWN_EXPERIMENTS: tuple[str, ...] = EXPERIMENTS
_HEX_ID = re.compile(r"[0-9a-f]{12,}")


@dataclass
class RunInfo:
    path: Path
    run_id: str
    meta: dict[str, Any]
    host_files: list[Path] = field(default_factory=list)

    @property
    def status(self) -> str:
        status = self.meta.get("status")
        if status:
            return str(status)
        return "finished" if self.meta.get("finished") else "unfinished"


@dataclass
class HostEntry:
    """One host of a report: its result (series removed), its run and its display name."""

    result: HostResult
    run_id: str
    name: str
    #: experiment name -> series keys that were recorded (the series itself is not kept)
    series_keys: dict[str, list[str]] = field(default_factory=dict)

    #: the host's own name (``name`` may add ``@run-id``)
    host: str = ""
    #: experiment name -> its class (computed once: the matrix, tables, CSVs and JSON all ask)
    _verdicts: dict[str, Verdict] = field(default_factory=dict, repr=False, compare=False)
    #: experiment name -> its record (the first of that name), made on first use
    _by_name: dict[str, dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.host = self.host or self.result.host

    def experiment(self, name: str) -> dict[str, Any] | None:
        if self._by_name is None:
            self._by_name = {}
            for exp in self.result.experiments:
                self._by_name.setdefault(str(exp.get("name")), exp)
        return self._by_name.get(name)

    def verdict(self, name: str) -> Verdict:
        v = self._verdicts.get(name)
        if v is None:
            v = self._verdicts[name] = classify(
                self.experiment(name), host_failed=not self.result.ok
            )
        return v


@dataclass(frozen=True)
class Plot:
    """One PNG of a report: a figure across hosts (the verdict map, one per experiment), or one
    host's series (:func:`labctl.report.plots.render_series`, for ``labctl report --host``)."""

    #: file name under ``plots/`` without ``.png``
    key: str
    #: "" for the verdict map
    experiment: str
    title: str
    caption: str
    png: bytes
    #: the host of a one-host plot; "" for a figure across hosts
    host: str = ""


def plot_file(p: Plot) -> str:
    """The plot's file name under ``plots/`` (next to report.md)."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in p.key)
    return f"{safe}.png"


def data_uri(p: Plot) -> str:
    """The plot embedded in report.html."""
    return "data:image/png;base64," + base64.b64encode(p.png).decode("ascii")


# -- the figures' data: pure logic, no matplotlib ----------------------------------------------

#: points kept per host line in a figure across hosts (a panel is a few hundred pixels wide)
LINE_POINTS = 100
_PRIMARY_WORDS = ("free", "available")


_NUMBER_TYPES = frozenset((int, float))


def floats(values: Any, n: int) -> list[float] | None:
    """``values`` as n floats (NaN where not a number), or None when none is a number."""
    if not isinstance(values, list) or len(values) != n:
        return None
    if _NUMBER_TYPES.issuperset(map(type, values)):  # all numbers (most series): C loops
        out = list(map(float, values))
        return None if all(map(math.isnan, out)) else out
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float):
            out.append(math.nan)
        else:
            out.append(float(v))
    return out if any(not math.isnan(v) for v in out) else None


def host_series(series: dict[str, Any], n: int) -> dict[str, list[float]]:
    """The host-side series (every key but ``t`` and ``container``) that hold numbers."""
    out: dict[str, list[float]] = {}
    for key in sorted(series):
        if key in ("t", "container"):
            continue
        values = floats(series[key], n)
        if values is not None:
            out[key] = values
    return out


def primary_order(keys: Iterable[str], units: dict[str, str], container_unit: str) -> list[str]:
    """Host series keys, best first: a 'free' amount in the container's unit answers best."""

    def score(k: str) -> tuple[int, int, str]:
        return (
            0 if units[k] == container_unit else 1,
            0 if any(w in k for w in _PRIMARY_WORDS) else 1,
            k,
        )

    return sorted(keys, key=score)


def pick_primary(keys: list[str], units: dict[str, str], container_unit: str) -> str:
    """The host series that answers the question (see :func:`primary_order`)."""
    return primary_order(keys, units, container_unit)[0]


def thin(values: Sequence[Any], most: int) -> list[Any]:
    """At most ``most`` (>= 2) of ``values``, evenly spread, the first and the last kept."""
    n = len(values)
    if n <= most:
        return list(values)
    return [values[round(i * (n - 1) / (most - 1))] for i in range(most)]


def spread(n: int, cap: int) -> list[int]:
    """Indices of at most ``cap`` of ``n`` items, evenly spread, first (and last) included."""
    if cap <= 0 or n <= 0:
        return []
    if n <= cap:
        return list(range(n))
    if cap == 1:
        return [0]
    return sorted({round(i * (n - 1) / (cap - 1)) for i in range(cap)})


@dataclass
class Line:
    """One host's series of one experiment, thinned for a figure across hosts.

    ``moved``: how far the host's main series (``key``) went from its first value, in ``unit``;
    ``container``: the container's usage (in ``c_unit``), None when not recorded.
    """

    host: str
    run_id: str
    key: str
    unit: str
    c_unit: str
    t: array[float]
    moved: array[float]
    container: array[float] | None
    cls: str = ""


def series_line(
    host: str, run_id: str, record: dict[str, Any], series: dict[str, Any], most: int = LINE_POINTS
) -> Line | None:
    """The line a figure across hosts draws for one record, or None when there is none."""
    t_raw = series.get("t")
    if not isinstance(t_raw, list) or len(t_raw) < 2:
        return None
    n = len(t_raw)
    c_unit = series_unit("container", record)
    units = {k: series_unit(k, record) for k in series if k not in ("t", "container")}
    values: list[float] | None = None
    key = ""
    for key in primary_order(units, units, c_unit):
        raw = series[key]
        if isinstance(raw, list) and len(raw) == n:
            values = floats(thin(raw, most), min(n, most))
        if values is not None:  # the best key that holds numbers
            break
    if values is None:
        return None
    m = len(values)
    v0 = next((v for v in values if not math.isnan(v)), 0.0)
    t = floats(thin(t_raw, most), m) or [float(i) for i in range(m)]
    c_raw = series.get("container")
    container = (
        floats(thin(c_raw, most), m) if isinstance(c_raw, list) and len(c_raw) == n else None
    )
    return Line(
        host,
        run_id,
        key,
        units[key],
        c_unit,
        array("d", t),
        array("d", [abs(v - v0) for v in values]),
        None if container is None else array("d", container),
    )


@dataclass
class FigureJob:
    """What the figures across hosts need (sent to the process that draws them)."""

    hosts: list[str]
    experiments: list[str]
    #: per host, its class in each experiment
    patterns: list[list[str]]
    #: per experiment: (name, the lines drawn, hosts that recorded series, a note on the cap)
    lines: list[tuple[str, list[Line], int, str]] = field(default_factory=list)
    #: host series recorded but not drawn
    left_out: int = 0


def verdict_order(patterns: Sequence[Sequence[str]]) -> list[list[int]]:
    """Hosts grouped by their verdict pattern (one class per experiment): the groups, largest
    first (ties: the pattern in class order), each a list of host indices in their given order."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, pattern in enumerate(patterns):
        groups.setdefault(tuple(pattern), []).append(i)
    rank = {c: i for i, c in enumerate(CLASSES)}

    def key(item: tuple[tuple[str, ...], list[int]]) -> tuple[int, list[int]]:
        pattern, members = item
        return -len(members), [rank.get(c, len(rank)) for c in pattern]

    return [members for _pattern, members in sorted(groups.items(), key=key)]


@dataclass
class ReportData:
    """Everything a report shows: runs, hosts in display order, experiments, plots."""

    runs: list[RunInfo]
    entries: list[HostEntry]
    experiments: list[str]
    plots: list[Plot] = field(default_factory=list)
    #: host series recorded but not drawn in the figures across hosts (beyond ``--max-plots``)
    plots_left_out: int = 0
    generated: str = ""
    #: the comparison with the 2015 study, made once for every document that shows it
    baseline: Any = field(default=None, repr=False)
    #: the figures while a worker draws them (a Future of ``plots``), see ``build.collect``
    pending: Any = field(default=None, repr=False)

    @property
    def results(self) -> list[HostResult]:
        return [e.result for e in self.entries]

    @property
    def run_of(self) -> dict[str, str]:
        return {e.name: e.run_id for e in self.entries}

    @property
    def failed(self) -> list[HostEntry]:
        return [e for e in self.entries if not e.result.ok]


SeriesSink = Callable[[HostEntry, dict[str, Any], dict[str, Any]], None]
Step = Callable[[str], None]


def open_run(path: Path) -> RunInfo:
    """A run folder's run.json and host file list; a ResultError (one line) when it is none."""
    run = RunDir(path)
    meta = run.read_run()
    if not run.hosts_dir.is_dir():
        raise ResultError(f"{path} has no hosts/ folder", hint="is this a labctl results folder?")
    files = sorted(run.hosts_dir.glob("*.json"))
    return RunInfo(path, str(meta.get("run_id") or run.run_id), meta, files)


def load_entries(
    runs: Sequence[RunInfo],
    *,
    on_series: SeriesSink | None = None,
    step: Step | None = None,
) -> list[HostEntry]:
    """Every host of every run, series handed to ``on_series`` then dropped; sorted for display.

    One run: hosts by name. Several: by name, then by the order of the runs given.
    """
    loaded: list[HostEntry] = []
    for run in runs:
        for path in run.host_files:
            result = load_host_file(path, run.run_id)
            entry = HostEntry(result, run.run_id, result.host)
            for exp in result.experiments:
                series = exp.pop("series", None)
                if isinstance(series, dict) and series:
                    entry.series_keys[str(exp.get("name", ""))] = sorted(series)
                    if on_series is not None:
                        on_series(entry, exp, series)
            loaded.append(entry)
            if step is not None:
                step(f"{run.run_id}/{result.host}")
    _name_entries(loaded, len(runs))
    order = {r.run_id: i for i, r in enumerate(runs)}
    loaded.sort(key=lambda e: (e.host, order.get(e.run_id, 0), e.name))
    return loaded


def _name_entries(entries: list[HostEntry], n_runs: int) -> None:
    """``host@run`` for a host name found in more than one run (or twice in one)."""
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.host] = counts.get(e.host, 0) + 1
    for e in entries:
        if counts[e.host] > 1 and n_runs > 1:
            e.name = f"{e.host}@{e.run_id}"
    names: dict[str, int] = {}
    for e in entries:
        names[e.name] = names.get(e.name, 0) + 1
    for e in entries:
        if names[e.name] > 1:  # the same host twice in one run (a copied file)
            e.name = f"{e.name}/{e.result.path.stem}"
        if e.name != e.host:
            e.result = replace(e.result, host=e.name)


def experiment_order(entries: Iterable[HostEntry], declared: Iterable[str] = ()) -> list[str]:
    """The study's order first, then any other experiment as first seen."""
    seen: dict[str, None] = {}
    for name in declared:
        seen.setdefault(name, None)
    for e in entries:
        for exp in e.result.experiments:
            seen.setdefault(str(exp.get("name", "")), None)
    seen.pop("", None)
    known = [n for n in KNOWN_EXPERIMENTS if n in seen]
    return known + [n for n in seen if n not in KNOWN_EXPERIMENTS]


def dig(data: Any, *path: str) -> Any:
    cur = data
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


def redact_ids(text: str) -> str:
    """Long hex ids (layer, container) -> ``<id>``: paths comparable across runs."""
    return _HEX_ID.sub("<id>", text)


def distribution_family(facts: dict[str, Any]) -> str | None:
    """'rhel' | 'debian' | 'suse' | other id | None, from /etc/os-release style facts."""
    ident = str(dig(facts, "distribution", "id") or "").lower()
    pretty = str(dig(facts, "distribution", "pretty") or "").lower()
    text = f"{ident} {pretty}"
    if any(w in text for w in ("centos", "rhel", "red hat", "fedora", "rocky", "alma", "oracle")):
        return "rhel"
    if any(w in text for w in ("ubuntu", "debian", "mint")):
        return "debian"
    if "suse" in text:
        return "suse"
    return ident or None
