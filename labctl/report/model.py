"""The report's data: run folders -> hosts (loaded one file at a time, series split off, named),
the drawn plots, and the whole report (:class:`ReportData`) that rendering and writing share.

A report may merge several runs; a host name that appears in more than one of them is shown as
``host@run-id`` everywhere (matrix columns, tables, plots). Series (the agent's host-side samples)
are handed to a callback while their file is loaded and then dropped, so 1,000 hosts with
several thousand samples each fit in little memory.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ResultError
from ..experiments import EXPERIMENTS
from ..results import HostResult, RunDir, load_host_file
from .classify import Verdict, classify

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

    def __post_init__(self) -> None:
        self.host = self.host or self.result.host

    def experiment(self, name: str) -> dict[str, Any] | None:
        for exp in self.result.experiments:
            if exp.get("name") == name:
                return exp
        return None

    def verdict(self, name: str) -> Verdict:
        return classify(self.experiment(name), host_failed=not self.result.ok)


@dataclass(frozen=True)
class Plot:
    """One PNG drawn by :func:`labctl.report.plots.render_series`."""

    host: str
    experiment: str
    png: bytes
    #: host-side series drawn / recorded but not drawn (other unit than the container's)
    drawn: tuple[str, ...]
    not_drawn: tuple[str, ...]
    points: int


def plot_file(p: Plot) -> str:
    """The plot's file name under ``plots/`` (next to report.md)."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{p.host}--{p.experiment}")
    return f"{safe}.png"


def data_uri(p: Plot) -> str:
    """The plot embedded in report.html."""
    return "data:image/png;base64," + base64.b64encode(p.png).decode("ascii")


@dataclass
class ReportData:
    """Everything a report shows: runs, hosts in display order, experiments, plots."""

    runs: list[RunInfo]
    entries: list[HostEntry]
    experiments: list[str]
    plots: list[Plot] = field(default_factory=list)
    plots_left_out: int = 0
    generated: str = ""

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
