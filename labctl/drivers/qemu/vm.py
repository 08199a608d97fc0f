"""One QEMU VM as processes and command lines: the kernel's and QEMU's command lines, the
settings handed to the guest, the accelerator (KVM when a trial boot works, else TCG), and the
small process helpers (pid files, /proc, ports on 127.0.0.1). No lab state here."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError, LabError
from ..base import LOOPBACK, MiB
from . import images as vmimages
from .spec import ACCELS, CGROUPS, QemuHostSpec

ADDRESS = LOOPBACK
QEMU_BINARY = "qemu-system-x86_64"
QEMU_IMG = "qemu-img"
ACCEL_ENV = "LABCTL_QEMU_ACCEL"
KVM_TRIAL_TIMEOUT = 15.0


# --- pure pieces: kernel command line and QEMU command line ----------------------------------


def kernel_cmdline(suite: str, cgroup: str, *, accel: str, swapaccount: str = "") -> str:
    """The VM kernel's command line. cgroup v1 is systemd's legacy hierarchy (no cgroup2 mount
    beside it); trixie's systemd (257) refuses it unless forced (the kernel passes unknown
    ``A=B`` words to init's environment). ``quiet``: under TCG every console line costs time;
    labctl's own boot steps still print their errors there (the console log names them).
    ``tsc=reliable`` under TCG: QEMU derives every vCPU's TSC from one host counter, so it is
    synchronized and stable, but the kernel's check across emulated CPUs (timed by a preempted
    host) calls it unsynchronized and falls back to the HPET, whose every read is an emulated
    MMIO access: each clock read of the guest's programs then leaves the translated code.
    ``swapaccount``: "off" boots with memory cgroup swap accounting off (``swapaccount=0``), as
    Ubuntu 14.04's kernels did; "on" forces it on; "" leaves the kernel's default."""
    if cgroup not in CGROUPS:
        raise ConfigError(f"cgroup must be v1 or v2, got {cgroup!r}")
    words = [
        "root=LABEL=labctl-root",
        "rootfstype=ext4",
        "rw",
        "console=ttyS0",
        "quiet",
        "panic=-1",
        "net.ifnames=0",
        "fsck.mode=skip",
        f"systemd.unified_cgroup_hierarchy={0 if cgroup == 'v1' else 1}",
    ]
    if accel == "tcg":
        words.append("tsc=reliable")
    if cgroup == "v1":  # all-v1 ("legacy"), as in 2015: no cgroup2 hierarchy next to it
        words.append("systemd.legacy_systemd_cgroup_controller=1")
    if cgroup == "v1" and suite not in ("bullseye", "bookworm"):
        words.append("SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1")
    if swapaccount:
        words.append(f"swapaccount={0 if swapaccount == 'off' else 1}")
    return " ".join(words)


def _opt_path(path: Path) -> str:
    """A path inside a QEMU option value (commas are doubled)."""
    return str(path).replace(",", ",,")


def machine_args(
    binary: str, *, name: str, accel: str, cpus: int, memory: int, console_log: Path
) -> list[str]:
    """The start of every labctl QEMU command line: the machine, accelerator, CPUs, memory,
    no devices or display of QEMU's own, the serial console into ``console_log``."""
    if accel == "kvm":
        accel_args = ["-accel", "kvm", "-cpu", "host"]
    elif accel == "tcg":
        accel_args = ["-accel", "tcg,thread=multi", "-cpu", "max"]
    else:
        raise ValueError(f"accel must be kvm or tcg, got {accel!r}")
    return [
        binary,
        "-name", f"{name},process={name}",
        "-machine", "q35",
        *accel_args,
        "-smp", str(cpus),
        "-m", f"{max(1, memory // MiB)}M",
        "-nodefaults", "-no-user-config",
        "-display", "none",
        "-serial", f"file:{console_log}",
    ]  # fmt: skip


#: QEMU's minimal firmware: it only boots ``-kernel`` (no disks, no option ROMs): about 0.5 s less
#: than SeaBIOS from QEMU's start to the kernel under TCG
QBOOT = "qboot.rom"


def qemu_firmware() -> Path | None:
    """This QEMU's qboot (found in the data folders ``qemu -L help`` lists), else None:
    QEMU's default SeaBIOS boots the VM then."""
    binary = shutil.which(QEMU_BINARY)
    if binary is None:
        return None
    try:
        proc = subprocess.run(
            [binary, "-L", "help"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in proc.stdout.splitlines():
        candidate = Path(line.strip()) / QBOOT
        if line.strip() and candidate.is_file():
            return candidate.resolve()
    return None


def qemu_command(
    *,
    name: str,
    accel: str,
    cpus: int,
    memory: int,
    kernel: Path,
    initrd: Path,
    append: str,
    root_disk: Path,
    data_disk: Path,
    port: int,
    fw_cfg: Mapping[str, Path],
    pidfile: Path,
    console_log: Path,
    qmp_socket: Path,
    bios: Path | None = None,
    binary: str = QEMU_BINARY,
) -> list[str]:
    """The full QEMU command line of one VM (detached, pid file, no display); ``bios``: a
    firmware instead of QEMU's default (qboot, see ``qemu_firmware``)."""
    machine = machine_args(
        binary, name=name, accel=accel, cpus=cpus, memory=memory, console_log=console_log
    )
    cmd = [
        *machine,
        *(["-bios", str(bios)] if bios is not None else []),
        "-kernel", str(kernel),
        "-initrd", str(initrd),
        "-append", append,
        "-drive", f"file={_opt_path(root_disk)},format=qcow2,if=none,id=root,discard=unmap",
        "-device", "virtio-blk-pci,drive=root,serial=labctl-root",
        "-drive", f"file={_opt_path(data_disk)},format=qcow2,if=none,id=data,discard=unmap",
        "-device", "virtio-blk-pci,drive=data,serial=labctl-data",
        "-nic", f"user,model=virtio-net-pci,hostfwd=tcp:{ADDRESS}:{port}-:22",
        "-device", "virtio-rng-pci",
    ]  # fmt: skip
    for key in sorted(fw_cfg):
        cmd += ["-fw_cfg", f"name=opt/labctl/{key},file={_opt_path(fw_cfg[key])}"]
    cmd += [
        "-qmp", f"unix:{_opt_path(qmp_socket)},server=on,wait=off",
        "-pidfile", str(pidfile),
        "-daemonize",
        "-no-reboot",
    ]  # fmt: skip
    return cmd


def lab_env(host: QemuHostSpec, lab: str) -> str:
    """The settings file handed to the VM (``opt/labctl/lab.env``), shell syntax."""
    values = {
        "LABCTL_LAB": lab,
        "LABCTL_HOSTNAME": host.name,
        "LABCTL_SUITE": host.suite,
        "LABCTL_STORAGE_DRIVER": host.storage_driver,
        "LABCTL_DOCKER_FS": host.docker_fs,
        "LABCTL_DISK_INODES": "" if host.disk_inodes is None else str(host.disk_inodes),
        "LABCTL_CGROUP": host.cgroup,
        "LABCTL_ENGINE": host.engine,
        "LABCTL_SWAP": str(host.swap),
    }
    return "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())


# --- accelerator ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accel:
    name: str  # "kvm" | "tcg"
    reason: str


def _kvm_usable() -> str | None:
    """None when /dev/kvm opens and answers; else why not."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return f"/dev/kvm: {exc.strerror or exc}"
    try:
        version = fcntl.ioctl(fd, 0xAE00)  # KVM_GET_API_VERSION
    except OSError as exc:
        return f"/dev/kvm does not answer ({exc.strerror or exc})"
    finally:
        os.close(fd)
    return None if version == 12 else f"/dev/kvm API version {version}, expected 12"


def _accel_cache_key(kernel: Path) -> str:
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = "?"
    return f"{boot_id}|{shutil.which(QEMU_BINARY)}|{kernel}"


def decided_accel(want: str) -> Accel | None:
    """The accelerator when no trial is needed: asked for (``want`` or $LABCTL_QEMU_ACCEL), or
    TCG when KVM is not usable; None: auto with a usable KVM (a trial decides)."""
    forced = os.environ.get(ACCEL_ENV, "").strip().lower() or want
    if forced not in ACCELS:
        raise ConfigError(f"{ACCEL_ENV}={forced!r}: choose from {', '.join(ACCELS)}")
    if forced == "tcg":
        return Accel("tcg", "asked for (software emulation)")
    why_not = _kvm_usable()
    if forced == "kvm":
        if why_not:
            raise LabError(f"KVM was asked for but is not usable: {why_not}", hint="use accel tcg")
        return Accel("kvm", "asked for")
    if why_not:
        return Accel("tcg", f"no KVM ({why_not})")
    return None


def detect_accel(kernel: Path, initrd: Path, *, want: str = "auto") -> Accel:
    """KVM when asked or when a trial boot of ``kernel`` under KVM reaches the kernel's own
    panic (no init) within seconds; else TCG. /dev/kvm alone proves little: nested KVM may
    exist and still hang or abort QEMU. The answer is cached per controller boot."""
    decided = decided_accel(want)
    if decided is not None:
        return decided
    cache_file = vmimages.vm_cache_dir() / "accel.json"
    key = _accel_cache_key(kernel)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        cached = json.loads(cache_file.read_text())
        if cached.get("key") == key:
            return Accel(str(cached["accel"]), str(cached["reason"]) + " (cached)")
    result = _kvm_trial(kernel, initrd)
    with contextlib.suppress(OSError):
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(
            json.dumps({"key": key, "accel": result.name, "reason": result.reason}) + "\n"
        )
    return result


def _kvm_trial(kernel: Path, initrd: Path) -> Accel:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="labctl-kvm-trial-") as tmp:
        log = Path(tmp) / "console.log"
        cmd = [
            QEMU_BINARY, "-accel", "kvm", "-cpu", "host", "-m", "256M",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", f"file:{log}", "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", "console=ttyS0 panic=-1 rdinit=/labctl-no-such-init root=/dev/null",
            "-no-reboot",
        ]  # fmt: skip
        started = time.monotonic()
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=KVM_TRIAL_TIMEOUT, check=False
            )
            stderr = proc.stderr.strip().splitlines()
            ended = f"QEMU exit {proc.returncode}" + (f": {stderr[-1][:160]}" if stderr else "")
        except subprocess.TimeoutExpired:
            ended = f"no kernel output within {KVM_TRIAL_TIMEOUT:.0f} s (hangs)"
        except OSError as exc:
            ended = f"cannot run {QEMU_BINARY} ({exc})"
        text = log.read_text(errors="replace") if log.exists() else ""
    if "Kernel panic" in text:
        return Accel("kvm", f"KVM trial boot ok in {time.monotonic() - started:.1f} s")
    return Accel("tcg", f"KVM trial boot failed ({ended}); software emulation")


# --- processes and ports ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ADDRESS, 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((ADDRESS, port), timeout=1.0):
            return True
    except OSError:
        return False


def cmdline_of(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def read_pid(pidfile: Path) -> int | None:
    try:
        text = pidfile.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


#: how labctl's boot steps in the guest say they failed (initramfs /init, labctl-vm-init)
BOOT_ERROR_MARKERS = ("labctl initramfs: error:", "labctl-vm-init: error:")


def boot_error(console_text: str) -> str | None:
    """The first line where one of labctl's boot steps says it failed (a VM that will never
    answer SSH: no use waiting for the timeout), else None."""
    for line in console_text.splitlines():
        for marker in BOOT_ERROR_MARKERS:
            if marker in line:
                return line[line.index(marker) :].strip()
    return None


def read_text(path: Path) -> str:
    """A console log's text ("" when it is not there yet)."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    kept = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(kept[-lines:])


def zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]
