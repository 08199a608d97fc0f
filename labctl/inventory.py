"""Ansible inventory -> host records.

The inventory is read through ansible itself (ansible-runner's inventory API), so every format
ansible accepts (INI, YAML, directories, plugins) works. Variables labctl reads:

| variable | meaning |
|---|---|
| ansible_host, ansible_port, ansible_user | where and as whom (default: name, 22, root) |
| ansible_ssh_private_key_file | private key for the probe's SSH connection |
| ansible_password / ansible_ssh_pass | password login (key login preferred) |
| labctl_known_hosts | known_hosts file holding the host's key (else UserKnownHostsFile= in |
|   | ansible_ssh_common_args, else ~/.ssh/known_hosts) |
| labctl_disposable | true: the host may be driven to real exhaustion (--exhaust) |
| labctl_agent_python | interpreter for the probe agent (else python3, python2, python) |
| labctl_experiments | the checks this host runs ("all" on the command line means these; |
|   | a check named there runs only if listed here) |
| labctl_host_dir | labctl's folder on the host (else /var/lib/labctl for root, |
|   | ~/.local/state/labctl for another user); only root and that user may write there |
| labctl_* (others) | shown as ``lab.*`` rows in the matrix (driver, suite, ...) |
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ansible import list_inventory
from .errors import ConfigError, InventoryError, LabctlError
from .experiments import parse_experiments
from .hosts import HOST_NAME_FORM, HostRecord, usable_host_name

_TRUE = {"1", "true", "yes", "on", "y"}
_CONSUMED = {
    "labctl_known_hosts",
    "labctl_disposable",
    "labctl_agent_python",
    "labctl_host_dir",
    "labctl_experiments",
}
#: an absolute path of plain names (it is quoted anyway; this keeps error lines readable)
_HOST_DIR = re.compile(r"^(/[A-Za-z0-9_.@+-]+)+$")


@dataclass
class Inventory:
    path: Path
    hosts: list[HostRecord] = field(default_factory=list)
    #: one error per host whose variables are unusable; the other hosts go on
    problems: list[LabctlError] = field(default_factory=list)


def truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE


def _host_names(data: dict[str, Any]) -> list[str]:
    names: dict[str, None] = {}
    hostvars = data.get("_meta", {}).get("hostvars", {})
    for name in hostvars:
        names.setdefault(name, None)
    for group, body in data.items():
        if group == "_meta" or not isinstance(body, dict):
            continue
        for name in body.get("hosts", []) or []:
            names.setdefault(name, None)
    return sorted(names)


def _known_hosts_from_args(args: str) -> str | None:
    try:
        words = shlex.split(args)
    except ValueError:
        return None
    for i, word in enumerate(words):
        opt = word
        if word == "-o" and i + 1 < len(words):
            opt = words[i + 1]
        m = re.match(r"(?i)^UserKnownHostsFile[= ](.+)$", opt)
        if m:
            return m.group(1).split()[0]
    return None


def _path(value: Any, base: Path) -> Path:
    p = Path(str(value)).expanduser()
    return p if p.is_absolute() else (base / p)


def host_from_vars(name: str, hv: dict[str, Any], base: Path) -> HostRecord:
    """One host record from its ansible variables; InventoryError names the bad variable."""
    if not usable_host_name(name):
        raise InventoryError(
            f"host name {name!r} cannot name its result file and matrix column",
            host=name,
            hint=f"rename it in the inventory ({HOST_NAME_FORM} only); ansible_host keeps "
            "the address",
        )
    port_raw = hv.get("ansible_port", hv.get("ansible_ssh_port", 22))
    try:
        port = int(port_raw)
        if not 0 < port < 65536:
            raise ValueError
    except (TypeError, ValueError):
        raise InventoryError(
            f"ansible_port {port_raw!r} is not a TCP port",
            host=name,
            hint="fix it in the inventory",
        ) from None
    key = hv.get("ansible_ssh_private_key_file") or hv.get("ansible_private_key_file")
    key_file = _path(key, base) if key else None
    if key_file is not None and not key_file.exists():
        raise InventoryError(
            f"private key {key_file} does not exist",
            host=name,
            hint="fix ansible_ssh_private_key_file in the inventory",
        )
    host_dir = hv.get("labctl_host_dir")
    if host_dir is not None and (
        not _HOST_DIR.match(str(host_dir)) or {".", ".."} & set(str(host_dir).split("/"))
    ):
        raise InventoryError(
            f"labctl_host_dir {host_dir!r} is not an absolute path of plain names",
            host=name,
            hint="give a folder such as /var/lib/labctl (no spaces, '.' or '..')",
        )
    experiments = None
    if hv.get("labctl_experiments"):
        try:
            experiments = parse_experiments(str(hv["labctl_experiments"]))
        except ConfigError as err:
            raise InventoryError(
                f"labctl_experiments: {err.message}", host=name, hint=err.hint
            ) from None
    known = hv.get("labctl_known_hosts") or _known_hosts_from_args(
        str(hv.get("ansible_ssh_common_args", "") or "")
    )
    labels = {
        k.removeprefix("labctl_"): str(v)
        for k, v in hv.items()
        if k.startswith("labctl_")
        and k not in _CONSUMED
        and isinstance(v, str | int | float | bool)
    }
    return HostRecord(
        name=name,
        address=str(hv.get("ansible_host", name)),
        port=port,
        user=str(hv.get("ansible_user", hv.get("ansible_ssh_user", "root"))),
        key_file=key_file,
        known_hosts=_path(known, base) if known else None,
        password=hv.get("ansible_password") or hv.get("ansible_ssh_pass"),
        disposable=truthy(hv.get("labctl_disposable", False)),
        agent_python=str(hv["labctl_agent_python"]) if hv.get("labctl_agent_python") else None,
        host_dir=str(host_dir) if host_dir else None,
        experiments=experiments,
        labels=labels,
        vars=dict(hv),
    )


def load_inventory(path: Path, *, limit: list[str] | None = None) -> Inventory:
    """Read an inventory; raises InventoryError only when the whole file is unusable."""
    data = list_inventory(path)
    names = _host_names(data)
    if limit:
        unknown = [n for n in limit if n not in names]
        if unknown:
            raise InventoryError(
                f"inventory {path} has no host named {', '.join(unknown)}",
                hint=f"hosts there: {', '.join(names) or 'none'}",
            )
        names = [n for n in names if n in limit]
    if not names:
        raise InventoryError(f"inventory {path} lists no hosts", hint="add at least one host")
    hostvars = data.get("_meta", {}).get("hostvars", {})
    inv = Inventory(path)
    base = path.resolve().parent
    for name in names:
        try:
            inv.hosts.append(host_from_vars(name, dict(hostvars.get(name, {})), base))
        except LabctlError as err:
            inv.problems.append(err)
    return inv
