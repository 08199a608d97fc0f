"""``labctl report``: one or several run folders -> CSV, Markdown, HTML (with plots) and JSON files.

The pipeline of a report, one way: :mod:`.model` loads the hosts, :mod:`.plots` draws the
figures, :mod:`.render` turns the data into documents, and this module writes the files.
Hosts are read one file at a time; each experiment's series is thinned to a small
:class:`~.model.Line` while its file is open and then dropped, so memory stays flat with the
number of hosts. The report draws a few figures a person reads across hosts (the verdict map, one
per experiment with up to ``max_plots`` hosts); ``labctl report --host NAME`` draws one host's
series in full (:func:`make_host_report`). Tick goes to a callback per host and per figure
(the CLI shows it with rich).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ResultError
from ..files import write_atomic
from ..results import HostResult, load_host_file, utc_now, write_problem
from ..shard import shard_set
from .formats import DEFAULT_FORMATS, check_installed
from .matrix import write_series
from .model import (
    FigureJob,
    HostEntry,
    Line,
    ReportData,
    RunInfo,
    experiment_order,
    load_entries,
    open_run,
    plot_file,
    series_line,
    spread,
)
from .plots import draw_figures, warm_up
from .tables import write_tables

DEFAULT_MAX_PLOTS = 120

#: progress: (done, total, what) -- total 0 when unknown
Tick = Callable[[int, int, str], None]


@dataclass
class ReportOutcome:
    data: ReportData
    outputs: dict[str, Path]
    problems: list[str]
    exit_code: int
    #: (problem line, exit code) per failed host, in host order
    failures: list[tuple[str, int]] = field(default_factory=list)

    @functools.cached_property
    def document(self) -> dict[str, Any]:
        """The report as report.json holds it (made when first asked, or by ``--format json``)."""
        return _document(self.data, self.outputs, self.problems)


def _document(
    data: ReportData, outputs: dict[str, Path], problems: Sequence[str]
) -> dict[str, Any]:
    from .render import document

    doc = document(data, outputs)
    doc["problems"] = list(problems)
    return doc


def _declared(runs: Sequence[RunInfo]) -> list[str]:
    declared: list[str] = []
    for r in runs:
        exps = r.meta.get("experiments")
        if isinstance(exps, list):
            declared.extend(str(x) for x in exps)
    return declared


def collect(
    run_paths: Sequence[Path],
    *,
    plots: bool = True,
    max_plots: int = DEFAULT_MAX_PLOTS,
    progress: Tick | None = None,
    pool: Executor | None = None,
) -> ReportData:
    """Load the runs; with ``plots``, draw the verdict map and one figure per experiment with
    up to ``max_plots`` hosts' series (evenly spread over the hosts by name).

    With a ``pool`` (one worker process: :func:`figure_pool`), the figures are drawn there while
    the caller goes on (CSV, tables); :func:`figures_done` collects them. Without, here.
    """
    runs = [open_run(p) for p in run_paths]
    total = sum(len(r.host_files) for r in runs)
    tick = progress or (lambda _d, _t, _w: None)
    lines: dict[str, list[Line]] = {}  # experiment -> a line per host that recorded series
    done = 0

    def on_series(entry: HostEntry, record: dict[str, Any], series: dict[str, Any]) -> None:
        line = series_line(entry.host, entry.run_id, record, series)
        if line is not None:
            lines.setdefault(str(record.get("name", "")), []).append(line)

    def step(what: str) -> None:
        nonlocal done
        done += 1
        tick(done, total, what)

    entries = load_entries(runs, on_series=on_series if plots else None, step=step)
    data = ReportData(
        runs, entries, experiment_order(entries, _declared(runs)), generated=utc_now()
    )
    if plots and entries:
        job = figure_job(data, lines, max_plots)
        data.plots_left_out = job.left_out
        if pool is None:
            tick(0, 0, "drawing the figures")
            data.plots = draw_figures(job)
        else:
            data.pending = pool.submit(draw_figures, job)
    return data


def figure_job(data: ReportData, lines: dict[str, list[Line]], max_plots: int) -> FigureJob:
    """What the figures need: every host's verdicts and, per experiment, the lines drawn (up to
    ``max_plots``, evenly spread over the hosts in display order, named and classed)."""
    # a merged report may have renamed hosts (host@run); lines follow the display order
    by_key = {(e.run_id, e.host): (i, e) for i, e in enumerate(data.entries)}
    job = FigureJob(
        [e.name for e in data.entries],
        list(data.experiments),
        [[e.verdict(x).cls for x in data.experiments] for e in data.entries],
    )
    for x in [*data.experiments, *(x for x in lines if x not in data.experiments)]:
        recorded = sorted(lines.get(x, []), key=lambda ln: by_key[(ln.run_id, ln.host)][0])
        if not recorded:
            continue
        for ln in recorded:
            entry = by_key[(ln.run_id, ln.host)][1]
            ln.host, ln.cls = entry.name, entry.verdict(x).cls
        drawn = [recorded[i] for i in spread(len(recorded), max_plots)]
        job.left_out += len(recorded) - len(drawn)
        note = ""
        if len(drawn) < len(recorded):
            note = f"evenly spread by host name, --max-plots {max_plots}"
        job.lines.append((x, drawn, len(recorded), note))
    return job


@contextlib.contextmanager
def _batch_gc() -> Iterator[None]:
    """No cyclic garbage collection while a report is made: what it allocates (the hosts, a
    row per value, a cell per host and experiment) lives until the end, and a collection would
    walk all of it again and again (a fifth of the time on 1,000 hosts). Back on after."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@contextlib.contextmanager
def figure_pool(wanted: bool = True) -> Iterator[Executor | None]:
    """One worker process (forked) that draws the figures beside the main work: it imports
    matplotlib while the hosts load, then draws while the CSVs and tables are made. None when
    not ``wanted`` or where fork is not available. Ended (and its process reaped) on every path.
    """
    if not wanted or "fork" not in multiprocessing.get_all_start_methods():
        yield None
        return
    pool = ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_end_with_parent,
        initargs=(os.getpid(),),
    )
    try:
        pool.submit(warm_up)
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _end_with_parent(parent: int, every: float = 0.5) -> None:
    """In the figure worker: exit when the process that forked it is gone. A worker waits on
    its task queue, whose ends it shares with the parent, so a parent killed by SIGKILL would
    leave it waiting forever (holding the parent's stdout and stderr open)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(0)

    threading.Thread(target=watch, name="labctl-parent-watch", daemon=True).start()


def figures_done(data: ReportData, tick: Tick | None = None) -> None:
    """Wait for the figures the worker draws (see :func:`collect`) and keep them in ``data``."""
    if data.pending is None:
        return
    if tick is not None:
        tick(0, 0, "drawing the figures")
    try:
        data.plots = data.pending.result()
    except BrokenProcessPool as exc:
        raise ResultError(
            "the process drawing the report's figures died (out of memory?)",
            hint="labctl report --no-plots, or a smaller --max-plots",
        ) from exc
    finally:
        data.pending = None


def write(
    data: ReportData,
    out_dir: Path,
    formats: Sequence[str],
    progress: Tick | None = None,
    problems: Sequence[str] = (),
) -> tuple[dict[str, Path], dict[str, Any] | None]:
    """Write the asked formats into ``out_dir``; returns (outputs, the JSON document when
    report.json was written)."""
    tick = progress or (lambda _d, _t, _w: None)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, Path] = {}
    steps = len(formats)
    if "csv" in formats:
        tick(0, steps, "writing CSV")
        # the frame's pivots without pandas (frame.write_csvs writes the same bytes): the
        # 1,000-host report's budget has no room for importing pandas, see .tables
        outputs.update(
            write_tables(data.results, out_dir, runs=data.run_of, experiments=data.experiments)
        )
    if "parquet" in formats:
        from .frame import entries_frame, write_parquet  # pandas: only here

        outputs["results.parquet"] = write_parquet(
            entries_frame(data.entries), out_dir / "results.parquet"
        )
    _documents(data, out_dir, formats, outputs, tick)
    if "series" in formats:
        tick(steps - 1, steps, "writing series.csv")
        outputs["series.csv"] = write_series(
            _with_series(data), out_dir / "series.csv", data.run_of
        )
    doc = None
    if "json" in formats:
        outputs["report.json"] = out_dir / "report.json"  # listed in the document itself
        doc = _document(data, outputs, problems)
        write_atomic(outputs["report.json"], json.dumps(doc, indent=2, sort_keys=True) + "\n")
    tick(steps, steps, "done")
    return outputs, doc


def _documents(
    data: ReportData,
    out_dir: Path,
    formats: Sequence[str],
    outputs: dict[str, Path],
    tick: Tick,
) -> None:
    """report.md (with plots/) and report.html, as asked."""
    if "md" not in formats and "html" not in formats:
        return
    # jinja2 and the comparison with the study: imported here, once the figure worker is
    # forked (it has no use for them)
    from .render import (
        html_template,
        markdown_template,
        plot_view,
        render_html,
        render_markdown,
        view,
    )

    steps = len(formats)
    v = view(data)
    md = markdown_template() if "md" in formats else None  # compiled while the figures are
    html = html_template() if "html" in formats else None  # still being drawn
    figures_done(data, tick)
    v.update(plot_view(data))
    if "md" in formats:
        tick(1, steps, "writing report.md")
        plot_dir = out_dir / "plots"
        if data.plots:
            plot_dir.mkdir(exist_ok=True)
            for p in data.plots:
                write_atomic(plot_dir / plot_file(p), p.png)
            outputs["plots"] = plot_dir
        outputs["report.md"] = out_dir / "report.md"
        write_atomic(outputs["report.md"], render_markdown(v, md))
    if "html" in formats:
        tick(2, steps, "writing report.html")
        outputs["report.html"] = out_dir / "report.html"
        write_atomic(outputs["report.html"], render_html(v, html))


def _with_series(data: ReportData) -> Iterator[HostResult]:
    """Each host's result with its series, in results.csv's order: its file read again (the
    report dropped the series as it loaded them), under the report's name for it."""
    for e in sorted(data.entries, key=lambda e: e.name):
        again = load_host_file(e.result.path, e.run_id)
        if again.data:  # a file that became unreadable since has no series to give
            yield replace(again, host=e.name)


def host_failures(data: ReportData) -> list[tuple[str, int]]:
    """(one line, exit code) per failed host: 5 for an unusable result file, else 1.

    The shards of one inventory (``--shard K/N``) merge as one run: their hosts are named as in
    one run, and a shard that is not given is one more line."""
    out = []
    shards = shard_set([r.meta for r in data.runs])
    for e in data.failed:
        msg = e.result.error["message"] if e.result.error else "failed"
        line = msg if msg.startswith(f"{e.host}:") else f"{e.host}: {msg}"
        if len(data.runs) > 1 and shards is None:
            line = f"{e.run_id}/{line}"
        kind = e.result.error["kind"] if e.result.error else ""
        out.append((line, 5 if kind == "result" else 1))
    if shards is not None and shards.missing:
        missing = ", ".join(f"{k}/{shards.count}" for k in shards.missing)
        out.append((f"shard {missing} of this inventory is not in the report: its hosts are "
                    "missing from the matrix", 1))  # fmt: skip
    return out


def make_report(
    run_paths: Sequence[Path],
    out_dir: Path | None = None,
    *,
    formats: Sequence[str] = DEFAULT_FORMATS,
    plots: bool = True,
    max_plots: int = DEFAULT_MAX_PLOTS,
    progress: Tick | None = None,
) -> ReportOutcome:
    """Everything ``labctl report`` does: load, draw, write; problems are one line per host."""
    if not run_paths:
        raise ConfigError("no run folder given", hint="e.g. labctl report results/<run-id>")
    check_installed(formats)
    if out_dir is None:
        if len(run_paths) > 1:
            raise ConfigError("several run folders merge into one report: say where with --out DIR")
        out_dir = run_paths[0]
    want_plots = plots and ("md" in formats or "html" in formats)
    with _batch_gc(), figure_pool(want_plots) as pool:
        data = collect(
            run_paths, plots=want_plots, max_plots=max_plots, progress=progress, pool=pool
        )
        return _finish(data, run_paths, out_dir, formats, progress)


def _finish(
    data: ReportData,
    run_paths: Sequence[Path],
    out_dir: Path,
    formats: Sequence[str],
    progress: Tick | None,
    again: str = "",
) -> ReportOutcome:
    """Write ``data``'s files; a failed write is one line, with this attempt's temp files gone."""
    failures = host_failures(data)
    problems = [line for line, _code in failures]
    try:
        outputs, doc = write(data, out_dir, formats, progress, problems)
    except OSError as exc:
        for tmp in out_dir.glob(".*.tmp"):  # half-written files of this attempt
            tmp.unlink(missing_ok=True)
        again = " ".join([*(str(p) for p in run_paths), again]).strip()
        raise write_problem(
            exc,
            out_dir,
            hint=f"free space or fix permissions, then `labctl report {again}`",
        ) from exc
    code = next((c for _line, c in failures), 0)
    outcome = ReportOutcome(data, outputs, problems, code, failures)
    if doc is not None:
        outcome.__dict__["document"] = doc  # made already: the cached property's value
    return outcome


def host_out_dir(out_dir: Path, host: str) -> Path:
    """Where ``labctl report --host NAME`` writes: ``<out>/host-<NAME>/``."""
    safe = "".join(c if c.isalnum() or c in "._@-" else "_" for c in host)
    return out_dir / f"host-{safe}"


def make_host_report(
    run_paths: Sequence[Path],
    host: str,
    out_dir: Path | None = None,
    *,
    formats: Sequence[str] = DEFAULT_FORMATS,
    plots: bool = True,
    progress: Tick | None = None,
) -> ReportOutcome:
    """One host's report with its detailed plots (every experiment's series in full, as
    :func:`labctl.report.plots.render_series` draws them) in ``<out>/host-<NAME>/``.

    ``host`` is a display name (``centos7``, or ``centos7@RUN`` in a merged report); a name no
    run holds is a ConfigError listing a few that exist.
    """
    from .plots import render_series

    if not run_paths:
        raise ConfigError("no run folder given", hint="e.g. labctl report results/<run-id>")
    check_installed(formats)
    if out_dir is None and len(run_paths) > 1:
        raise ConfigError("several run folders merge into one report: say where with --out DIR")
    runs = [open_run(p) for p in run_paths]
    tick = progress or (lambda _d, _t, _w: None)
    # every host is loaded (names may need their run id) but only this host's series drawn
    wanted: list[tuple[HostEntry, dict[str, Any], dict[str, Any]]] = []

    def on_series(entry: HostEntry, record: dict[str, Any], series: dict[str, Any]) -> None:
        if entry.host == host.split("@", 1)[0]:
            wanted.append((entry, record, series))

    entries = load_entries(runs, on_series=on_series if plots else None)
    chosen = [e for e in entries if host in (e.name, e.host)]
    if len(chosen) != 1:
        names = [e.name for e in entries]
        near = ", ".join(n for n in names if n.startswith(host[:3]))[:200] or ", ".join(names[:8])
        why = "is in several runs: name it host@run" if chosen else "is not in this report"
        raise ConfigError(f"host {host!r} {why}", hint=f"hosts: {near}")
    entry = chosen[0]
    data = ReportData(
        runs, [entry], experiment_order([entry], _declared(runs)), generated=utc_now()
    )
    drawn = [(e, r, s) for e, r, s in wanted if e is entry]
    for n, (_e, record, series) in enumerate(drawn):
        tick(n, len(drawn), f"plot {record.get('name')} on {entry.name}")
        plot = render_series(entry.name, record, series)
        if plot is not None:
            data.plots.append(plot)
    target = host_out_dir(out_dir or run_paths[0], entry.name)
    return _finish(data, run_paths, target, formats, progress, f"--host {host}")
