"""The one abstract class every lab driver implements, what all drivers share, and the plain
values a driver hands back.

A driver makes and destroys lab hosts. ``up()`` returns host records (how to reach each host)
plus the files it wrote (an Ansible inventory, a known_hosts file, the lab's SSH key); every
later stage uses those and never asks where the hosts came from. Shared here, once: the lab's
folder and key, sizes, the SSH banner wait, the inventory variables every host has, the mirror
choice, and the end of ``up()``.
"""

from __future__ import annotations

import abc
import json
import os
import re
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from ..errors import ConfigError, LabError
from ..files import unsafe_reason, write_atomic
from ..hosts import HostRecord, Progress
from ..paths import lab_dir

#: the only address the controller uses to reach lab hosts (published / forwarded ports)
LOOPBACK = "127.0.0.1"

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_UNITS = {
    "": 1, "b": 1,
    "k": KiB, "kib": KiB, "kb": 1000,
    "m": MiB, "mib": MiB, "mb": 1000**2,
    "g": GiB, "gib": GiB, "gb": 1000**3,
    "t": 1 << 40, "tib": 1 << 40, "tb": 1000**4,
}  # fmt: skip


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


@dataclass
class LabState:
    """What ``up()`` made: the hosts and the files that describe how to reach them."""

    lab: str
    hosts: list[HostRecord]
    inventory: Path
    known_hosts: Path
    key_file: Path


@dataclass
class HostStatus:
    name: str
    #: "running" | "stopped" | "missing"
    state: str
    address: str | None = None
    port: int | None = None
    image: str | None = None
    details: dict[str, str] = field(default_factory=dict)


@dataclass
class DownReport:
    """What ``down()`` removed, by kind, and what it could not (one line each).

    ``removed`` keeps the kinds a driver names up front (so a summary says "0 networks") in
    their order; ``detail`` says what one removed thing was made of."""

    removed: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    detail: str = ""

    @classmethod
    def of(cls, *kinds: str, detail: str = "") -> DownReport:
        return cls(removed={k: [] for k in kinds}, detail=detail)

    def add(self, kind: str, name: str) -> None:
        self.removed.setdefault(kind, []).append(name)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """``removed 3 containers, 1 networks, 0 loop devices``."""
        counts = ", ".join(f"{len(names)} {kind}" for kind, names in self.removed.items())
        return f"removed {counts or 'nothing'}" + (f" ({self.detail})" if self.detail else "")


#: lab names: no "-" (a lab's loop disks and containers are matched by name), fit a group name
_LAB_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,39}$")


def validate_lab_name(name: object) -> None:
    if not isinstance(name, str) or not _LAB_NAME_RE.match(name):
        raise ConfigError(
            f"name: {name!r} is not a valid lab name",
            hint="use 1-40 lowercase letters, digits or _, starting with a letter or digit",
        )


def check_lab_settings(name: object, mirror: object) -> None:
    """What every lab spec checks: its name, and its mirror when it names one."""
    validate_lab_name(name)
    if mirror is not None and not re.match(r"^https?://\S+$", str(mirror)):
        raise ConfigError(f"mirror: {mirror!r} is not an http(s) URL")


def check_known(keys: Iterable[str], known: Iterable[str], what: str) -> None:
    """A ConfigError ``<what> a, b`` naming the unknown keys (a hint lists the known ones)."""
    known_set = set(known)
    unknown = sorted(set(keys) - known_set)
    if unknown:
        raise ConfigError(
            f"{what} {', '.join(unknown)}", hint=f"known: {', '.join(sorted(known_set))}"
        )


def check_disk(size: int, inodes: int | None, minimum: int, who: str = "") -> None:
    """A host's /var/lib/docker disk: ``minimum`` bytes or more; ``inodes`` (None: as the
    filesystem likes) 1000 or more and at most one per KiB. ``who`` prefixes the message."""
    if size < minimum:
        raise ConfigError(
            f"{who}disk_size: {format_size(size)} is below the minimum {format_size(minimum)}"
        )
    if inodes is not None and inodes < 1000:
        raise ConfigError(f"{who}disk_inodes: {inodes} is below the minimum 1000")
    if inodes is not None and inodes > size // 1024:
        raise ConfigError(
            f"{who}disk_inodes: {inodes} inodes do not fit a {format_size(size)} disk "
            "(at most one per KiB)"
        )


def make_ed25519_key(comment: str) -> tuple[str, str]:
    """A fresh ed25519 key (the lab's login key, a VM's host key).

    Returns (OpenSSH private key text, public key line ending in ``comment``).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = (
        private.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return pem, f"{public} {comment}"


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


def ssh_banner(port: int, timeout: float) -> bool:
    """Whether an SSH server greets on 127.0.0.1:``port`` (no login: cheap to ask often)."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def choose_mirror(configured: str | None) -> str:
    """The Debian mirror of a lab's image builds: its own setting, else the controller's."""
    from ..debootstrap import detect_mirror

    return configured.rstrip("/") if configured else detect_mirror()


def read_lab_file(lab: str) -> dict[str, Any]:
    """A lab's lab.json (what its driver recorded at ``up``), or {}."""
    try:
        data = json.loads((lab_dir(lab) / "lab.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def recorded_spec_data(lab: str, driver: str) -> dict[str, Any] | None:
    """The spec lab ``lab`` was last brought up with by ``driver`` (its lab.json), or None:
    a lab named without options is the lab as it was made (`run --lab`, `status`, `down`)."""
    data = read_lab_file(lab)
    spec = data.get("spec")
    if data.get("driver") != driver or not isinstance(spec, dict):
        return None
    return {**spec, "name": lab}


def recorded_driver(lab: str) -> str | None:
    """The driver that made lab ``lab`` (from its lab.json), or None."""
    driver = read_lab_file(lab).get("driver")
    return str(driver) if driver else None


def option_flag(option: str) -> str:
    """The command-line flag of a ``from_options`` key: ``disk_size`` -> ``--disk-size``."""
    return "--host" if option == "hosts" else "--" + option.replace("_", "-")


class LabSpec(Protocol):
    """What every driver's lab spec has."""

    name: str
    mirror: str | None

    def validate(self) -> None: ...

    def to_dict(self) -> dict[str, Any]: ...


SpecT = TypeVar("SpecT", bound=LabSpec)


def validated(spec: SpecT) -> SpecT:
    """``spec``, validated (a ConfigError names the first bad field)."""
    spec.validate()
    return spec


class LabDriver(abc.ABC):
    """Makes, inspects and destroys the hosts of one lab.

    Every driver keeps the same files in the lab's folder (``lab_dir(lab)``): the lab's SSH key,
    the known_hosts file of its hosts, the Ansible inventory the rest of labctl reads, and its
    own state (lab.json). Those are handled here, once.
    """

    name: str
    spec: LabSpec
    _progress: Progress | None = None
    #: the ``from_options`` keys (the `labctl lab up` options) this driver reads
    options: ClassVar[frozenset[str]] = frozenset()
    #: `--preset` names this driver brings, and the options that may go with one
    presets: ClassVar[tuple[str, ...]] = ()
    preset_options: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    @abc.abstractmethod
    def from_options(
        cls, name: str, options: Mapping[str, Any], *, preset: str | None = None,
        progress: Progress | None = None,
    ) -> LabDriver:  # fmt: skip
        """The lab ``name`` from the command-line options given (keys of ``options``; the
        registry has checked they are this driver's), or from a preset of this driver."""

    @property
    def lab(self) -> str:
        """The lab's name."""
        return self.spec.name

    @property
    def directory(self) -> Path:
        return lab_dir(self.lab)

    @property
    def key_file(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def known_hosts_file(self) -> Path:
        return self.directory / "known_hosts"

    @property
    def inventory_file(self) -> Path:
        return self.directory / "inventory.yml"

    @property
    def state_file(self) -> Path:
        return self.directory / "lab.json"

    def _say(self, host: str, message: str) -> None:
        if self._progress is not None:
            self._progress(host, message)

    def _read_state_file(self) -> dict[str, Any]:
        return read_lab_file(self.lab)

    def _mirror(self) -> str:
        return choose_mirror(self.spec.mirror)

    def _make_directory(self) -> tuple[Path, str]:
        """The lab's folder (owner only) and key: (private key path, public key line)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        unsafe = unsafe_reason(self.directory)
        if unsafe is not None:  # its key logs in as root on every host of the lab
            raise LabError(
                f"lab folder {self.directory}: {unsafe}: another user could read or change "
                "the lab's key and known_hosts",
                hint="fix it (chown, chmod go-w) or set LABCTL_HOME to a folder of your own",
            )
        os.chmod(self.directory, 0o700)
        return ensure_key_pair(self.directory, f"labctl-{self.lab}")

    def _host_record(
        self, name: str, port: int, *, labels: dict[str, str] | None = None,
        host_vars: dict[str, Any] | None = None, agent_python: str | None = None,
    ) -> HostRecord:  # fmt: skip
        """How the rest of labctl reaches a lab host: root on 127.0.0.1:``port``, the lab's key,
        its known_hosts (strict), disposable."""
        return HostRecord(
            name=name,
            address=LOOPBACK,
            port=port,
            user="root",
            key_file=self.key_file,
            known_hosts=self.known_hosts_file,
            disposable=True,
            agent_python=agent_python,
            labels=labels or {},
            vars=host_vars or {},
        )

    def _common_host_vars(self, port: int, suite: str, interpreter: str | None) -> dict[str, Any]:
        """The inventory variables of every lab host (SSH with strict host keys, the lab)."""
        key = str(self.key_file.resolve())
        kh = str(self.known_hosts_file.resolve())
        hv: dict[str, Any] = {
            "ansible_host": LOOPBACK,
            "ansible_port": port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": key,
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={kh} "
            "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes",
        }
        if interpreter is not None:  # no Python at all: no interpreter to name (raw only)
            hv["ansible_python_interpreter"] = interpreter
        hv.update(
            {
                "labctl_known_hosts": kh,
                "labctl_disposable": True,
                "labctl_driver": self.name,
                "labctl_lab": self.lab,
                "labctl_suite": suite,
            }
        )
        return hv

    def _finish_up(
        self, records: list[HostRecord], host_keys: Iterable[tuple[int | None, str | None]],
        key_file: Path, started: float,
    ) -> LabState:  # fmt: skip
        """The end of every ``up()``: known_hosts (port, host key per host), the inventory."""
        self._write_known_hosts_entries((p, k) for p, k in host_keys if p and k)
        self._write_inventory(records)
        self._say("*", f"lab {self.lab} ready in {time.monotonic() - started:.1f} s")
        return LabState(
            lab=self.lab,
            hosts=records,
            inventory=self.inventory_file,
            known_hosts=self.known_hosts_file,
            key_file=key_file,
        )

    def _write_known_hosts_entries(self, entries: Iterable[tuple[int, str]]) -> None:
        """``[127.0.0.1]:PORT KEY`` per (published port, host key) of the lab's hosts."""
        lines = [f"[{LOOPBACK}]:{port} {key}" for port, key in entries]
        write_atomic(self.known_hosts_file, "\n".join(lines) + "\n", 0o600)

    def _record_new_port(self, host: str, port: int) -> None:
        """A running host answers on a new SSH port (a restarted container): lab.json,
        known_hosts (with the recorded host key: strict checking stays) and the inventory."""
        state = self._read_state_file()
        hosts = state.get("hosts") or {}
        hosts[host]["port"] = port
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

    def _write_inventory(self, records: list[HostRecord]) -> None:
        """The lab as an Ansible inventory: group ``labctl_<lab>``, each host's variables."""
        inventory = {
            "all": {
                "children": {f"labctl_{self.lab}": {"hosts": {r.name: r.vars for r in records}}}
            }
        }
        head = f"# labctl {self.name} lab {self.lab!r}: written by `labctl lab up`"
        text = f"{head}; JSON is valid YAML\n" + json.dumps(inventory, indent=2) + "\n"
        write_atomic(self.inventory_file, text, 0o600)

    def refresh_port(self, host: str, known_port: int) -> int | None:
        """The SSH port a running lab host answers on now, when it moved from ``known_port``
        (the lab's files are updated); None when it did not or cannot move (the default)."""
        return None

    @abc.abstractmethod
    def up(self) -> LabState:
        """Make the lab ready; idempotent (reuses running hosts, starts stopped ones)."""

    @abc.abstractmethod
    def status(self) -> list[HostStatus]:
        """One entry per host of the lab, including the ones that do not exist (yet)."""

    @abc.abstractmethod
    def down(self) -> DownReport:
        """Remove everything ``up()`` made (the lab's key may stay)."""
