"""Terminal output for report, compare and runs: rich tables and a progress bar.

The CLI stays thin: it picks JSON or these renderables and prints them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from .classify import LABELS

if TYPE_CHECKING:
    from .baseline import BaselineComparison
    from .build import ReportOutcome, Tick
    from .compare import Comparison
    from .runs import RunRow
    from .samekernel import SameKernelGroup

CLASS_STYLE = {
    "affected": "bold red",
    "contained": "green",
    "not-measured": "dim",
    "error": "yellow",
    "unclassified": "blue",
}
AGREE_STYLE = {"match": "green", "partial": "cyan", "differs": "bold red"}


@contextmanager
def progress_bar(console: Console, what: str) -> Iterator[Tick | None]:
    """A transient rich progress bar on a terminal; nothing (None) otherwise."""
    if not console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    with RichProgress(
        TextColumn(f"[bold]{what}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("", total=None)

        def tick(done: int, total: int, message: str) -> None:
            bar.update(task, completed=done, total=total or None, description=message)

        yield tick


def report_summary(outcome: ReportOutcome) -> RenderableType:
    data = outcome.data
    counts: dict[str, int] = {}
    for e in data.entries:
        for x in data.experiments:
            cls = e.verdict(x).cls
            counts[cls] = counts.get(cls, 0) + 1
    line = Text(f"{len(data.entries)} hosts, {len(data.failed)} failed: ")
    first = True
    for cls, label in LABELS.items():
        if counts.get(cls):
            if not first:
                line.append(", ")
            line.append(f"{counts[cls]} {label}", style=CLASS_STYLE[cls])
            first = False
    if data.plots_left_out:
        line.append(f"; {data.plots_left_out} series not drawn (--max-plots)", style="dim")
    return line


def compare_table(cmp: Comparison) -> RenderableType:
    parts: list[RenderableType] = [Text(f"A = {cmp.run_a}   B = {cmp.run_b}", style="bold")]
    for a, b, how in cmp.pairs:
        if how != "name":
            parts.append(Text(f"matched {a} (A) with {b} (B) by {how}", style="dim"))
    if cmp.changes:
        table = Table(show_lines=False, header_style="bold")
        for col in ("host", "kind", "check", "A", "B", "change"):
            table.add_column(col, overflow="fold")
        for c in cmp.changes:
            style = "bold" if c.kind in ("verdict", "status", "host") else None
            table.add_row(c.host, c.kind, c.item, c.a, c.b, c.note, style=style)
        parts.append(table)
    for h in cmp.only_a:
        parts.append(Text(f"{h}: only in A ({cmp.run_a})", style="yellow"))
    for h in cmp.only_b:
        parts.append(Text(f"{h}: only in B ({cmp.run_b})", style="yellow"))
    if cmp.same_kernel:
        parts.append(same_kernel_table(cmp.same_kernel))
    parts.append(Text(cmp.summary()))
    return Group(*parts)


def baseline_table(cmp: BaselineComparison) -> RenderableType:
    parts: list[RenderableType] = [
        Text(f"{cmp.title}; Docker {cmp.docker}", style="bold"),
    ]
    for s in cmp.systems:
        head = Text(f"\n{s.system_name}", style="bold")
        head.append(f" ({s.setup})", style="dim")
        if s.host:
            head.append(f"  <-> {s.host}", style="bold green")
            head.append(f"  score {s.score}/{s.max_score}", style="dim")
        parts.append(head)
        parts.append(Text(f"  {s.reason}", style="" if s.host else "yellow"))
        others = [c for c in s.candidates if c["host"] != s.host and c["eligible"]]
        if others:
            words = ", ".join(
                f"{c['host']} {c['score']}"
                + (f" (paired with {c['paired_with']})" if c["paired_with"] else "")
                for c in others
            )
            parts.append(Text(f"  also considered: {words}", style="dim"))
        if not s.rows:
            continue
        table = Table(header_style="bold", expand=True)
        table.add_column("check", ratio=2, overflow="fold")
        table.add_column("article", ratio=4, overflow="fold")
        table.add_column("this run", ratio=4, overflow="fold")
        table.add_column("agrees", min_width=11, no_wrap=True)
        table.add_column("why", ratio=3, overflow="fold")
        for r in s.rows:
            table.add_row(
                r.item,
                r.article,
                r.run,
                Text(r.agrees or "-", style=AGREE_STYLE.get(r.agrees, "dim")),
                r.why,
            )
        parts.append(table)
    unpaired = [h for h in cmp.hosts if not h.comparable]
    if unpaired:
        parts.append(Text("\nHosts without a system", style="bold"))
        for h in unpaired:
            parts.append(Text(f"  {h.host}: {h.reason}", style="dim"))
    if cmp.claims:
        parts.append(claims_table(cmp))
    if cmp.same_kernel:
        parts.append(same_kernel_table(cmp.same_kernel))
    parts.append(Text("\n" + cmp.summary(), style="bold"))
    return Group(*parts)


#: how each claim verdict is shown in a terminal
CLAIM_STYLE = {
    "reproduced": "green",
    "contradicted": "bold red",
    "not settled by this run": "yellow",
    "cannot be tested here": "dim",
}


def claims_table(cmp: BaselineComparison) -> RenderableType:
    """Every claim of the article: its verdict in this run, the hosts and evidence, and the
    cause (a contradiction) or why (not settled, cannot be tested)."""
    table = Table(header_style="bold", expand=True, show_lines=True)
    table.add_column("claim", ratio=5, overflow="fold")
    table.add_column("verdict", min_width=12, overflow="fold")
    table.add_column("evidence", ratio=4, overflow="fold")
    table.add_column("cause or why", ratio=4, overflow="fold")
    for c in cmp.claims:
        table.add_row(
            f"{c.id}: {c.text}",
            Text(c.verdict, style=CLAIM_STYLE.get(c.verdict, "")),
            "\n".join(c.evidence) or "-",
            c.why,
        )
    return Group(Text(f"\nClaims of the article: {cmp.claims_summary()}", style="bold"), table)


def same_kernel_table(groups: list[SameKernelGroup]) -> RenderableType:
    """Same kernel, 2015 engine vs today's: class per host, what changed, what arrived."""
    parts: list[RenderableType] = []
    for g in groups:
        parts.append(Text(f"\n{g.heading} ({g.title})", style="bold"))
        table = Table(header_style="bold", expand=True, show_lines=True)
        table.add_column("experiment", ratio=2, overflow="fold")
        for h in g.hosts:
            table.add_column(h.label, ratio=2, overflow="fold")
        table.add_column("what changed", ratio=4, overflow="fold")
        table.add_column(
            "engine features (protection arrived / already there / changed)",
            ratio=6,
            overflow="fold",
        )
        for r in g.rows:
            cells: list[RenderableType] = [Text(r.experiment, style="bold" if r.changed else "")]
            for h in g.hosts:
                cells.append(Text(r.classes[h.name], style=CLASS_STYLE.get(r.cls[h.name], "")))
            cells.append(Text(r.what_changed, style="bold" if r.changed else "dim"))
            cells.append(Text("\n".join(f"- {p['text']}" for p in r.protections)))
            table.add_row(*cells)
        parts.append(table)
    return Group(*parts)


def runs_table(rows: list[RunRow]) -> RenderableType:
    if not rows:
        return Text("no run folders here")
    table = Table(header_style="bold")
    for col in ("run", "started", "took", "status", "hosts", "failed"):
        table.add_column(col, overflow="fold", no_wrap=col in ("run", "started", "status"))
    for r in rows:
        took = f"{r.duration_s:.0f}s" if r.duration_s is not None else ""
        status = Text(r.status, style="green" if r.status == "ok" else "yellow")
        names = ", ".join(r.hosts) if len(r.hosts) <= 6 else f"{len(r.hosts)} hosts"
        table.add_row(r.run_id, r.started, took, status, names, ", ".join(r.failed_hosts) or "")
    notes = [Text(f"{r.run_id}: {r.note}", style="yellow") for r in rows if r.note]
    return Group(table, *notes)
