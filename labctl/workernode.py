"""``--worker``: the node that runs the playbook for the controller (ansible-runner's worker).

Given as ``ssh://[user@]host[:port]`` (with ``--worker-key`` and ``--worker-known-hosts``), or
as the name of a host in the inventory (its address, key and known_hosts are used). The worker
is reached like any host: paramiko, strict host keys, a key of the lab.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import ConfigError
from .hosts import HostRecord
from .inventory import Inventory

#: the worker's name in lines about it (a host given by URL has no inventory name)
URL_WORKER = "worker"


@dataclass(frozen=True)
class WorkerNode:
    """How to reach the worker node, and the python that makes its venv."""

    host: HostRecord
    python: str = "python3"

    @property
    def where(self) -> str:
        h = self.host
        return f"{h.user}@{h.address}:{h.port}"


def parse_worker_url(text: str) -> tuple[str, str, int]:
    """``ssh://[user@]host[:port]`` -> (user, host, port); user root and port 22 by default."""
    parts = urlsplit(text.strip())
    if parts.scheme != "ssh" or not parts.hostname:
        raise ConfigError(
            f"--worker {text!r} is neither ssh://[user@]host[:port] nor a host of the inventory",
            hint="e.g. --worker ssh://root@127.0.0.1:2222, or --worker NAME with -i",
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.password:
        raise ConfigError(
            f"--worker {text!r}: only user, host and port go in the URL",
            hint="give the key with --worker-key and known_hosts with --worker-known-hosts",
        )
    try:
        port = parts.port or 22
    except ValueError:
        raise ConfigError(f"--worker {text!r}: the port is not a TCP port") from None
    return unquote(parts.username or "root"), parts.hostname, port


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: a host only the controller itself can reach."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def worker_node(
    spec: str,
    *,
    inventory: Inventory | None = None,
    key_file: Path | None = None,
    known_hosts: Path | None = None,
) -> WorkerNode:
    """The worker from ``--worker``: an inventory host by name, else an ssh:// URL."""
    if inventory is not None and not spec.startswith("ssh://"):
        for host in inventory.hosts:
            if host.name == spec:
                python = str(host.vars.get("ansible_python_interpreter") or "python3")
                return WorkerNode(host, python)
        for problem in inventory.problems:
            if problem.host == spec:
                raise ConfigError(f"--worker {spec}: {problem.message}", hint=problem.hint)
    if not spec.startswith("ssh://"):
        raise ConfigError(
            f"--worker {spec!r} is neither ssh://[user@]host[:port] nor a host of the inventory",
            hint="e.g. --worker ssh://root@127.0.0.1:2222, or --worker NAME with -i",
        )
    user, address, port = parse_worker_url(spec)
    for what, path in (("--worker-key", key_file), ("--worker-known-hosts", known_hosts)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{what} {path} is not a file", hint="give an existing file")
    return WorkerNode(
        HostRecord(URL_WORKER, address, port, user, key_file=key_file, known_hosts=known_hosts)
    )
