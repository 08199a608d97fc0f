"""`labctl engine build|list`: Docker engines built from source."""

from __future__ import annotations

import click

from .common import (
    board,
    guard,
    main,
    out_console,
)


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
    from ..engines import build_engine

    out = guard(lambda: build_engine(version, source=source, force=force, progress=board))
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
    from ..engines import list_engines
    from ..engines.store import engines_dir, engines_table

    builds = guard(list_engines)
    if not builds:
        out_console.print(f"no engines built yet in {engines_dir()}", soft_wrap=True)
        out_console.print("build one: labctl engine build 1.5.0 --source FILE", soft_wrap=True)
        return
    out_console.print(engines_table(builds), soft_wrap=True, markup=False)
