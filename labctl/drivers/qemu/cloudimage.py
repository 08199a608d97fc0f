"""Bring your own image: a distribution's cloud image (CentOS 7 GenericCloud, Ubuntu's cloud
images, Debian genericcloud, or any qcow2/raw disk with cloud-init) as a qemu lab host.

``--host image:path=FILE,name=c7,memory=1GiB,cgroup=v1``: the VM boots a throwaway qcow2 overlay
whose backing file is FILE (FILE never changes), through the firmware (SeaBIOS) with the image's
own bootloader and kernel, and a NoCloud seed: a small ISO 9660 volume labelled ``cidata``
(``genisoimage``, or ``xorriso``) with ``meta-data`` (instance-id, local-hostname) and
``user-data`` (the lab's SSH key for root, the host name, and an ed25519 host key made on the
controller, so known_hosts is written before the first connection: nothing is trusted on first
use). labctl then waits for SSH on 127.0.0.1 and for cloud-init to finish. Docker is not
expected: ``labctl run`` provisions it with the roles, as on any host.

What is checked before anything boots: the file exists, ``qemu-img info`` reads it as a disk
image (a raw file must carry a partition table or boot sector), a seed tool is installed. What
only a boot shows: an image without cloud-init (the serial console reaches a login prompt with
no cloud-init line, or SSH never answers), a seed that was not taken (SSH answers with another
host key or refuses the lab key). Each is one line; ``lab up`` stops the VM it started.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ...errors import LabctlError, LabError
from ...files import write_atomic
from ..base import format_size, make_ed25519_key, ssh_banner
from .boot import QemuVms, Vm
from .vm import (
    ADDRESS,
    QEMU_BINARY,
    QEMU_IMG,
    Accel,
    _opt_path,
    decided_accel,
    machine_args,
    tail,
)

#: seconds to wait for SSH (and cloud-init) on an image host, by accelerator
IMAGE_SSH_TIMEOUT = {"kvm": 240.0, "tcg": 600.0}
#: ISO 9660 writers that make a NoCloud seed: (program, arguments before the output options)
SEED_TOOLS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("genisoimage", ()),
    ("xorriso", ("-as", "genisoimage")),
)
SEED_LABEL = "cidata"
#: image formats qemu-img reads that are disk images (raw is checked for a boot sector)
DISK_FORMATS = ("qcow2", "raw", "vmdk", "vdi", "vhdx", "vpc", "qed", "qcow")
#: console lines that show a boot reached userspace and offers a login (no cloud-init ran
#: before it when no cloud-init line came first)
_LOGIN_MARKERS = (" login: ",)
#: terminal colour codes of systemd's console lines (dropped from the one-line errors)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# --- the image --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInfo:
    path: Path
    format: str
    virtual_size: int


def _has_boot_sector(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            sector = f.read(512)
    except OSError:
        return False
    return len(sector) == 512 and sector[510:512] == b"\x55\xaa"


def check_image(path: Path, host: str) -> ImageInfo:
    """``qemu-img info`` of the user's image; a LabError when it is not a disk image."""
    cmd = [QEMU_IMG, "info", "--output=json", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise LabError(f"{path} is not a disk image (qemu-img info: {why})", host=host)
    try:
        info = json.loads(proc.stdout)
        fmt, size = str(info["format"]), int(info["virtual-size"])
    except (ValueError, KeyError, TypeError) as exc:
        raise LabError(f"qemu-img info of {path} gave no format ({exc})", host=host) from exc
    if fmt not in DISK_FORMATS:
        raise LabError(
            f"{path} is a {fmt} file, not a disk image labctl boots",
            host=host,
            hint=f"give a {', '.join(DISK_FORMATS[:2])} cloud image",
        )
    if fmt == "raw" and not _has_boot_sector(path):
        raise LabError(
            f"{path} is not a disk image: qemu-img reads it as raw data with no boot sector or "
            "partition table",
            host=host,
            hint="give the distribution's cloud image (e.g. a .qcow2 file)",
        )
    return ImageInfo(path=path, format=fmt, virtual_size=size)


def overlay_command(info: ImageInfo, overlay: Path) -> list[str]:
    """A qcow2 overlay backed by the image (the image is only read)."""
    return [QEMU_IMG, "create", "-q", "-f", "qcow2", "-F", info.format, "-b",
            str(info.path), str(overlay)]  # fmt: skip


# --- the NoCloud seed -------------------------------------------------------------------------


def meta_data(instance_id: str, hostname: str) -> str:
    return json.dumps({"instance-id": instance_id, "local-hostname": hostname}, indent=1) + "\n"


def user_data(hostname: str, authorized_key: str, host_private: str, host_public: str) -> str:
    """#cloud-config (written as JSON, which is YAML): root logs in with the lab key only, the
    host key is the controller's, no other host key is made, the host name is set."""
    config = {
        "hostname": hostname,
        "preserve_hostname": False,
        "manage_etc_hosts": True,
        "disable_root": False,
        "ssh_pwauth": False,
        "ssh_authorized_keys": [authorized_key],
        "ssh_deletekeys": True,
        "ssh_genkeytypes": [],
        "ssh_keys": {"ed25519_private": host_private, "ed25519_public": host_public},
    }
    return "#cloud-config\n" + json.dumps(config, indent=1) + "\n"


def seed_tool() -> list[str]:
    """The command that writes the seed volume (without its output options)."""
    for program, args in SEED_TOOLS:
        found = shutil.which(program)
        if found:
            return [found, *args]
    raise LabError(
        "no ISO 9660 writer for the cloud-init seed (genisoimage or xorriso)",
        hint="install one (`apt-get install genisoimage`)",
    )


def seed_command(tool: list[str], output: Path, files: list[Path]) -> list[str]:
    return [*tool, "-quiet", "-output", str(output), "-volid", SEED_LABEL, "-joliet", "-rock",
            *map(str, files)]  # fmt: skip


def make_seed(directory: Path, *, hostname: str, instance_id: str, authorized_key: str,
              host_private: str, host_public: str, host: str) -> Path:  # fmt: skip
    """``directory/seed.iso`` (label cidata: user-data, meta-data); its sources stay 0600."""
    src = directory / "seed"
    src.mkdir(mode=0o700, exist_ok=True)
    write_atomic(src / "user-data",
                 user_data(hostname, authorized_key, host_private, host_public), 0o600)  # fmt: skip
    write_atomic(src / "meta-data", meta_data(instance_id, hostname), 0o600)
    out = directory / "seed.iso"
    cmd = seed_command(seed_tool(), out, [src / "user-data", src / "meta-data"])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    if proc.returncode != 0 or not out.is_file():
        raise LabError(f"the cloud-init seed was not written: {proc.stderr.strip()[-300:]}",
                       host=host, hint=f"command: {shlex.join(cmd)}")  # fmt: skip
    os.chmod(out, 0o600)
    return out


# --- the VM -----------------------------------------------------------------------------------


def image_qemu_command(
    *, name: str, accel: str, cpus: int, memory: int, root_disk: Path, seed: Path, port: int,
    pidfile: Path, console_log: Path, qmp_socket: Path,
) -> list[str]:  # fmt: skip
    """QEMU for a cloud image: the firmware boots the disk (no -kernel), the seed is a second
    read-only disk. No -no-reboot: some images reboot once on first boot (e.g. SELinux)."""
    machine = machine_args(
        QEMU_BINARY, name=name, accel=accel, cpus=cpus, memory=memory, console_log=console_log
    )
    return [
        *machine,
        "-drive", f"file={_opt_path(root_disk)},format=qcow2,if=none,id=root,discard=unmap",
        "-device", "virtio-blk-pci,drive=root,bootindex=0",
        "-drive", f"file={_opt_path(seed)},format=raw,if=none,id=seed,readonly=on",
        "-device", "virtio-blk-pci,drive=seed",
        "-nic", f"user,model=virtio-net-pci,hostfwd=tcp:{ADDRESS}:{port}-:22",
        "-device", "virtio-rng-pci",
        "-qmp", f"unix:{_opt_path(qmp_socket)},server=on,wait=off",
        "-pidfile", str(pidfile),
        "-daemonize",
    ]  # fmt: skip


def image_accel(want: str) -> Accel:
    """The accelerator of a lab with only image hosts (no labctl kernel for a KVM trial boot):
    KVM when asked for; under auto, TCG unless a trial boot on this controller chose KVM."""
    from . import images as vmimages

    decided = decided_accel(want)
    if decided is not None:
        return decided
    try:
        cached = json.loads((vmimages.vm_cache_dir() / "accel.json").read_text())
        if cached.get("accel") == "kvm":
            return Accel("kvm", "a KVM trial boot worked on this controller (cached)")
    except (OSError, ValueError, AttributeError):
        pass
    return Accel("tcg", "no KVM trial boot yet (use accel kvm to force it)")


def console_verdict(text: str) -> str | None:
    """What the serial console says about cloud-init, when it says enough: "none" (a login
    prompt came and cloud-init never printed), else None (cannot tell yet)."""
    if "cloud-init" in text.lower():
        return None
    if any(m in text for m in _LOGIN_MARKERS):
        return "none"
    return None


class ImageVms(QemuVms):
    """Boot and wait for the hosts made from the user's cloud images."""

    def _boot_image(self, vm: Vm, public_key: str) -> None:
        assert self.accel is not None
        vm.accel = self.accel.name
        info = check_image(Path(vm.spec.image), vm.name)
        d = vm.directory
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True, mode=0o700)
        private, vm.host_key = make_ed25519_key(f"labctl-{self.lab}-{vm.name}")
        seed = make_seed(
            d, hostname=vm.name, instance_id=f"labctl-{self.lab}-{vm.name}-{uuid.uuid4().hex[:8]}",
            authorized_key=public_key, host_private=private, host_public=vm.host_key,
            host=vm.name,
        )  # fmt: skip
        root = d / "root.qcow2"
        cmd = overlay_command(info, root)
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise LabError(f"qemu-img failed: {proc.stderr.strip()[-300:]}", host=vm.name,
                           hint=f"command: {shlex.join(cmd)}")  # fmt: skip
        accel = self.accel.name

        def command(port: int) -> list[str]:
            return image_qemu_command(
                name=self.process_name(vm.name), accel=accel, cpus=vm.spec.cpus,
                memory=vm.spec.memory, root_disk=root, seed=seed, port=port,
                pidfile=self._pidfile(vm.name), console_log=d / "console.log",
                qmp_socket=d / "qmp.sock",
            )  # fmt: skip

        what = (
            f"the image {info.path.name} ({info.format}, {format_size(info.virtual_size)}; "
            f"{accel}, {vm.spec.cpus} cpu, {format_size(vm.spec.memory)}) with a NoCloud seed"
        )
        self._start_qemu(vm, command, what)

    def _image_failed(self, vm: Vm, message: str) -> LabError:
        """The one line for an image host that does not come up; its VM is stopped."""
        from ..base import DownReport

        console = vm.directory / "console.log"
        shown = _ANSI.sub("", tail(console, 3))
        self._stop_vm(vm.name, DownReport())
        vm.port = None
        return LabError(message + (f" (console: {shown})" if shown else ""), host=vm.name,
                        hint="the VM was stopped; see README 'Use your own image'")  # fmt: skip

    def _wait_image(self, vm: Vm) -> None:
        """SSH with the seed's host key and the lab key, then cloud-init's boot-finished."""
        from ...errors import AuthenticationFailed, HostKeyMismatch, UnknownHostKey
        from ...transport import SSHTransport

        assert vm.port is not None
        timeout = float(vm.spec.boot_timeout or IMAGE_SSH_TIMEOUT.get(vm.accel, 600.0))
        begin = vm.started_at if not vm.reused else time.monotonic()
        deadline = begin + timeout
        console = vm.directory / "console.log"
        refused = ""
        while True:
            if self.vm_pid(vm.name) is None:
                raise self._image_failed(vm, "the VM stopped while booting")
            text = console.read_text(errors="replace") if console.exists() else ""
            if not vm.reused and console_verdict(text) == "none":
                raise self._image_failed(
                    vm, "the image booted to a login prompt and cloud-init never ran: the image "
                    "lacks cloud-init (NoCloud)",
                )  # fmt: skip
            if time.monotonic() > deadline:
                if refused:
                    why = f"SSH answers but refuses the lab key for root ({refused})"
                elif "cloud-init" in text.lower():
                    why = "cloud-init ran but the seed was not taken (no sshd with its host key)"
                else:
                    why = "the image may lack cloud-init (NoCloud)"
                raise self._image_failed(vm, f"no SSH after {timeout:.0f} s: {why}")
            if not ssh_banner(vm.port, 3.0):
                time.sleep(1.0)
                continue
            try:
                with SSHTransport(self._transport_record(vm), connect_timeout=20.0) as t:
                    self._ssh_answered(vm)
                    res = t.run("test -e /var/lib/cloud/instance/boot-finished", timeout=30)
                    if not res.ok:
                        time.sleep(2.0)
                        continue
                    facts = t.run(
                        "uname -r; stat -fc %T /sys/fs/cgroup; command -v docker || true",
                        timeout=30,
                    ).stdout.splitlines()
            except (HostKeyMismatch, UnknownHostKey) as exc:
                raise self._image_failed(
                    vm, f"SSH answers with another host key: the seed was not taken ({exc})"
                ) from exc
            except AuthenticationFailed as exc:  # cloud-init may still be writing the key
                refused = exc.line()
                time.sleep(2.0)
                continue
            except LabctlError as exc:
                if isinstance(exc, LabError):
                    raise
                time.sleep(2.0)
                continue
            break
        vm.kernel = facts[0].strip() if facts else ""
        cgfs = facts[1].strip() if len(facts) > 1 else ""
        vm.cgroup = "v2" if cgfs == "cgroup2fs" else "v1" if cgfs == "tmpfs" else cgfs
        has_docker = len(facts) > 2 and facts[2].strip() != ""
        vm.docker_version = "in the image" if has_docker else "installed by provisioning"
        if vm.cgroup != vm.spec.cgroup:
            raise self._image_failed(
                vm, f"booted with cgroup {vm.cgroup or '?'}, not {vm.spec.cgroup} as asked: the "
                "image's own kernel command line decides (say cgroup=" + (vm.cgroup or "v2") + ")",
            )  # fmt: skip
        done = "" if vm.reused else f", {time.monotonic() - vm.started_at:.1f} s after boot"
        self._say(
            vm.name,
            f"ready on {ADDRESS}:{vm.port}: kernel {vm.kernel}, cgroup {vm.cgroup}, cloud-init "
            f"done{done}",
        )
