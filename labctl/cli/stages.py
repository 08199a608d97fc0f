"""`labctl provision|probe|run|collect`: the pipeline's stages over an inventory or a lab."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .common import (
    ProbeArgs,
    WorkerArgs,
    board,
    driver_opt,
    err_console,
    finish,
    forks_opt,
    full_opt,
    guard,
    inventory_opt,
    limit_opt,
    main,
    open_lab,
    out_console,
    preset_lab_name,
    preset_opt,
    probe_opts,
    results_opt,
    split_list,
    watched,
    worker_opts,
)


@main.command("provision")
@click.option("-i", "--inventory", type=click.Path(path_type=Path))
@results_opt
@limit_opt
@click.option("--check", is_flag=True, help="Dry run (ansible --check).")
@click.option(
    "-e",
    "--extra-vars",
    multiple=True,
    metavar="KEY=VALUE|@FILE",
    help="Variables for the playbook, as with ansible-playbook -e (repeatable).",
)
@click.option("--help-vars", is_flag=True, help="List every variable the playbook reads.")
@forks_opt
@full_opt
@worker_opts
def provision_cmd(
    inventory: Path | None,
    results: Path,
    limit: str | None,
    check: bool,
    extra_vars: tuple[str, ...],
    help_vars: bool,
    forks: int | None,
    full_provision: bool,
    worker: WorkerArgs,
) -> None:
    """Install and start the requested Docker and storage driver, with playbooks/site.yml.

    \b
    Examples:
      labctl provision -i ~/.local/share/labctl/labs/local/inventory.yml
      labctl provision -i inventories/article.ini --limit centos70
      labctl provision -i lab.ini -e docker_storage_driver=vfs
      labctl provision -i lab.ini --worker ssh://root@127.0.0.1:2222 --worker-key KEY \\
          --worker-known-hosts KNOWN   # the play runs there (ansible-runner worker)
    """
    from ..provision import parse_extra_vars, provision_inventory
    from ..provision_vars import help_text
    from ..results import new_private_dir, new_run_id

    if help_vars:
        out_console.print(guard(help_text), soft_wrap=True, markup=False)
        sys.exit(0)
    if inventory is None:
        raise click.UsageError("-i/--inventory is required")
    inv = inventory
    node = guard(lambda: worker.node(inv))
    pdd = guard(lambda: new_private_dir(results / "provision", new_run_id()))
    rep = guard(
        watched(
            lambda: provision_inventory(
                inv,
                pdd,
                limit=split_list(limit),
                check=check,
                extravars={
                    **({"labctl_warm_enabled": False} if full_provision else {}),
                    **parse_extra_vars(extra_vars),
                },
                progress=board,
                forks=forks,
                worker=node,
            )
        )
    )
    for h in sorted(rep.hosts.values(), key=lambda h: h.host):
        (out_console if h.ok else err_console).print(h.line(), soft_wrap=True)
    if rep.artifact_dir is not None:
        out_console.print(f"ansible artifacts: {rep.artifact_dir}", soft_wrap=True)
    failed = rep.failed()
    sys.exit(failed[0].exit_code if failed else 0 if rep.hosts else 6)


@main.command("probe")
@click.option("-i", "--inventory", type=click.Path(path_type=Path), required=True)
@probe_opts
def probe_cmd(inventory: Path, probe: ProbeArgs) -> None:
    """Push the agent over SSH, run the checks, collect results and render the matrix."""
    from ..pipeline import run_pipeline

    summary = guard(
        watched(
            lambda: run_pipeline(
                inventory,
                probe.results,
                do_provision=False,
                options=probe.options(),
                limit=split_list(probe.limit),
                accept_new_host_keys=probe.accept_new_host_keys,
                progress=board,
                asked=probe.asked("probe"),
                shard=probe.shard_of(),
            )
        )
    )
    finish(summary)


@main.command("collect")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "-i", "--inventory", type=click.Path(path_type=Path), help="Override run.json's hosts."
)
@forks_opt
def collect_cmd(run_dir: Path, inventory: Path | None, forks: int | None) -> None:
    """Fetch results that finished on the hosts after a dropped connection or killed run."""
    from ..pipeline import collect_run

    finish(
        guard(
            watched(
                lambda: collect_run(run_dir, inventory_path=inventory, progress=board, forks=forks)
            )
        )
    )


@main.command("run")
@inventory_opt
@probe_opts
@full_opt
@click.option("--no-provision", is_flag=True, help="Skip the ansible stage.")
@click.option("--lab", "lab_name", help="Lab used without -i [local, or the preset's name].")
@preset_opt
@driver_opt
@worker_opts
def run_cmd(
    inventory: Path | None,
    probe: ProbeArgs,
    full_provision: bool,
    no_provision: bool,
    lab_name: str | None,
    preset: str | None,
    driver: str | None,
    worker: WorkerArgs,
) -> None:
    """Provision, probe and report; with no -i, on the local lab (brought up when needed).

    \b
    Examples:
      labctl run
      labctl run -i inventories/article.ini --limit centos66
      labctl run --preset article         # the study with its engine, on one kernel
      labctl run -i lab.ini --worker bookworm --shard 1/2   # half the hosts, played by a worker
    """
    from ..pipeline import run_pipeline

    lab_name = preset_lab_name(lab_name, preset)

    def go() -> Any:
        inv = inventory
        asked = {
            **probe.asked("run"),
            "inventory": str(inventory) if inventory else None,
            "lab": None if inventory else lab_name,
            "provision": not no_provision,
            "forks": probe.forks,
            "worker": worker.worker,
        }
        shard = probe.shard_of()
        if inv is None:
            inv = open_lab(lab_name, driver=driver, preset=preset).up().inventory
        return run_pipeline(
            inv,
            probe.results,
            do_provision=not no_provision,
            options=probe.options(),
            limit=split_list(probe.limit),
            accept_new_host_keys=probe.accept_new_host_keys,
            progress=board,
            asked=asked,
            full_provision=full_provision,
            shard=shard,
            worker=worker.node(inv),
        )

    finish(guard(watched(go)), claims=preset is not None)
