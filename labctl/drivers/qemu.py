"""The qemu driver: lab hosts as small VMs, each running its Debian suite's own kernel.

Container lab hosts share the controller's kernel; these do not, so memory and process findings
describe a separate OS (a host OOM kill or fork failure is the VM's own), and ``--exhaust`` is
safe by construction (the VM is disposable).

Each VM boots the suite's cloud kernel and initrd (``-kernel``/``-initrd``, so the command line
picks cgroup v1 or v2) from a qcow2 overlay on the cached base image (``vmimages.py``) plus a
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
import fcntl
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from labctl.drivers import images, vmimages
from labctl.drivers.base import (
    LOOPBACK,
    DownReport,
    HostStatus,
    LabDriver,
    LabState,
    make_ed25519_key,
    validate_lab_name,
    write_atomic,
)
from labctl.drivers.docker import GiB, MiB, ensure_key_pair, format_size, parse_size
from labctl.errors import ConfigError, LabctlError, LabError
from labctl.hosts import HostRecord
from labctl.paths import lab_dir

ADDRESS = LOOPBACK
QEMU_BINARY = "qemu-system-x86_64"
QEMU_IMG = "qemu-img"
ACCELS = ("auto", "kvm", "tcg")
CGROUPS = ("v1", "v2")
DOCKER_FS = ("ext4", "xfs")
STORAGE_DRIVERS = ("overlay2", "devicemapper", "vfs")
#: the distribution's engine, or a version built from source (`labctl engine build`)
DISTRO_ENGINE = "distro"
#: how a built engine is started: systemd with the unit it shipped (Docker 1.5.0's has
#: MountFlags=slave), a SysV script (CentOS 6), an upstart job's line (Ubuntu 14.04)
INIT_STYLES = ("systemd", "sysvinit", "upstart")
#: storage drivers of Docker 1.5.0 on a Debian kernel (no aufs there: overlay stands in for it)
OLD_ENGINE_DRIVERS = ("devicemapper", "overlay", "vfs")
#: what each init style stands for in the article (shown in lab output)
INIT_STANDS_FOR = {
    "sysvinit": "CentOS 6.6's SysV script",
    "systemd": "CentOS 7.0's systemd with Docker 1.5.0's own unit",
    "upstart": "Ubuntu 14.04's upstart job",
}
STANDS_FOR = ("centos66", "centos70", "ubuntu1404")
#: Docker removed devicemapper in 25.0; trixie ships 26.1
NO_DEVICEMAPPER = {"trixie": "Docker 26.1"}
MIN_MEMORY = 256 * MiB
MIN_DISK = 256 * MiB
MAX_CPUS = 64
ACCEL_ENV = "LABCTL_QEMU_ACCEL"
READY_TIMEOUT = {"kvm": 180.0, "tcg": 480.0}
STOP_TIMEOUT = 10.0
KVM_TRIAL_TIMEOUT = 15.0
FW_FILES = ("lab.env", "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub", "authorized_keys")
_HOST_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")

Progress = Callable[[str, str], None]


# --- the spec ---------------------------------------------------------------------------------


def _int_field(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise ConfigError(f"{what}: expected an integer, got {value!r}")


@dataclass
class QemuHostSpec:
    """One VM. Sizes accept ints (bytes) or strings ("1GiB", "512MiB")."""

    suite: str
    #: host name in the inventory and in the VM (default: the suite)
    name: str = ""
    memory: int = 1 * GiB
    cpus: int = 2
    #: size of the VM's /var/lib/docker disk (a second virtual disk)
    disk_size: int = 2 * GiB
    #: inodes of that disk when it is ext4 (XFS allocates inodes dynamically)
    disk_inodes: int | None = 20000
    cgroup: str = "v2"
    #: "" = the engine's default: overlay2 for the distribution's, devicemapper (as on CentOS)
    #: for Docker 1.5.0
    storage_driver: str = ""
    #: filesystem of /var/lib/docker: ext4, or xfs mounted with prjquota (--storage-opt size=)
    docker_fs: str = "ext4"
    #: "distro" (Debian's docker.io) or a version built from source, e.g. "1.5.0"
    engine: str = DISTRO_ENGINE
    #: how a built engine starts: systemd | sysvinit | upstart ("" = systemd)
    init: str = ""
    #: which of the article's systems this host stands in for (a label only)
    stands_for: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            self.name = str(self.suite)
        self.engine = str(self.engine or DISTRO_ENGINE).strip().lower()
        self.init = str(self.init or "").strip().lower()
        if self.engine != DISTRO_ENGINE and not self.init:
            self.init = "systemd"
        if not self.storage_driver:
            self.storage_driver = "overlay2" if self.engine == DISTRO_ENGINE else "devicemapper"
        v: Any = self.memory
        self.memory = parse_size(v, what=f"{self.name}: memory")
        v = self.disk_size
        self.disk_size = parse_size(v, what=f"{self.name}: disk_size")
        v = self.cpus
        self.cpus = _int_field(v, f"{self.name}: cpus")
        v = self.disk_inodes
        if v is not None and str(v).lower() not in ("none", "default", ""):
            self.disk_inodes = _int_field(v, f"{self.name}: disk_inodes")
        else:
            self.disk_inodes = None
        self.cgroup = str(self.cgroup).lower()
        if self.cgroup in ("1", "2"):
            self.cgroup = "v" + self.cgroup

    def validate(self) -> None:
        n = self.name
        if not isinstance(n, str) or not _HOST_NAME_RE.match(n):
            raise ConfigError(
                f"host name {n!r} is not valid",
                hint="use 1-31 lowercase letters, digits or -, starting with a letter or digit",
            )
        if self.suite not in vmimages.SUITES:
            raise ConfigError(
                f"{n}: unknown suite {self.suite!r}",
                hint=f"choose from {', '.join(vmimages.SUITES)}",
            )
        if self.memory < MIN_MEMORY:
            raise ConfigError(
                f"{n}: memory {format_size(self.memory)} is below the minimum "
                f"{format_size(MIN_MEMORY)}"
            )
        if not 1 <= self.cpus <= MAX_CPUS:
            raise ConfigError(f"{n}: cpus must be between 1 and {MAX_CPUS}, got {self.cpus}")
        if self.disk_size < MIN_DISK:
            raise ConfigError(
                f"{n}: disk_size {format_size(self.disk_size)} is below the minimum "
                f"{format_size(MIN_DISK)}"
            )
        if self.disk_inodes is not None:
            if self.disk_inodes < 1000:
                raise ConfigError(f"{n}: disk_inodes {self.disk_inodes} is below the minimum 1000")
            if self.disk_inodes > self.disk_size // 1024:
                raise ConfigError(
                    f"{n}: disk_inodes {self.disk_inodes} do not fit a "
                    f"{format_size(self.disk_size)} disk (at most one per KiB)"
                )
        if self.cgroup not in CGROUPS:
            raise ConfigError(f"{n}: cgroup must be v1 or v2, got {self.cgroup!r}")
        if self.stands_for and self.stands_for not in STANDS_FOR:
            raise ConfigError(
                f"{n}: stands_for must be one of {', '.join(STANDS_FOR)}, got {self.stands_for!r}"
            )
        if self.engine != DISTRO_ENGINE:
            self._validate_built_engine()
            return
        if self.init:
            raise ConfigError(
                f"{n}: init={self.init} is for an engine built from source (engine=1.5.0); the "
                "distribution's engine starts with its own systemd unit"
            )
        if self.storage_driver not in STORAGE_DRIVERS:
            raise ConfigError(
                f"{n}: storage_driver {self.storage_driver!r} is not supported by the qemu driver",
                hint=f"choose from {', '.join(STORAGE_DRIVERS)}",
            )
        if self.storage_driver == "devicemapper" and self.suite in NO_DEVICEMAPPER:
            raise ConfigError(
                f"{n}: {self.suite}'s {NO_DEVICEMAPPER[self.suite]} has no devicemapper storage "
                "driver (Docker removed it in 25.0)",
                hint="use bullseye or bookworm (Docker 20.10) for devicemapper",
            )
        if self.docker_fs not in DOCKER_FS:
            raise ConfigError(
                f"{n}: docker_fs must be one of {', '.join(DOCKER_FS)}, got {self.docker_fs!r}"
            )

    def _validate_built_engine(self) -> None:
        from labctl.engines import known_versions

        n = self.name
        if self.engine not in known_versions():
            raise ConfigError(
                f"{n}: engine {self.engine!r} is not one labctl can build",
                hint=f"use engine=distro or one of {', '.join(known_versions())}",
            )
        if self.cgroup != "v1":
            raise ConfigError(
                f"{n}: Docker {self.engine} cannot start containers on cgroup v2 (each fails with "
                "'failed to find the cgroup root')",
                hint="add cgroup=v1 to the host",
            )
        if self.init not in INIT_STYLES:
            raise ConfigError(
                f"{n}: init must be one of {', '.join(INIT_STYLES)}, got {self.init!r}"
            )
        if self.storage_driver not in OLD_ENGINE_DRIVERS:
            raise ConfigError(
                f"{n}: Docker {self.engine} has no {self.storage_driver!r} storage driver here",
                hint=f"choose from {', '.join(OLD_ENGINE_DRIVERS)} (overlay stands in for aufs, "
                "which Debian kernels no longer carry)",
            )
        if self.docker_fs != "ext4":
            raise ConfigError(f"{n}: Docker {self.engine} hosts keep /var/lib/docker on ext4")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_hosts() -> tuple[QemuHostSpec, ...]:
    return tuple(QemuHostSpec(suite=s) for s in ("bullseye", "bookworm", "trixie"))


def article_hosts() -> tuple[QemuHostSpec, ...]:
    """The article's three systems as stand-ins on ONE kernel (bullseye's 5.10 with cgroup v1,
    where Docker 1.5.0 runs), told apart by what made them differ in 2015: the storage driver
    and how init started the daemon; plus the same kernel with Debian's Docker 20.10."""

    def host(name: str, **kw: Any) -> QemuHostSpec:
        return QemuHostSpec(suite="bullseye", cgroup="v1", name=name, **kw)

    return (
        host("c66", engine="1.5.0", storage_driver="devicemapper", init="sysvinit",
             stands_for="centos66"),
        host("c70", engine="1.5.0", storage_driver="devicemapper", init="systemd",
             stands_for="centos70"),
        host("u1404", engine="1.5.0", storage_driver="overlay", init="upstart",
             stands_for="ubuntu1404"),
        host("deb2010", storage_driver="overlay2", docker_fs="xfs"),
    )  # fmt: skip


#: `labctl lab up --preset NAME`: the hosts, and the lab's name unless --name says otherwise
PRESETS: dict[str, Callable[[], tuple[QemuHostSpec, ...]]] = {"article": article_hosts}


def engine_vars(spec: QemuHostSpec) -> dict[str, Any]:
    """Inventory variables that make provisioning install a host's engine: for one built from
    source, the docker_engine role's binary method with the cached build (sha256 checked on the
    host) and the init style; docker_storage then sets the driver that style's way."""
    out: dict[str, Any] = {"labctl_engine": spec.engine}
    if spec.stands_for:
        out["labctl_stands_for"] = spec.stands_for
    if spec.engine == DISTRO_ENGINE:
        return out
    from labctl.engines import require_engine

    build = require_engine(spec.engine)
    return {
        **out,
        "labctl_engine_init": spec.init,
        "docker_engine_method": "binary",
        "docker_engine_version": build.version,
        "docker_engine_binary_src": str(build.binary),
        "docker_engine_binary_sha256": build.sha256,
        "docker_engine_service_manager": spec.init,
        "docker_storage_driver": spec.storage_driver,
    }


_HOST_KEYS = {f.name for f in fields(QemuHostSpec)}
_HOST_ALIASES = {
    "storage": "storage_driver",
    "driver": "storage_driver",  # the docker driver's --host key
    "fs": "docker_fs",  # the docker driver's --host key
    "disk": "disk_size",
    "inodes": "disk_inodes",
}


def parse_host_option(text: str, defaults: Mapping[str, Any] | None = None) -> QemuHostSpec:
    """``SUITE[:key=value,...]`` (or the docker driver's ``SUITE/key=value``) -> a host spec,
    e.g. ``bullseye:name=bullseye-v1,cgroup=v1`` or ``bookworm/driver=devicemapper``.
    ``defaults`` fill what the text does not set."""
    m = re.match(r"^\s*([^:/]*)\s*(?:[:/](.*))?$", text, re.S)
    suite, rest = (m.group(1), m.group(2) or "") if m else (text, "")
    fields_: dict[str, Any] = dict(defaults or {})
    fields_["suite"] = suite.strip()
    for item in re.split(r"[,/]", rest):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip().lower().replace("-", "_")
        key = _HOST_ALIASES.get(key, key)
        if not sep or key not in _HOST_KEYS or key == "suite":
            raise ConfigError(
                f"--host {text!r}: cannot read {item.strip()!r}",
                hint="write SUITE[:key=value,...] with keys "
                + ", ".join(sorted((_HOST_KEYS - {"suite"}) | set(_HOST_ALIASES))),
            )
        fields_[key] = value.strip()
    spec = QemuHostSpec(**fields_)
    spec.validate()
    return spec


@dataclass
class QemuLabSpec:
    """What a qemu lab looks like."""

    name: str = "local"
    hosts: tuple[QemuHostSpec, ...] = field(default_factory=default_hosts)
    #: auto (KVM when a trial boot works, else TCG) | kvm | tcg
    accel: str = "auto"
    mirror: str | None = None

    def __post_init__(self) -> None:
        hosts: list[QemuHostSpec] = []
        raw: Any = self.hosts
        for h in raw:
            if isinstance(h, QemuHostSpec):
                hosts.append(h)
            elif isinstance(h, Mapping):
                unknown = sorted(set(h) - _HOST_KEYS)
                if unknown:
                    raise ConfigError(
                        f"unknown qemu host option(s): {', '.join(unknown)}",
                        hint=f"known: {', '.join(sorted(_HOST_KEYS))}",
                    )
                hosts.append(QemuHostSpec(**dict(h)))
            elif isinstance(h, str):
                hosts.append(parse_host_option(h))
            else:
                raise ConfigError(f"hosts: cannot read {h!r} as a host")
        self.hosts = tuple(hosts)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> QemuLabSpec:
        """A spec from config data. ``suites`` (list or comma string) plus host defaults
        (memory, cpus, disk_size, disk_inodes, cgroup, storage_driver, docker_fs) is a
        shorthand for ``hosts``; unknown keys are a ConfigError."""
        data = dict(data)
        lab_keys = {f.name for f in fields(cls)}
        host_defaults = {k: data.pop(k) for k in list(data) if k in _HOST_KEYS - {"name"}}
        suites = data.pop("suites", None)
        unknown = sorted(set(data) - lab_keys)
        if unknown:
            raise ConfigError(
                f"unknown qemu lab option(s): {', '.join(unknown)}",
                hint=f"known: {', '.join(sorted(lab_keys | _HOST_KEYS | {'suites'}))}",
            )
        if suites is not None:
            if "hosts" in data:
                raise ConfigError("give either suites or hosts, not both")
            if isinstance(suites, str):
                suites = [s.strip() for s in suites.split(",") if s.strip()]
            data["hosts"] = tuple(QemuHostSpec(**{**host_defaults, "suite": s}) for s in suites)
        elif "hosts" in data:
            raw = data["hosts"]
            data["hosts"] = tuple(
                parse_host_option(h, host_defaults)
                if isinstance(h, str)
                else {**host_defaults, **h}
                if isinstance(h, Mapping)
                else h
                for h in ([raw] if isinstance(raw, str | Mapping) else raw)
            )
        elif host_defaults:
            data["hosts"] = tuple(
                QemuHostSpec(**{**host_defaults, "suite": h.suite}) for h in default_hosts()
            )
        spec = cls(**data)
        spec.validate()
        return spec

    def validate(self) -> None:
        validate_lab_name(self.name)
        if not self.hosts:
            raise ConfigError("hosts: at least one VM is needed")
        for h in self.hosts:
            h.validate()
        names = [h.name for h in self.hosts]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(
                f"hosts: the name {dup[0]!r} is used twice",
                hint="give the second VM of a suite its own name (e.g. bullseye:name=bullseye-v1)",
            )
        if self.accel not in ACCELS:
            raise ConfigError(f"accel must be one of {', '.join(ACCELS)}, got {self.accel!r}")
        if self.mirror is not None and not re.match(r"^https?://\S+$", str(self.mirror)):
            raise ConfigError(f"mirror: {self.mirror!r} is not an http(s) URL")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "hosts": [h.to_dict() for h in self.hosts],
            "accel": self.accel,
            "mirror": self.mirror,
        }


# --- pure pieces: kernel command line and QEMU command line ----------------------------------


def kernel_cmdline(suite: str, cgroup: str) -> str:
    """The VM kernel's command line. cgroup v1 is systemd's legacy hierarchy (no cgroup2 mount
    beside it); trixie's systemd (257) refuses it unless forced (the kernel passes unknown
    ``A=B`` words to init's environment)."""
    if cgroup not in CGROUPS:
        raise ConfigError(f"cgroup must be v1 or v2, got {cgroup!r}")
    words = [
        "root=LABEL=labctl-root",
        "rootfstype=ext4",
        "rw",
        "console=ttyS0",
        "panic=-1",
        "net.ifnames=0",
        "fsck.mode=skip",
        f"systemd.unified_cgroup_hierarchy={0 if cgroup == 'v1' else 1}",
    ]
    if cgroup == "v1":  # all-v1 ("legacy"), as in 2015: no cgroup2 hierarchy next to it
        words.append("systemd.legacy_systemd_cgroup_controller=1")
    if cgroup == "v1" and suite not in ("bullseye", "bookworm"):
        words.append("SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1")
    return " ".join(words)


def _opt_path(path: Path) -> str:
    """A path inside a QEMU option value (commas are doubled)."""
    return str(path).replace(",", ",,")


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
    binary: str = QEMU_BINARY,
) -> list[str]:
    """The full QEMU command line of one VM (detached, pid file, no display)."""
    if accel == "kvm":
        accel_args = ["-accel", "kvm", "-cpu", "host"]
    elif accel == "tcg":
        accel_args = ["-accel", "tcg,thread=multi", "-cpu", "max"]
    else:
        raise ValueError(f"accel must be kvm or tcg, got {accel!r}")
    cmd = [
        binary,
        "-name", f"{name},process={name}",
        "-machine", "q35",
        *accel_args,
        "-smp", str(cpus),
        "-m", f"{max(1, memory // MiB)}M",
        "-nodefaults", "-no-user-config",
        "-display", "none",
        "-serial", f"file:{console_log}",
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


def detect_accel(kernel: Path, initrd: Path, *, want: str = "auto") -> Accel:
    """KVM when asked or when a trial boot of ``kernel`` under KVM reaches the kernel's own
    panic (no init) within seconds; else TCG. /dev/kvm alone proves little: nested KVM may
    exist and still hang or abort QEMU. The answer is cached per controller boot."""
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


# --- small helpers ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ADDRESS, 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((ADDRESS, port), timeout=1.0):
            return True
    except OSError:
        return False


def _ssh_banner(port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((ADDRESS, port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def _read_pid(pidfile: Path) -> int | None:
    try:
        text = pidfile.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    kept = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(kept[-lines:])


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

    def __init__(self, spec: QemuLabSpec, *, progress: Progress | None = None) -> None:
        self.spec = spec
        self._progress = progress
        self.accel: Accel | None = None

    # --- names and places ---------------------------------------------------------------------

    @property
    def lab(self) -> str:
        return self.spec.name

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

    def _mirror(self) -> str:
        return self.spec.mirror.rstrip("/") if self.spec.mirror else images.detect_mirror()

    # --- processes ----------------------------------------------------------------------------

    def _pidfile(self, host: str) -> Path:
        return self.vm_dir(host) / "qemu.pid"

    def vm_pid(self, host: str) -> int | None:
        """The pid of the host's QEMU when it runs (its command line names our pid file)."""
        pidfile = self._pidfile(host)
        pid = _read_pid(pidfile)
        if pid is None:
            return None
        return pid if str(pidfile) in _cmdline(pid) else None

    def lab_processes(self) -> list[int]:
        """Every QEMU process whose command line points into this lab's folder (the safety net
        for pid files lost in a crash)."""
        marker = str(self.vms_dir) + "/"
        found: list[int] = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            args = _cmdline(int(entry.name))
            if args and "qemu-system" in Path(args[0]).name and any(marker in a for a in args):
                found.append(int(entry.name))
        return sorted(found)

    # --- up -----------------------------------------------------------------------------------

    def up(self) -> LabState:
        self.spec.validate()
        self._check_tools()
        other = lab_driver_of(self.lab)
        if other not in (None, "qemu"):
            raise LabError(
                f"lab {self.lab!r} was made by the {other} driver",
                hint=f"take it down first (`labctl lab down --name {self.lab}`) or pick another "
                "--name",
            )
        started = time.monotonic()
        for h in self.spec.hosts:  # before any boot: an engine that is not built stops here
            engine_vars(h)
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        key_file, public_key = ensure_key_pair(self.directory, f"labctl-{self.lab}")
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
        self._write_known_hosts(vms)
        self._write_inventory(records)
        self._say("*", f"lab {self.lab} ready in {time.monotonic() - started:.1f} s")
        return LabState(
            lab=self.lab,
            hosts=records,
            inventory=self.inventory_file,
            known_hosts=self.known_hosts_file,
            key_file=key_file,
        )

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
            port = _free_port()
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
                    + (f" (console: {_tail(console)})" if _tail(console) else ""),
                    host=vm.name,
                    hint=f"see {console}",
                )
            if time.monotonic() > deadline:
                raise LabError(
                    f"not ready after {timeout:.0f} s: still waiting for {waiting_for}"
                    + (f" ({last_error})" if last_error else "")
                    + (f"; console: {_tail(console, 5)}" if _tail(console) else ""),
                    host=vm.name,
                    hint=f"see {console}; `labctl lab down` removes the VM",
                )
            if not _ssh_banner(vm.port):
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
        return HostRecord(
            name=vm.name,
            address=ADDRESS,
            port=vm.port,
            user="root",
            key_file=self.key_file,
            known_hosts=self.known_hosts_file,
            disposable=True,
            labels=labels,
            vars=self._host_vars(vm),
        )

    def _host_vars(self, vm: _Vm) -> dict[str, Any]:
        key = str(self.key_file.resolve())
        kh = str(self.known_hosts_file.resolve())
        return {
            "ansible_host": ADDRESS,
            "ansible_port": vm.port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": key,
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={kh} "
            "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes",
            "ansible_python_interpreter": "/usr/bin/python3",
            "labctl_known_hosts": kh,
            "labctl_disposable": True,
            "labctl_driver": "qemu",
            "labctl_lab": self.lab,
            "labctl_suite": vm.spec.suite,
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
        report = QemuDownReport()
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
        busy = sorted(p for p in ports if _port_open(p))
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
            if not Path(f"/proc/{pid}").exists() or _zombie(pid):
                return True
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if not Path(f"/proc/{pid}").exists() or _zombie(pid):
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
        if pid is not None and stopped and isinstance(report, QemuDownReport):
            report.removed_vms.append(name)
            self._say(name, "removed")


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


@dataclass
class QemuDownReport(DownReport):
    """What ``QemuLab.down()`` removed: VMs (QEMU processes, overlays, pid files, ports)."""

    removed_vms: list[str] = field(default_factory=list)


def recorded_spec(lab: str) -> QemuLabSpec | None:
    """The spec a qemu lab was last brought up with (from its lab.json), or None."""
    try:
        data = json.loads((lab_dir(lab) / "lab.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("driver") != "qemu":
        return None
    spec = data.get("spec")
    if not isinstance(spec, dict):
        return None
    try:
        return QemuLabSpec.from_mapping({**spec, "name": lab})
    except (ConfigError, TypeError):
        return None


def lab_driver_of(lab: str) -> str | None:
    """The driver that made lab ``lab`` (from its lab.json), or None."""
    try:
        data = json.loads((lab_dir(lab) / "lab.json").read_text())
    except (OSError, ValueError):
        return None
    driver = data.get("driver") if isinstance(data, dict) else None
    return str(driver) if driver else None
