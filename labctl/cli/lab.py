"""`labctl lab up|status|down`: labs built through the driver registry."""

from __future__ import annotations

import sys
from typing import Any

import click

from .common import (
    driver_opt,
    err_console,
    guard,
    main,
    name_opt,
    open_lab,
    out_console,
    preset_lab_name,
    preset_opt,
)


@main.group()
def lab() -> None:
    """Make, inspect and destroy the local lab (Debian hosts as containers)."""


@lab.command("up")
@click.option("--name", help="Lab name [local, or the preset's name].")
@preset_opt
@click.option("--suites", help="Debian suites, comma separated [bullseye,bookworm,trixie].")
@click.option("--disk-size", help="Size of each host's /var/lib/docker disk [1GiB].")
@click.option("--disk-inodes", type=int, help="Inodes of that disk [20000].")
@click.option("--memory", help="Memory limit of each lab host [1GiB].")
@click.option("--pids-limit", type=int, help="Process limit of each lab host [512].")
@click.option("--storage-driver", help="Inner dockerd storage driver [overlay2].")
@driver_opt
@click.option(
    "--host",
    "hosts",
    multiple=True,
    metavar="SUITE[:k=v,...]",
    help="One host, repeatable. docker: keys driver (overlay2|vfs|btrfs), fs (ext4|xfs|btrfs),"
    " docker (yes|no), python (3|2.7|none), name; e.g. bookworm/driver=vfs."
    " qemu: e.g. bullseye:name=bullseye-v1,cgroup=v1; Docker 1.5.0 (after `labctl engine"
    " build 1.5.0`): bullseye:name=c70,cgroup=v1,engine=1.5.0,driver=devicemapper,init=systemd"
    " (init: systemd|systemd-centos|sysvinit-epel|sysvinit-docker|upstart; a host's own checks:"
    " experiments=storage-location+storage-host-mount). Your own cloud image (cloud-init,"
    " booted from a throwaway overlay): image:path=./CentOS-7-x86_64-GenericCloud.qcow2,"
    "name=c7,memory=1GiB,cgroup=v1 (keys name, memory, cpus, cgroup, boot_timeout).",
)
@click.option("--cpus", type=int, help="qemu: CPUs of each VM [2].")
@click.option("--cgroup", type=click.Choice(["v1", "v2"]), help="qemu: cgroup version [v2].")
@click.option(
    "--docker-fs", type=click.Choice(["ext4", "xfs"]), help="qemu: /var/lib/docker fs [ext4]."
)
@click.option(
    "--accel", type=click.Choice(["auto", "kvm", "tcg"]), help="qemu: accelerator [auto]."
)
@click.option(
    "--refresh",
    is_flag=True,
    default=None,
    help="qemu: rebuild the lab's VM images from today's Debian mirror (each boot-checked),"
    " ignoring the cached ones, and boot every VM afresh.",
)
def lab_up(name: str | None, preset: str | None, **kw: Any) -> None:
    """Build (when needed) and start the lab; print its inventory.

    \b
    Examples:
      labctl lab up --suites bookworm --disk-size 512MiB
      labctl lab up --preset article      # needs `labctl engine build 1.5.0` first
    """
    state = guard(lambda: open_lab(preset_lab_name(name, preset), preset=preset, **kw).up())
    for h in state.hosts:
        out_console.print(f"{h.name:<10} ssh -p {h.port} {h.user}@{h.address}", soft_wrap=True)
    out_console.print(f"inventory: {state.inventory}", soft_wrap=True)


@lab.command("status")
@name_opt
@driver_opt
def lab_status(name: str, driver: str | None) -> None:
    """Show each lab host and its state."""
    rows = guard(lambda: open_lab(name, driver=driver).status())
    if not rows:
        out_console.print(f"lab {name}: no hosts")
    for s in rows:
        extra = " ".join(f"{k}={v}" for k, v in sorted(s.details.items()))
        port = f"127.0.0.1:{s.port}" if s.port else "-"
        out_console.print(f"{s.name:<10} {s.state:<8} {port:<16} {s.image or '-'} {extra}")


@lab.command("down")
@name_opt
@driver_opt
def lab_down(name: str, driver: str | None) -> None:
    """Remove every container, network and loop device (or VM) of the lab."""
    rep = guard(lambda: open_lab(name, driver=driver).down())
    out_console.print(rep.summary())
    for p in rep.problems:
        err_console.print(f"[red]problem:[/] {p}", markup=True, soft_wrap=True)
    sys.exit(1 if rep.problems else 0)


# -- pipeline stages ------------------------------------------------------------------------
