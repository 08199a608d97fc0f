"""Loading: the study's data file (``article.json`` beside this module) and what pairing looks at
on one host of a run (:class:`Profile`: the engine's facts first, the inventory's asks as a
fallback)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ...errors import ConfigError
from ..model import HostEntry, dig, distribution_family

BASELINES = ("article",)


def load_baseline(name: str = "article") -> dict[str, Any]:
    if name not in BASELINES:
        raise ConfigError(
            f"unknown baseline {name!r}", hint=f"known baselines: {', '.join(BASELINES)}"
        )
    text = (resources.files(__package__) / f"{name}.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def major(version: Any) -> str:
    return str(version or "").split(".")[0]


def kernel_line(kernel: Any) -> str:
    """'3.10.0-123.el7.x86_64' -> '3.10'."""
    parts = str(kernel or "").split("-")[0].split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else str(kernel or "")


def engine_driver(entry: HostEntry) -> str | None:
    """The engine's storage driver (the inventory's label only when the engine never said)."""
    d = dig(entry.result.facts, "docker", "storage_driver") or entry.result.labels.get(
        "storage_driver"
    )
    return str(d) if d else None


def storage_metrics(entry: HostEntry) -> dict[str, Any]:
    rec = entry.experiment("storage-location")
    raw = rec.get("metrics") if rec and rec.get("status") == "ok" else None
    return raw if isinstance(raw, dict) else {}


def mount_namespace(entry: HostEntry) -> str | None:
    """'host' | 'private' | None: is the daemon in init's mount namespace (measured)?"""
    for value in (
        dig(entry.result.facts, "docker", "mount_namespace"),
        storage_metrics(entry).get("daemon_mount_ns"),
    ):
        if value in ("host", "private"):
            return str(value)
    return None


@dataclass(frozen=True)
class Profile:
    """What pairing looks at on one host: facts first, the inventory's asks as a fallback."""

    host: str
    probed: bool
    engine: str | None
    driver: str | None
    mount_ns: str | None
    init: str | None
    family: str | None
    version: str
    pretty: str
    kernel: str


def host_profile(entry: HostEntry) -> Profile:
    facts = entry.result.facts
    init = entry.result.labels.get("engine_init")
    return Profile(
        host=entry.name,
        probed=bool(facts),
        engine=str(dig(facts, "docker", "server_version") or "") or None,
        driver=engine_driver(entry),
        mount_ns=mount_namespace(entry),
        init=str(init) if init else None,
        family=distribution_family(facts) if facts else None,
        version=str(dig(facts, "distribution", "version") or ""),
        pretty=str(dig(facts, "distribution", "pretty") or ""),
        kernel=str(facts.get("kernel") or ""),
    )


def files_in_tree(m: dict[str, Any]) -> bool | None:
    """Are the container's files in the host's own tree? (``in_host_tree`` when measured)."""
    if isinstance(m.get("in_host_tree"), bool):
        return bool(m["in_host_tree"])
    if m.get("host_path"):
        return True
    if m.get("container_root_is_block_device") is True or m.get("host_can_read") is False:
        return False
    return None
