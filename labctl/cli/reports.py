"""`labctl report|compare|runs`: offline reports over run folders."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..report.formats import help_text as formats_help
from .common import (
    err_console,
    guard,
    main,
    out_console,
)


@main.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "formats",
    multiple=True,
    metavar="FMT",
    help=formats_help(),
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Folder for the report [the run folder; needed with several runs].",
)
@click.option(
    "--max-plots", type=int, default=120, show_default=True, help="Hosts drawn per figure."
)
@click.option("--no-plots", is_flag=True, help="Draw no figures (a little faster).")
@click.option(
    "--host",
    "host",
    metavar="NAME",
    help="One host's report with its series in full, in OUT/host-NAME/.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def report_cmd(
    run_dirs: tuple[Path, ...],
    formats: tuple[str, ...],
    out: Path | None,
    max_plots: int,
    no_plots: bool,
    host: str | None,
    as_json: bool,
) -> None:
    """Render a results folder (offline): matrix/results/verdicts CSV, report.md, report.html.

    The plots show every host at once (a verdict map, one figure per experiment); --host NAME
    draws one host's series in full.

    \b
    Examples:
      labctl report results/20261127-232436-4f85
      labctl report results/A results/B --out merged --format csv,html
      labctl report results/A --format json --json | jq .summary
      labctl report results/A --host centos7
    """
    import json

    from ..report.build import make_host_report, make_report
    from ..report.formats import parse_formats
    from ..report.text import progress_bar, report_summary

    def go() -> Any:
        fmts = parse_formats(formats)
        with progress_bar(err_console, "report") as tick:
            if host is not None:
                return make_host_report(
                    list(run_dirs), host, out, formats=fmts, plots=not no_plots, progress=tick
                )
            return make_report(
                list(run_dirs),
                out,
                formats=fmts,
                plots=not no_plots,
                max_plots=max_plots,
                progress=tick,
            )

    outcome = guard(go)
    if as_json:
        click.echo(json.dumps(outcome.document, indent=2, sort_keys=True))
    else:
        names = {"report.md": "markdown", "report.html": "html", "report.json": "json"}
        for kind, path in outcome.outputs.items():
            label = names.get(kind, kind.removesuffix(".csv")) + ":"
            out_console.print(f"{label:<9} {path}", soft_wrap=True)
        out_console.print(report_summary(outcome), soft_wrap=True)
    if outcome.problems:  # one print: 1,000 hosts may have hundreds (a host's words escaped)
        from rich.markup import escape

        text = "\n".join(f"[red]problem:[/] {escape(line)}" for line in outcome.problems)
        err_console.print(text, markup=True, soft_wrap=True, highlight=False)
    sys.exit(outcome.exit_code)


@main.command("compare")
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", required=False, type=click.Path(path_type=Path))
@click.option("--baseline", type=click.Choice(["article"]), help="Compare RUN_A with the study.")
@click.option(
    "--rtol", type=float, default=0.05, show_default=True, help="Relative tolerance for numbers."
)
@click.option("--all", "include_volatile", is_flag=True, help="Also timings, ids and free space.")
@click.option("--ignore", multiple=True, metavar="GLOB", help="Skip checks like 'disk.*_s'.")
@click.option("--json", "as_json", is_flag=True, help="Machine output on stdout.")
@click.option("--exit-code", is_flag=True, help="Exit 1 when anything changed (like diff).")
def compare_cmd(
    run_a: Path,
    run_b: Path | None,
    baseline: str | None,
    rtol: float,
    include_volatile: bool,
    ignore: tuple[str, ...],
    as_json: bool,
    exit_code: bool,
) -> None:
    """What changed between two runs, check by check; or a run beside the 2015 study.

    With --baseline article, each of the article's three systems (CentOS 6.6, CentOS 7.0,
    Ubuntu 14.04) is paired with the closest host of the run (engine version, storage driver
    or its stand-in, daemon mount namespace / init style, family), with the reasons, or said to
    have no comparable host; then the storage findings are checked against the article's.

    Whenever hosts share a kernel release but run different engine lines (Docker 1.5.0 and
    20.10 on one kernel; within one run or across RUN_A and RUN_B), a "same kernel, 2015
    engine vs today's" table follows: the verdict class on each host per check, what changed,
    and which protection arrived with the newer engine (--pids-limit, --storage-opt size=, ...).

    \b
    Examples:
      labctl compare results/A results/B
      labctl compare results/A --baseline article
    """
    import json

    from ..errors import ConfigError, ResultError
    from ..report.compare import unusable_files

    problems: list[str] = []

    def go() -> tuple[Any, Any]:
        if (run_b is None) == (baseline is None):
            raise ConfigError(
                "give two run folders, or one and --baseline article",
                hint="e.g. labctl compare results/A results/B",
            )
        if baseline is not None:
            from ..report.baseline import compare_to_baseline
            from ..report.model import load_entries, open_run
            from ..report.text import baseline_table

            entries = load_entries([open_run(run_a)])
            cmp = compare_to_baseline(entries, baseline)
            problems.extend(unusable_files(entries, "A"))
            return cmp, baseline_table(cmp)
        from ..report.compare import compare_runs
        from ..report.text import compare_table

        assert run_b is not None
        diff = compare_runs(
            run_a, run_b, rtol=rtol, include_volatile=include_volatile, ignore=ignore
        )
        problems.extend(diff.problems)
        return diff, compare_table(diff)

    result, table = guard(go)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    else:
        out_console.print(table, soft_wrap=False)
    for line in problems:  # a damaged host file is never compared silently
        err_console.print(f"[red]problem:[/] {line}", markup=True, soft_wrap=True, highlight=False)
    changed = getattr(result, "changed", False)
    sys.exit(ResultError.exit_code if problems else 1 if exit_code and changed else 0)


@main.command("runs")
@click.argument(
    "results_dir", required=False, default=Path("results"), type=click.Path(path_type=Path)
)
@click.option("--json", "as_json", is_flag=True, help="Machine output on stdout.")
def runs_cmd(results_dir: Path, as_json: bool) -> None:
    """List the run folders of a results folder: time, hosts, status.

    \b
    Example:
      labctl runs results
    """
    import json

    from ..report.runs import list_runs
    from ..report.text import runs_table

    rows = guard(lambda: list_runs(results_dir))
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows], indent=2, sort_keys=True))
    else:
        out_console.print(runs_table(rows), soft_wrap=False)
