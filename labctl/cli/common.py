"""labctl's command line: thin click commands over the library. No logic lives here."""

from __future__ import annotations

import functools
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from .. import __version__
from ..drivers.registry import driver_help, driver_names, preset_names
from ..errors import LabctlError
from ..experiments import help_text as experiments_help
from ..liveview import HostBoard

err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)
DEFAULT_EXPERIMENTS = "all"


class State:
    debug = False


#: every stage's progress callback: plain lines, or a live table inside ``with board:``
board = HostBoard(err_console)


def die(err: LabctlError) -> NoReturn:
    if State.debug:
        raise err
    from rich.markup import escape  # the line's own brackets ('labctl[parquet]') are text

    err_console.print(f"[red]error:[/] {escape(err.line())}", markup=True, soft_wrap=True)
    sys.exit(err.exit_code)


def print_claims(run_path: Path) -> None:
    """The article's claims as this run settles them (what `compare --baseline article`
    shows last), for a preset run: the answer it was run for, in the terminal."""
    from rich.markup import escape

    from ..errors import LabctlError
    from ..report.baseline import compare_to_baseline
    from ..report.model import load_entries, open_run
    from ..report.text import claims_table

    try:
        cmp = compare_to_baseline(load_entries([open_run(run_path)]), "article")
    except LabctlError as err:
        err_console.print(f"[red]problem:[/] {escape(err.line())}", markup=True, soft_wrap=True)
        return
    if cmp.claims:
        out_console.print(claims_table(cmp), soft_wrap=False)


def finish(summary: Any, *, claims: bool = False) -> NoReturn:
    """Print where things are and one line per problem; exit with the summary's code. With
    ``claims`` (a preset run), the article's claims ledger first."""
    if claims and summary.report is not None and summary.run is not None:
        print_claims(summary.run.path)
    if summary.report is not None:
        out_console.print(f"matrix:   {summary.report.matrix_csv}", soft_wrap=True)
        out_console.print(f"verdicts: {summary.report.verdicts_csv}", soft_wrap=True)
        html = summary.report.outputs.get("report.html")
        if html is not None:
            out_console.print(f"report:   {html}", soft_wrap=True)
    for line in summary.problems:
        err_console.print(f"[red]problem:[/] {line}", markup=True, soft_wrap=True)
    sys.exit(summary.exit_code)


def watched(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` with the hosts' live view on a terminal (plain lines elsewhere)."""

    def run() -> Any:
        with board:
            return fn()

    return run


def guard(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except LabctlError as err:
        die(err)
    except KeyboardInterrupt:
        err_console.print("interrupted", style="red")
        sys.exit(130)


def probe_options(
    experiments: str,
    timeout: float,
    exhaust: bool = False,
    limits: tuple[str, ...] = (),
    forks: int | None = None,
) -> Any:
    from ..agent.limits import parse_limit_options
    from ..errors import ConfigError
    from ..experiments import parse_experiments
    from ..probe import ProbeOptions

    for item in limits:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(
                f"--set {item!r} is not NAME=VALUE", hint="e.g. --set disk_cap_bytes=256M"
            )
    try:  # the agent's own parser, here before anything connects
        parse_limit_options(list(limits))
    except ValueError as exc:
        raise ConfigError(f"--set: {exc}", hint="`labctl probe --help` lists the names") from None
    return ProbeOptions(
        experiments=parse_experiments(experiments),
        timeout=timeout,
        exhaust=exhaust,
        limits=limits,
        forks=forks,
    )


class _Main(click.Group):
    """Ctrl-C anywhere in a command (even while it imports) is exit 130, never "Aborted!"; an
    EOFError that escapes (a bug: click would also print a bare "Aborted!") says what it was."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            err_console.print("interrupted", style="red")
            sys.exit(130)
        except EOFError as exc:
            if State.debug:
                raise RuntimeError("EOFError escaped") from exc
            err_console.print(
                f"[red]error:[/] unexpected end of input or connection (EOFError: {exc!r}); "
                "this is a labctl bug: rerun with --debug and report the traceback",
                markup=True, soft_wrap=True,
            )  # fmt: skip
            sys.exit(1)


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
def open_lab(
    name: str, driver: str | None = None, preset: str | None = None, **options: Any
) -> Any:
    """The lab from `lab up`'s options, through the driver registry (see drivers/registry.py)."""
    from ..drivers.registry import make_lab

    return make_lab(name, driver=driver, preset=preset, progress=board, **options)


name_opt = click.option("--name", default="local", show_default=True, help="Lab name.")
preset_opt = click.option(
    "--preset",
    type=click.Choice(preset_names()),
    help="article: the study's three systems as Docker 1.5.0 VMs on one kernel (CentOS 6.6-like:"
    " devicemapper + SysV; CentOS 7.0-like: devicemapper + 1.5.0's systemd unit; Ubuntu"
    " 14.04-like: overlay for aufs + upstart options) and that kernel with Debian's 20.10;"
    " the lab is named after the preset unless --name says otherwise.",
)


def preset_lab_name(name: str | None, preset: str | None) -> str:
    return name or preset or "local"


driver_opt = click.option("--driver", type=click.Choice(driver_names()), help=driver_help())


inventory_opt = click.option(
    "-i",
    "--inventory",
    type=click.Path(path_type=Path),
    help="Ansible inventory of the hosts (default for `run`: the local lab).",
)
results_opt = click.option(
    "--results",
    type=click.Path(path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Folder that receives one run folder per run.",
)
limit_opt = click.option("--limit", help="Only these hosts (comma separated).")
experiments_opt = click.option(
    "--experiments",
    default=DEFAULT_EXPERIMENTS,
    show_default=True,
    help=experiments_help(),
)
timeout_opt = click.option(
    "--timeout", type=float, default=900, show_default=True, help="Seconds per host."
)
exhaust_opt = click.option(
    "--exhaust",
    is_flag=True,
    help="Run to real exhaustion (only on hosts with labctl_disposable=true; refused elsewhere).",
)
limits_opt = click.option(
    "--set",
    "limits",
    multiple=True,
    metavar="NAME=VALUE",
    help="Agent cap or floor, repeatable (e.g. disk_cap_bytes=256M, disk_floor_bytes=1G).",
)
accept_opt = click.option(
    "--accept-new-host-keys",
    is_flag=True,
    help="Trust and record host keys not yet in known_hosts (otherwise refused).",
)
full_opt = click.option(
    "--full",
    "full_provision",
    is_flag=True,
    help="Run every provisioning task, even on hosts already provisioned as asked.",
)
forks_opt = click.option(
    "--forks",
    type=click.IntRange(min=1),
    help="Hosts worked on at once, by ansible and by the probe [every host, up to 50].",
)


shard_opt = click.option(
    "--shard",
    metavar="K/N",
    help="Only the K-th of N slices of the inventory's hosts (by sorted name), into its own run "
    "folder; `labctl report RUN_1 ... RUN_N` merges the N shards as one run.",
)


@dataclass(frozen=True)
class WorkerArgs:
    """`--worker` and its key options, as one record (the command gets ``worker=``)."""

    worker: str | None
    worker_key: Path | None
    worker_known_hosts: Path | None

    def node(self, inventory: Path | None) -> Any:
        """The worker node (None without --worker); a name is looked up in ``inventory``."""
        if self.worker is None:
            return None
        from ..inventory import load_inventory
        from ..workernode import worker_node

        inv = None
        if not self.worker.startswith("ssh://") and inventory is not None:
            inv = load_inventory(inventory)
        return worker_node(
            self.worker,
            inventory=inv,
            key_file=self.worker_key,
            known_hosts=self.worker_known_hosts,
        )


def worker_opts(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--worker, --worker-key, --worker-known-hosts; the command receives ``worker=``."""
    names = [f.name for f in fields(WorkerArgs)]

    @functools.wraps(fn)
    def command(**kw: Any) -> Any:
        return fn(worker=WorkerArgs(**{n: kw.pop(n) for n in names}), **kw)

    opts = (
        click.option(
            "--worker",
            metavar="ssh://USER@HOST:PORT|NAME",
            help="Run the playbook on this worker node (ansible-runner worker over SSH; events "
            "stream back here); NAME: a host of the inventory.",
        ),
        click.option(
            "--worker-key",
            type=click.Path(path_type=Path),
            help="Private key for an ssh:// worker.",
        ),
        click.option(
            "--worker-known-hosts",
            type=click.Path(path_type=Path),
            help="known_hosts file with an ssh:// worker's key [~/.ssh/known_hosts].",
        ),
    )
    for opt in reversed(opts):
        command = opt(command)
    return command


@dataclass(frozen=True)
class ProbeArgs:
    """The options `probe` and `run` share, as one record (the command gets ``probe=``)."""

    results: Path
    limit: str | None
    experiments: str
    timeout: float
    exhaust: bool
    limits: tuple[str, ...]
    accept_new_host_keys: bool
    forks: int | None
    shard: str | None

    def shard_of(self) -> Any:
        """The parsed --shard (None without it); a ConfigError names a bad one."""
        from ..shard import parse_shard

        return parse_shard(self.shard) if self.shard else None

    def options(self) -> Any:
        """The probe's options (a ConfigError names a bad --experiments or --set)."""
        return probe_options(self.experiments, self.timeout, self.exhaust, self.limits, self.forks)

    def asked(self, command: str) -> dict[str, object]:
        """What run.json records of the command line."""
        return {
            "command": command,
            "experiments": self.experiments,
            "limit": self.limit,
            "exhaust": self.exhaust,
            "limits": list(self.limits),
            "shard": self.shard,
        }


def probe_opts(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options `probe` and `run` share: results, hosts, checks, time, caps, keys, forks;
    the command receives them as one :class:`ProbeArgs` (``probe=``)."""
    names = [f.name for f in fields(ProbeArgs)]

    @functools.wraps(fn)
    def command(**kw: Any) -> Any:
        return fn(probe=ProbeArgs(**{n: kw.pop(n) for n in names}), **kw)

    for opt in reversed((results_opt, limit_opt, experiments_opt, timeout_opt, exhaust_opt,
                         limits_opt, accept_opt, forks_opt, shard_opt)):  # fmt: skip
        command = opt(command)
    return command


def split_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None
