"""``labctl report``: one or several run folders -> CSV, Markdown, HTML (with plots) and JSON files.

The pipeline of a report, one way: :mod:`.model` loads the hosts, :mod:`.plots` draws their
series, :mod:`.render` turns the data into documents, and this module writes the files.
Hosts are read one file at a time; each experiment's series is drawn (up to ``max_plots``) while
its file is open and then dropped, so memory stays flat with the number of hosts. Progress goes
to a callback per host and per plot (the CLI shows it with rich).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..matrix import write_exports
from ..results import utc_now, write_problem
from .model import (
    HostEntry,
    Plot,
    ReportData,
    experiment_order,
    load_entries,
    open_run,
    plot_file,
)
from .plots import render_series
from .render import document, render_html, render_markdown, view

FORMATS = ("csv", "md", "html", "json")
DEFAULT_FORMATS = ("csv", "md", "html")
DEFAULT_MAX_PLOTS = 120

#: progress: (done, total, what) -- total 0 when unknown
Progress = Callable[[int, int, str], None]


@dataclass
class ReportOutcome:
    data: ReportData
    outputs: dict[str, Path]
    document: dict[str, Any]
    problems: list[str]
    exit_code: int
    #: (problem line, exit code) per failed host, in host order
    failures: list[tuple[str, int]] = field(default_factory=list)


def parse_formats(values: Sequence[str]) -> tuple[str, ...]:
    """``("csv,md", "html")`` -> ``("csv", "md", "html")``; unknown names are a ConfigError."""
    out: list[str] = []
    for value in values:
        for item in value.split(","):
            item = item.strip().lower()
            if not item:
                continue
            if item == "all":
                out.extend(FORMATS)
                continue
            if item not in FORMATS:
                raise ConfigError(
                    f"unknown report format {item!r}", hint=f"use one of {', '.join(FORMATS)}"
                )
            out.append(item)
    return tuple(dict.fromkeys(out)) or DEFAULT_FORMATS


def collect(
    run_paths: Sequence[Path],
    *,
    plots: bool = True,
    max_plots: int = DEFAULT_MAX_PLOTS,
    progress: Progress | None = None,
) -> ReportData:
    runs = [open_run(p) for p in run_paths]
    total = sum(len(r.host_files) for r in runs)
    tick = progress or (lambda _d, _t, _w: None)
    made: list[tuple[str, str, Plot]] = []  # (run id, host, plot)
    left_out = 0
    done = 0

    def on_series(entry: HostEntry, record: dict[str, Any], series: dict[str, Any]) -> None:
        nonlocal left_out
        if not plots:
            return
        if len(made) >= max_plots:
            left_out += 1
            return
        tick(done, total, f"plot {record.get('name')} on {entry.host}")
        title = f"{entry.host} ({entry.run_id})" if len(runs) > 1 else entry.host
        plot = render_series(title, record, series)
        if plot is not None:
            made.append((entry.run_id, entry.host, plot))

    def step(what: str) -> None:
        nonlocal done
        done += 1
        tick(done, total, what)

    entries = load_entries(runs, on_series=on_series, step=step)
    declared: list[str] = []
    for r in runs:
        exps = r.meta.get("experiments")
        if isinstance(exps, list):
            declared.extend(str(x) for x in exps)
    data = ReportData(runs, entries, experiment_order(entries, declared), generated=utc_now())
    # a merged report may have renamed the host (host@run) after its plots were drawn
    names = {(e.run_id, e.host): e.name for e in entries}
    data.plots = [
        Plot(names.get((run_id, host), host), p.experiment, p.png, p.drawn, p.not_drawn, p.points)
        for run_id, host, p in made
    ]
    data.plots_left_out = left_out
    return data


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write(
    data: ReportData,
    out_dir: Path,
    formats: Sequence[str],
    progress: Progress | None = None,
    problems: Sequence[str] = (),
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write the asked formats into ``out_dir``; returns (outputs, the JSON document)."""
    tick = progress or (lambda _d, _t, _w: None)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, Path] = {}
    steps = len(formats)
    if "csv" in formats:
        tick(0, steps, "writing CSV")
        rep = write_exports(data.results, out_dir, runs=data.run_of, experiments=data.experiments)
        outputs.update(rep.outputs)
    if "md" in formats or "html" in formats:
        v = view(data)
        if "md" in formats:
            tick(1, steps, "writing report.md")
            plot_dir = out_dir / "plots"
            if data.plots:
                plot_dir.mkdir(exist_ok=True)
                for p in data.plots:
                    (plot_dir / plot_file(p)).write_bytes(p.png)
                outputs["plots"] = plot_dir
            outputs["report.md"] = out_dir / "report.md"
            _atomic_text(outputs["report.md"], render_markdown(v))
        if "html" in formats:
            tick(2, steps, "writing report.html")
            outputs["report.html"] = out_dir / "report.html"
            _atomic_text(outputs["report.html"], render_html(v))
    if "json" in formats:
        outputs["report.json"] = out_dir / "report.json"
    doc = document(data, outputs)
    doc["problems"] = list(problems)
    if "json" in formats:
        _atomic_text(outputs["report.json"], json.dumps(doc, indent=2, sort_keys=True) + "\n")
    tick(steps, steps, "done")
    return outputs, doc


def host_failures(data: ReportData) -> list[tuple[str, int]]:
    """(one line, exit code) per failed host: 5 for an unusable result file, else 1."""
    out = []
    for e in data.failed:
        msg = e.result.error["message"] if e.result.error else "failed"
        line = msg if msg.startswith(f"{e.host}:") else f"{e.host}: {msg}"
        if len(data.runs) > 1:
            line = f"{e.run_id}/{line}"
        kind = e.result.error["kind"] if e.result.error else ""
        out.append((line, 5 if kind == "result" else 1))
    return out


def make_report(
    run_paths: Sequence[Path],
    out_dir: Path | None = None,
    *,
    formats: Sequence[str] = DEFAULT_FORMATS,
    plots: bool = True,
    max_plots: int = DEFAULT_MAX_PLOTS,
    progress: Progress | None = None,
) -> ReportOutcome:
    """Everything ``labctl report`` does: load, draw, write; problems are one line per host."""
    if not run_paths:
        raise ConfigError("no run folder given", hint="e.g. labctl report results/<run-id>")
    if out_dir is None:
        if len(run_paths) > 1:
            raise ConfigError("several run folders merge into one report: say where with --out DIR")
        out_dir = run_paths[0]
    want_plots = plots and ("md" in formats or "html" in formats)
    data = collect(run_paths, plots=want_plots, max_plots=max_plots, progress=progress)
    failures = host_failures(data)
    problems = [line for line, _code in failures]
    try:
        outputs, doc = write(data, out_dir, formats, progress, problems)
    except OSError as exc:
        for tmp in out_dir.glob(".*.tmp"):  # half-written files of this attempt
            tmp.unlink(missing_ok=True)
        again = " ".join(str(p) for p in run_paths)
        raise write_problem(
            exc,
            out_dir,
            hint=f"free space or fix permissions, then `labctl report {again}`",
        ) from exc
    code = next((c for _line, c in failures), 0)
    return ReportOutcome(data, outputs, doc, problems, code, failures)
