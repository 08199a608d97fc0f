"""Host records: the plain description of one lab host that every stage after a driver uses."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the host names labctl can use: each one names a result file (HOST.json) and a matrix column
HOST_NAME = re.compile(r"^[A-Za-z0-9_.@:-]+$")
HOST_NAME_FORM = "ASCII letters, digits, '.', '_', '@', ':' and '-', at most 200 of them"


#: a file name is at most 255 bytes; HOST.json and its temporary twin must fit
HOST_NAME_MAX = 200


def usable_host_name(name: str) -> bool:
    return bool(HOST_NAME.match(name)) and name not in {".", ".."} and len(name) <= HOST_NAME_MAX


@dataclass(frozen=True)
class HostRecord:
    """How to reach one host over SSH, and what we know about it up front.

    Drivers and the inventory loader produce these; transport, provision and probe consume them
    and never care where the host came from.
    """

    name: str
    address: str
    port: int = 22
    user: str = "root"
    key_file: Path | None = None
    #: known_hosts file that must hold this host's key (strict checking); None = ~/.ssh/known_hosts
    known_hosts: Path | None = None
    #: accept and record an unknown host key (explicit user opt-in only)
    accept_new_host_key: bool = False
    password: str | None = field(default=None, repr=False)
    #: the lab host may be driven to real exhaustion (labctl_disposable=true)
    disposable: bool = False
    #: interpreter for the probe agent on the host; None = first of python3, python2, python
    agent_python: str | None = None
    #: labctl's folder on the host; None = /var/lib/labctl for root, ~/.local/state/labctl else
    host_dir: str | None = None
    #: the checks this host runs (labctl_experiments), None = what the probe asks of every host
    experiments: tuple[str, ...] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict, repr=False)


#: what a stage says about one host while it works: ``progress(host_name, message)``
Progress = Callable[[str, str], None]
