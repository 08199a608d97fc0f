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
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ...errors import ConfigError, LabctlError, LabError
from ...files import write_atomic
from ...hosts import HostRecord, Progress
from ..base import (
    DownReport,
    HostStatus,
    LabState,
    format_size,
    recorded_driver,
)
from . import images as vmimages
from . import manifest as vmmanifest
from .boot import Vm
from .bootcheck import boot_check
from .cloudimage import ImageVms, check_image, image_accel, seed_tool
from .spec import DISTRO_ENGINE, PRESETS, QemuLabSpec, engine_vars, recorded_spec
from .vm import ADDRESS, Accel, detect_accel, port_open

#: the `labctl lab up` options of a qemu lab
OPTIONS = frozenset(
    {"suites", "hosts", "disk_size", "disk_inodes", "memory", "storage_driver", "cpus", "cgroup",
     "docker_fs", "accel", "refresh"}
)  # fmt: skip
#: what a VM is, for `labctl lab down`'s summary
VM_PARTS = "QEMU processes, overlays, ports"


class QemuLab(ImageVms):
    """Lab hosts as local QEMU VMs with their suites' own kernels."""

    name = "qemu"
    spec: QemuLabSpec
    options = OPTIONS
    presets = tuple(PRESETS)
    preset_options = frozenset({"accel", "refresh"})

    def __init__(
        self, spec: QemuLabSpec, *, progress: Progress | None = None, refresh: bool = False
    ) -> None:
        self.spec = spec
        self._progress = progress
        self.accel: Accel | None = None
        #: `up --refresh`: rebuild the lab's images from the mirror, boot every VM afresh
        self.refresh = refresh

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
            return cls(spec, progress=progress, refresh=bool(options.get("refresh")))
        data: dict[str, Any] = {"name": name}
        for key, value in options.items():
            if value is not None and key != "refresh":
                data[key] = list(value) if key == "hosts" else value
        # no options: the lab as it was last brought up (`run`, `status`, `down`, `up` again)
        spec = (len(data) == 1 and recorded_spec(name)) or QemuLabSpec.from_mapping(data)
        return cls(spec, progress=progress, refresh=bool(options.get("refresh")))

    # --- state ---------------------------------------------------------------------------------

    def _read_state(self) -> dict[str, Any]:
        data = self._read_state_file()
        return data if data.get("driver") == "qemu" else {}

    # --- up -----------------------------------------------------------------------------------

    def up(self) -> LabState:
        self._preflight()
        self.accel = None
        started = time.monotonic()
        key_file, public_key = self._make_directory()
        old = self._read_state()
        old_hosts: dict[str, Any] = dict(old.get("hosts") or {})
        vms = [Vm(h, self.vm_dir(h.name)) for h in self.spec.hosts]
        built: dict[str, vmimages.VmImage] = {}
        if self.refresh:  # built first: a refresh the mirror broke leaves the running VMs be
            built = self._images([vm.spec.suite for vm in vms if not vm.spec.image], refresh=True)
        self._adopt_running(vms, old_hosts)
        to_boot = [vm for vm in vms if not vm.reused]
        suites = [vm.spec.suite for vm in to_boot if not vm.spec.image]
        built.update(self._images([s for s in suites if s not in built], refresh=False))
        for vm in to_boot:
            vm.image = built.get(vm.spec.suite)
        self._say_mirror_moved(vms, built)
        self.accel = self._choose_accel(to_boot, old)
        self._say("*", f"accelerator: {self.accel.name} ({self.accel.reason})")
        self._boot_and_wait(vms, old_hosts, public_key)
        records = [self._record(vm) for vm in vms]
        return self._finish_up(records, ((vm.port, vm.host_key) for vm in vms), key_file, started)

    def _preflight(self) -> None:
        """What stops `up` before any boot: a bad spec, missing tools, a lab of another driver,
        an engine that is not built, an image file that is not a disk image, no seed tool."""
        self.spec.validate()
        self._check_tools()
        other = recorded_driver(self.lab)
        if other not in (None, "qemu"):
            raise LabError(
                f"lab {self.lab!r} was made by the {other} driver",
                hint=f"take it down first (`labctl lab down --name {self.lab}`) or pick another "
                "--name",
            )
        for h in self.spec.hosts:
            engine_vars(h)
            if h.image:
                check_image(Path(h.image), h.name)
                seed_tool()

    def _adopt_running(self, vms: list[Vm], old_hosts: dict[str, Any]) -> None:
        """VMs of the lab still running are reused (with a note when their image or settings
        are older); stopped ones are cleared to boot afresh."""
        for vm in vms:
            rec = old_hosts.get(vm.name) or {}
            pid = self.vm_pid(vm.name)
            if pid is not None and self.refresh and not vm.spec.image:
                self._say(vm.name, "refresh: stopping it to boot the rebuilt image")
                self._stop_vm(vm.name, DownReport())
            elif pid is not None and rec.get("port") and rec.get("host_key"):
                vm.reused, vm.pid, vm.port = True, pid, int(rec["port"])
                vm.host_key = str(rec["host_key"])
                vm.accel = str(rec.get("accel") or "tcg")
                current = "" if vm.spec.image else vmimages.vm_recipe_for(vm.spec.suite).short_hash
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

    def _images(self, suites: list[str], *, refresh: bool) -> dict[str, vmimages.VmImage]:
        """The suites' images: cached, or built (and boot-checked); all built with refresh."""
        return vmimages.ensure_vm_images(
            suites, mirror=self._mirror, progress=self._progress, check=self._boot_check,
            refresh=refresh,
        )  # fmt: skip

    def _boot_check(self, image: vmimages.VmImage) -> None:
        """Boot a new image once before it is cached (``bootcheck.py``), on the accelerator
        this lab's VMs will use (decided by its first image, then kept)."""
        if self.accel is None:
            self.accel = detect_accel(image.kernel, image.initrd, want=self.spec.accel)
        boot_check(image, self.accel, mirror=self._mirror(), progress=self._progress)

    def _say_mirror_moved(self, vms: list[Vm], built: Mapping[str, vmimages.VmImage]) -> None:
        """One line per cached image of the lab: has the Debian mirror moved on since it was
        built (images built by this `up` are as new as the mirror)? Never stops the lab."""
        images: dict[str, Path] = {}
        for vm in vms:
            if vm.spec.image or vm.spec.suite in images:
                continue
            img = built.get(vm.spec.suite) or vmimages.load_image(
                vmimages.vm_recipe_for(vm.spec.suite)
            )
            if img is not None and not img.built_now:
                images[vm.spec.suite] = img.directory
        if not images:
            return
        try:
            mirror: str | None = self._mirror()
        except ConfigError:  # none configured or found: the one each image was built from
            mirror = None
        for suite, line in vmmanifest.mirror_lines(images.items(), mirror=mirror):
            self._say(suite, line)

    def _choose_accel(self, to_boot: list[Vm], old: dict[str, Any]) -> Accel:
        own = [vm.image for vm in to_boot if vm.image is not None]
        if own:
            if self.accel is not None:  # decided for the boot check of a new image
                return self.accel
            return detect_accel(own[0].kernel, own[0].initrd, want=self.spec.accel)
        if to_boot:  # only the users' images: no labctl kernel for a KVM trial boot
            return image_accel(self.spec.accel)
        if old.get("accel"):
            return Accel(str(old["accel"]), str(old.get("accel_reason", "")))
        return Accel("tcg", "unknown")

    def _boot_and_wait(self, vms: list[Vm], old_hosts: dict[str, Any], public_key: str) -> None:
        """Boot what is not running and wait for every VM; lab.json follows each boot."""
        assert self.accel is not None
        state_hosts = {n: h for n, h in old_hosts.items() if self.vm_pid(n) is not None}
        try:
            if self.accel.name == "kvm":
                for vm in vms:
                    if not vm.reused:
                        self._boot_any(vm, public_key)
                        state_hosts[vm.name] = self._vm_state(vm)
                        self._write_state(state_hosts)
                self._write_known_hosts(vms)
                with ThreadPoolExecutor(max_workers=len(vms)) as pool:
                    for fut in [pool.submit(self._wait_any, vm) for vm in vms]:
                        fut.result()
            else:  # software emulation: one after another (parallel boots fight for the cores)
                for vm in vms:
                    if not vm.reused:
                        self._boot_any(vm, public_key)
                        state_hosts[vm.name] = self._vm_state(vm)
                        self._write_state(state_hosts)
                    self._write_known_hosts([v for v in vms if v.port is not None])
                    self._wait_any(vm)
        finally:
            for vm in vms:
                if vm.port is not None:
                    state_hosts[vm.name] = self._vm_state(vm)
            self._write_state(state_hosts)

    def _boot_any(self, vm: Vm, public_key: str) -> None:
        self._boot_image(vm, public_key) if vm.spec.image else self._boot(vm, public_key)

    def _wait_any(self, vm: Vm) -> None:
        self._wait_image(vm) if vm.spec.image else self._wait_ready(vm)

    # --- files --------------------------------------------------------------------------------

    def _record(self, vm: Vm) -> HostRecord:
        assert vm.port is not None
        if vm.spec.image:  # the user's cloud image: whatever the roles install
            labels = {
                "driver": "qemu",
                "lab": self.lab,
                "suite": vm.spec.suite,
                "image": Path(vm.spec.image).name,
                "kernel_cgroup": vm.spec.cgroup,
            }
            host_vars = {
                **self._common_host_vars(vm.port, vm.spec.suite, None),
                "labctl_image": Path(vm.spec.image).name,
                "labctl_image_path": vm.spec.image,
                "labctl_kernel_cgroup": vm.spec.cgroup,
                "labctl_accel": vm.accel,
                "labctl_vm_cpus": vm.spec.cpus,
                "labctl_vm_memory": format_size(vm.spec.memory),
            }
            return self._host_record(vm.name, vm.port, labels=labels, host_vars=host_vars)
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

    def _host_vars(self, vm: Vm) -> dict[str, Any]:
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

    def _write_known_hosts(self, vms: Sequence[Vm]) -> None:
        self._write_known_hosts_entries(
            (vm.port, vm.host_key) for vm in vms if vm.port and vm.host_key
        )

    def _vm_state(self, vm: Vm) -> dict[str, Any]:
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
        if vm.spec.image:
            rec["cloud_image"] = vm.spec.image
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
                    image=rec.get("cloud_image")
                    or f"{rec.get('suite', '?')}-{rec.get('recipe', '?')} "
                    f"(kernel {rec.get('kernel_version', '?')})",
                    details=details,
                )
            )
        return out

    def _live_kernel(self, name: str, port: int) -> str | None:
        from ...transport import SSHTransport

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
