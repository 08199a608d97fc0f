"""The docker driver: lab hosts as containers with their own sshd and their own inner dockerd.

Each lab host is a container of a locally built Debian image (see ``images.py``), named
``labctl-lab-<lab>-<host>``, on the network ``labctl-<lab>``, with its SSH port published on
127.0.0.1 only (the controller never talks to bridge addresses). A lab's hosts are given by
``HostSpec``s (``bookworm``, ``bookworm/driver=vfs``, ``bookworm/fs=xfs``, ``bookworm/docker=no``,
``bullseye/python=2.7``, ...); a default host is named after its suite. The inner dockerd keeps its
data on a bounded disk (sparse file on a loop device: ext4 with a fixed inode count, xfs or btrfs)
so an experiment that fills the disk fills that, not the machine. Lab hosts share the controller's
kernel: memory and pids findings describe nested cgroups, not a separate OS.

State lives in ``lab_dir(<lab>)``: ``id_ed25519`` (+ ``.pub``), ``known_hosts`` (the host keys each
lab host made at its first start, read from the container, never trusted on first connection),
``inventory.yml`` (Ansible, JSON-compatible YAML) and ``lab.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labctl.drivers import images
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
from labctl.errors import ConfigError, LabError
from labctl.hosts import HostRecord

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
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

LABEL_LAB = "labctl.lab"
LABEL_HOST = "labctl.host"
LABEL_RECIPE = "labctl.recipe"
LABEL_DRIVER = "labctl.driver"
LABEL_SUITE = "labctl.suite"
LABEL_HOSTSPEC = "labctl.hostspec"

ADDRESS = LOOPBACK
READY_TIMEOUT = 180.0
STOP_TIMEOUT = 30
AGENT_PYTHON = {"bullseye": "/usr/bin/python2.7"}
HELPER = "/usr/local/sbin/labctl-dockerd"
ENTRYPOINT_LOG = "/var/log/labctl-entrypoint.log"

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_UNITS = {
    "": 1, "b": 1,
    "k": KiB, "kib": KiB, "kb": 1000,
    "m": MiB, "mib": MiB, "mb": 1000**2,
    "g": GiB, "gib": GiB, "gb": 1000**3,
    "t": 1 << 40, "tib": 1 << 40, "tb": 1000**4,
}  # fmt: skip
#: lab host names are hostnames (and part of container and disk names)
_HOST_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")

if TYPE_CHECKING:
    import docker

Progress = Callable[[str, str], None]


def parse_size(value: int | str, *, what: str = "size") -> int:
    """Bytes from an int or a string: ``"1GiB"``, ``"512MiB"``, ``"1g"`` (binary), ``"1GB"``
    (decimal), ``"1073741824"``. Raises ConfigError naming ``what``."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a size like 1GiB or 512MiB, got {value!r}")
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{what}: expected a size like 1GiB or 512MiB, got {value!r}")
    m = _SIZE_RE.match(value)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise ConfigError(f"{what}: cannot read {value!r} as a size (e.g. 1GiB, 512MiB, 1g)")
    return int(float(m.group(1)) * _UNITS[unit])


def format_size(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return f"{n}B"


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
            if field_name == "docker":
                flag = _BOOL_VALUES.get(value.lower())
                if flag is None:
                    raise ConfigError(
                        f"hosts: {raw!r}: docker={value!r} is not yes or no",
                        hint="choose from yes, no",
                    )
                kwargs["docker"] = flag
            elif field_name == "python":
                py = _PYTHON_VALUES.get(value.lower())
                if py is None:
                    raise ConfigError(
                        f"hosts: {raw!r}: unknown python {value!r}",
                        hint="choose from 3, 2.7, none",
                    )
                kwargs["python"] = py
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
                unknown = sorted(set(item) - known)
                if unknown:
                    raise ConfigError(
                        f"hosts: unknown host option(s) {', '.join(unknown)}",
                        hint=f"known: {', '.join(sorted(known))}",
                    )
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
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown docker lab option(s): {', '.join(unknown)}",
                hint=f"known: {', '.join(sorted(known))}",
            )
        spec = cls(**dict(data))
        spec.validate()
        return spec

    def validate(self) -> None:
        """Raise ConfigError naming the first bad field."""
        validate_lab_name(self.name)
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
        if self.disk_size < MIN_DISK:
            raise ConfigError(
                f"disk_size: {format_size(self.disk_size)} is below the minimum "
                f"{format_size(MIN_DISK)}"
            )
        if not isinstance(self.disk_inodes, int) or isinstance(self.disk_inodes, bool):
            raise ConfigError(f"disk_inodes: expected an integer, got {self.disk_inodes!r}")
        if self.disk_inodes < 1000:
            raise ConfigError(f"disk_inodes: {self.disk_inodes} is below the minimum 1000")
        if self.disk_inodes > self.disk_size // 1024:
            raise ConfigError(
                f"disk_inodes: {self.disk_inodes} inodes do not fit a "
                f"{format_size(self.disk_size)} disk (at most one per KiB)"
            )
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
        if self.mirror is not None and not re.match(r"^https?://\S+$", str(self.mirror)):
            raise ConfigError(f"mirror: {self.mirror!r} is not an http(s) URL")
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


# --- small helpers ----------------------------------------------------------------------------


def ensure_key_pair(directory: Path, comment: str) -> tuple[Path, str]:
    """The lab's ed25519 key (made once): (private key path, public key line)."""
    key = directory / "id_ed25519"
    pub = directory / "id_ed25519.pub"
    if key.exists() and pub.exists():
        return key, pub.read_text().strip()
    pem, line = make_ed25519_key(comment)
    write_atomic(key, pem, 0o600)
    write_atomic(pub, line + "\n", 0o644)
    return key, line


def _ssh_banner(port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((ADDRESS, port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def _published_port(attrs: Mapping[str, Any]) -> int | None:
    ports = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    for binding in ports.get("22/tcp") or []:
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    return None


@dataclass
class _Host:
    spec: HostSpec
    index: int
    container: Any = None
    port: int | None = None
    host_key: str | None = None
    docker_version: str = ""
    storage_driver: str = ""
    #: what the helper reported (`labctl-dockerd facts`): backing_fs, storage_opt_size, ...
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def suite(self) -> str:
        return self.spec.suite


def parse_facts(text: str) -> dict[str, str]:
    """``key=value`` lines (what ``labctl-dockerd facts`` prints) as a dict."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if eq and re.match(r"^[a-z_]+$", key.strip()):
            out[key.strip()] = value.strip()
    return out


class DockerLab(LabDriver):
    """Lab hosts as local containers (Docker-in-Docker): one per host spec of the lab."""

    name = "docker"

    def __init__(
        self,
        spec: DockerLabSpec,
        *,
        client: docker.DockerClient | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.spec = spec
        self._client_obj = client
        self._progress = progress

    # --- names and places ---------------------------------------------------------------------

    @property
    def lab(self) -> str:
        return self.spec.name

    @property
    def network_name(self) -> str:
        return f"labctl-{self.lab}"

    def container_name(self, host: str) -> str:
        """The container of a lab host (by host name; a default host is named after its suite)."""
        return f"labctl-lab-{self.lab}-{host}"

    def disk_image(self, host: str) -> str:
        return f"/labctl-disk-{self.lab}-{host}.img"

    def bip(self, index: int) -> str:
        return f"10.213.{index + 1}.1/24"

    # --- the engine ---------------------------------------------------------------------------

    def _client(self) -> Any:
        if self._client_obj is not None:
            return self._client_obj
        from labctl.dockerclient import connect

        self._client_obj = connect()
        return self._client_obj

    @contextlib.contextmanager
    def _engine(self, what: str, host: str | None = None) -> Iterator[None]:
        """Map Docker SDK errors to LabError in one place."""
        import docker.errors
        import requests.exceptions

        try:
            yield
        except LabError:
            raise
        except docker.errors.APIError as exc:
            msg = exc.explanation or str(exc)
            raise LabError(f"{what}: {msg}", host=host) from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise LabError(
                f"{what}: cannot reach the Docker engine ({exc})",
                host=host,
                hint="start it (e.g. `dockerd`) or set DOCKER_HOST",
            ) from exc

    def _find(self, client: Any, suite: str) -> Any:
        import docker.errors

        try:
            return client.containers.get(self.container_name(suite))
        except docker.errors.NotFound:
            return None

    def _exec(self, container: Any, cmd: list[str]) -> tuple[int, str]:
        result = container.exec_run(cmd, stdout=True, stderr=True)
        out = result.output
        text = out.decode("utf-8", "replace") if isinstance(out, bytes) else str(out or "")
        return int(result.exit_code if result.exit_code is not None else -1), text

    def _read_state(self) -> dict[str, Any]:
        return self._read_state_file()

    def refresh_port(self, host: str, known_port: int) -> int | None:
        """The SSH port a running lab host publishes now, when it is not ``known_port`` (a
        restarted container gets a new one); the lab's known_hosts, lab.json and inventory are
        updated with the recorded host key (strict checking stays). None: unchanged or unknown.
        """
        import docker.errors

        state = self._read_state()
        hosts = state.get("hosts") or {}
        entry = hosts.get(host)
        if not isinstance(entry, dict) or not entry.get("host_key"):
            return None
        try:
            c = self._client().containers.get(self.container_name(host))
        except docker.errors.DockerException:
            return None
        port = _published_port(c.attrs) if c.status == "running" else None
        if port is None or port == known_port:
            return None
        entry["port"] = port
        write_atomic(self.state_file, json.dumps(state, indent=2) + "\n", 0o600)
        self._write_known_hosts_entries(
            (int(h["port"]), str(h["host_key"]))
            for h in hosts.values()
            if isinstance(h, dict) and h.get("port") and h.get("host_key")
        )
        try:
            text = self.inventory_file.read_text()
            head, _, body = text.partition("\n")
            inv = json.loads(body)
            group = inv["all"]["children"][f"labctl_{self.lab}"]["hosts"]
            group[host]["ansible_port"] = port
            write_atomic(self.inventory_file, f"{head}\n" + json.dumps(inv, indent=2) + "\n", 0o600)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # the next `labctl lab up` rewrites the inventory anyway
        return port

    # --- up -----------------------------------------------------------------------------------

    def up(self) -> LabState:
        self.spec.validate()
        client = self._client()
        started = time.monotonic()
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        key_file, public_key = ensure_key_pair(self.directory, f"labctl-{self.lab}")
        old_state = self._read_state()

        hosts = [_Host(hs, i) for i, hs in enumerate(self.spec.host_specs())]
        with self._engine("inspecting the lab"):
            for h in hosts:
                h.container = self._find(client, h.name)
                if h.container is not None and h.container.status == "dead":
                    self._say(h.name, "removing a dead container")
                    h.container.remove(v=True, force=True)
                    h.container = None

        old_spec = old_state.get("spec")
        recorded_spec: dict[str, Any] = self.spec.to_dict()
        if old_spec and old_spec != self.spec.to_dict() and any(h.container for h in hosts):
            recorded_spec = dict(old_spec)  # what the running hosts were made with
            changed = sorted(k for k, v in self.spec.to_dict().items() if old_spec.get(k) != v)
            self._say(
                "*",
                f"note: lab settings changed since the hosts were made ({', '.join(changed)}); "
                "existing hosts keep the old ones until `down` and `up`",
            )
        for h in hosts:
            self._check_same_host(h)
        to_create = [h.spec.image_recipe() for h in hosts if h.container is None]
        if to_create:
            with self._engine("checking the lab host images"):
                images.ensure_recipes(
                    client, to_create, mirror=self._mirror, progress=self._progress
                )

        with self._engine("creating the lab network"):
            self._ensure_network(client)

        for h in hosts:
            with self._engine("starting the lab host", host=h.name):
                self._start_host(client, h, public_key)

        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            for fut in [pool.submit(self._wait_ready, h) for h in hosts]:
                fut.result()

        self._check_host_keys(hosts, old_state)
        records = [self._record(h) for h in hosts]
        self._write_known_hosts(hosts)
        self._write_inventory(records)
        self._write_state(hosts, recorded_spec)
        self._say("*", f"lab {self.lab} ready in {time.monotonic() - started:.1f} s")
        return LabState(
            lab=self.lab,
            hosts=records,
            inventory=self.inventory_file,
            known_hosts=self.known_hosts_file,
            key_file=key_file,
        )

    def _mirror(self) -> str:
        return self.spec.mirror.rstrip("/") if self.spec.mirror else images.detect_mirror()

    def _ensure_network(self, client: Any) -> Any:
        found = client.networks.list(names=[self.network_name])
        for net in found:
            if net.name == self.network_name:
                return net
        self._say("*", f"creating network {self.network_name}")
        return client.networks.create(
            self.network_name,
            driver="bridge",
            labels={LABEL_LAB: self.lab, LABEL_DRIVER: "docker"},
        )

    def _check_same_host(self, h: _Host) -> None:
        """An existing container must be the host the spec asks for (driver, fs, image kind)."""
        c = h.container
        if c is None:
            return
        made = c.labels.get(LABEL_HOSTSPEC)
        want = h.spec.to_string()
        if made is not None and made != want:
            raise LabError(
                f"the running lab host {self.container_name(h.name)} was made as {made!r}, "
                f"the lab now asks for {want!r}",
                host=h.name,
                hint=f"`labctl lab down --name {self.lab}` first, or give the host another name=",
            )

    def _start_host(self, client: Any, h: _Host, public_key: str) -> None:
        c = h.container
        hs = h.spec
        recipe = hs.image_recipe()
        if c is None:
            tag = recipe.tag
            self._say(h.name, f"creating {self.container_name(h.name)} from {tag}")
            api = client.api
            host_config = api.create_host_config(
                port_bindings={22: (ADDRESS, None)},
                # --privileged fails where the kernel withholds CAP_SYS_RESOURCE; this works
                cap_add=["ALL"],
                cap_drop=["SYS_RESOURCE"],
                security_opt=["seccomp=unconfined", "apparmor=unconfined"],
                device_cgroup_rules=["a *:* rwm"],
                tmpfs={"/run": "rw,exec,nosuid,nodev,mode=755", "/tmp": "rw,exec,nosuid,nodev"},
                mem_limit=self.spec.memory,
                memswap_limit=self.spec.memory,
                pids_limit=self.spec.pids_limit,
                network_mode=self.network_name,
            )
            # `--security-opt systempaths=unconfined` is a CLI option; the API wants empty lists
            host_config["MaskedPaths"] = []
            host_config["ReadonlyPaths"] = []
            created = api.create_container(
                tag,
                name=self.container_name(h.name),
                hostname=h.name,
                detach=True,
                labels={
                    LABEL_LAB: self.lab,
                    LABEL_HOST: h.name,
                    LABEL_SUITE: h.suite,
                    LABEL_HOSTSPEC: hs.to_string(),
                    LABEL_RECIPE: recipe.short_hash,
                    LABEL_DRIVER: "docker",
                },
                ports=[22],
                environment={
                    "LABCTL_LAB": self.lab,
                    "LABCTL_SUITE": h.suite,
                    "LABCTL_HOST": h.name,
                    "LABCTL_AUTHORIZED_KEY": public_key,
                    "LABCTL_DISK_IMAGE": self.disk_image(h.name),
                    "LABCTL_DISK_SIZE": str(self.spec.disk_size),
                    "LABCTL_DISK_INODES": str(self.spec.disk_inodes),
                    "LABCTL_BIP": self.bip(h.index),
                    "LABCTL_STORAGE_DRIVER": hs.storage_driver,
                    "LABCTL_BACKING_FS": hs.backing_fs,
                },
                host_config=host_config,
                networking_config=api.create_networking_config(
                    {self.network_name: api.create_endpoint_config(aliases=[h.name])}
                ),
            )
            h.container = client.containers.get(created["Id"])
            h.container.start()
            return
        if c.labels.get(LABEL_RECIPE) != recipe.short_hash:
            self._say(
                h.name,
                f"note: made from an older recipe ({c.labels.get(LABEL_RECIPE)}); "
                "`down` then `up` to use the current image",
            )
        if c.status == "running":
            self._say(h.name, "already running")
        elif c.status == "paused":
            self._say(h.name, "unpausing")
            c.unpause()
        else:
            self._say(h.name, f"starting (was {c.status})")
            c.start()

    def _entrypoint_tail(self, container: Any, lines: int = 5) -> str:
        """Last lines of the entrypoint log (works on stopped containers too)."""
        import io
        import tarfile

        try:
            stream, _ = container.get_archive(ENTRYPOINT_LOG)
            buf = io.BytesIO(b"".join(stream))
            with tarfile.open(fileobj=buf) as tar:
                member = tar.getmembers()[0]
                f = tar.extractfile(member)
                text = f.read().decode("utf-8", "replace") if f else ""
        except Exception:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def _wait_ready(self, h: _Host) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        c = h.container
        name = self.container_name(h.name)
        waiting_for = "the container to run"
        # a host without docker.io has no dockerd to wait for: its disk and daemon.json only
        ready_cmd, ready_what = (
            ([HELPER, "status"], "the inner dockerd")
            if h.spec.docker
            else ([HELPER, "prepared"], "the docker disk and daemon.json")
        )
        with self._engine("waiting for the lab host", host=h.name):
            while True:
                c.reload()
                if c.status != "running":
                    if c.status in ("exited", "dead"):
                        tail = self._entrypoint_tail(c)
                        raise LabError(
                            f"the lab host container {name} stopped "
                            f"(exit {c.attrs.get('State', {}).get('ExitCode')})"
                            + (f": {tail}" if tail else ""),
                            host=h.name,
                            hint=f"see `docker logs {name}` and {ENTRYPOINT_LOG} in it",
                        )
                else:
                    h.port = _published_port(c.attrs)
                    if h.port is None:
                        waiting_for = "the published SSH port"
                    elif self._exec(c, ready_cmd)[0] != 0:
                        waiting_for = ready_what
                    elif not _ssh_banner(h.port):  # last: sshd may penalize idle probes
                        waiting_for = f"sshd on {ADDRESS}:{h.port}"
                    else:
                        break
                if time.monotonic() > deadline:
                    tail = self._entrypoint_tail(c)
                    raise LabError(
                        f"not ready after {READY_TIMEOUT:.0f} s: still waiting for {waiting_for}"
                        + (f" (entrypoint log: {tail})" if tail else ""),
                        host=h.name,
                        hint=f"see `docker exec {name} cat {ENTRYPOINT_LOG}` "
                        "and /var/log/dockerd.log in it",
                    )
                time.sleep(0.3)
            rc, out = self._exec(c, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
            parts = out.split()
            if rc != 0 or len(parts) < 2 or parts[0] != "ssh-ed25519":
                raise LabError(
                    f"cannot read the lab host's SSH host key ({out.strip()[:200]})",
                    host=h.name,
                    hint=f"see {ENTRYPOINT_LOG} in {name}",
                )
            h.host_key = f"{parts[0]} {parts[1]}"
            # backing fs, quota, and whether `--storage-opt size=` is accepted (tried for real)
            rc, out = self._exec(c, [HELPER, "facts"])
            h.facts = parse_facts(out) if rc == 0 else {}
            version_driver = h.facts.get("docker", "").split()
            if len(version_driver) == 2:
                h.docker_version, h.storage_driver = version_driver
        if h.docker_version:
            opt = h.facts.get("storage_opt_size", "unknown")
            self._say(
                h.name,
                f"ready on {ADDRESS}:{h.port} (docker {h.docker_version}, {h.storage_driver} on "
                f"{h.facts.get('backing_fs', '?')}, --storage-opt size: {opt})",
            )
        else:
            fs = h.facts.get("backing_fs", "?")
            self._say(
                h.name,
                f"ready on {ADDRESS}:{h.port} (no docker yet; {fs} disk prepared for "
                f"{h.spec.storage_driver})",
            )

    def _check_host_keys(self, hosts: list[_Host], old_state: Mapping[str, Any]) -> None:
        """A lab host keeps the keys it made at its first start; a change is an error."""
        old_hosts = old_state.get("hosts") or {}
        for h in hosts:
            old = old_hosts.get(h.name) or {}
            if old.get("container_id") == h.container.id and old.get("host_key") not in (
                None,
                h.host_key,
            ):
                raise LabError(
                    "the lab host's SSH host key changed since its first start",
                    host=h.name,
                    hint=f"something regenerated it; run `labctl lab down` and up again "
                    f"(recorded {old.get('host_key')}, now {h.host_key})",
                )

    @staticmethod
    def _disk_inodes(h: _Host, configured: int) -> str:
        """ext4 has a fixed inode count (mkfs.ext4 -N); xfs and btrfs allocate inodes on demand."""
        if h.spec.backing_fs == "ext4":
            return h.facts.get("inodes") or str(configured)
        return "dynamic"

    def _record(self, h: _Host) -> HostRecord:
        assert h.port is not None
        hs = h.spec
        labels = {
            "driver": "docker",
            "lab": self.lab,
            "suite": h.suite,
            "storage_driver": hs.storage_driver,
            "backing_fs": hs.backing_fs,
            "disk_inodes": self._disk_inodes(h, self.spec.disk_inodes),
            "storage_opt_size": h.facts.get("storage_opt_size", "unknown"),
            "docker_preinstalled": "yes" if hs.docker else "no",
            "python": hs.python,
        }
        if hs.python == "python3":
            agent_python = AGENT_PYTHON.get(h.suite)
        else:
            agent_python = PYTHON_INTERPRETERS.get(hs.python)
        return HostRecord(
            name=h.name,
            address=ADDRESS,
            port=h.port,
            user="root",
            key_file=self.key_file,
            known_hosts=self.known_hosts_file,
            disposable=True,
            agent_python=agent_python,
            labels=labels,
            vars=self._host_vars(h, agent_python),
        )

    def _host_vars(self, h: _Host, agent_python: str | None) -> dict[str, Any]:
        assert h.port is not None
        hs = h.spec
        key = str(self.key_file.resolve())
        kh = str(self.known_hosts_file.resolve())
        hv: dict[str, Any] = {
            "ansible_host": ADDRESS,
            "ansible_port": h.port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": key,
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={kh} "
            "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes",
        }
        interpreter = PYTHON_INTERPRETERS.get(hs.python)
        if interpreter is not None:  # no Python at all: no interpreter to name (raw only)
            hv["ansible_python_interpreter"] = interpreter
        inodes = self._disk_inodes(h, self.spec.disk_inodes)
        hv.update(
            {
                "labctl_known_hosts": kh,
                "labctl_disposable": True,
                "labctl_driver": "docker",
                "labctl_lab": self.lab,
                "labctl_suite": h.suite,
                "labctl_host_spec": hs.to_string(),
                "labctl_storage_driver": hs.storage_driver,
                "labctl_backing_fs": hs.backing_fs,
                "labctl_disk_inodes": int(inodes) if inodes.isdigit() else inodes,
                "labctl_storage_opt_size": h.facts.get("storage_opt_size", "unknown"),
                "labctl_docker_preinstalled": hs.docker,
                "labctl_python": interpreter or "none",
            }
        )
        if agent_python is not None:
            hv["labctl_agent_python"] = agent_python
        return hv

    def _write_known_hosts(self, hosts: list[_Host]) -> None:
        self._write_known_hosts_entries(
            (h.port, h.host_key) for h in hosts if h.port and h.host_key
        )

    def _write_state(self, hosts: list[_Host], spec: Mapping[str, Any]) -> None:
        state = {
            "lab": self.lab,
            "driver": "docker",
            "spec": dict(spec),
            "network": self.network_name,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "hosts": {
                h.name: {
                    "suite": h.suite,
                    "host_spec": h.spec.to_string(),
                    "container": self.container_name(h.name),
                    "container_id": h.container.id,
                    "image": (h.container.attrs.get("Config") or {}).get("Image"),
                    "recipe": h.container.labels.get(LABEL_RECIPE),
                    "port": h.port,
                    "host_key": h.host_key,
                    "bip": self.bip(h.index),
                    "disk_image": self.disk_image(h.name),
                    "docker_version": h.docker_version,
                    "storage_driver": h.storage_driver or h.spec.storage_driver,
                    "backing_fs": h.spec.backing_fs,
                    "docker_preinstalled": h.spec.docker,
                    "python": h.spec.python,
                    "facts": h.facts,
                }
                for h in hosts
            },
        }
        write_atomic(self.state_file, json.dumps(state, indent=2) + "\n", 0o600)

    # --- status -------------------------------------------------------------------------------

    def status(self) -> list[HostStatus]:
        client = self._client()
        out: list[HostStatus] = []
        # the hosts the lab was made with (lab.json), else the spec's; then any other labelled one
        recorded = list((self._read_state().get("hosts") or {}).keys())
        wanted = recorded or [hs.name for hs in self.spec.host_specs()]
        with self._engine("inspecting the lab"):
            labelled = client.containers.list(
                all=True, filters={"label": f"{LABEL_LAB}={self.lab}"}
            )
            by_name = {c.labels.get(LABEL_HOST, c.name): c for c in labelled}
            names = wanted + sorted(set(by_name) - set(wanted))
            for host in names:
                c = by_name.get(host)
                if c is None:
                    out.append(HostStatus(name=host, state="missing"))
                    continue
                running = c.status == "running"
                details = {
                    "container": c.name,
                    "id": c.short_id,
                    "status": c.status,
                    "recipe": c.labels.get(LABEL_RECIPE, ""),
                }
                if c.labels.get(LABEL_HOSTSPEC):
                    details["spec"] = c.labels[LABEL_HOSTSPEC]
                if host not in wanted:
                    details["note"] = "not in the lab's hosts"
                if running:
                    rc, text = self._exec(
                        c, ["docker", "version", "--format", "{{.Server.Version}}"]
                    )
                    if rc == 0:
                        details["docker_version"] = text.strip()
                    elif "not found" in text or rc in (126, 127):
                        details["docker_version"] = "not installed"
                    else:
                        details["docker_version"] = "not answering"
                    rc, text = self._exec(c, ["docker", "info", "--format", "{{.Driver}}"])
                    if rc == 0:
                        details["storage_driver"] = text.strip()
                    rc, text = self._exec(c, ["findmnt", "-n", "-o", "FSTYPE", "/var/lib/docker"])
                    if rc == 0 and text.strip():
                        details["backing_fs"] = text.strip()
                out.append(
                    HostStatus(
                        name=host,
                        state="running" if running else "stopped",
                        address=ADDRESS if running else None,
                        port=_published_port(c.attrs) if running else None,
                        image=(c.attrs.get("Config") or {}).get("Image"),
                        details=details,
                    )
                )
        return out

    # --- down ---------------------------------------------------------------------------------

    def down(self) -> DownReport:
        client = self._client()
        report = DownReport()
        with self._engine("listing the lab's containers"):
            containers = client.containers.list(
                all=True, filters={"label": f"{LABEL_LAB}={self.lab}"}
            )
        if containers:
            with ThreadPoolExecutor(max_workers=len(containers)) as pool:
                for name, problem in pool.map(self._remove_container, containers):
                    if problem:
                        report.problems.append(problem)
                    else:
                        report.removed_containers.append(name)
        with self._engine("removing the lab network"):
            nets = {
                n.id: n for n in client.networks.list(filters={"label": f"{LABEL_LAB}={self.lab}"})
            }
            for n in client.networks.list(names=[self.network_name]):
                if n.name == self.network_name:
                    nets[n.id] = n
        import docker.errors

        for net in nets.values():
            try:
                net.remove()
                report.removed_networks.append(net.name)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                report.problems.append(f"network {net.name}: {exc.explanation or exc}")
        self._detach_loops(report)
        for path in (self.inventory_file, self.known_hosts_file, self.state_file):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._say("*", f"lab {self.lab} removed")
        return report

    def _remove_container(self, c: Any) -> tuple[str, str | None]:
        import docker.errors

        name = c.name
        host = c.labels.get(LABEL_HOST, name)
        try:
            if c.status == "paused":
                c.unpause()
                c.reload()
            if c.status == "running":
                self._say(host, "stopping the inner dockerd and detaching its disk")
                rc, out = self._exec(c, [HELPER, "teardown"])
                if rc != 0:
                    self._say(host, f"teardown helper exit {rc}: {out.strip()[-200:]}")
                c.stop(timeout=STOP_TIMEOUT)
            c.remove(v=True, force=True)
            self._say(host, f"removed {name}")
            return name, None
        except docker.errors.NotFound:
            return name, None
        except docker.errors.APIError as exc:
            return name, f"container {name}: {exc.explanation or exc}"

    def lab_loops(self) -> list[tuple[str, str]]:
        """Loop devices whose backing file is one of this lab's disks: (device, backing file)."""
        # lab names have no "-", so another lab's disks never match
        pattern = re.compile(rf"/labctl-disk-{re.escape(self.lab)}-[a-z0-9-]+\.img")
        found: list[tuple[str, str]] = []
        for bf in sorted(Path("/sys/block").glob("loop*/loop/backing_file")):
            try:
                backing = bf.read_text().strip()
            except OSError:
                continue
            if pattern.search(backing):
                found.append(("/dev/" + bf.parent.parent.name, backing))
        return found

    def _detach_loops(self, report: DownReport) -> None:
        """Safety net: autoclear frees the loops when a lab host dies; detach any that remain."""
        if not os.path.isdir("/sys/block") or os.geteuid() != 0:
            return
        deadline = time.monotonic() + 5.0
        loops = self.lab_loops()
        while loops and time.monotonic() < deadline:
            time.sleep(0.25)
            loops = self.lab_loops()
        for dev, backing in loops:
            proc = subprocess.run(
                ["losetup", "-d", dev], capture_output=True, text=True, check=False
            )
            if proc.returncode == 0:
                report.detached_loops.append(dev)
            else:
                report.problems.append(
                    f"loop device {dev} ({backing}): losetup -d failed: {proc.stderr.strip()}"
                )
