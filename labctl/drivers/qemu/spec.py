"""What a qemu lab looks like: its VMs (``QemuHostSpec``, the ``--host SUITE:key=value`` form),
the presets (the article's systems as stand-ins), the engine each VM runs, and the lab
(``QemuLabSpec``), validated before anything boots."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from .. import base
from ..base import GiB, MiB, format_size, parse_size, recorded_spec_data
from . import images as vmimages

ACCELS = ("auto", "kvm", "tcg")
CGROUPS = ("v1", "v2")
DOCKER_FS = ("ext4", "xfs")
STORAGE_DRIVERS = ("overlay2", "devicemapper", "vfs")
#: the distribution's engine, or a version built from source (`labctl engine build`)
DISTRO_ENGINE = "distro"
#: how a built engine starts: the init files of 2015 (labctl.lab: roles/docker_engine/files/era)
INIT_STYLES = ("systemd", "systemd-centos", "sysvinit-epel", "sysvinit-docker", "upstart")
#: older names that mean one of them (CentOS 6.6's SysV script was EPEL's)
INIT_ALIASES = {"sysvinit": "sysvinit-epel"}
#: storage drivers of Docker 1.5.0 on a Debian kernel (no aufs there: overlay stands in for it)
OLD_ENGINE_DRIVERS = ("devicemapper", "overlay", "vfs")
STANDS_FOR = ("centos66", "centos70", "ubuntu1404")
#: Docker removed devicemapper in 25.0; trixie ships 26.1
NO_DEVICEMAPPER = {"trixie": "Docker 26.1"}
MIN_MEMORY = 256 * MiB
MIN_DISK = 256 * MiB
MAX_CPUS = 64
_HOST_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
#: the "suite" of a host booted from the user's own cloud image (``--host image:path=FILE``)
IMAGE_SUITE = "image"


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
    #: how a built engine starts: one of INIT_STYLES ("" = systemd)
    init: str = ""
    #: which of the article's systems this host stands in for (a label only)
    stands_for: str = ""
    #: the checks this host runs (its inventory's labctl_experiments; "" = what is asked)
    experiments: str = ""
    #: bytes of swap (a swap file made at boot; 0 = none, as labctl's images have)
    swap: int = 0
    #: memory cgroup swap accounting: "off" (swapaccount=0, Ubuntu 14.04's kernels), "on", or ""
    #: for the kernel's default (on in Debian's)
    swapaccount: str = ""
    #: suite "image": the user's cloud image file (qcow2, raw, ...) booted from a throwaway
    #: overlay with its own bootloader and kernel and a NoCloud seed (cloudimage.py)
    image: str = ""
    #: seconds to wait for SSH on an image host (0 = the default of the accelerator)
    boot_timeout: int = 0

    def __post_init__(self) -> None:
        if not self.name:
            self.name = str(self.suite)
        self.engine = str(self.engine or DISTRO_ENGINE).strip().lower()
        self.init = str(self.init or "").strip().lower()
        self.init = INIT_ALIASES.get(self.init, self.init)
        if self.engine != DISTRO_ENGINE and not self.init:
            self.init = "systemd"
        if not self.storage_driver:
            self.storage_driver = "overlay2" if self.engine == DISTRO_ENGINE else "devicemapper"
        v: Any = self.memory
        self.memory = parse_size(v, what=f"{self.name}: memory")
        v = self.disk_size
        self.disk_size = parse_size(v, what=f"{self.name}: disk_size")
        v = self.swap
        self.swap = parse_size(v, what=f"{self.name}: swap") if v else 0
        self.swapaccount = str(self.swapaccount or "").strip().lower()
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
        v = self.boot_timeout
        self.boot_timeout = _int_field(v, f"{self.name}: boot_timeout") if v else 0
        if self.image:  # absolute, so the recorded lab finds it from any folder
            self.image = os.path.abspath(os.path.expanduser(str(self.image)))

    def validate(self) -> None:
        n = self.name
        if not isinstance(n, str) or not _HOST_NAME_RE.match(n):
            raise ConfigError(
                f"host name {n!r} is not valid",
                hint="use 1-31 lowercase letters, digits or -, starting with a letter or digit",
            )
        if self.suite == IMAGE_SUITE or self.image:
            self._validate_image()
        elif self.suite not in vmimages.SUITES:
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
        base.check_disk(self.disk_size, self.disk_inodes, MIN_DISK, who=f"{n}: ")
        if self.cgroup not in CGROUPS:
            raise ConfigError(f"{n}: cgroup must be v1 or v2, got {self.cgroup!r}")
        if self.experiments:
            from ...experiments import parse_experiments

            parse_experiments(self.experiments)  # a ConfigError names an unknown check
        if self.swapaccount not in ("", "on", "off"):
            raise ConfigError(f"{n}: swapaccount must be on or off, got {self.swapaccount!r}")
        if self.swap and self.swap < 16 * MiB:
            raise ConfigError(
                f"{n}: swap of {format_size(self.swap)} is too small (16MiB at least)"
            )
        if self.stands_for and self.stands_for not in STANDS_FOR:
            raise ConfigError(
                f"{n}: stands_for must be one of {', '.join(STANDS_FOR)}, got {self.stands_for!r}"
            )
        if self.image:  # the image's own kernel and the engine the roles install
            return
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

    def _validate_image(self) -> None:
        """What a host booted from the user's image must say (no boot, no qemu-img here)."""
        n = self.name
        if self.suite != IMAGE_SUITE:
            raise ConfigError(
                f"{n}: image= goes with the suite 'image', not {self.suite!r}",
                hint="write --host image:path=FILE,name=NAME,...",
            )
        if not self.image:
            raise ConfigError(
                f"{n}: no image file given", hint="write --host image:path=FILE,name=NAME,..."
            )
        path = Path(self.image)
        if not path.exists():
            raise ConfigError(
                f"{n}: no image file at {path}", hint="check the path (image:path=FILE)"
            )
        if not path.is_file():
            raise ConfigError(f"{n}: {path} is not a file", hint="give the image file itself")
        if self.engine != DISTRO_ENGINE or self.init:
            raise ConfigError(
                f"{n}: engine= and init= are for labctl's own images; an image host gets the "
                "engine the roles install (docker_engine_* inventory variables)"
            )
        if self.swap or self.swapaccount:
            raise ConfigError(
                f"{n}: swap= and swapaccount= are for labctl's own images; an image host boots "
                "its own kernel command line and disks"
            )
        if self.boot_timeout < 0:
            raise ConfigError(f"{n}: boot_timeout must be 0 (default) or more seconds")

    def _validate_built_engine(self) -> None:
        from ...engines import known_versions

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


#: what a 2015 Ubuntu 14.04 install had that Debian's kernel and labctl's images do not: swap
#: accounting off (its kernels booted without it: Docker warned "No swap limit support") and a
#: swap area
UBUNTU_1404_KERNEL: dict[str, Any] = {"swapaccount": "off", "swap": 256 * MiB}
#: the check that settles Table 3 (it starts throwaway daemons: named, never in "all"); what
#: starts depends only on the engine and kernel, the same on every stand-in: one host runs it,
#: one that has little else to do
TABLE_3 = "drivers-available"
#: the article's CentOS 7.0 hand mount (a second thin device over a container's volume, mounted
#: on the host; it can damage that filesystem: named only, disposable hosts only)
HAND_MOUNT = "storage-host-mount"
#: the article's warning about switching drivers, on a throwaway daemon (it depends only on the
#: engine: run beside Table 3)
SWITCH = "storage-driver-switch"
#: c66 and c70 share kernel, engine and driver and differ only in the daemon's mount namespace,
#: which no resource check depends on (a preset run of every check on both gave the same verdict
#: class on each): the CentOS resource checks are split between them so that neither is the
#: run's critical path (`processes` took 218-277 s on c70, started by CentOS 7's unit, 89-128 s
#: on c66; with `disk` too, c66's checks took 343 s against c70's 177 s)
CENTOS_66_CHECKS = "disk-limited,disk-shared,inodes,processes,processes-limited"
CENTOS_70_CHECKS = "disk,memory,memory-limited"
#: today's engine on the same kernel: where it differs from 1.5.0 (its limits)
TODAY = "storage-location,disk-limited,memory-limited,processes-limited"


def article_hosts() -> tuple[QemuHostSpec, ...]:
    """The article's three systems as stand-ins on ONE kernel (bullseye's 5.10 with cgroup v1,
    where Docker 1.5.0 runs), told apart by what made them differ in 2015: the storage driver
    and the init file that started the daemon (each the 2015 file, verbatim); c66d is CentOS
    6.6 with Docker's own SysV script instead of EPEL's (the one line that decides the 6.6
    finding: `unshare -m`); u1404-dm is Ubuntu 14.04 on devicemapper (the article says it then
    behaves like CentOS 7.0); the Ubuntu hosts boot with swap accounting off and a swap area, as
    Ubuntu 14.04 did; plus the same kernel with Debian's Docker 20.10."""

    def host(name: str, **kw: Any) -> QemuHostSpec:
        return QemuHostSpec(suite="bullseye", cgroup="v1", name=name, **kw)

    return (
        host("c66", engine="1.5.0", storage_driver="devicemapper", init="sysvinit-epel",
             stands_for="centos66", experiments=f"storage-location,{CENTOS_66_CHECKS}"),
        host("c66d", engine="1.5.0", storage_driver="devicemapper", init="sysvinit-docker",
             stands_for="centos66", experiments=f"storage-location,{TABLE_3},{SWITCH}"),
        host("c70", engine="1.5.0", storage_driver="devicemapper", init="systemd-centos",
             stands_for="centos70",
             experiments=f"storage-location,{HAND_MOUNT},{CENTOS_70_CHECKS}"),
        host("u1404", engine="1.5.0", storage_driver="overlay", init="upstart",
             stands_for="ubuntu1404", experiments="all", **UBUNTU_1404_KERNEL),
        host("u1404-dm", engine="1.5.0", storage_driver="devicemapper", init="upstart",
             stands_for="ubuntu1404", experiments="storage-location", **UBUNTU_1404_KERNEL),
        host("deb2010", storage_driver="overlay2", docker_fs="xfs", experiments=TODAY),
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
    if spec.experiments:
        out["labctl_experiments"] = spec.experiments
    if spec.engine == DISTRO_ENGINE:
        return out
    from ...engines import require_engine

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
    "path": "image",  # image:path=FILE
}


def parse_host_option(text: str, defaults: Mapping[str, Any] | None = None) -> QemuHostSpec:
    """``SUITE[:key=value,...]`` (or the docker driver's ``SUITE/key=value``) -> a host spec,
    e.g. ``bullseye:name=bullseye-v1,cgroup=v1`` or ``bookworm/driver=devicemapper``; the user's
    own cloud image is ``image:path=FILE[,name=...,memory=...,cgroup=...]`` (or ``image=FILE,...``;
    only commas separate its items: the path keeps its slashes).
    ``defaults`` fill what the text does not set."""
    m = re.match(r"^\s*([^:/]*)\s*(?:[:/](.*))?$", text, re.S)
    suite, rest = (m.group(1), m.group(2) or "") if m else (text, "")
    separators = r"[,/]"
    image = re.match(rf"^\s*{IMAGE_SUITE}\s*(:|(?==))(.*)$", text, re.S)
    if image:
        suite, rest, separators = IMAGE_SUITE, image.group(2).lstrip(), ","
        if image.group(1) == "":  # image=FILE,...
            rest = "path" + rest
    fields_: dict[str, Any] = dict(defaults or {})
    fields_["suite"] = suite.strip()
    for item in re.split(separators, rest):
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
        # commas separate the items: several checks are joined with "+"
        fields_[key] = value.strip().replace("+", ",") if key == "experiments" else value.strip()
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
                base.check_known(h, _HOST_KEYS, "unknown qemu host option(s):")
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
        base.check_known(data, lab_keys | _HOST_KEYS | {"suites"}, "unknown qemu lab option(s):")
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
        return base.validated(cls(**data))

    def validate(self) -> None:
        base.check_lab_settings(self.name, self.mirror)
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "hosts": [h.to_dict() for h in self.hosts],
            "accel": self.accel,
            "mirror": self.mirror,
        }


def recorded_spec(lab: str) -> QemuLabSpec | None:
    """The spec a qemu lab was last brought up with (from its lab.json), or None."""
    data = recorded_spec_data(lab, "qemu")
    try:
        return QemuLabSpec.from_mapping(data) if data else None
    except (ConfigError, TypeError):
        return None
