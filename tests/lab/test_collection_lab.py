"""A user's own play with the INSTALLED collection labctl.lab (issue 19 item 3): the collection
built and installed with ansible-galaxy into a folder of the test's, then three lines of play
run by ansible-playbook (not labctl) with only that folder on ANSIBLE_COLLECTIONS_PATH, put
Docker 1.5.0 on a cgroup v1 VM, started by the init style asked for: Docker 1.5.0's own systemd
unit (MountFlags=slave), the one style the article lab does not use.

The VM and the engine are labctl's (a bullseye QEMU VM, the 1.5.0 build from the engine cache):
its inventory holds what a user's would, the engine's file and sha256; the play's -e says the
init style."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.drivers.base import GiB, LabState
from labctl.drivers.qemu import QemuHostSpec, QemuLabSpec
from tests.helpers import (
    ROLES,
    ansible_tool,
    install_collection,
    qemu_lab_up,
    remote,
    skip_without_qemu_lab,
)

pytestmark = [pytest.mark.lab, pytest.mark.engine, pytest.mark.timeout(1200)]

#: the user's play: three lines (the engine's settings are inventory variables)
PLAY = "- hosts: all\n  gather_facts: false\n  roles: [labctl.lab.docker_engine]\n"
STYLE = "systemd"


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr)


@pytest.fixture(scope="module")
def vm(engine_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    """One bullseye VM with cgroup v1 whose inventory asks for the 1.5.0 build (not started)."""
    from labctl.engines import build_engine

    skip_without_qemu_lab()
    build_engine("1.5.0", source=str(engine_source), progress=lambda h, m: _say(m))
    host = QemuHostSpec(suite="bullseye", name="c70u", cgroup="v1", engine="1.5.0",
                        init=STYLE, disk_size=2 * GiB)  # fmt: skip
    home = tmp_path_factory.mktemp("labctl-home-collection")
    with qemu_lab_up(home, QemuLabSpec(name=f"c{os.getpid()}", hosts=(host,))) as up:
        yield up.state


def test_a_users_play_with_the_installed_collection_puts_1_5_0_on_a_vm(
    vm: LabState, tmp_path: Path
) -> None:
    installed = install_collection(tmp_path / "collection")
    listed = ansible_tool("ansible-galaxy", "collection", "list", collections=installed)
    assert "labctl.lab" in listed.stdout and str(installed) in listed.stdout, listed.stdout
    (tmp_path / "play.yml").write_text(PLAY)
    started = time.monotonic()
    # cwd has no collections/ folder: the roles can only come from the installed collection
    proc = ansible_tool(
        "ansible-playbook", "-i", str(vm.inventory), "play.yml",
        "-e", f"docker_engine_service_manager={STYLE}",
        collections=installed, cwd=tmp_path, timeout=900,
    )  # fmt: skip
    _say(f"the user's play took {time.monotonic() - started:.0f} s")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    assert "Validating arguments against arg spec 'main'" in proc.stdout
    assert "Docker 1.5.0 answers" in proc.stdout
    assert f"STYLE: {STYLE}, Docker 1.5.0's own docker.service" in proc.stdout
    (host,) = vm.hosts
    said = remote(host, "docker version; systemctl show -p MountFlags docker.service")
    assert "Server version: 1.5.0" in said and "MountFlags=" in said, said
    unit = remote(host, "cat /etc/systemd/system/docker.service")
    shipped = subprocess.run(
        ["sh", str(ROLES / "docker_engine/files/docker_engine.sh"), "--print-upstream",
         "docker.service", "--version", "1.5.0"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    assert unit.strip() == shipped.strip() and "MountFlags=slave" in unit
