"""labctl's command line: thin click commands over the library. No logic lives here."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from . import __version__
from .errors import LabctlError
from .liveview import HostBoard

err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)
_DEFAULT_EXPERIMENTS = "all"


class State:
    debug = False


#: every stage's progress callback: plain lines, or a live table inside ``with _progress:``
_progress = HostBoard(err_console)


def _die(err: LabctlError) -> NoReturn:
    if State.debug:
        raise err
    err_console.print(f"[red]error:[/] {err.line()}", markup=True, soft_wrap=True)
    sys.exit(err.exit_code)


def _finish(summary: Any) -> NoReturn:
    """Print where things are and one line per problem; exit with the summary's code."""
    if summary.report is not None:
        out_console.print(f"matrix:   {summary.report.matrix_csv}", soft_wrap=True)
        out_console.print(f"verdicts: {summary.report.verdicts_csv}", soft_wrap=True)
        html = summary.report.outputs.get("report.html")
        if html is not None:
            out_console.print(f"report:   {html}", soft_wrap=True)
    for line in summary.problems:
        err_console.print(f"[red]problem:[/] {line}", markup=True, soft_wrap=True)
    sys.exit(summary.exit_code)


def _watched(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` with the hosts' live view on a terminal (plain lines elsewhere)."""

    def run() -> Any:
        with _progress:
            return fn()

    return run


def _guard(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except LabctlError as err:
        _die(err)
    except KeyboardInterrupt:
        err_console.print("interrupted", style="red")
        sys.exit(130)


def _probe_options(
    experiments: str,
    timeout: float,
    exhaust: bool = False,
    limits: tuple[str, ...] = (),
    forks: int | None = None,
) -> Any:
    from .errors import ConfigError
    from .experiments import parse_experiments
    from .probe import ProbeOptions

    for item in limits:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(
                f"--set {item!r} is not NAME=VALUE", hint="e.g. --set disk_cap_bytes=256M"
            )
    return ProbeOptions(
        experiments=parse_experiments(experiments),
        timeout=timeout,
        exhaust=exhaust,
        limits=limits,
        forks=forks,
    )


class _Main(click.Group):
    """Ctrl-C anywhere in a command (even while it imports) is exit 130, never "Aborted!"."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            err_console.print("interrupted", style="red")
            sys.exit(130)


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C: run record closed, agents left running


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="labctl")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
def main(debug: bool) -> None:
    """Does one Docker container eating a shared resource hurt its host?

    \b
    Example (the local lab of Debian container hosts, end to end):
      labctl run
    On your own hosts:
      labctl run -i inventories/article.ini
    """
    State.debug = debug
    signal.signal(signal.SIGTERM, _sigterm)
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING)
    if not debug:  # paramiko logs a dropped handshake with its traceback: ours is one line
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)


# -- lab ------------------------------------------------------------------------------------
def _lab(
    name: str,
    suites: str | None = None,
    disk_size: str | None = None,
    disk_inodes: int | None = None,
    memory: str | None = None,
    pids_limit: int | None = None,
    storage_driver: str | None = None,
    driver: str | None = None,
    hosts: tuple[str, ...] = (),
    cpus: int | None = None,
    cgroup: str | None = None,
    docker_fs: str | None = None,
    accel: str | None = None,
    preset: str | None = None,
) -> Any:
    from .drivers.docker import DockerLab, DockerLabSpec
    from .drivers.qemu import PRESETS, QemuLab, QemuLabSpec, lab_driver_of, recorded_spec
    from .errors import ConfigError

    if preset:
        others = {"--driver": driver not in (None, "qemu"), "--host": hosts, "--suites": suites,
                  "--disk-size": disk_size, "--disk-inodes": disk_inodes, "--memory": memory,
                  "--storage-driver": storage_driver, "--cpus": cpus, "--cgroup": cgroup,
                  "--docker-fs": docker_fs, "--pids-limit": pids_limit}  # fmt: skip
        given = [opt for opt, value in others.items() if value]
        if given:
            raise ConfigError(
                f"--preset {preset} brings its own qemu hosts: "
                f"{', '.join(given)} cannot change them",
                hint="drop those options, or drop --preset and give --host SUITE:key=value,...",
            )
        pspec = QemuLabSpec(name=name, hosts=PRESETS[preset](), accel=accel or "auto")
        pspec.validate()
        return QemuLab(pspec, progress=_progress)
    driver = driver or lab_driver_of(name) or "docker"
    vm_only = {"--cpus": cpus, "--cgroup": cgroup, "--docker-fs": docker_fs,
               "--accel": accel}  # fmt: skip
    if driver == "qemu":
        if pids_limit is not None:
            raise ConfigError("--pids-limit is a docker lab option (a VM's limit is its kernel's)")
        data: dict[str, Any] = {"name": name}
        for key, value in (
            ("suites", suites), ("hosts", list(hosts) or None), ("disk_size", disk_size),
            ("disk_inodes", disk_inodes), ("memory", memory), ("storage_driver", storage_driver),
            ("cpus", cpus), ("cgroup", cgroup), ("docker_fs", docker_fs), ("accel", accel),
        ):  # fmt: skip
            if value is not None:
                data[key] = value
        # no options: the lab as it was last brought up (`run`, `status`, `down`, `up` again)
        qspec = (len(data) == 1 and recorded_spec(name)) or QemuLabSpec.from_mapping(data)
        return QemuLab(qspec, progress=_progress)
    given = [opt for opt, value in vm_only.items() if value]
    if given:
        raise ConfigError(f"{', '.join(given)}: qemu lab options", hint="add --driver qemu")

    fields: dict[str, Any] = {"name": name}
    if suites:
        fields["suites"] = tuple(s.strip() for s in suites.split(",") if s.strip())
    if hosts:  # --suites then adds one default host per suite before them
        fields["hosts"] = (*fields.pop("suites", ()), *hosts)
    for key, value in (
        ("disk_size", disk_size),
        ("disk_inodes", disk_inodes),
        ("memory", memory),
        ("pids_limit", pids_limit),
        ("storage_driver", storage_driver),
    ):
        if value is not None:
            fields[key] = value
    spec = DockerLabSpec(**fields)
    spec.validate()
    return DockerLab(spec, progress=_progress)


_lab_name = click.option("--name", default="local", show_default=True, help="Lab name.")
_preset_opt = click.option(
    "--preset",
    type=click.Choice(["article"]),
    help="article: the study's three systems as Docker 1.5.0 VMs on one kernel (CentOS 6.6-like:"
    " devicemapper + SysV; CentOS 7.0-like: devicemapper + 1.5.0's systemd unit; Ubuntu"
    " 14.04-like: overlay for aufs + upstart options) and that kernel with Debian's 20.10;"
    " the lab is named after the preset unless --name says otherwise.",
)


def _preset_lab_name(name: str | None, preset: str | None) -> str:
    return name or preset or "local"


_driver_opt = click.option(
    "--driver",
    type=click.Choice(["docker", "qemu"]),
    help="docker: hosts as containers; qemu: VMs with their own kernels [the lab's, else docker].",
)


@main.group()
def lab() -> None:
    """Make, inspect and destroy the local lab (Debian hosts as containers)."""


@lab.command("up")
@click.option("--name", help="Lab name [local, or the preset's name].")
@_preset_opt
@click.option("--suites", help="Debian suites, comma separated [bullseye,bookworm,trixie].")
@click.option("--disk-size", help="Size of each host's /var/lib/docker disk [1GiB].")
@click.option("--disk-inodes", type=int, help="Inodes of that disk [20000].")
@click.option("--memory", help="Memory limit of each lab host [1GiB].")
@click.option("--pids-limit", type=int, help="Process limit of each lab host [512].")
@click.option("--storage-driver", help="Inner dockerd storage driver [overlay2].")
@_driver_opt
@click.option(
    "--host",
    "hosts",
    multiple=True,
    metavar="SUITE[:k=v,...]",
    help="One host, repeatable. docker: keys driver (overlay2|vfs|btrfs), fs (ext4|xfs|btrfs),"
    " docker (yes|no), python (3|2.7|none), name; e.g. bookworm/driver=vfs."
    " qemu: e.g. bullseye:name=bullseye-v1,cgroup=v1; Docker 1.5.0 (after `labctl engine"
    " build 1.5.0`): bullseye:name=c70,cgroup=v1,engine=1.5.0,driver=devicemapper,init=systemd"
    " (init: systemd|sysvinit|upstart).",
)
@click.option("--cpus", type=int, help="qemu: CPUs of each VM [2].")
@click.option("--cgroup", type=click.Choice(["v1", "v2"]), help="qemu: cgroup version [v2].")
@click.option(
    "--docker-fs", type=click.Choice(["ext4", "xfs"]), help="qemu: /var/lib/docker fs [ext4]."
)
@click.option(
    "--accel", type=click.Choice(["auto", "kvm", "tcg"]), help="qemu: accelerator [auto]."
)
def lab_up(name: str | None, preset: str | None, **kw: Any) -> None:
    """Build (when needed) and start the lab; print its inventory.

    \b
    Examples:
      labctl lab up --suites bookworm --disk-size 512MiB
      labctl lab up --preset article      # needs `labctl engine build 1.5.0` first
    """
    state = _guard(lambda: _lab(_preset_lab_name(name, preset), preset=preset, **kw).up())
    for h in state.hosts:
        out_console.print(f"{h.name:<10} ssh -p {h.port} {h.user}@{h.address}", soft_wrap=True)
    out_console.print(f"inventory: {state.inventory}", soft_wrap=True)


@lab.command("status")
@_lab_name
@_driver_opt
def lab_status(name: str, driver: str | None) -> None:
    """Show each lab host and its state."""
    rows = _guard(lambda: _lab(name, driver=driver).status())
    if not rows:
        out_console.print(f"lab {name}: no hosts")
    for s in rows:
        extra = " ".join(f"{k}={v}" for k, v in sorted(s.details.items()))
        port = f"127.0.0.1:{s.port}" if s.port else "-"
        out_console.print(f"{s.name:<10} {s.state:<8} {port:<16} {s.image or '-'} {extra}")


@lab.command("down")
@_lab_name
@_driver_opt
def lab_down(name: str, driver: str | None) -> None:
    """Remove every container, network and loop device (or VM) of the lab."""
    rep = _guard(lambda: _lab(name, driver=driver).down())
    if hasattr(rep, "removed_vms"):
        out_console.print(f"removed {len(rep.removed_vms)} VMs (QEMU processes, overlays, ports)")
    else:
        out_console.print(
            f"removed {len(rep.removed_containers)} containers, "
            f"{len(rep.removed_networks)} networks, {len(rep.detached_loops)} loop devices"
        )
    for p in rep.problems:
        err_console.print(f"[red]problem:[/] {p}", markup=True, soft_wrap=True)
    sys.exit(1 if rep.problems else 0)


# -- pipeline stages ------------------------------------------------------------------------
_inventory_opt = click.option(
    "-i",
    "--inventory",
    type=click.Path(path_type=Path),
    help="Ansible inventory of the hosts (default for `run`: the local lab).",
)
_results_opt = click.option(
    "--results",
    type=click.Path(path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Folder that receives one run folder per run.",
)
_limit_opt = click.option("--limit", help="Only these hosts (comma separated).")
_experiments_opt = click.option(
    "--experiments",
    default=_DEFAULT_EXPERIMENTS,
    show_default=True,
    help="Checks to run: all, or some of storage-location, disk, disk-limited, disk-shared, "
    "inodes, memory, memory-limited, processes, processes-limited (comma separated).",
)
_timeout_opt = click.option(
    "--timeout", type=float, default=900, show_default=True, help="Seconds per host."
)
_exhaust_opt = click.option(
    "--exhaust",
    is_flag=True,
    help="Run to real exhaustion (only on hosts with labctl_disposable=true; refused elsewhere).",
)
_limits_opt = click.option(
    "--set",
    "limits",
    multiple=True,
    metavar="NAME=VALUE",
    help="Agent cap or floor, repeatable (e.g. disk_cap_bytes=256M, disk_floor_bytes=1G).",
)
_accept_opt = click.option(
    "--accept-new-host-keys",
    is_flag=True,
    help="Trust and record host keys not yet in known_hosts (otherwise refused).",
)
_full_opt = click.option(
    "--full",
    "full_provision",
    is_flag=True,
    help="Run every provisioning task, even on hosts already provisioned as asked.",
)
_forks_opt = click.option(
    "--forks",
    type=click.IntRange(min=1),
    help="Hosts worked on at once, by ansible and by the probe [every host, up to 50].",
)


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@main.command("provision")
@click.option("-i", "--inventory", type=click.Path(path_type=Path))
@_results_opt
@_limit_opt
@click.option("--check", is_flag=True, help="Dry run (ansible --check).")
@click.option(
    "-e",
    "--extra-vars",
    multiple=True,
    metavar="KEY=VALUE|@FILE",
    help="Variables for the playbook, as with ansible-playbook -e (repeatable).",
)
@click.option("--help-vars", is_flag=True, help="List every variable the playbook reads.")
@_forks_opt
@_full_opt
def provision_cmd(
    inventory: Path | None,
    results: Path,
    limit: str | None,
    check: bool,
    extra_vars: tuple[str, ...],
    help_vars: bool,
    forks: int | None,
    full_provision: bool,
) -> None:
    """Install and start the requested Docker and storage driver, with playbooks/site.yml.

    \b
    Examples:
      labctl provision -i ~/.local/share/labctl/labs/local/inventory.yml
      labctl provision -i inventories/article.ini --limit centos70
      labctl provision -i lab.ini -e docker_storage_driver=vfs
    """
    from .provision import parse_extra_vars, provision_inventory
    from .provision_vars import help_text
    from .results import new_run_id

    if help_vars:
        out_console.print(help_text(), soft_wrap=True, markup=False)
        sys.exit(0)
    if inventory is None:
        raise click.UsageError("-i/--inventory is required")
    inv = inventory
    pdd = results / "provision" / new_run_id()
    rep = _guard(
        _watched(
            lambda: provision_inventory(
                inv,
                pdd,
                limit=_split(limit),
                check=check,
                extravars={
                    **({"labctl_warm_enabled": False} if full_provision else {}),
                    **parse_extra_vars(extra_vars),
                },
                progress=_progress,
                forks=forks,
            )
        )
    )
    for h in sorted(rep.hosts.values(), key=lambda h: h.host):
        (out_console if h.ok else err_console).print(h.line(), soft_wrap=True)
    if rep.artifact_dir is not None:
        out_console.print(f"ansible artifacts: {rep.artifact_dir}", soft_wrap=True)
    sys.exit(0 if rep.ok and rep.hosts else 6)


@main.command("probe")
@click.option("-i", "--inventory", type=click.Path(path_type=Path), required=True)
@_results_opt
@_limit_opt
@_experiments_opt
@_timeout_opt
@_exhaust_opt
@_limits_opt
@_accept_opt
@_forks_opt
def probe_cmd(
    inventory: Path,
    results: Path,
    limit: str | None,
    experiments: str,
    timeout: float,
    exhaust: bool,
    limits: tuple[str, ...],
    accept_new_host_keys: bool,
    forks: int | None,
) -> None:
    """Push the agent over SSH, run the checks, collect results and render the matrix."""
    from .pipeline import run_pipeline

    summary = _guard(
        _watched(
            lambda: run_pipeline(
                inventory,
                results,
                do_provision=False,
                options=_probe_options(experiments, timeout, exhaust, limits, forks),
                limit=_split(limit),
                accept_new_host_keys=accept_new_host_keys,
                progress=_progress,
                asked={
                    "command": "probe",
                    "experiments": experiments,
                    "limit": limit,
                    "exhaust": exhaust,
                    "limits": list(limits),
                },
            )
        )
    )
    _finish(summary)


@main.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "formats",
    multiple=True,
    metavar="FMT",
    help="csv, md, html, json (comma separated or repeated) [csv,md,html].",
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

    from .report.build import make_host_report, make_report, parse_formats
    from .report.text import progress_bar, report_summary

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

    outcome = _guard(go)
    if as_json:
        click.echo(json.dumps(outcome.document, indent=2, sort_keys=True))
    else:
        names = {"report.md": "markdown", "report.html": "html", "report.json": "json"}
        for kind, path in outcome.outputs.items():
            label = names.get(kind, kind.removesuffix(".csv")) + ":"
            out_console.print(f"{label:<9} {path}", soft_wrap=True)
        out_console.print(report_summary(outcome), soft_wrap=True)
    for line in outcome.problems:
        err_console.print(f"[red]problem:[/] {line}", markup=True, soft_wrap=True, highlight=False)
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

    from .compare import unusable_files
    from .errors import ConfigError, ResultError

    problems: list[str] = []

    def go() -> tuple[Any, Any]:
        if (run_b is None) == (baseline is None):
            raise ConfigError(
                "give two run folders, or one and --baseline article",
                hint="e.g. labctl compare results/A results/B",
            )
        if baseline is not None:
            from .baseline import compare_to_baseline
            from .report.model import load_entries, open_run
            from .report.text import baseline_table

            entries = load_entries([open_run(run_a)])
            cmp = compare_to_baseline(entries, baseline)
            problems.extend(unusable_files(entries, "A"))
            return cmp, baseline_table(cmp)
        from .compare import compare_runs
        from .report.text import compare_table

        assert run_b is not None
        diff = compare_runs(
            run_a, run_b, rtol=rtol, include_volatile=include_volatile, ignore=ignore
        )
        problems.extend(diff.problems)
        return diff, compare_table(diff)

    result, table = _guard(go)
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

    from .report.runs import list_runs
    from .report.text import runs_table

    rows = _guard(lambda: list_runs(results_dir))
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows], indent=2, sort_keys=True))
    else:
        out_console.print(runs_table(rows), soft_wrap=False)


@main.command("collect")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "-i", "--inventory", type=click.Path(path_type=Path), help="Override run.json's hosts."
)
@_forks_opt
def collect_cmd(run_dir: Path, inventory: Path | None, forks: int | None) -> None:
    """Fetch results that finished on the hosts after a dropped connection or killed run."""
    from .pipeline import collect_run

    _finish(
        _guard(
            _watched(
                lambda: collect_run(
                    run_dir, inventory_path=inventory, progress=_progress, forks=forks
                )
            )
        )
    )


@main.command("run")
@_inventory_opt
@_results_opt
@_limit_opt
@_experiments_opt
@_timeout_opt
@_exhaust_opt
@_limits_opt
@_accept_opt
@_forks_opt
@_full_opt
@click.option("--no-provision", is_flag=True, help="Skip the ansible stage.")
@click.option("--lab", "lab_name", help="Lab used without -i [local, or the preset's name].")
@_preset_opt
@_driver_opt
def run_cmd(
    inventory: Path | None,
    results: Path,
    limit: str | None,
    experiments: str,
    timeout: float,
    exhaust: bool,
    limits: tuple[str, ...],
    accept_new_host_keys: bool,
    forks: int | None,
    full_provision: bool,
    no_provision: bool,
    lab_name: str | None,
    preset: str | None,
    driver: str | None,
) -> None:
    """Provision, probe and report; with no -i, on the local lab (brought up when needed).

    \b
    Examples:
      labctl run
      labctl run -i inventories/article.ini --limit centos66
      labctl run --preset article         # the study with its engine, on one kernel
    """
    from .pipeline import run_pipeline

    lab_name = _preset_lab_name(lab_name, preset)

    def go() -> Any:
        inv = inventory
        asked: dict[str, object] = {
            "command": "run",
            "inventory": str(inventory) if inventory else None,
            "lab": None if inventory else lab_name,
            "experiments": experiments,
            "limit": limit,
            "provision": not no_provision,
            "exhaust": exhaust,
            "limits": list(limits),
            "forks": forks,
        }
        if inv is None:
            inv = _lab(lab_name, driver=driver, preset=preset).up().inventory
        return run_pipeline(
            inv,
            results,
            do_provision=not no_provision,
            options=_probe_options(experiments, timeout, exhaust, limits, forks),
            limit=_split(limit),
            accept_new_host_keys=accept_new_host_keys,
            progress=_progress,
            asked=asked,
            full_provision=full_provision,
        )

    _finish(_guard(_watched(go)))


# -- engine ---------------------------------------------------------------------------------
@main.group()
def engine() -> None:
    """Docker engines built from source (the study's 1.5.0), cached with a manifest."""


@engine.command("build")
@click.argument("version")
@click.option(
    "--source",
    metavar="FILE|URL",
    help="Source archive (a `git archive` of the tag) [the upstream tag archive].",
)
@click.option("--force", is_flag=True, help="Rebuild even when a matching build is cached.")
def engine_build(version: str, source: str | None, force: bool) -> None:
    """Build a static docker binary from checked source (or reuse it).

    The source must be a `git archive` of the version's tag: its commit id and its files are
    checked against the tag's commit, whatever the file or URL is called.

    \b
    Examples:
      labctl engine build 1.5.0 --source ../shared/engines/moby-v1.5.0.tar.gz
      labctl engine build 1.5.0        # downloads the v1.5.0 tag archive from GitHub
    """
    from .engines import build_engine

    out = _guard(lambda: build_engine(version, source=source, force=force, progress=_progress))
    b = out.build
    out_console.print(f"binary:   {b.binary}", soft_wrap=True)
    out_console.print(f"sha256:   {b.sha256}", soft_wrap=True)
    out_console.print(f"manifest: {b.directory / 'manifest.json'}", soft_wrap=True)


@engine.command("list")
def engine_list() -> None:
    """List built engines: version, commit, sha256, size, Go, path.

    \b
    Example:
      labctl engine list
    """
    from .engines import list_engines
    from .engines.store import engines_dir, engines_table

    builds = _guard(list_engines)
    if not builds:
        out_console.print(f"no engines built yet in {engines_dir()}", soft_wrap=True)
        out_console.print("build one: labctl engine build 1.5.0 --source FILE", soft_wrap=True)
        return
    out_console.print(engines_table(builds), soft_wrap=True, markup=False)


if __name__ == "__main__":  # pragma: no cover
    main()
