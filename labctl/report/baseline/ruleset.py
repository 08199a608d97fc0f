"""What every claim rule reads: the run (its hosts and the article's partners) and its metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..model import HostEntry, dig
from .model import NOT_SETTLED, Base


@dataclass
class Run:
    """What the rules see: every host, and the partner of each of the article's systems."""

    entries: list[HostEntry]
    partners: dict[str, HostEntry | None]
    base: Base

    def engines_1_5(self) -> list[HostEntry]:
        return [e for e in self.entries if engine_of(e) == self.base["docker"]["version"]]


def engine_of(e: HostEntry) -> str:
    return str(dig(e.result.facts, "docker", "server_version") or "")


def kernel_of(e: HostEntry) -> str:
    return str(e.result.facts.get("kernel") or "")


def metric(e: HostEntry, exp: str, key: str) -> Any:
    rec = e.experiment(exp) or {}
    metrics = rec.get("metrics") if rec.get("status") == "ok" else None
    return metrics.get(key) if isinstance(metrics, dict) else None


def evidence(e: HostEntry, row: str, value: Any) -> str:
    return f"{e.name}: {row} = {value}"


def no_partner(claim: dict[str, Any], system: str) -> tuple[str, list[str], list[str], str]:
    return NOT_SETTLED, [], [], f"no host of this run partners {system}"


Outcome = tuple[str, list[str], list[str], str]
Rule = Callable[[dict[str, Any], Run], Outcome]
