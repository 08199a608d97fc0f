"""Provision hosts with ``playbooks/site.yml`` through ansible-runner.

ansible-runner events become per-host progress lines; the play recap becomes one
:class:`HostProvision` per host. A failed or unreachable host is reported by name with the
task and message that failed; the ansible artifacts stay in ``<run>/ansible/``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .ansible import PlaybookRun, list_inventory, run_playbook
from .errors import ConfigError, ProvisionError
from .fanout import forks_for
from .files import write_atomic
from .hosts import HostRecord, Progress
from .inventory import Inventory, load_inventory
from .paths import playbooks_dir
from .provision_vars import preflight
from .workernode import WorkerNode

#: the name of the warm check's task in the collection's roles/labctl_warm/tasks/check.yml
WARM_TASK = "Check whether this host is warm"
#: ssh's words for a known_hosts entry that does not match (its "@@@" banner says more)
_KEY_CHANGED = re.compile(r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed")
KEY_CHANGED_MESSAGE = (
    "ssh refused its host key, which is not the one in known_hosts (the host was rebuilt, "
    "or something is in between)"
)
_FAIL_EVENTS = {"runner_on_failed": "failed", "runner_on_unreachable": "unreachable"}


@dataclass
class HostProvision:
    host: str
    status: str = "ok"  # ok | failed | unreachable
    changed: int = 0
    task: str | None = None
    message: str | None = None
    #: ended after the warm check: provisioned before as asked, engine answering as asked
    warm: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def exit_code(self) -> int:
        """README's table: SSH could not reach the host (3), the inventory lacks what the
        play needs (2), the play failed (6)."""
        return {"unreachable": 3, "incomplete": 2}.get(self.status, 0 if self.ok else 6)

    def line(self) -> str:
        if self.ok and self.warm:
            return f"{self.host}: already provisioned as asked (one check, nothing changed)"
        if self.ok:
            return f"{self.host}: provisioned ({self.changed} changed)"
        if self.status == "incomplete":
            return f"{self.message}; nothing was run on this host"
        if self.message == KEY_CHANGED_MESSAGE:
            return (
                f"{self.host}: unreachable: {self.message}; if the host was rebuilt, remove "
                "its old entry (ssh-keygen -R) and run again"
            )
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
    # scripts say what went wrong on an "ERROR:" line; prefer it to ansible's generic msg
    for key in ("stderr", "stdout", "module_stderr"):
        for line in str(res.get(key) or "").splitlines():
            if line.strip().startswith("ERROR:"):
                return line.strip().removeprefix("ERROR:").strip()[:300]
    msg = res.get("msg") or res.get("stderr") or res.get("module_stderr") or "failed"
    text = " ".join(str(msg).split())
    if _KEY_CHANGED.search(text):  # not ssh's "@@@" banner cut at 300 characters
        return KEY_CHANGED_MESSAGE
    return text[:300]


_SECRET_KEY = re.compile(r"(pass(word)?|secret|token|vault)", re.IGNORECASE)
_NOT_SECRET = {"ansible_ssh_private_key_file", "ansible_private_key_file"}
REDACTED = "********"


def secret_values(variables: dict[str, Any]) -> list[str]:
    """Values of variables whose names say they are secrets (become passwords and the like)."""
    return [
        str(v)
        for k, v in variables.items()
        if _SECRET_KEY.search(k)
        and k not in _NOT_SECRET
        and v not in (None, "")
        and len(str(v)) >= 3
    ]


def redact_tree(folder: Path, secrets: list[str]) -> int:
    """Replace every secret value in the files under ``folder``; returns the files changed.

    ansible-runner keeps what it was given (env/extravars) and what ran (artifacts); a run
    folder is meant to be copied and shared, so secrets must not stay in it.
    """
    if not secrets or not folder.exists():
        return 0
    changed = 0
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        new = text
        for secret in sorted(set(secrets), key=len, reverse=True):
            new = new.replace(secret, REDACTED)
        if new != text:
            write_atomic(path, new, 0o600)
            changed += 1
    return changed


class _Relay:
    """ansible-runner's events -> the report's host entries and per-host progress lines, with
    every secret hidden."""

    def __init__(self, report: ProvisionReport, hidden: list[str], progress: Progress | None):
        self.report = report
        self.hidden = hidden
        self.progress = progress

    def hide(self, text: str) -> str:
        for secret in self.hidden:
            text = text.replace(secret, REDACTED)
        return text

    def say(self, host: str, message: str) -> None:
        if self.progress is not None:
            self.progress(host, self.hide(message))

    def __call__(self, event: dict[str, Any]) -> None:
        data = event.get("event_data") or {}
        host = data.get("host")
        kind = event.get("event", "")
        if not host:
            return
        entry = self.report.hosts.setdefault(host, HostProvision(host))
        task = data.get("task") or ""
        if kind == "runner_on_ok":
            res = data.get("res") or {}
            if task == WARM_TASK:
                said = str(res.get("stdout") or "").strip()
                entry.warm = said.startswith("warm:")
                self.say(host, said)
                return
            text = f"{task} (changed)" if res.get("changed") else task
            if data.get("task_action") in ("debug", "ansible.builtin.debug") and res.get("msg"):
                text = f"{task}: {' '.join(str(res['msg']).split())}"
            self.say(host, text)
        elif kind in _FAIL_EVENTS and not data.get("ignore_errors"):
            entry.status = _FAIL_EVENTS[kind]
            entry.task = task
            entry.message = _message(data.get("res") or {})
            self.say(host, f"{entry.status}: {task}: {entry.message}")


def _on_worker(
    worker: WorkerNode, book: Path, inventory: Path, private_data_dir: Path, relay: _Relay,
    extravars: dict[str, Any], limit: list[str] | None, hosts: list[HostRecord] | None,
    check: bool, forks: int | None, progress: Progress | None,
) -> PlaybookRun:  # fmt: skip
    """The play on the worker node; a host the worker cannot be given is unreachable here."""
    from .remoteplay import run_remote_playbook

    records = hosts if hosts is not None else load_inventory(inventory, limit=limit).hosts
    played = run_remote_playbook(
        worker,
        playbook=book,
        inventory_data=list_inventory(inventory),
        hosts=[h for h in records if not limit or h.name in limit],
        private_data_dir=private_data_dir,
        event_handler=relay,
        extravars=extravars,
        check=check,
        forks=forks,
        progress=progress,
    )
    for name, line in played.refused.items():
        relay.report.hosts[name] = HostProvision(name, "unreachable", task="worker", message=line)
    return played.run


def _apply_stats(report: ProvisionReport, run: PlaybookRun) -> None:
    """The play recap's counts: changed tasks, and hosts that failed without a failed event."""
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


def provision(
    inventory: Path,
    private_data_dir: Path,
    *,
    playbook: Path | None = None,
    limit: list[str] | None = None,
    check: bool = False,
    extravars: dict[str, Any] | None = None,
    progress: Progress | None = None,
    secrets: list[str] | None = None,
    forks: int | None = None,
    worker: WorkerNode | None = None,
    hosts: list[HostRecord] | None = None,
) -> ProvisionReport:
    """The playbook on the inventory's hosts (``limit``), here or, with ``worker``, on that
    worker node (``hosts``: the records of the hosts it runs on)."""
    book = playbook or playbooks_dir() / "site.yml"
    if not book.exists():
        raise ProvisionError(f"playbook {book} not found", hint="set LABCTL_PLAYBOOKS")
    extravars = {"labctl_warm_playbooks_digest": tree_digest(book.parent), **(extravars or {})}
    report = ProvisionReport()
    hidden = sorted({*secret_values(extravars or {}), *(secrets or [])}, key=len, reverse=True)
    relay = _Relay(report, hidden, progress)
    try:
        if worker is None:
            run = run_playbook(
                playbook=book,
                inventory=inventory,
                private_data_dir=private_data_dir,
                event_handler=relay,
                extravars=extravars,
                limit=",".join(limit) if limit else None,
                check=check,
                forks=forks,
            )
        else:
            run = _on_worker(worker, book, inventory, private_data_dir, relay, extravars,
                             limit, hosts, check, forks, progress)  # fmt: skip
    finally:
        redact_tree(private_data_dir, hidden)
    for entry in report.hosts.values():
        entry.message = relay.hide(entry.message) if entry.message else entry.message
    _apply_stats(report, run)
    if not report.hosts and run.status != "successful":
        raise ProvisionError(
            f"ansible-playbook ended with status {run.status} (rc {run.rc}) before any host ran",
            hint=f"see {run.artifact_dir}/stdout",
        )
    return report


def tree_digest(folder: Path) -> str:
    """sha256 of every file below ``folder`` (names and contents): a warm host provisioned by
    other playbooks (another labctl version) is provisioned again."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts or path.suffix in (".pyc", ".retry"):
            continue
        h.update(path.relative_to(folder).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def parse_extra_vars(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` (VALUE parsed as JSON when it is JSON: true, 3, [..]) or ``@file`` (YAML)."""
    import json

    import yaml

    out: dict[str, Any] = {}
    for item in items:
        if item.startswith("@"):
            path = Path(item[1:]).expanduser()
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigError(f"-e {item}: cannot read variables ({exc})") from exc
            if not isinstance(data, dict):
                raise ConfigError(f"-e {item}: the file must hold a mapping of variables")
            out.update(data)
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-e {item!r} is not KEY=VALUE or @FILE")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def provision_inventory(
    inventory: Path,
    private_data_dir: Path,
    *,
    limit: list[str] | None = None,
    check: bool = False,
    extravars: dict[str, Any] | None = None,
    progress: Progress | None = None,
    loaded: Inventory | None = None,
    forks: int | None = None,
    worker: WorkerNode | None = None,
) -> ProvisionReport:
    """Preflight every host (what must still be filled in), then run the playbook on the rest.

    A host with missing variables or unusable inventory entries is reported, not run; when no
    host is left the report says so instead of starting ansible at all.
    """
    inv = loaded or load_inventory(inventory, limit=limit)
    report = ProvisionReport(status="preflight")
    ready: list[str] = []
    for problem in inv.problems:
        name = problem.host or "inventory"
        report.hosts[name] = HostProvision(name, "incomplete", message=problem.line())
    for host in inv.hosts:
        merged = {**host.vars, **(extravars or {})}
        todo = preflight(replace(host, vars=merged))
        if todo:
            report.hosts[host.name] = HostProvision(
                host.name, "incomplete", message=f"{host.name}: fill in " + ", ".join(todo)
            )
        else:
            ready.append(host.name)
    if not ready:
        return report
    hidden = [v for h in inv.hosts for v in secret_values(h.vars)]
    ran = provision(
        inventory,
        private_data_dir,
        limit=ready,
        check=check,
        extravars=extravars,
        progress=progress,
        secrets=[*hidden, *secret_values(extravars or {})],
        forks=forks_for(len(ready), forks),
        worker=worker,
        hosts=[h for h in inv.hosts if h.name in ready],
    )
    ran.hosts = {**report.hosts, **ran.hosts}
    return ran
