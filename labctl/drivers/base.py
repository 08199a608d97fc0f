"""The one abstract class every lab driver implements, and the plain values it hands back.

A driver makes and destroys lab hosts. ``up()`` returns host records (how to reach each host)
plus the files it wrote (an Ansible inventory, a known_hosts file, the lab's SSH key); every
later stage uses those and never asks where the hosts came from.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path

from labctl.hosts import HostRecord

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


class LabDriver(abc.ABC):
    """Makes, inspects and destroys the hosts of one lab."""

    name: str

    @abc.abstractmethod
    def up(self) -> LabState:
        """Make the lab ready; idempotent (reuses running hosts, starts stopped ones)."""

    @abc.abstractmethod
    def status(self) -> list[HostStatus]:
        """One entry per host of the lab, including the ones that do not exist (yet)."""

    @abc.abstractmethod
    def down(self) -> DownReport:
        """Remove everything ``up()`` made (the lab's key may stay)."""
