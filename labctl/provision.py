"""Provision hosts with ``playbooks/site.yml`` through ansible-runner.

ansible-runner events become per-host progress lines; the play recap becomes one
:class:`HostProvision` per host. A failed or unreachable host is reported by name with the
task and message that failed; the ansible artifacts stay in ``<run>/ansible/``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ansible import run_playbook
from .errors import ProvisionError
from .paths import playbooks_dir

Progress = Callable[[str, str], None]

_FAIL_EVENTS = {"runner_on_failed": "failed", "runner_on_unreachable": "unreachable"}


@dataclass
class HostProvision:
    host: str
    status: str = "ok"  # ok | failed | unreachable
    changed: int = 0
    task: str | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def line(self) -> str:
        if self.ok:
            return f"{self.host}: provisioned ({self.changed} changed)"
        hint = (
            "check that the host is up and its SSH key and known_hosts entry are right"
            if self.status == "unreachable"
            else "see the ansible artifacts in the run folder"
        )
        return f"{self.host}: {self.status} at '{self.task}': {self.message}; {hint}"


@dataclass
class ProvisionReport:
    hosts: dict[str, HostProvision] = field(default_factory=dict)
    artifact_dir: Path | None = None
    status: str = "successful"

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hosts.values())

    def failed(self) -> list[HostProvision]:
        return [h for h in self.hosts.values() if not h.ok]


def _message(res: dict[str, Any]) -> str:
    msg = res.get("msg") or res.get("stderr") or res.get("module_stderr") or "failed"
    text = " ".join(str(msg).split())
    return text[:300]


def provision(
    inventory: Path,
    private_data_dir: Path,
    *,
    playbook: Path | None = None,
    limit: list[str] | None = None,
    check: bool = False,
    extravars: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> ProvisionReport:
    book = playbook or playbooks_dir() / "site.yml"
    if not book.exists():
        raise ProvisionError(f"playbook {book} not found", hint="set LABCTL_PLAYBOOKS")
    report = ProvisionReport()
    prog = progress or (lambda _h, _m: None)

    def on_event(event: dict[str, Any]) -> None:
        data = event.get("event_data") or {}
        host = data.get("host")
        kind = event.get("event", "")
        if not host:
            return
        entry = report.hosts.setdefault(host, HostProvision(host))
        task = data.get("task") or ""
        if kind == "runner_on_ok":
            changed = bool((data.get("res") or {}).get("changed"))
            prog(host, f"{task} (changed)" if changed else task)
        elif kind in _FAIL_EVENTS and not data.get("ignore_errors"):
            entry.status = _FAIL_EVENTS[kind]
            entry.task = task
            entry.message = _message(data.get("res") or {})
            prog(host, f"{entry.status}: {task}: {entry.message}")

    run = run_playbook(
        playbook=book,
        inventory=inventory,
        private_data_dir=private_data_dir,
        event_handler=on_event,
        extravars=extravars,
        limit=",".join(limit) if limit else None,
        check=check,
    )
    report.artifact_dir = run.artifact_dir
    report.status = run.status
    for host, n in (run.stats.get("changed") or {}).items():
        report.hosts.setdefault(host, HostProvision(host)).changed = int(n)
    for key, status in (("dark", "unreachable"), ("failures", "failed")):
        for host in run.stats.get(key) or {}:
            entry = report.hosts.setdefault(host, HostProvision(host))
            if entry.ok:
                entry.status, entry.task = status, entry.task or "?"
                entry.message = entry.message or "see the ansible artifacts"
    if not report.hosts and run.status != "successful":
        raise ProvisionError(
            f"ansible-playbook ended with status {run.status} (rc {run.rc}) before any host ran",
            hint=f"see {run.artifact_dir}/stdout",
        )
    return report
