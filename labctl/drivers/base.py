"""The one abstract class every lab driver implements, and the plain values it hands back.

A driver makes and destroys lab hosts. ``up()`` returns host records (how to reach each host)
plus the files it wrote (an Ansible inventory, a known_hosts file, the lab's SSH key); every
later stage uses those and never asks where the hosts came from.
"""

from __future__ import annotations

import abc
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl.errors import ConfigError
from labctl.hosts import HostRecord
from labctl.paths import lab_dir

#: the only address the controller uses to reach lab hosts (published / forwarded ports)
LOOPBACK = "127.0.0.1"

#: the states ``status()`` reports for one host
STATES = ("running", "stopped", "missing")


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
    """What ``down()`` removed, and what it could not (one line each)."""

    removed_containers: list[str] = field(default_factory=list)
    removed_networks: list[str] = field(default_factory=list)
    detached_loops: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


#: lab names: no "-" (a lab's loop disks and containers are matched by name), fit a group name
_LAB_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,39}$")


def validate_lab_name(name: object) -> None:
    if not isinstance(name, str) or not _LAB_NAME_RE.match(name):
        raise ConfigError(
            f"name: {name!r} is not a valid lab name",
            hint="use 1-40 lowercase letters, digits or _, starting with a letter or digit",
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


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a lab file whole or not at all, with its mode set before it appears."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class LabDriver(abc.ABC):
    """Makes, inspects and destroys the hosts of one lab.

    Every driver keeps the same files in the lab's folder (``lab_dir(lab)``): the lab's SSH key,
    the known_hosts file of its hosts, the Ansible inventory the rest of labctl reads, and its
    own state (lab.json). Those are handled here, once.
    """

    name: str
    _progress: Callable[[str, str], None] | None = None

    @property
    @abc.abstractmethod
    def lab(self) -> str:
        """The lab's name."""

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
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write_known_hosts_entries(self, entries: Iterable[tuple[int, str]]) -> None:
        """``[127.0.0.1]:PORT KEY`` per (published port, host key) of the lab's hosts."""
        lines = [f"[{LOOPBACK}]:{port} {key}" for port, key in entries]
        write_atomic(self.known_hosts_file, "\n".join(lines) + "\n", 0o600)

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

    @abc.abstractmethod
    def up(self) -> LabState:
        """Make the lab ready; idempotent (reuses running hosts, starts stopped ones)."""

    @abc.abstractmethod
    def status(self) -> list[HostStatus]:
        """One entry per host of the lab, including the ones that do not exist (yet)."""

    @abc.abstractmethod
    def down(self) -> DownReport:
        """Remove everything ``up()`` made (the lab's key may stay)."""
