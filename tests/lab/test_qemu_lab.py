"""The qemu driver for real: one bookworm VM with its own Debian kernel, probed end to end.

Needs root, qemu-system-x86 + qemu-utils and debootstrap. The VM image is built on first use
(~2 min under load, debootstrap packages cached with the docker driver's) and reused while its
recipe is unchanged. Without working KVM the VM runs under TCG (2 vCPUs, 1 GiB). The lab lives
in its own LABCTL_HOME and is always taken down; no QEMU process may be left.

``LABCTL_QEMU_LAB_FULL=1`` adds a second bookworm VM booted with cgroup v1 and Docker's
devicemapper storage driver (loop-lvm), probed together with the first.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.drivers.base import GiB
from labctl.drivers.qemu import QemuHostSpec, QemuLab, QemuLabSpec
from labctl.errors import UnknownHostKey
from labctl.experiments import ALL
from labctl.hosts import HostRecord
from labctl.transport import SSHTransport
from tests.helpers import UpLab, qemu_lab_up, skip_without_qemu_lab

pytestmark = pytest.mark.lab

LABCTL = str(Path(sys.executable).with_name("labctl"))
FULL = os.environ.get("LABCTL_QEMU_LAB_FULL", "") not in ("", "0")


VmLab = UpLab[QemuLab]


@pytest.fixture(scope="module")
def vm_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VmLab]:
    skip_without_qemu_lab()
    home = tmp_path_factory.mktemp("labctl-home-qemu")
    hosts = [QemuHostSpec(suite="bookworm", memory=1 * GiB, cpus=2, disk_size=2 * GiB)]
    if FULL:
        hosts.append(
            QemuHostSpec(
                suite="bookworm",
                name="bookworm-dm-v1",
                memory=1 * GiB,
                cpus=2,
                disk_size=4 * GiB,
                cgroup="v1",
                storage_driver="devicemapper",
            )
        )
    with qemu_lab_up(home, QemuLabSpec(name=f"q{os.getpid()}", hosts=tuple(hosts))) as up:
        yield up


def _host(lab: VmLab, name: str = "bookworm") -> HostRecord:
    return next(h for h in lab.state.hosts if h.name == name)


def _sh(host: HostRecord, command: str) -> str:
    with SSHTransport(host) as t:
        res = t.run(command, timeout=120)
    assert res.ok, (command, res.stderr)
    return res.stdout.strip()


def test_vm_answers_ssh_with_its_known_host_key(vm_lab: VmLab, tmp_path: Path) -> None:
    host = _host(vm_lab)
    assert host.address == "127.0.0.1" and host.disposable
    assert host.known_hosts is not None and host.known_hosts.read_text().startswith(
        f"[127.0.0.1]:{host.port} ssh-ed25519 "
    )
    assert _sh(host, "hostname") == "bookworm"
    # strict checking: the same VM under a known_hosts file without its key is refused
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    from dataclasses import replace

    with pytest.raises(UnknownHostKey), SSHTransport(replace(host, known_hosts=empty)):
        pass
    assert empty.read_text() == ""
    # key-only login: sshd refuses passwords
    sshd = _sh(host, "sshd -T 2>/dev/null | grep -Ei '^(passwordauthentication|permitrootlogin)'")
    assert "passwordauthentication no" in sshd and "permitrootlogin without-password" in sshd


def test_vm_runs_the_debian_kernel_and_the_asked_cgroup(vm_lab: VmLab) -> None:
    host = _host(vm_lab)
    kernel = _sh(host, "uname -r")
    assert kernel != os.uname().release
    assert kernel.startswith("6.1.") and kernel.endswith("-cloud-amd64"), kernel
    assert _sh(host, "stat -fc %T /sys/fs/cgroup") == "cgroup2fs"
    assert _sh(host, "stat -fc %T /var/lib/docker") == "ext2/ext3"  # ext4 data disk
    assert _sh(host, "docker info --format '{{.Driver}}'") == "overlay2"
    v = host.vars
    assert v["labctl_driver"] == "qemu" and v["labctl_disposable"] is True
    assert v["labctl_suite"] == "bookworm" and v["labctl_kernel_cgroup"] == "v2"
    assert v["labctl_accel"] in ("kvm", "tcg")
    said = " ".join(m for _h, m in vm_lab.messages)
    assert "accelerator: " in said and "SSH answers after" in said


def test_status_shows_vm_kernel_and_accelerator(vm_lab: VmLab) -> None:
    rows = {s.name: s for s in vm_lab.driver.status()}
    s = rows["bookworm"]
    assert s.state == "running" and s.port == _host(vm_lab).port
    assert s.details["kernel"].endswith("-cloud-amd64")
    assert s.details["accel"] in ("kvm", "tcg") and s.details["cgroup"] == "v2"
    assert int(s.details["pid"]) in vm_lab.driver.lab_processes()


def test_up_again_reuses_the_running_vm(vm_lab: VmLab) -> None:
    before = {h.name: h.port for h in vm_lab.state.hosts}
    pids = vm_lab.driver.lab_processes()
    started = time.monotonic()
    state = vm_lab.driver.up()
    assert time.monotonic() - started < 60
    assert {h.name: h.port for h in state.hosts} == before
    assert vm_lab.driver.lab_processes() == pids


def test_probe_on_the_vm(vm_lab: VmLab, tmp_path: Path) -> None:
    results = tmp_path / "results"
    started = time.monotonic()
    proc = subprocess.run(
        [LABCTL, "probe", "-i", str(vm_lab.state.inventory), "--results", str(results)],
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ.copy(),
    )
    seconds = time.monotonic() - started
    print(f"probe took {seconds:.1f} s", file=sys.stderr)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = [p for p in results.iterdir() if (p / "run.json").exists()]
    with (run_dir / "matrix.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = {r["metric"]: r for r in reader}
        columns = list(reader.fieldnames or [])
    for host in vm_lab.state.hosts:
        kernel = _sh(host, "uname -r")
        col = next(c for c in columns if c.split(" ")[0] == host.name)
        assert kernel in col, col
        assert rows["status"][col] == "ok"
        assert rows["host.kernel"][col] == kernel != os.uname().release
        assert rows["lab.driver"][col] == "qemu"
        for name in ALL:  # the full study ran on the VM's own kernel
            assert rows[f"{name}.status"][col] in ("ok", "skipped"), (
                name,
                rows[f"{name}.verdict"][col],
            )
    col = next(c for c in columns if c.split(" ")[0] == "bookworm")
    assert rows["docker.storage_driver"][col] == "overlay2"
    assert rows["storage-location.host_path"][col].startswith("/var/lib/docker/overlay2/")
    if FULL:
        dm = next(c for c in columns if c.split(" ")[0] == "bookworm-dm-v1")
        assert rows["docker.storage_driver"][dm] == "devicemapper"
        assert rows["lab.kernel_cgroup"][dm] == "v1"
        assert rows["storage-location.container_root_is_block_device"][dm] == "true"


def test_down_leaves_nothing(vm_lab: VmLab) -> None:
    ports = [h.port for h in vm_lab.state.hosts]
    report = vm_lab.driver.down()
    assert report.ok, report.problems
    assert sorted(report.removed["VMs"]) == sorted(h.name for h in vm_lab.state.hosts)
    assert vm_lab.driver.lab_processes() == []
    assert not vm_lab.driver.vms_dir.exists()
    assert not vm_lab.state.inventory.exists() and not vm_lab.state.known_hosts.exists()
    import socket

    for port in ports:
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    assert [s.state for s in vm_lab.driver.status()] == ["missing"] * len(ports)
