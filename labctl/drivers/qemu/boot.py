"""Starting, waiting for and stopping the VMs of a qemu lab (``QemuVms``, the base of
``QemuLab``): their folders and pid files, the QEMU processes, the boot (overlays, host keys
handed over fw_cfg, a forwarded port) and the wait for SSH and Docker."""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import LabctlError, LabError
from ...files import write_atomic
from ...hosts import HostRecord
from ..base import (
    DownReport,
    LabDriver,
    format_size,
    make_ed25519_key,
    ssh_banner,
)
from . import images as vmimages
from .spec import DISTRO_ENGINE, QemuHostSpec
from .vm import (
    ADDRESS,
    QEMU_BINARY,
    QEMU_IMG,
    Accel,
    boot_error,
    cmdline_of,
    free_port,
    kernel_cmdline,
    lab_env,
    qemu_command,
    qemu_firmware,
    read_pid,
    read_text,
    tail,
    zombie,
)

READY_TIMEOUT = {"kvm": 180.0, "tcg": 480.0}
STOP_TIMEOUT = 10.0
#: how often to look for sshd while a VM boots. Until the guest's console says its network is
#: up, no connection at all: QEMU's user-mode network accepts on the host side at once and keeps
#: re-sending the SYN of a probe the guest cannot answer yet, so a probe that gave up reaches
#: sshd seconds later anyway, and every connection that reaches sshd starts an sshd process in
#: the guest (seconds under TCG, beside the real login: seen 3-4 such in one boot). After that
#: the SSH login itself (the guest refuses it at once until sshd listens). An image whose console
#: lacks the line is still found by banner probes (3 s) once NETWORK_UP_WAIT has passed.
BANNER_POLL = 0.5
BANNER_WAIT = 3.0
NETWORK_UP_WAIT = 60.0
#: what labctl-vm-init prints on the console once eth0 has its address (sshd starts next)
NETWORK_UP_MARKER = "labctl-vm-init: eth0 "
FW_FILES = ("lab.env", "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub", "authorized_keys")


if TYPE_CHECKING:
    from ...transport import SSHTransport


@dataclass
class _Waiting:
    """Where a VM's readiness wait is: its deadline, what it waits for, what it last heard."""

    deadline: float
    timeout: float
    waiting_for: str = "sshd"
    last_error: str = ""


@dataclass
class Vm:
    spec: QemuHostSpec
    directory: Path
    image: vmimages.VmImage | None = None
    port: int | None = None
    pid: int | None = None
    host_key: str | None = None
    reused: bool = False
    #: "kvm" | "tcg" (a reused VM keeps the accelerator it was booted with)
    accel: str = ""
    started_at: float = 0.0
    boot_to_ssh: float | None = None
    boot_to_docker: float | None = None
    kernel: str = ""
    cgroup: str = ""
    docker_version: str = ""
    storage_driver: str = ""
    docker_fs: str = ""

    @property
    def name(self) -> str:
        return self.spec.name


class QemuVms(LabDriver):
    """The VMs of a lab as processes: where they live, boot, readiness, stop."""

    accel: Accel | None = None

    # --- names and places ---------------------------------------------------------------------

    @property
    def vms_dir(self) -> Path:
        return self.directory / "vms"

    def vm_dir(self, host: str) -> Path:
        return self.vms_dir / host

    def process_name(self, host: str) -> str:
        return f"labctl-{self.lab}-{host}"[:60]

    # --- processes ----------------------------------------------------------------------------

    def _pidfile(self, host: str) -> Path:
        return self.vm_dir(host) / "qemu.pid"

    def vm_pid(self, host: str) -> int | None:
        """The pid of the host's QEMU when it runs (its command line names our pid file)."""
        pidfile = self._pidfile(host)
        pid = read_pid(pidfile)
        if pid is None:
            return None
        return pid if str(pidfile) in cmdline_of(pid) else None

    def lab_processes(self) -> list[int]:
        """Every QEMU process whose command line points into this lab's folder (the safety net
        for pid files lost in a crash)."""
        marker = str(self.vms_dir) + "/"
        found: list[int] = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            args = cmdline_of(int(entry.name))
            if args and "qemu-system" in Path(args[0]).name and any(marker in a for a in args):
                found.append(int(entry.name))
        return sorted(found)

    # --- boot -------------------------------------------------------------------------------------

    def _check_tools(self) -> None:
        if platform.machine() not in ("x86_64", "amd64"):
            raise LabError(
                f"the qemu driver runs amd64 Debian VMs and needs an x86_64 controller "
                f"(this is {platform.machine()})"
            )
        for tool, package in ((QEMU_BINARY, "qemu-system-x86"), (QEMU_IMG, "qemu-utils")):
            if shutil.which(tool) is None:
                raise LabError(
                    f"{tool} is not installed; the qemu driver needs it",
                    hint=f"install it (`apt-get install {package}`)",
                )

    def _boot(self, vm: Vm, public_key: str) -> None:
        img = vm.image
        assert img is not None and self.accel is not None
        vm.accel = self.accel.name
        d = vm.directory
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True, mode=0o700)
        fw = d / "fw_cfg"
        fw.mkdir(mode=0o700)
        private, vm.host_key = make_ed25519_key(f"labctl-{self.lab}-{vm.name}")
        write_atomic(fw / "ssh_host_ed25519_key", private, 0o600)
        write_atomic(fw / "ssh_host_ed25519_key.pub", vm.host_key + "\n", 0o600)
        write_atomic(fw / "authorized_keys", public_key + "\n", 0o600)
        write_atomic(fw / "lab.env", lab_env(vm.spec, self.lab), 0o600)
        root, data = d / "root.qcow2", d / "data.qcow2"
        for cmd in (
            [QEMU_IMG, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(img.disk), str(root)],
            [QEMU_IMG, "create", "-q", "-f", "qcow2", str(data), str(vm.spec.disk_size)],
        ):
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise LabError(
                    f"qemu-img failed: {proc.stderr.strip()[-300:]}", host=vm.name,
                    hint=f"command: {shlex.join(cmd)}",
                )  # fmt: skip
        accel = self.accel.name
        append = kernel_cmdline(
            vm.spec.suite, vm.spec.cgroup, accel=accel, swapaccount=vm.spec.swapaccount
        )
        bios = qemu_firmware()

        def command(port: int) -> list[str]:
            return qemu_command(
                name=self.process_name(vm.name),
                accel=accel,
                cpus=vm.spec.cpus,
                memory=vm.spec.memory,
                kernel=img.kernel,
                initrd=img.initrd,
                append=append,
                root_disk=root,
                data_disk=data,
                port=port,
                fw_cfg={n: fw / n for n in FW_FILES},
                pidfile=self._pidfile(vm.name),
                console_log=d / "console.log",
                qmp_socket=d / "qmp.sock",
                bios=bios,
            )

        what = (
            f"{vm.spec.suite} (kernel {img.kernel_version}, {accel}, {vm.spec.cpus} cpu, "
            f"{format_size(vm.spec.memory)}, cgroup {vm.spec.cgroup}, "
            f"{vm.spec.storage_driver} on {vm.spec.docker_fs})"
        )
        self._start_qemu(vm, command, what)

    def _ssh_answered(self, vm: Vm) -> None:
        """The first SSH login of a VM this ``up`` booted: its boot-to-SSH time, said once."""
        if vm.boot_to_ssh is None and not vm.reused:
            vm.boot_to_ssh = time.monotonic() - vm.started_at
            self._say(vm.name, f"SSH answers after {vm.boot_to_ssh:.1f} s")

    def _start_qemu(self, vm: Vm, command: Callable[[int], list[str]], what: str) -> None:
        """Start ``vm``'s QEMU (daemonized) on a free port, again on a new port when another
        process took it first; its command line is kept in the VM's folder."""
        d = vm.directory
        console = d / "console.log"
        last = ""
        for _attempt in range(5):
            port = free_port()
            cmd = command(port)
            write_atomic(d / "qemu.cmdline", shlex.join(cmd) + "\n", 0o600)
            self._say(vm.name, f"booting {what} on {ADDRESS}:{port}")
            vm.started_at = time.monotonic()
            proc = subprocess.run(
                cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
            )
            if proc.returncode == 0:
                vm.port = port
                vm.pid = self.vm_pid(vm.name)
                if vm.pid is None:
                    raise LabError(
                        "QEMU started but its pid file does not name a running QEMU",
                        host=vm.name, hint=f"see {console}",
                    )  # fmt: skip
                return
            last = proc.stderr.strip()
            if "hostfwd" not in last and "forwarding" not in last:
                break  # not a port race: no use retrying
        raise LabError(
            f"QEMU did not start: {last[-400:]}", host=vm.name, hint=f"see {d / 'qemu.cmdline'}"
        )

    def _transport_record(self, vm: Vm) -> HostRecord:
        assert vm.port is not None
        return HostRecord(
            name=vm.name,
            address=ADDRESS,
            port=vm.port,
            user="root",
            key_file=self.key_file,
            known_hosts=self.known_hosts_file,
        )

    def _wait_ready(self, vm: Vm) -> None:
        """SSH with the known host key, then a Docker engine that answers."""
        from ...errors import AuthenticationFailed, HostKeyMismatch, UnknownHostKey
        from ...transport import SSHTransport

        assert vm.port is not None
        timeout = READY_TIMEOUT.get(vm.accel, READY_TIMEOUT["tcg"])
        begin = vm.started_at if not vm.reused else time.monotonic()
        console = vm.directory / "console.log"
        wait = _Waiting(deadline=begin + timeout, timeout=timeout)
        while True:
            self._still_booting(vm, console, wait)
            # until SSH first answers, no connection before the network is up; after it
            # (waiting for the engine), straight back in
            if vm.boot_to_ssh is None and not self._network_up(vm, console, begin):
                time.sleep(BANNER_POLL)
                continue
            try:
                with SSHTransport(self._transport_record(vm), connect_timeout=20.0) as t:
                    facts = self._ready_facts(t, vm, console, wait)
            except (AuthenticationFailed, HostKeyMismatch, UnknownHostKey):
                raise  # never retried: a wrong key is not a slow boot
            except LabctlError as exc:  # transport errors while the VM boots: try again
                if isinstance(exc, LabError):
                    raise
                wait.last_error = exc.line()
                time.sleep(2.0 if vm.boot_to_ssh is not None else BANNER_POLL)
                continue
            if facts is not None:
                break
        self._record_ready(vm, facts)

    def _still_booting(self, vm: Vm, console: Path, wait: _Waiting) -> None:
        """LabError when the VM stopped or the wait is over."""
        if self.vm_pid(vm.name) is None:
            raise LabError(
                "the VM stopped while booting"
                + (f" (console: {tail(console)})" if tail(console) else ""),
                host=vm.name,
                hint=f"see {console}",
            )
        if time.monotonic() > wait.deadline:
            raise LabError(
                f"not ready after {wait.timeout:.0f} s: still waiting for {wait.waiting_for}"
                + (f" ({wait.last_error})" if wait.last_error else "")
                + (f"; console: {tail(console, 5)}" if tail(console) else ""),
                host=vm.name,
                hint=f"see {console}; `labctl lab down --name {self.lab} --driver qemu` removes "
                "the VM",
            )

    def _ready_facts(
        self, t: SSHTransport, vm: Vm, console: Path, wait: _Waiting
    ) -> list[str] | None:
        """One look at a VM whose SSH answers: its facts once labctl-vm-init is done and the
        engine answers (or, for an engine that provisioning installs, once init is done);
        None (after a short sleep) while they are not yet."""
        self._ssh_answered(vm)
        wait.waiting_for = "labctl-vm-init"
        res = t.run("systemctl is-failed labctl-vm-init.service", timeout=30)
        if res.stdout.strip() == "failed":
            log = t.run("journalctl -b -u labctl-vm-init -o cat | tail -5", timeout=30)
            raise LabError(
                "the VM's labctl-vm-init failed: " + " | ".join(log.stdout.strip().splitlines()),
                host=vm.name,
                hint=f"see {console}",
            )
        if vm.spec.engine != DISTRO_ENGINE:  # provisioning installs the engine
            res = t.run("systemctl is-active labctl-vm-init.service", timeout=30)
            if res.stdout.strip() != "active":
                time.sleep(1.0)
                return None
            vm.docker_version = f"{vm.spec.engine} (installed by provisioning)"
            vm.storage_driver = vm.spec.storage_driver
        else:
            wait.waiting_for = "the Docker engine"
            res = t.run("docker info --format '{{.ServerVersion}} {{.Driver}}'", timeout=60)
            if not res.ok or len(res.stdout.split()) != 2:
                wait.last_error = (res.stderr or res.stdout).strip()[-200:]
                self._raise_if_engine_failed(t, vm)
                time.sleep(2.0)
                return None
            vm.docker_version, vm.storage_driver = res.stdout.split()
        return t.run(
            "uname -r; stat -fc %T /sys/fs/cgroup; "
            "findmnt -no FSTYPE /var/lib/docker; cat /proc/cmdline",
            timeout=30,
        ).stdout.splitlines()

    def _record_ready(self, vm: Vm, facts: list[str]) -> None:
        """The ready VM's kernel, cgroup version and docker filesystem; LabError when it did
        not boot with the cgroup version asked for."""
        vm.kernel = facts[0].strip() if facts else ""
        cgfs = facts[1].strip() if len(facts) > 1 else ""
        vm.cgroup = "v2" if cgfs == "cgroup2fs" else "v1" if cgfs == "tmpfs" else cgfs
        vm.docker_fs = facts[2].strip() if len(facts) > 2 else ""
        if not vm.reused:
            vm.boot_to_docker = time.monotonic() - vm.started_at
        if vm.cgroup != vm.spec.cgroup:
            raise LabError(
                f"booted with cgroup {vm.cgroup or '?'}, not {vm.spec.cgroup} as asked",
                host=vm.name,
                hint=f"the kernel or systemd refused the command line: {facts[3:4]}",
            )
        self._say(
            vm.name,
            f"ready on {ADDRESS}:{vm.port}: kernel {vm.kernel}, cgroup {vm.cgroup}, "
            f"docker {vm.docker_version} ({vm.storage_driver} on {vm.docker_fs})"
            + (f", {vm.boot_to_docker:.1f} s after boot" if vm.boot_to_docker else ""),
        )

    def _network_up(self, vm: Vm, console: Path, begin: float) -> bool:
        """Has the booting VM's console said eth0 is up (or, for a console without the line,
        once NETWORK_UP_WAIT has passed, does sshd send its banner)?  LabError when the console
        shows the boot failed."""
        assert vm.port is not None
        text = read_text(console)
        if NETWORK_UP_MARKER in text:
            return True
        quiet = not vm.reused and time.monotonic() - begin < NETWORK_UP_WAIT
        if not quiet and ssh_banner(vm.port, BANNER_WAIT):
            return True
        failed = boot_error(text)
        if failed:
            raise LabError(f"the VM's boot failed: {failed}", host=vm.name, hint=f"see {console}")
        return False

    def _raise_if_engine_failed(self, t: Any, vm: Vm) -> None:
        st = t.run("systemctl is-failed docker.service", timeout=30)
        if st.stdout.strip() == "failed":
            log = t.run("journalctl -b -u docker -o cat | tail -4", timeout=30)
            raise LabError(
                f"dockerd failed to start ({vm.spec.storage_driver} on {vm.spec.docker_fs}): "
                + " | ".join(log.stdout.strip().splitlines()),
                host=vm.name,
                hint="the VM's kernel or engine refuses this storage setup",
            )

    # --- stop -------------------------------------------------------------------------------------

    def _kill(self, pid: int, what: str, report: DownReport) -> bool:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return True
        except OSError as exc:
            report.problems.append(f"{what}: cannot stop QEMU pid {pid} ({exc.strerror})")
            return False
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            if not Path(f"/proc/{pid}").exists() or zombie(pid):
                return True
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if not Path(f"/proc/{pid}").exists() or zombie(pid):
                return True
            time.sleep(0.1)
        report.problems.append(f"{what}: QEMU pid {pid} did not stop")
        return False

    def _stop_vm(self, name: str, report: DownReport) -> None:
        pid = self.vm_pid(name)
        stopped = True
        if pid is not None:
            self._say(name, f"stopping QEMU (pid {pid})")
            stopped = self._kill(pid, name, report)
        d = self.vm_dir(name)
        if stopped and d.exists():
            shutil.rmtree(d, ignore_errors=True)
            if d.exists():
                report.problems.append(f"{name}: cannot remove {d}")
                return
        if pid is not None and stopped:
            report.add("VMs", name)
            self._say(name, "removed")
