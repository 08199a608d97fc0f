"""The stages chained: inventory -> provision -> probe -> report, for `labctl run` and friends.

Each function returns a :class:`RunSummary`: what was written and one line per problem. A problem
on one host never stops the other hosts; the exit code says whether anything failed.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ConfigError, Interrupted, LabctlError, PlayInterrupted, ResultError
from .hosts import HostRecord, Progress, usable_host_name
from .inventory import Inventory, load_inventory
from .probe import ProbeOptions, collect_hosts, host_from_summary, host_summary, probe_hosts
from .provision import ProvisionReport, provision_inventory
from .report.formats import DEFAULT_FORMATS
from .report.matrix import Report
from .results import RunDir, utc_now
from .shard import Shard, shard_record
from .workernode import WorkerNode


@dataclass
class RunSummary:
    run: RunDir | None = None
    report: Report | None = None
    provision: ProvisionReport | None = None
    problems: list[str] = field(default_factory=list)
    exit_code: int = 0

    def fail(self, line: str, code: int = 1) -> None:
        self.problems.append(line)
        if not self.exit_code:
            self.exit_code = code


def _with_key_opt_in(hosts: list[HostRecord], accept_new: bool) -> list[HostRecord]:
    if not accept_new:
        return hosts
    from dataclasses import replace

    return [replace(h, accept_new_host_key=True) for h in hosts]


def run_pipeline(
    inventory_path: Path,
    results_root: Path,
    *,
    do_provision: bool = True,
    options: ProbeOptions | None = None,
    limit: list[str] | None = None,
    accept_new_host_keys: bool = False,
    progress: Progress | None = None,
    asked: dict[str, object] | None = None,
    inventory: Inventory | None = None,
    full_provision: bool = False,
    shard: Shard | None = None,
    worker: WorkerNode | None = None,
) -> RunSummary:
    """Provision (optional), probe and report every host of an inventory into a new run folder
    (with ``shard``: only that slice of its hosts; with ``worker``: the play runs there)."""
    prog = progress or (lambda _h, _m: None)
    summary = RunSummary()
    inv = inventory or load_inventory(inventory_path, limit=limit)
    shard_meta: dict[str, Any] = {}
    if shard is not None:
        inv, shard_meta = sharded(inv, shard)
    run = RunDir.create(results_root)
    summary.run = run
    opts = options or ProbeOptions()
    t0 = time.monotonic()
    try:
        run.write_run(
            labctl_version=__version__,
            started=utc_now(),
            inventory=str(inventory_path.resolve()),
            asked=asked or {},
            experiments=list(opts.experiments),
            hosts=[host_summary(h) for h in inv.hosts],
            inventory_problems=[p.line() for p in inv.problems],
            **shard_meta,
        )
    except LabctlError as err:  # nothing started yet: no half run folder to `collect`
        shutil.rmtree(run.path, ignore_errors=True)
        raise ResultError(
            err.message, hint="free space or fix permissions, then run again"
        ) from err
    try:
        with run.lock():  # a `collect` of this folder waits until the run has ended
            _probe_stages(run, inv, inventory_path, summary, opts, prog, do_provision,
                          accept_new_host_keys, t0, full_provision, worker)  # fmt: skip
    except PlayInterrupted as cut:
        summary.fail(f"{cut.message} (run {run.run_id}; no agent was started)", 130)
        summary.exit_code = 130
        _close_run(run, summary, t0, "interrupted")
        raise PlayInterrupted(f"{cut.message}; no agent was started", hint=cut.hint) from None
    except (KeyboardInterrupt, Interrupted):
        summary.fail(f"interrupted: stopped following the hosts of run {run.run_id}", 130)
        summary.exit_code = 130
        _close_run(run, summary, t0, "interrupted")
        raise Interrupted(
            f"interrupted; agents already started keep running on their hosts (run {run.run_id})",
            hint=f"fetch their results with `labctl collect {run.path}`",
        ) from None
    except BaseException:
        summary.exit_code = summary.exit_code or 1
        _close_run(run, summary, t0, "failed")
        raise
    return summary


def sharded(inv: Inventory, shard: Shard) -> tuple[Inventory, dict[str, Any]]:
    """The inventory cut to the shard's hosts (a host with an inventory problem counts as a host
    of its shard), and what run.json records of the cut."""
    names = [h.name for h in inv.hosts] + [p.host for p in inv.problems if p.host]
    mine = set(shard.select(names))
    if not mine:
        raise ConfigError(
            f"--shard {shard}: no host falls in this shard ({len(set(names))} hosts in the "
            "inventory)",
            hint=f"give N at most {len(set(names))}",
        )
    cut = Inventory(
        inv.path,
        [h for h in inv.hosts if h.name in mine],
        [p for p in inv.problems if p.host is None or p.host in mine],
    )
    return cut, {"shard": shard_record(shard, names)}


def _close_run(run: RunDir, summary: RunSummary, t0: float, status: str | None = None) -> None:
    """Write run.json's end (finished, status, problems); a failed write is one more problem."""
    try:
        run.write_run(
            finished=utc_now(),
            duration_s=round(time.monotonic() - t0, 1),
            status=status or ("ok" if not summary.exit_code else "failed"),
            problems=summary.problems,
        )
    except LabctlError as err:
        summary.problems.append(err.line())
        summary.exit_code = summary.exit_code or err.exit_code


def _probe_stages(
    run: RunDir,
    inv: Inventory,
    inventory_path: Path,
    summary: RunSummary,
    opts: ProbeOptions,
    prog: Progress,
    do_provision: bool,
    accept_new_host_keys: bool,
    t0: float,
    full_provision: bool = False,
    worker: WorkerNode | None = None,
) -> None:
    for problem in inv.problems:
        summary.fail(problem.line(), problem.exit_code)
        if problem.host and usable_host_name(problem.host):
            _host_error(run, summary, problem.host, problem.kind, problem.line())
    hosts = _with_key_opt_in(inv.hosts, accept_new_host_keys)
    if do_provision and hosts:
        for h in hosts:
            prog(h.name, "provisioning")
        try:
            rep = provision_inventory(
                inventory_path,
                run.path / "ansible",
                limit=[h.name for h in hosts],
                progress=prog,
                loaded=Inventory(inv.path, hosts, []),
                forks=opts.forks,
                extravars={"labctl_warm_enabled": False} if full_provision else None,
                worker=worker,
            )
        except Interrupted:
            raise
        except LabctlError as err:
            summary.fail(err.line(), err.exit_code)
            rep = None
        summary.provision = rep
        if rep is not None:
            for entry in rep.failed():
                summary.fail(entry.line(), entry.exit_code)
            failed = {e.host for e in rep.failed()}
            for h in hosts:
                if h.name in failed:
                    entry = rep.hosts[h.name]
                    _host_error(
                        run, summary, h.name, f"provision-{entry.status}", entry.line(), h.labels
                    )
            hosts = [h for h in hosts if h.name not in failed]
    outcomes = probe_hosts(run, hosts, opts, prog)
    for out in outcomes:
        if not out.ok:
            summary.fail(out.line(), out.error.exit_code if out.error else 4)
        for line in failed_checks(out.data):
            summary.fail(line, 1)
    # closed before the report renders, so the report shows the run's real status
    _close_run(run, summary, t0)
    before = len(summary.problems)
    summary.report = _report(run, summary)
    if len(summary.problems) > before:
        _close_run(run, summary, t0)


def failed_checks(result: dict[str, Any]) -> list[str]:
    """One line per check the agent could not run on a host whose run itself ended well
    (before, such a host said `ok`, exit 0, though e.g. the engine had died under a check)."""
    if result.get("status") != "ok":
        return []  # the host's own error line says more
    host, lines = result.get("host"), []
    for exp in result.get("experiments") or []:
        if isinstance(exp, dict) and exp.get("status") == "error":
            err = exp.get("error")
            said = (err.get("message") if isinstance(err, dict) else None) or exp.get(
                "verdict") or "no reason given"  # fmt: skip
            lines.append(f"{host}: the {exp.get('name')} check could not run: {said}")
    return lines


def _host_error(
    run: RunDir,
    summary: RunSummary,
    host: str,
    kind: str,
    message: str,
    labels: dict[str, str] | None = None,
) -> None:
    """A host's error file (its matrix column); a full results disk is one more problem."""
    try:
        run.write_host_error(host, kind, message, labels)
    except LabctlError as err:
        summary.fail(err.line(), err.exit_code)


def _report(run: RunDir, summary: RunSummary) -> Report | None:
    """CSV, Markdown and HTML of a fresh run; host failures are already in the summary."""
    try:
        return _as_report(report_runs([run.path]))
    except LabctlError as err:
        summary.fail(err.line(), err.exit_code)
        return None


def _as_report(outcome: ReportOutcome) -> Report | None:
    outs = outcome.outputs
    if "matrix.csv" not in outs:
        return None
    return Report(
        outs["matrix.csv"],
        outs["verdicts.csv"],
        len(outcome.data.entries),
        [e.result for e in outcome.data.failed],
        results_csv=outs.get("results.csv"),
        outputs=dict(outs),
    )


def collect_run(
    run_path: Path,
    *,
    inventory_path: Path | None = None,
    progress: Progress | None = None,
    forks: int | None = None,
) -> RunSummary:
    """Fetch results that finished on the hosts after the controller lost them (one labctl at
    a time on a run folder: another waits for this one)."""
    run = RunDir(run_path)
    if inventory_path is None:
        run.check_private()  # the hosts and keys to use come from run.json
    run.read_run()  # a folder that is no run is said before any lock file is made in it
    prog = progress or (lambda _h, _m: None)
    with run.lock(lambda said: prog("*", said)):
        return _collect_locked(run, inventory_path, progress, forks)


def _collect_locked(
    run: RunDir, inventory_path: Path | None, progress: Progress | None, forks: int | None
) -> RunSummary:
    summary = RunSummary(run=run)
    meta = run.read_run()
    if inventory_path is not None:
        hosts = load_inventory(inventory_path).hosts
    else:
        hosts = [host_from_summary(h) for h in meta.get("hosts", [])]
    # a host whose agent result is already here has nothing left to fetch
    have = {r.host for r in run.load_hosts() if r.data.get("agent_version")}
    hosts = [h for h in hosts if h.name not in have]
    t0 = time.monotonic()
    try:
        outcomes = collect_hosts(run, hosts, progress, forks)
    except (KeyboardInterrupt, Interrupted):
        raise Interrupted(
            "interrupted; nothing of this collect is lost",
            hint=f"run `labctl collect {run.path}` again",
        ) from None
    for out in outcomes:
        for line in failed_checks(out.data):
            summary.fail(line, 1)
        if out.error is not None:
            summary.fail(out.line(), out.error.exit_code)
            # a host that has no result keeps its column, with the reason
            host = next(h for h in hosts if h.name == out.host)
            _host_error(run, summary, out.host, out.error.kind, out.line(), host.labels)
    # the run record is complete now: its problems are what is still missing
    for r in run.load_hosts():
        if not r.ok and r.host not in {o.host for o in outcomes}:
            summary.fail(f"{r.host}: {r.error['message'] if r.error else 'failed'}", 1)
    meta_t0 = t0 - float(meta.get("duration_s") or 0.0)
    _close_run(run, summary, meta_t0)
    before = len(summary.problems)
    summary.report = _report(run, summary)
    if len(summary.problems) > before:
        _close_run(run, summary, meta_t0)
    return summary


# -- reports (labctl report / compare / runs) ---------------------------------------------------
# (type-only imports: annotations are strings here, the modules load when a report is asked for)
from collections.abc import Sequence  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    from .report.build import ReportOutcome
    from .report.build import Tick as ReportProgress


def report_runs(
    run_paths: Sequence[Path],
    *,
    out: Path | None = None,
    formats: Sequence[str] = DEFAULT_FORMATS,
    plots: bool = True,
    max_plots: int | None = None,
    progress: ReportProgress | None = None,
) -> ReportOutcome:
    """One report over one or several run folders (merged), written to ``out``.

    ``out`` defaults to the run folder itself when there is one; several runs need ``out``.
    """
    from .report.build import DEFAULT_MAX_PLOTS, make_report

    return make_report(
        list(run_paths),
        out,
        formats=formats,
        plots=plots,
        max_plots=DEFAULT_MAX_PLOTS if max_plots is None else max_plots,
        progress=progress,
    )
