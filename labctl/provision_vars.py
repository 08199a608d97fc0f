"""Every inventory variable the provisioning playbook reads, and the checks made before it runs.

One table serves ``labctl provision --help-vars`` and the preflight that fails fast with the list
of what the user must still fill in (e.g. the Docker 1.5.0 source of inventories/article.ini).
The roles' variables come from the collection's argument specs (``meta/argument_specs.yml``, the
one place their defaults, choices and meanings are written: ``ansible-doc -t role`` and the
roles' own argument validation read the same files); labctl's own variables are listed here.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ProvisionError
from .hosts import HostRecord
from .paths import collection_dir


@dataclass(frozen=True)
class Var:
    name: str
    default: str
    meaning: str


#: what labctl itself reads from the inventory (SSH, the probe), not the roles
LABCTL_VARIABLES: tuple[Var, ...] = (
    Var("ansible_host / ansible_port / ansible_user", "name / 22 / root", "where and as whom"),
    Var("ansible_ssh_private_key_file", "-", "SSH key (ansible and the probe)"),
    Var("labctl_known_hosts", "~/.ssh/known_hosts", "known_hosts file with the host's key"),
    Var("labctl_disposable", "false", "true: --exhaust may drive this host to exhaustion"),
    Var("labctl_agent_python", "first of python3/python2", "interpreter for the probe agent"),
    Var("labctl_host_dir", "/var/lib/labctl (root)", "labctl's folder on the host (root-only)"),
    Var("ansible_pipelining", "true", "false for a host whose sudo needs a tty (requiretty)"),
)
#: the collection's roles whose options the inventory may set, with the entry point site.yml
#: runs, in the play's order
ROLE_ENTRY_POINTS = (
    ("labctl_warm", "check"),
    ("labctl_facts", "main"),
    ("docker_engine", "main"),
    ("docker_storage", "main"),
)
#: role options labctl itself sets (site.yml's play vars, the playbooks' digest)
SET_BY_LABCTL = frozenset({"labctl_warm_fingerprint", "labctl_warm_playbooks_digest"})


@functools.lru_cache(maxsize=16)
def _specs(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        specs = data["argument_specs"]
        if not isinstance(specs, dict):
            raise TypeError("argument_specs is not a mapping")
        return specs
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc).splitlines()[0]
        raise ProvisionError(
            f"cannot read the role options in {path}: {reason}",
            hint="reinstall labctl; a LABCTL_PLAYBOOKS copy needs its collections/ folder",
        ) from None


def role_options(role: str, entry_point: str = "main") -> dict[str, dict[str, Any]]:
    """The options of one entry point of a role of the collection (name -> its spec)."""
    path = collection_dir() / "roles" / role / "meta" / "argument_specs.yml"
    options = (_specs(path).get(entry_point) or {}).get("options") or {}
    return dict(options)


def _shown(spec: dict[str, Any]) -> str:
    """A spec's default as --help-vars prints it (YAML's spelling: "", [], true)."""
    if "default" not in spec or spec["default"] is None:
        return "-"
    value = spec["default"]
    if isinstance(value, bool):
        return str(value).lower()
    if value == "":
        return '""'
    return str(value)


def _meaning(spec: dict[str, Any]) -> str:
    text = spec.get("description") or ""
    first = text[0] if isinstance(text, list) and text else str(text)
    return " ".join(str(first).split())


def role_variables() -> tuple[Var, ...]:
    """The roles' options a user sets, from their argument specs."""
    return tuple(
        Var(name, _shown(spec), _meaning(spec))
        for role, entry in ROLE_ENTRY_POINTS
        for name, spec in role_options(role, entry).items()
        if name not in SET_BY_LABCTL
    )


def variables() -> tuple[Var, ...]:
    """Every variable --help-vars lists: labctl's own, then the roles'."""
    return LABCTL_VARIABLES + role_variables()


_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_PLACEHOLDER = re.compile(r"^(|CHANGE_?ME|FILL_?ME|TODO|<.*>)$", re.IGNORECASE)


def help_text() -> str:
    listed = variables()
    width = max(len(v.name) for v in listed)
    dwidth = max(len(v.default) for v in listed)
    lines = [f"{'variable':<{width}}  {'default':<{dwidth}}  meaning"]
    lines += [f"{v.name:<{width}}  {v.default:<{dwidth}}  {v.meaning}" for v in listed]
    return "\n".join(lines)


def _missing(value: object) -> bool:
    return value is None or bool(_PLACEHOLDER.match(str(value).strip()))


def _not_a_choice(hv: dict[str, Any]) -> list[str]:
    """The variables set to a value their role's argument spec does not offer."""
    out = []
    for role, entry in ROLE_ENTRY_POINTS:
        for name, spec in role_options(role, entry).items():
            if spec.get("choices") and name in hv and str(hv[name]) not in spec["choices"]:
                out.append(f"{name}: {' or '.join(spec['choices'])}, not {str(hv[name])!r}")
    return out


def preflight(host: HostRecord) -> list[str]:
    """What this host's variables still lack before the playbook can succeed."""
    hv = host.vars
    todo: list[str] = []
    if _missing(hv.get("ansible_host", host.name)):
        todo.append("ansible_host (the host's address)")
    todo += _not_a_choice(hv)
    if str(hv.get("docker_engine_method", "")) == "binary":
        if _missing(hv.get("docker_engine_binary_url")) and _missing(
            hv.get("docker_engine_binary_src")
        ):
            todo.append("docker_engine_binary_url or docker_engine_binary_src (the engine)")
        sha = hv.get("docker_engine_binary_sha256")
        if _missing(sha) or not _SHA256.match(str(sha)):
            todo.append("docker_engine_binary_sha256 (64 hex digits)")
    return todo
