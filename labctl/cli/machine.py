"""`labctl cache list|prune`, `labctl doctor`, `labctl completion SHELL`: the machine and what
labctl keeps on it."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from .common import err_console, guard, main, out_console

if TYPE_CHECKING:
    from ..cachestore import Inventory

#: what `labctl cache` knows how to judge (cachestore/model.py's KINDS, without importing it)
KIND_HELP = (
    "Only this kind, repeatable: lab-image, engine-build-image, vm-image, cloud-image, engine,"
    " engine-source, agent, debootstrap, build-log, leftover."
)


@main.group()
def cache() -> None:
    """What labctl built or downloaded and keeps: images, engines, agents, package caches."""


def _inventory() -> Inventory:
    from ..cachestore import gather
    from ..dockerclient import connect

    inv: Inventory = guard(lambda: gather(connect=lambda: connect("Docker images are not listed")))
    if inv.no_engine:
        err_console.print(f"[yellow]note:[/] {inv.no_engine}", markup=True, soft_wrap=True)
    return inv


@cache.command("list")
@click.option("--kind", "kinds", multiple=True, metavar="KIND", help=KIND_HELP)
def cache_list(kinds: tuple[str, ...]) -> None:
    """Each kept item: kind, size, current or stale, what `prune` would do, name, why.

    \b
    current: what this labctl builds or uses today (its recipe digest matches);
    stale:   an older recipe, an incomplete build, a suite no recipe uses;
    other:   labctl cannot tell (kept unless named or --all).
    Docker image sizes count layers they share with other images.
    """
    from ..cachestore.model import plan, summary, table

    inv = _inventory()
    items = [i for i in inv.items if not kinds or i.kind in kinds]
    guard(lambda: plan(items, kinds=kinds))  # an unknown --kind is exit 2
    if not items:
        what = f"no {', '.join(kinds)} items" if kinds else "nothing"
        out_console.print(f"{what} kept (cache: {_cache_dir()})", soft_wrap=True)
        return
    out_console.print(table(items), soft_wrap=True, markup=False)
    out_console.print(summary(items), soft_wrap=True, markup=False)


def _cache_dir() -> str:
    from ..paths import cache_dir

    return str(cache_dir())


@cache.command("prune")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--all", "everything", is_flag=True, help="Current items too (rebuilt when needed).")
@click.option("--kind", "kinds", multiple=True, metavar="KIND", help=KIND_HELP)
@click.option("--dry-run", is_flag=True, help="Say what would go; remove nothing.")
def cache_prune(
    names: tuple[str, ...], everything: bool, kinds: tuple[str, ...], dry_run: bool
) -> None:
    """Remove stale items (or those NAMEd, as `cache list` shows them); never one in use.

    \b
    Examples:
      labctl cache prune --dry-run
      labctl cache prune --kind vm-image
      labctl cache prune vm/bookworm-af07fbaff05c labctl-host:trixie-15339ab1531c
    """
    from ..cachestore import prune
    from ..cachestore.model import human_size, plan
    from ..dockerclient import connect

    inv = _inventory()
    decisions = guard(lambda: plan(inv.items, everything=everything, kinds=kinds, names=names))
    client = None
    if any(d.remove and d.item.tag for d in decisions):
        client = guard(lambda: connect("cannot remove images"))
    rep = prune(decisions, client=client, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for item in rep.removed:
        out_console.print(
            f"{verb} {item.kind} {item.name} ({human_size(item.size)})",
            soft_wrap=True,
            markup=False,
        )
    for d in rep.kept:
        out_console.print(
            f"kept {d.item.kind} {d.item.name}: {d.reason}", soft_wrap=True, markup=False
        )
    for line in rep.problems:
        err_console.print(f"[red]problem:[/] {line}", markup=True, soft_wrap=True)
    freed = "would free" if dry_run else "freed"
    out_console.print(f"{freed} {human_size(rep.freed)} ({len(rep.removed)} items)")
    sys.exit(1 if rep.problems else 0)


@main.command("doctor")
def doctor() -> None:
    """What this machine has and lacks for each feature, and what to do; exit 0 when the
    container lab (the basic pipeline) can run."""
    from ..doctor import gather_facts, judge, pipeline_ready, render

    lines = judge(gather_facts())
    out_console.print(render(lines), soft_wrap=True, markup=False)
    sys.exit(0 if pipeline_ready(lines) else 1)


SHELLS = ("bash", "zsh", "fish")


@main.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script (click's own) for SHELL.

    \b
    bash:  eval "$(labctl completion bash)"      (or in ~/.bashrc)
    zsh:   eval "$(labctl completion zsh)"       (or in ~/.zshrc)
    fish:  labctl completion fish > ~/.config/fish/completions/labctl.fish
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None  # click ships all three
    comp = cls(main, {}, "labctl", "_LABCTL_COMPLETE")
    click.echo(comp.source())
