"""The qemu driver: lab hosts as small VMs, each running its Debian suite's own kernel.

Container lab hosts share the controller's kernel; these do not, so memory and process findings
describe a separate OS (a host OOM kill or fork failure is the VM's own), and ``--exhaust`` is
safe by construction (the VM is disposable).

Each VM boots the suite's cloud kernel and initrd (``-kernel``/``-initrd``, so the command line
picks cgroup v1 or v2) from a qcow2 overlay on the cached base image (``images.py``) plus a
second qcow2 disk for /var/lib/docker (ext4, or XFS with project quota). Networking is QEMU
user mode with one forwarded port, ``127.0.0.1:PORT -> :22``: the controller talks to nothing
else. KVM is used when a trial boot under it works, else TCG (``-accel tcg,thread=multi -cpu
max``); under TCG the VMs boot one after another (parallel boots on few cores are slower).

SSH host keys are made on the controller and handed to the VM through QEMU's fw_cfg (root-only
in the guest), so known_hosts is written before the first connection: nothing is trusted on
first use. State lives in ``lab_dir(<lab>)``: the lab key, ``known_hosts``, ``inventory.yml``,
``lab.json`` and ``vms/<host>/`` (overlays, pid file, console log, fw_cfg files), all removed by
``down`` except the key.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl.drivers.base import (
    DownReport,
    HostStatus,
    LabDriver,
    LabState,
    Progress,
    format_size,
    make_ed25519_key,
    recorded_driver,
    ssh_banner,
    write_atomic,
)
from labctl.drivers.qemu import images as vmimages
from labctl.drivers.qemu.spec import (
    DISTRO_ENGINE,
    PRESETS,
    QemuHostSpec,
    QemuLabSpec,
    engine_vars,
    recorded_spec,
)
from labctl.drivers.qemu.vm import (
    ADDRESS,
    QEMU_BINARY,
    QEMU_IMG,
    Accel,
    cmdline_of,
    detect_accel,
    free_port,
    kernel_cmdline,
    lab_env,
    port_open,
    qemu_command,
    read_pid,
    tail,
    zombie,
)
from labctl.errors import ConfigError, LabctlError, LabError
from labctl.hosts import HostRecord

READY_TIMEOUT = {"kvm": 180.0, "tcg": 480.0}
STOP_TIMEOUT = 10.0
FW_FILES = ("lab.env", "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub", "authorized_keys")
#: the `labctl lab up` options of a qemu lab
OPTIONS = frozenset(
    {"suites", "hosts", "disk_size", "disk_inodes", "memory", "storage_driver", "cpus", "cgroup",
     "docker_fs", "accel"}
)  # fmt: skip
#: what a VM is, for `labctl lab down`'s summary
VM_PARTS = "QEMU processes, overlays, ports"


@dataclass
class _Vm:
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


class QemuLab(LabDriver):
    """Lab hosts as local QEMU VMs with their suites' own kernels."""

    name = "qemu"
    spec: QemuLabSpec
    options = OPTIONS
    presets = tuple(PRESETS)
    preset_options = frozenset({"accel"})

    def __init__(self, spec: QemuLabSpec, *, progress: Progress | None = None) -> None:
        self.spec = spec
        self._progress = progress
        self.accel: Accel | None = None

    @classmethod
    def from_options(
        cls, name: str, options: Mapping[str, Any], *, preset: str | None = None,
        progress: Progress | None = None,
    ) -> QemuLab:  # fmt: skip
        if preset:
            if preset not in PRESETS:
                raise ConfigError(f"the qemu driver has no preset {preset!r}")
            accel = options.get("accel") or "auto"
            spec = QemuLabSpec(name=name, hosts=PRESETS[preset](), accel=accel)
            spec.validate()
            return cls(spec, progress=progress)
        data: dict[str, Any] = {"name": name}
        for key, value in options.items():
            if value is not None:
                data[key] = list(value) if key == "hosts" else value
        # no options: the lab as it was last brought up (`run`, `status`, `down`, `up` again)
        spec = (len(data) == 1 and recorded_spec(name)) or QemuLabSpec.from_mapping(data)
        return cls(spec, progress=progress)

    # --- names and places ---------------------------------------------------------------------

    @property
    def vms_dir(self) -> Path:
        return self.directory / "vms"

    def vm_dir(self, host: str) -> Path:
        return self.vms_dir / host

    def process_name(self, host: str) -> str:
        return f"labctl-{self.lab}-{host}"[:60]

    def _read_state(self) -> dict[str, Any]:
        data = self._read_state_file()
        return data if data.get("driver") == "qemu" else {}

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

    # --- up -----------------------------------------------------------------------------------

    def up(self) -> LabState:
        self.spec.validate()
        self._check_tools()
        other = recorded_driver(self.lab)
        if other not in (None, "qemu"):
            raise LabError(
                f"lab {self.lab!r} was made by the {other} driver",
                hint=f"take it down first (`labctl lab down --name {self.lab}`) or pick another "
                "--name",
            )
        started = time.monotonic()
        for h in self.spec.hosts:  # before any boot: an engine that is not built stops here
            engine_vars(h)
        key_file, public_key = self._make_directory()
        old = self._read_state()
        old_hosts: dict[str, Any] = dict(old.get("hosts") or {})

        vms = [_Vm(h, self.vm_dir(h.name)) for h in self.spec.hosts]
        for vm in vms:
            rec = old_hosts.get(vm.name) or {}
            pid = self.vm_pid(vm.name)
            if pid is not None and rec.get("port") and rec.get("host_key"):
                vm.reused, vm.pid, vm.port = True, pid, int(rec["port"])
                vm.host_key = str(rec["host_key"])
                vm.accel = str(rec.get("accel") or "tcg")
                current = vmimages.vm_recipe_for(vm.spec.suite).short_hash
                if rec.get("recipe") and rec["recipe"] != current:
                    self._say(
                        vm.name,
                        f"note: made from an older image recipe ({rec['recipe']}, now "
                        f"{current}); `down` then `up` to use the current image",
                    )
                if rec.get("spec") and rec["spec"] != vm.spec.to_dict():
                    self._say(
                        vm.name,
                        "note: running with older settings; `down` then `up` to apply the new",
                    )
            elif self.vm_dir(vm.name).exists():
                self._say(vm.name, "not running: starting it afresh")
                self._stop_vm(vm.name, DownReport())
        for name in sorted(set(old_hosts) - {vm.name for vm in vms}):
            if self.vm_pid(name) is not None:
                self._say(name, "note: running but not in the lab's hosts; `down` removes it")

        to_boot = [vm for vm in vms if not vm.reused]
        suites = [vm.spec.suite for vm in to_boot]
        built = vmimages.ensure_vm_images(suites, mirror=self._mirror, progress=self._progress)
        for vm in to_boot:
            vm.image = built[vm.spec.suite]
        if to_boot:
            first = to_boot[0].image
            assert first is not None
            self.accel = detect_accel(first.kernel, first.initrd, want=self.spec.accel)
        elif old.get("accel"):
            self.accel = Accel(str(old["accel"]), str(old.get("accel_reason", "")))
        else:
            self.accel = Accel("tcg", "unknown")
        self._say("*", f"accelerator: {self.accel.name} ({self.accel.reason})")

        state_hosts = {n: h for n, h in old_hosts.items() if self.vm_pid(n) is not None}
        try:
            if self.accel.name == "kvm":
                for vm in to_boot:
                    self._boot(vm, public_key)
                    state_hosts[vm.name] = self._vm_state(vm)
                    self._write_state(state_hosts)
                self._write_known_hosts(vms)
                with ThreadPoolExecutor(max_workers=len(vms)) as pool:
                    for fut in [pool.submit(self._wait_ready, vm) for vm in vms]:
                        fut.result()
            else:  # software emulation: one after another (parallel boots fight for the cores)
                for vm in vms:
                    if not vm.reused:
                        self._boot(vm, public_key)
                        state_hosts[vm.name] = self._vm_state(vm)
                        self._write_state(state_hosts)
                    self._write_known_hosts([v for v in vms if v.port is not None])
                    self._wait_ready(vm)
        finally:
            for vm in vms:
                if vm.port is not None:
                    state_hosts[vm.name] = self._vm_state(vm)
            self._write_state(state_hosts)

        records = [self._record(vm) for vm in vms]
        return self._finish_up(records, ((vm.port, vm.host_key) for vm in vms), key_file, started)

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

    def _boot(self, vm: _Vm, public_key: str) -> None:
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
        append = kernel_cmdline(vm.spec.suite, vm.spec.cgroup)
        console = d / "console.log"
        last = ""
        for _attempt in range(5):
            port = free_port()
            cmd = qemu_command(
                name=self.process_name(vm.name),
                accel=self.accel.name,
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
                console_log=console,
                qmp_socket=d / "qmp.sock",
            )
            write_atomic(d / "qemu.cmdline", shlex.join(cmd) + "\n", 0o600)
            self._say(
                vm.name,
                f"booting {vm.spec.suite} (kernel {img.kernel_version}, {self.accel.name}, "
                f"{vm.spec.cpus} cpu, {format_size(vm.spec.memory)}, cgroup {vm.spec.cgroup}, "
                f"{vm.spec.storage_driver} on {vm.spec.docker_fs}) on {ADDRESS}:{port}",
            )
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

    def _transport_record(self, vm: _Vm) -> HostRecord:
        assert vm.port is not None
        return HostRecord(
            name=vm.name,
            address=ADDRESS,
            port=vm.port,
            user="root",
            key_file=self.key_file,
            known_hosts=self.known_hosts_file,
        )

    def _wait_ready(self, vm: _Vm) -> None:
        """SSH with the known host key, then a Docker engine that answers."""
        from labctl.errors import AuthenticationFailed, HostKeyMismatch, UnknownHostKey
        from labctl.transport import SSHTransport

        assert vm.port is not None
        timeout = READY_TIMEOUT.get(vm.accel, READY_TIMEOUT["tcg"])
        begin = vm.started_at if not vm.reused else time.monotonic()
        deadline = begin + timeout
        console = vm.directory / "console.log"
        waiting_for = "sshd"
        last_error = ""
        while True:
            if self.vm_pid(vm.name) is None:
                raise LabError(
                    "the VM stopped while booting"
                    + (f" (console: {tail(console)})" if tail(console) else ""),
                    host=vm.name,
                    hint=f"see {console}",
                )
            if time.monotonic() > deadline:
                raise LabError(
                    f"not ready after {timeout:.0f} s: still waiting for {waiting_for}"
                    + (f" ({last_error})" if last_error else "")
                    + (f"; console: {tail(console, 5)}" if tail(console) else ""),
                    host=vm.name,
                    hint=f"see {console}; `labctl lab down` removes the VM",
                )
            if not ssh_banner(vm.port, 3.0):
                time.sleep(1.0)
                continue
            try:
                with SSHTransport(self._transport_record(vm), connect_timeout=20.0) as t:
                    if vm.boot_to_ssh is None and not vm.reused:
                        vm.boot_to_ssh = time.monotonic() - vm.started_at
                        self._say(vm.name, f"SSH answers after {vm.boot_to_ssh:.1f} s")
                    waiting_for = "labctl-vm-init"
                    res = t.run("systemctl is-failed labctl-vm-init.service", timeout=30)
                    if res.stdout.strip() == "failed":
                        log = t.run("journalctl -b -u labctl-vm-init -o cat | tail -5", timeout=30)
                        raise LabError(
                            "the VM's labctl-vm-init failed: "
                            + " | ".join(log.stdout.strip().splitlines()),
                            host=vm.name,
                            hint=f"see {console}",
                        )
                    if vm.spec.engine != DISTRO_ENGINE:  # provisioning installs the engine
                        res = t.run("systemctl is-active labctl-vm-init.service", timeout=30)
                        if res.stdout.strip() != "active":
                            time.sleep(1.0)
                            continue
                        vm.docker_version = f"{vm.spec.engine} (installed by provisioning)"
                        vm.storage_driver = vm.spec.storage_driver
                    else:
                        waiting_for = "the Docker engine"
                        res = t.run(
                            "docker info --format '{{.ServerVersion}} {{.Driver}}'", timeout=60
                        )
                        if not res.ok or len(res.stdout.split()) != 2:
                            last_error = (res.stderr or res.stdout).strip()[-200:]
                            self._raise_if_engine_failed(t, vm)
                            time.sleep(2.0)
                            continue
                        vm.docker_version, vm.storage_driver = res.stdout.split()
                    facts = t.run(
                        "uname -r; stat -fc %T /sys/fs/cgroup; "
                        "findmnt -no FSTYPE /var/lib/docker; cat /proc/cmdline",
                        timeout=30,
                    ).stdout.splitlines()
            except (AuthenticationFailed, HostKeyMismatch, UnknownHostKey):
                raise  # never retried: a wrong key is not a slow boot
            except LabctlError as exc:  # transport errors while the VM boots: try again
                if isinstance(exc, LabError):
                    raise
                last_error = exc.line()
                time.sleep(2.0)
                continue
            break
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

    def _raise_if_engine_failed(self, t: Any, vm: _Vm) -> None:
        st = t.run("systemctl is-failed docker.service", timeout=30)
        if st.stdout.strip() == "failed":
            log = t.run("journalctl -b -u docker -o cat | tail -4", timeout=30)
            raise LabError(
                f"dockerd failed to start ({vm.spec.storage_driver} on {vm.spec.docker_fs}): "
                + " | ".join(log.stdout.strip().splitlines()),
                host=vm.name,
                hint="the VM's kernel or engine refuses this storage setup",
            )

    # --- files --------------------------------------------------------------------------------

    def _record(self, vm: _Vm) -> HostRecord:
        assert vm.port is not None
        labels = {
            "driver": "qemu",
            "lab": self.lab,
            "suite": vm.spec.suite,
            "storage_driver": vm.spec.storage_driver,
            "engine": vm.spec.engine,
        }
        if vm.spec.engine != DISTRO_ENGINE:
            labels["engine_init"] = vm.spec.init
        return self._host_record(vm.name, vm.port, labels=labels, host_vars=self._host_vars(vm))

    def _host_vars(self, vm: _Vm) -> dict[str, Any]:
        assert vm.port is not None
        return {
            **self._common_host_vars(vm.port, vm.spec.suite, "/usr/bin/python3"),
            "labctl_storage_driver": vm.spec.storage_driver,
            "labctl_docker_fs": vm.spec.docker_fs,
            "labctl_kernel_cgroup": vm.spec.cgroup,
            "labctl_accel": vm.accel,
            "labctl_vm_cpus": vm.spec.cpus,
            "labctl_vm_memory": format_size(vm.spec.memory),
            **engine_vars(vm.spec),
        }

    def _write_known_hosts(self, vms: Sequence[_Vm]) -> None:
        self._write_known_hosts_entries(
            (vm.port, vm.host_key) for vm in vms if vm.port and vm.host_key
        )

    def _vm_state(self, vm: _Vm) -> dict[str, Any]:
        old = (self._read_state().get("hosts") or {}).get(vm.name) or {}
        img = vm.image
        rec: dict[str, Any] = dict(old) if vm.reused else {}
        rec.update(
            {
                "spec": vm.spec.to_dict(),
                "suite": vm.spec.suite,
                "port": vm.port,
                "pid": vm.pid,
                "host_key": vm.host_key,
                "directory": str(vm.directory),
            }
        )
        if img is not None:
            rec.update(
                {"recipe": img.recipe, "image": str(img.directory),
                 "kernel_version": img.kernel_version}
            )  # fmt: skip
        if vm.accel:
            rec["accel"] = vm.accel
        for key in ("kernel", "cgroup", "docker_version", "storage_driver", "docker_fs"):
            if getattr(vm, key):
                rec[key] = getattr(vm, key)
        for key in ("boot_to_ssh", "boot_to_docker"):
            value = getattr(vm, key)
            if value is not None:
                rec[key] = round(value, 1)
        return rec

    def _write_state(self, hosts: Mapping[str, Any]) -> None:
        state = {
            "lab": self.lab,
            "driver": "qemu",
            "spec": self.spec.to_dict(),
            "accel": self.accel.name if self.accel else None,
            "accel_reason": self.accel.reason if self.accel else None,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "hosts": dict(hosts),
        }
        write_atomic(self.state_file, json.dumps(state, indent=2) + "\n", 0o600)

    # --- status -------------------------------------------------------------------------------

    def status(self) -> list[HostStatus]:
        state = self._read_state()
        recorded: dict[str, Any] = dict(state.get("hosts") or {})
        on_disk = sorted(p.name for p in self.vms_dir.iterdir()) if self.vms_dir.is_dir() else []
        spec_names = [h.name for h in self.spec.hosts]
        names = list(dict.fromkeys([*recorded, *on_disk]))
        if not names:
            names = spec_names
        out: list[HostStatus] = []
        for name in names:
            rec = recorded.get(name) or {}
            pid = self.vm_pid(name)
            if pid is None and not rec and not self.vm_dir(name).exists():
                out.append(HostStatus(name=name, state="missing"))
                continue
            details: dict[str, str] = {"vm": self.process_name(name)}
            for key in ("suite", "accel", "kernel", "cgroup", "docker_version",
                        "storage_driver", "docker_fs", "recipe"):  # fmt: skip
                if rec.get(key):
                    details[key] = str(rec[key])
            spec = rec.get("spec") or {}
            if spec:
                details["cpus"] = str(spec.get("cpus"))
                details["memory"] = format_size(int(spec.get("memory", 0)))
            if rec.get("boot_to_ssh") is not None:
                details["boot_to_ssh"] = f"{rec['boot_to_ssh']}s"
            port = int(rec["port"]) if rec.get("port") else None
            if pid is not None:
                details["pid"] = str(pid)
                if port is not None:
                    details["kernel"] = self._live_kernel(name, port) or details.get(
                        "kernel", "not answering"
                    )
            out.append(
                HostStatus(
                    name=name,
                    state="running" if pid is not None else "stopped",
                    address=ADDRESS if pid is not None else None,
                    port=port if pid is not None else None,
                    image=f"{rec.get('suite', '?')}-{rec.get('recipe', '?')} "
                    f"(kernel {rec.get('kernel_version', '?')})",
                    details=details,
                )
            )
        return out

    def _live_kernel(self, name: str, port: int) -> str | None:
        from labctl.transport import SSHTransport

        record = HostRecord(
            name=name, address=ADDRESS, port=port, key_file=self.key_file,
            known_hosts=self.known_hosts_file,
        )  # fmt: skip
        try:
            with SSHTransport(record, connect_timeout=5.0) as t:
                res = t.run("uname -r", timeout=10)
        except LabctlError:
            return None
        return res.stdout.strip() if res.ok else None

    # --- down ---------------------------------------------------------------------------------

    def down(self) -> DownReport:
        report = DownReport.of("VMs", detail=VM_PARTS)
        state = self._read_state()
        names = set((state.get("hosts") or {}).keys())
        if self.vms_dir.is_dir():
            names |= {p.name for p in self.vms_dir.iterdir() if p.is_dir()}
        ports = {int(h["port"]) for h in (state.get("hosts") or {}).values() if h.get("port")}
        for name in sorted(names):
            self._stop_vm(name, report)
        for pid in self.lab_processes():  # pid files lost in a crash: still ours
            self._kill(pid, f"pid {pid}", report)
        with contextlib.suppress(FileNotFoundError):
            if self.vms_dir.is_dir() and not any(self.vms_dir.iterdir()):
                self.vms_dir.rmdir()
        for path in (self.inventory_file, self.known_hosts_file, self.state_file):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        left = self.lab_processes()
        if left:
            report.problems.append(f"QEMU processes still running: {left}")
        busy = sorted(p for p in ports if port_open(p))
        if busy:
            report.problems.append(
                f"ports still answering on {ADDRESS}: {', '.join(map(str, busy))}"
            )
        self._say("*", f"lab {self.lab} removed")
        return report

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
