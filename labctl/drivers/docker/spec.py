"""What a docker lab looks like: its hosts (``HostSpec``, the ``--host`` string form) and the lab's
settings (``DockerLabSpec``), validated before anything is made."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ...errors import ConfigError
from .. import base
from ..base import GiB, MiB, format_size, parse_size
from . import images

MIN_DISK = 256 * MiB
MIN_MEMORY = 128 * MiB
STORAGE_DRIVERS = ("overlay2", "vfs", "btrfs")
BACKING_FILESYSTEMS = ("ext4", "xfs", "btrfs")
#: the backing filesystems each inner storage driver runs on in a lab host (overlay2 refuses btrfs
#: as its backing filesystem; the btrfs driver needs btrfs)
DRIVER_FILESYSTEMS: dict[str, tuple[str, ...]] = {
    "overlay2": ("ext4", "xfs"),
    "vfs": ("ext4", "xfs", "btrfs"),
    "btrfs": ("btrfs",),
}
DEFAULT_FS = {"overlay2": "ext4", "vfs": "ext4", "btrfs": "btrfs"}
#: smallest disks mkfs makes: mkfs.xfs (xfsprogs >= 5.19) refuses below 300 MiB
MIN_DISK_FS = {"ext4": 256 * MiB, "xfs": 300 * MiB, "btrfs": 256 * MiB}
#: `--host` keys (and their aliases) -> HostSpec fields
HOST_KEYS: dict[str, str] = {
    "name": "name",
    "driver": "storage_driver",
    "storage_driver": "storage_driver",
    "storage": "storage_driver",
    "fs": "backing_fs",
    "backing_fs": "backing_fs",
    "docker_fs": "backing_fs",
    "docker": "docker",
    "python": "python",
}
_PYTHON_VALUES = {
    "python3": "python3", "3": "python3", "py3": "python3",
    "python2.7": "python2.7", "2.7": "python2.7", "py27": "python2.7",
    "none": "none", "no": "none",
}  # fmt: skip
_BOOL_VALUES = {"yes": True, "true": True, "1": True, "on": True,
                "no": False, "false": False, "0": False, "off": False}  # fmt: skip
PYTHON_INTERPRETERS = {"python3": "/usr/bin/python3", "python2.7": "/usr/bin/python2.7"}
#: `--host` keys whose values are words: field -> (word -> value, a wrong word's message, choices)
_WORDS: dict[str, tuple[Mapping[str, Any], str, str]] = {
    "docker": (_BOOL_VALUES, "docker={!r} is not yes or no", "yes, no"),
    "python": (_PYTHON_VALUES, "unknown python {!r}", "3, 2.7, none"),
}

#: lab host names are hostnames (and part of container and disk names)
_HOST_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")


@dataclass(frozen=True)
class HostSpec:
    """One lab host: its suite and how it differs from the default host of that suite.

    ``storage_driver=""`` means the lab's ``storage_driver``; ``backing_fs=""`` the driver's
    default filesystem (ext4, or btrfs for the btrfs driver); ``name=""`` an automatic name from
    the suite and what differs (``bookworm-vfs``, ``bookworm-xfs``, ``bullseye-py27``). ``python``
    is "python3" (the suite's own; bullseye also has python2.7), "python2.7" (the only Python,
    bullseye) or "none"; ``docker=False`` makes a host without docker.io (provisioning installs
    it; the disk and /etc/docker/daemon.json are ready for it). ``DockerLabSpec.host_specs()``
    gives them resolved: every field concrete, names unique.

    The string form (``labctl lab up --host``): ``SUITE[/KEY=VALUE[,KEY=VALUE...]]`` (``:`` works
    in place of ``/``, and ``/`` in place of ``,``) with keys
    ``name``, ``driver`` (overlay2, vfs, btrfs), ``fs`` (ext4, xfs, btrfs), ``docker`` (yes, no),
    ``python`` (3, 2.7, none), e.g. ``bookworm/driver=vfs``, ``bookworm/fs=xfs,name=x1``.
    """

    name: str = ""
    suite: str = "bookworm"
    storage_driver: str = ""
    backing_fs: str = ""
    docker: bool = True
    python: str = "python3"

    def __post_init__(self) -> None:
        py = _PYTHON_VALUES.get(str(self.python).strip().lower())
        if py is not None:
            object.__setattr__(self, "python", py)

    @classmethod
    def parse(cls, text: str) -> HostSpec:
        """A host from its string form; a ConfigError names the string and the allowed values."""
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(
                f"hosts: {text!r} is not a host spec",
                hint="write SUITE[/KEY=VALUE,...], e.g. bookworm/driver=vfs",
            )
        raw = text.strip()
        # SUITE/k=v,... (also SUITE:k=v,..., the qemu driver's form)
        m = re.match(r"^([^/:]*)([/:]?)(.*)$", raw, re.S)
        assert m is not None
        suite, sep, rest = m.group(1).strip(), m.group(2), m.group(3)
        if suite not in images.SUITES:
            raise ConfigError(
                f"hosts: {raw!r}: unknown suite {suite!r}",
                hint=f"choose from {', '.join(images.SUITES)}",
            )
        kwargs: dict[str, Any] = {"suite": suite}
        seen: set[str] = set()
        for item in re.split(r"[,/]", rest) if sep else []:
            if not item.strip():
                continue
            key, eq, value = item.partition("=")
            key = key.strip().lower().replace("-", "_")
            value = value.strip()
            field_name = HOST_KEYS.get(key)
            if not eq or field_name is None:
                what = f"unknown key {key!r}" if eq else f"{item.strip()!r} is not KEY=VALUE"
                raise ConfigError(
                    f"hosts: {raw!r}: {what}",
                    hint="keys: name, driver (overlay2, vfs, btrfs), fs (ext4, xfs, btrfs), "
                    "docker (yes, no), python (3, 2.7, none)",
                )
            if field_name in seen:
                raise ConfigError(f"hosts: {raw!r}: {key} is given twice")
            seen.add(field_name)
            if field_name in _WORDS:
                words, wrong, choices = _WORDS[field_name]
                if value.lower() not in words:
                    raise ConfigError(
                        f"hosts: {raw!r}: " + wrong.format(value), hint=f"choose from {choices}"
                    )
                kwargs[field_name] = words[value.lower()]
            else:
                kwargs[field_name] = value
        spec = cls(**kwargs)
        # combinations (driver x fs) depend on the lab's default driver: DockerLabSpec.validate
        spec.check(text=raw, combinations=False)
        return spec

    def resolved(self, lab_driver: str = "overlay2") -> HostSpec:
        """Every field concrete: the lab's driver, the driver's default fs, a name."""
        driver = self.storage_driver or lab_driver
        fs = self.backing_fs or DEFAULT_FS.get(driver, "ext4")
        out = replace(self, storage_driver=driver, backing_fs=fs)
        return out if out.name else replace(out, name=out.auto_name(lab_driver))

    def auto_name(self, lab_driver: str = "overlay2") -> str:
        """The suite plus what differs from the lab's default host: bookworm-vfs-xfs-nodocker."""
        driver = self.storage_driver or lab_driver
        fs = self.backing_fs or DEFAULT_FS.get(driver, "ext4")
        parts = [self.suite]
        if driver != lab_driver:
            parts.append(driver)
        if fs != DEFAULT_FS.get(driver, "ext4"):
            parts.append(fs)
        if not self.docker:
            parts.append("nodocker")
        parts += {"python2.7": ["py27"], "none": ["nopython"]}.get(self.python, [])
        return "-".join(parts)

    def to_string(self) -> str:
        """The compact form; ``HostSpec.parse(h.to_string())`` gives the same host back (in a lab
        whose default driver is overlay2)."""
        driver = self.storage_driver
        items = []
        if driver and driver != "overlay2":
            items.append(f"driver={driver}")
        if self.backing_fs and self.backing_fs != DEFAULT_FS.get(driver or "overlay2"):
            items.append(f"fs={self.backing_fs}")
        if not self.docker:
            items.append("docker=no")
        if self.python != "python3":
            items.append("python=" + {"python2.7": "2.7"}.get(self.python, self.python))
        # automatic names are relative to the lab's driver; the string form assumes overlay2
        if self.name and self.name != self.auto_name("overlay2"):
            items.append(f"name={self.name}")
        return self.suite + ("/" + ",".join(items) if items else "")

    def image_recipe(self) -> images.Recipe:
        return images.recipe_for(self.suite, docker=self.docker, python=self.python)

    def check(
        self, *, lab_driver: str = "overlay2", text: str | None = None, combinations: bool = True
    ) -> None:
        """Raise a ConfigError naming the host (its string form) and the allowed values."""
        who = text if text is not None else self.to_string()
        if self.suite not in images.SUITES:
            raise ConfigError(
                f"hosts: {who!r}: unknown suite {self.suite!r}",
                hint=f"choose from {', '.join(images.SUITES)}",
            )
        if self.name and not (isinstance(self.name, str) and _HOST_NAME_RE.match(self.name)):
            raise ConfigError(
                f"hosts: {who!r}: name {self.name!r} is not a valid host name",
                hint="use 1-40 lowercase letters, digits or -, starting and ending with a "
                "letter or digit",
            )
        if self.storage_driver and self.storage_driver not in STORAGE_DRIVERS:
            raise ConfigError(
                f"hosts: {who!r}: unknown storage driver {self.storage_driver!r}",
                hint=f"choose from {', '.join(STORAGE_DRIVERS)}",
            )
        if self.backing_fs and self.backing_fs not in BACKING_FILESYSTEMS:
            raise ConfigError(
                f"hosts: {who!r}: unknown backing filesystem {self.backing_fs!r}",
                hint=f"choose from {', '.join(BACKING_FILESYSTEMS)}",
            )
        driver = self.storage_driver or lab_driver
        fs = self.backing_fs or DEFAULT_FS.get(driver, "ext4")
        if combinations and driver in DRIVER_FILESYSTEMS and fs not in DRIVER_FILESYSTEMS[driver]:
            raise ConfigError(
                f"hosts: {who!r}: the {driver} driver does not run on {fs}",
                hint=f"{driver} runs on {', '.join(DRIVER_FILESYSTEMS[driver])}",
            )
        if not isinstance(self.docker, bool):
            raise ConfigError(f"hosts: {who!r}: docker must be true or false, not {self.docker!r}")
        if self.python not in images.PYTHONS:
            raise ConfigError(
                f"hosts: {who!r}: unknown python {self.python!r}",
                hint="choose from 3, 2.7, none",
            )
        if self.python == "python2.7" and self.suite not in images.PYTHON27_SUITES:
            raise ConfigError(
                f"hosts: {who!r}: {self.suite} has no python2.7",
                hint=f"python=2.7 exists for {', '.join(images.PYTHON27_SUITES)}",
            )
        if fs == "xfs" and self.python != "python3":
            raise ConfigError(
                f"hosts: {who!r}: fs=xfs needs xfsprogs, which depends on python3",
                hint="use python=3 with fs=xfs, or another fs",
            )


@dataclass
class DockerLabSpec:
    """What a docker lab looks like. Sizes accept ints (bytes) or strings ("1GiB", "1g").

    ``suites`` is the shorthand for one default host per suite. ``hosts`` (HostSpec or its string
    form, e.g. ``"bookworm/driver=vfs"``) lists the hosts one by one instead; when given, it
    defines the lab and ``suites`` becomes the suites it uses. ``storage_driver`` is the default
    of hosts that do not name one. Disk, memory and pids settings apply to every host."""

    name: str = "local"
    suites: tuple[str, ...] = ("bullseye", "bookworm", "trixie")
    disk_size: int = 1 * GiB
    disk_inodes: int = 20000
    memory: int = 1 * GiB
    pids_limit: int = 512
    storage_driver: str = "overlay2"
    mirror: str | None = None
    hosts: tuple[HostSpec, ...] = ()

    def __post_init__(self) -> None:
        h: Any = self.hosts
        if isinstance(h, str):  # several in one string: whitespace between them
            h = tuple(h.split())
        elif isinstance(h, (HostSpec, Mapping)):
            h = (h,)
        parsed: list[HostSpec] = []
        for item in h or ():
            if isinstance(item, HostSpec):
                parsed.append(item)
            elif isinstance(item, str):
                parsed.append(HostSpec.parse(item))
            elif isinstance(item, Mapping):
                known = {f.name for f in fields(HostSpec)}
                base.check_known(item, known, "hosts: unknown host option(s)")
                parsed.append(HostSpec(**dict(item)))
            else:
                raise ConfigError(
                    f"hosts: {item!r} is not a host spec",
                    hint="write SUITE[/KEY=VALUE,...], e.g. bookworm/driver=vfs",
                )
        self.hosts = tuple(parsed)
        if self.hosts:
            self.suites = tuple(dict.fromkeys(hs.suite for hs in self.hosts))
        v: Any = self.disk_size
        self.disk_size = parse_size(v, what="disk_size")
        v = self.memory
        self.memory = parse_size(v, what="memory")
        v = self.suites
        if isinstance(v, str):
            v = tuple(s.strip() for s in v.split(",") if s.strip())
        self.suites = tuple(v)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> DockerLabSpec:
        """A spec from config data; unknown keys are a ConfigError."""
        base.check_known(data, {f.name for f in fields(cls)}, "unknown docker lab option(s):")
        return base.validated(cls(**dict(data)))

    @classmethod
    def recorded(cls, lab: str) -> DockerLabSpec | None:
        """The spec a docker lab was last brought up with (from its lab.json), or None."""
        data = base.recorded_spec_data(lab, "docker")
        try:
            return cls.from_mapping(data) if data else None
        except (ConfigError, TypeError):
            return None

    def validate(self) -> None:
        """Raise ConfigError naming the first bad field."""
        base.check_lab_settings(self.name, self.mirror)
        if not self.suites:
            raise ConfigError("suites: at least one suite is needed")
        for suite in self.suites:
            if suite not in images.SUITES:
                raise ConfigError(
                    f"suites: unknown suite {suite!r}",
                    hint=f"choose from {', '.join(images.SUITES)}",
                )
        if len(set(self.suites)) != len(self.suites):
            raise ConfigError(f"suites: {', '.join(self.suites)} names a suite twice")
        if not isinstance(self.disk_inodes, int) or isinstance(self.disk_inodes, bool):
            raise ConfigError(f"disk_inodes: expected an integer, got {self.disk_inodes!r}")
        base.check_disk(self.disk_size, self.disk_inodes, MIN_DISK)
        if self.memory < MIN_MEMORY:
            raise ConfigError(
                f"memory: {format_size(self.memory)} is below the minimum {format_size(MIN_MEMORY)}"
            )
        if (
            not isinstance(self.pids_limit, int)
            or isinstance(self.pids_limit, bool)
            or self.pids_limit < 64
        ):
            raise ConfigError(f"pids_limit: expected an integer >= 64, got {self.pids_limit!r}")
        if self.storage_driver not in STORAGE_DRIVERS:
            raise ConfigError(
                f"storage_driver: {self.storage_driver!r} is not supported by the docker driver",
                hint=f"choose from {', '.join(STORAGE_DRIVERS)}",
            )
        for hs in self.hosts:
            hs.check(lab_driver=self.storage_driver)
        for hs in self.host_specs():
            need = MIN_DISK_FS.get(hs.backing_fs, MIN_DISK)
            if self.disk_size < need:
                raise ConfigError(
                    f"disk_size: {format_size(self.disk_size)} is too small for host "
                    f"{hs.name!r} ({hs.backing_fs} needs at least {format_size(need)})"
                )

    def host_specs(self) -> list[HostSpec]:
        """The lab's hosts, resolved (every field concrete) with unique names, in order."""
        base = self.hosts or tuple(HostSpec(name=s, suite=s) for s in self.suites)
        out: list[HostSpec] = []
        explicit = {hs.name for hs in base if hs.name}
        taken: set[str] = set()
        for hs in base:
            r = hs.resolved(self.storage_driver)
            if r.name in taken:
                if hs.name:
                    raise ConfigError(
                        f"hosts: the name {hs.name!r} is used twice",
                        hint="give each host its own name=",
                    )
                n = 2
                while f"{r.name}-{n}" in taken or f"{r.name}-{n}" in explicit:
                    n += 1
                r = replace(r, name=f"{r.name}-{n}")
            elif not hs.name and r.name in explicit:
                n = 2
                while f"{r.name}-{n}" in taken or f"{r.name}-{n}" in explicit:
                    n += 1
                r = replace(r, name=f"{r.name}-{n}")
            taken.add(r.name)
            out.append(r)
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["suites"] = list(self.suites)
        d["hosts"] = [hs.to_string() for hs in self.hosts]
        return d
