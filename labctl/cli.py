"""labctl's command line: thin click commands over the library. No logic lives here."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from . import __version__
from .errors import LabctlError

err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)
_DEFAULT_EXPERIMENTS = "storage-location"


class State:
    debug = False


def _progress(host: str, message: str) -> None:
    err_console.print(f"[bold cyan]{host}[/] {message}", markup=True, soft_wrap=True)


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
    for line in summary.problems:
        err_console.print(f"[red]problem:[/] {line}", markup=True, soft_wrap=True)
    sys.exit(summary.exit_code)


def _guard(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except LabctlError as err:
        _die(err)
    except KeyboardInterrupt:
        err_console.print("interrupted", style="red")
        sys.exit(130)


def _probe_options(
    experiments: str, timeout: float, exhaust: bool = False, limits: tuple[str, ...] = ()
) -> Any:
    from .errors import ConfigError
    from .probe import ProbeOptions

    for item in limits:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(
                f"--set {item!r} is not NAME=VALUE", hint="e.g. --set disk_cap_bytes=256M"
            )
    return ProbeOptions(
        experiments=tuple(e.strip() for e in experiments.split(",") if e.strip()),
        timeout=timeout,
        exhaust=exhaust,
        limits=limits,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING)


# -- lab ------------------------------------------------------------------------------------
def _lab(
    name: str,
    suites: str | None = None,
    disk_size: str | None = None,
    disk_inodes: int | None = None,
    memory: str | None = None,
    pids_limit: int | None = None,
    storage_driver: str | None = None,
) -> Any:
    from .drivers.docker import DockerLab, DockerLabSpec

    fields: dict[str, Any] = {"name": name}
    if suites:
        fields["suites"] = tuple(s.strip() for s in suites.split(",") if s.strip())
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


@main.group()
def lab() -> None:
    """Make, inspect and destroy the local lab (Debian hosts as containers)."""


@lab.command("up")
@_lab_name
@click.option("--suites", help="Debian suites, comma separated [bullseye,bookworm,trixie].")
@click.option("--disk-size", help="Size of each host's /var/lib/docker disk [1GiB].")
@click.option("--disk-inodes", type=int, help="Inodes of that disk [20000].")
@click.option("--memory", help="Memory limit of each lab host [1GiB].")
@click.option("--pids-limit", type=int, help="Process limit of each lab host [512].")
@click.option("--storage-driver", help="Inner dockerd storage driver [overlay2].")
def lab_up(name: str, **kw: Any) -> None:
    """Build (when needed) and start the lab; print its inventory.

    \b
    Example:
      labctl lab up --suites bookworm --disk-size 512MiB
    """
    state = _guard(lambda: _lab(name, **kw).up())
    for h in state.hosts:
        out_console.print(f"{h.name:<10} ssh -p {h.port} {h.user}@{h.address}", soft_wrap=True)
    out_console.print(f"inventory: {state.inventory}", soft_wrap=True)


@lab.command("status")
@_lab_name
def lab_status(name: str) -> None:
    """Show each lab host and its state."""
    rows = _guard(lambda: _lab(name).status())
    if not rows:
        out_console.print(f"lab {name}: no hosts")
    for s in rows:
        extra = " ".join(f"{k}={v}" for k, v in sorted(s.details.items()))
        port = f"127.0.0.1:{s.port}" if s.port else "-"
        out_console.print(f"{s.name:<10} {s.state:<8} {port:<16} {s.image or '-'} {extra}")


@lab.command("down")
@_lab_name
def lab_down(name: str) -> None:
    """Remove every container, network and loop device of the lab."""
    rep = _guard(lambda: _lab(name).down())
    out_console.print(
        f"removed {len(rep.removed_containers)} containers, {len(rep.removed_networks)} networks,"
        f" {len(rep.detached_loops)} loop devices"
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
    "--experiments", default=_DEFAULT_EXPERIMENTS, show_default=True, help="Checks to run."
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


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@main.command("provision")
@click.option("-i", "--inventory", type=click.Path(path_type=Path), required=True)
@_results_opt
@_limit_opt
@click.option("--check", is_flag=True, help="Dry run (ansible --check).")
def provision_cmd(inventory: Path, results: Path, limit: str | None, check: bool) -> None:
    """Gather facts and make sure a Docker engine runs, with playbooks/site.yml.

    \b
    Example:
      labctl provision -i ~/.local/share/labctl/labs/local/inventory.yml
    """
    from .provision import provision
    from .results import new_run_id

    pdd = results / "provision" / new_run_id()
    rep = _guard(
        lambda: provision(inventory, pdd, limit=_split(limit), check=check, progress=_progress)
    )
    for h in sorted(rep.hosts.values(), key=lambda h: h.host):
        (out_console if h.ok else err_console).print(h.line(), soft_wrap=True)
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
def probe_cmd(
    inventory: Path,
    results: Path,
    limit: str | None,
    experiments: str,
    timeout: float,
    exhaust: bool,
    limits: tuple[str, ...],
    accept_new_host_keys: bool,
) -> None:
    """Push the agent over SSH, run the checks, collect results and render the matrix."""
    from .pipeline import run_pipeline

    summary = _guard(
        lambda: run_pipeline(
            inventory,
            results,
            do_provision=False,
            options=_probe_options(experiments, timeout, exhaust, limits),
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
    _finish(summary)


@main.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
def report_cmd(run_dir: Path) -> None:
    """Render matrix.csv and verdicts.csv of a results folder (offline)."""
    from .pipeline import report_run

    _finish(_guard(lambda: report_run(run_dir)))


@main.command("collect")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "-i", "--inventory", type=click.Path(path_type=Path), help="Override run.json's hosts."
)
def collect_cmd(run_dir: Path, inventory: Path | None) -> None:
    """Fetch results that finished on the hosts after a dropped connection or killed run."""
    from .pipeline import collect_run

    _finish(_guard(lambda: collect_run(run_dir, inventory_path=inventory, progress=_progress)))


@main.command("run")
@_inventory_opt
@_results_opt
@_limit_opt
@_experiments_opt
@_timeout_opt
@_exhaust_opt
@_limits_opt
@_accept_opt
@click.option("--no-provision", is_flag=True, help="Skip the ansible stage.")
@click.option("--lab", "lab_name", default="local", show_default=True, help="Lab used without -i.")
def run_cmd(
    inventory: Path | None,
    results: Path,
    limit: str | None,
    experiments: str,
    timeout: float,
    exhaust: bool,
    limits: tuple[str, ...],
    accept_new_host_keys: bool,
    no_provision: bool,
    lab_name: str,
) -> None:
    """Provision, probe and report; with no -i, on the local lab (brought up when needed).

    \b
    Examples:
      labctl run
      labctl run -i inventories/article.ini --limit centos66
    """
    from .pipeline import run_pipeline

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
        }
        if inv is None:
            inv = _lab(lab_name).up().inventory
        return run_pipeline(
            inv,
            results,
            do_provision=not no_provision,
            options=_probe_options(experiments, timeout, exhaust, limits),
            limit=_split(limit),
            accept_new_host_keys=accept_new_host_keys,
            progress=_progress,
            asked=asked,
        )

    _finish(_guard(go))


if __name__ == "__main__":  # pragma: no cover
    main()
