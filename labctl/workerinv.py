"""The inventory as the worker node sees it (pure: tested without any host).

The controller's inventory names paths of the controller (keys, known_hosts) and, for lab
hosts, addresses only the controller can reach (127.0.0.1 and a published port). The worker
gets one YAML inventory with every host's variables (as ``ansible-inventory --list`` merged
them, groups kept), where:
- a host on the controller's loopback is reached at the worker's own 127.0.0.1 and the port
  of a reverse tunnel that the controller's SSH connection to the worker opened for it;
- its key is a copy in the worker's private data dir, and ssh checks its host key strictly
  against a known_hosts made for the worker (the host's own keys, under the tunnel's address).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko

from .hosts import HostRecord

#: ssh options that the worker's own are in place of
_REPLACED = ("userknownhostsfile", "stricthostkeychecking", "globalknownhostsfile", "identityfile")
_KEY_VARS = ("ansible_ssh_private_key_file", "ansible_private_key_file")


@dataclass
class WorkerView:
    """What the worker's private data dir holds besides the project: inventory, keys,
    known_hosts (relative path -> bytes), and the hosts it cannot be given (name -> why)."""

    inventory: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)


def known_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def host_keys_lines(host: HostRecord, as_name: str) -> list[str] | None:
    """The host's keys from its known_hosts file, as lines for ``as_name``; None: none there."""
    path = host.known_hosts or Path.home() / ".ssh" / "known_hosts"
    keys = paramiko.HostKeys()
    try:
        keys.load(str(path))
    except (OSError, paramiko.SSHException):
        return None
    found = keys.lookup(known_name(host.address, host.port))
    if not found:
        return None
    return [f"{as_name} {kind} {found[kind].get_base64()}" for kind in sorted(found.keys())]


def ssh_args(common: str, known_hosts: str) -> str:
    """The host's ssh options with known_hosts, strict checking and the key the worker's."""
    try:
        words = shlex.split(common or "")
    except ValueError:
        words = []
    kept: list[str] = []
    i = 0
    while i < len(words):
        opt = words[i + 1] if words[i] == "-o" and i + 1 < len(words) else words[i]
        step = 2 if words[i] == "-o" else 1
        if opt.split("=", 1)[0].split()[0].lower() not in _REPLACED:
            kept.extend(words[i : i + step])
        i += step
    ours = ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"]
    return shlex.join([*ours, *kept])


def _groups(data: Mapping[str, Any], names: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for group, body in data.items():
        if group in ("_meta", "all") or not isinstance(body, dict):
            continue
        hosts = {h: None for h in body.get("hosts") or [] if h in names}
        children = {c: None for c in body.get("children") or [] if c in data}
        if hosts or children:
            out[group] = {
                **({"hosts": hosts} if hosts else {}),
                **({"children": children} if children else {}),
            }
    return out


def worker_view(
    data: Mapping[str, Any],
    hosts: Iterable[HostRecord],
    tunnels: Mapping[str, int],
    worker_dir: str,
) -> WorkerView:
    """The worker's inventory for ``hosts`` (``data``: ``ansible-inventory --list``);
    ``tunnels``: host name -> the worker's port for it; ``worker_dir``: where the worker
    unpacks the private data dir (``labctl/`` in it holds the keys and known_hosts)."""
    hostvars = (data.get("_meta") or {}).get("hostvars") or {}
    known_path = f"{worker_dir}/labctl/known_hosts"
    view = WorkerView({})
    known: list[str] = []
    keys: dict[Path, str] = {}
    entries: dict[str, Any] = {}
    for host in hosts:
        tunnel = tunnels.get(host.name)
        address, port = ("127.0.0.1", tunnel) if tunnel else (host.address, host.port)
        lines = host_keys_lines(host, known_name(address, port))
        if lines is None:
            view.refused[host.name] = (
                f"no key for {known_name(host.address, host.port)} in "
                f"{host.known_hosts or '~/.ssh/known_hosts'}, so the worker's ssh would refuse it"
            )
            continue
        known.extend(lines)
        hv = {k: v for k, v in dict(hostvars.get(host.name) or {}).items() if k not in _KEY_VARS}
        hv.pop("labctl_known_hosts", None)
        hv.update(ansible_host=address, ansible_port=port, ansible_user=host.user)
        hv["ansible_ssh_common_args"] = ssh_args(
            str(hv.get("ansible_ssh_common_args") or ""), known_path
        )
        if host.key_file is not None:
            if host.key_file not in keys:
                keys[host.key_file] = f"labctl/keys/key{len(keys)}"
                view.files[keys[host.key_file]] = host.key_file.read_bytes()
            hv["ansible_ssh_private_key_file"] = f"{worker_dir}/{keys[host.key_file]}"
        entries[host.name] = hv
    view.files["labctl/known_hosts"] = "".join(f"{ln}\n" for ln in known).encode()
    view.inventory = {
        "all": {"hosts": entries, "children": _groups(data, set(entries))},
    }
    return view
