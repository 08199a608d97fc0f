"""Push the probe agent to each host over SSH, start it detached, follow it, collect its result.

The agent runs under ``setsid nohup`` so a dropped SSH connection or a killed controller does not
stop it; it writes its result file on the host atomically, and :func:`collect_hosts` can fetch
it later. The controller keeps its files on the host in ``/var/tmp/labctl-runs/<run-id>/``, which
it removes once the result is safely on the controller.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import LabctlError, ProbeError, ResultError, TransportError
from .experiments import EXPERIMENTS
from .hosts import HostRecord
from .paths import agent_path
from .results import RunDir, utc_now
from .transport import SSHTransport

log = logging.getLogger(__name__)

Progress = Callable[[str, str], None]
REMOTE_RUNS = "/var/tmp/labctl-runs"
AGENT_WORKDIR = "/var/tmp/labctl"
DEFAULT_EXPERIMENTS = EXPERIMENTS
_PYTHONS = ("python3", "python2", "python", "/usr/libexec/platform-python")


@dataclass
class ProbeOptions:
    experiments: tuple[str, ...] = DEFAULT_EXPERIMENTS
    #: how long the agent may run on one host before the controller gives up on it
    timeout: float = 900.0
    poll_interval: float = 0.5
    #: keep the host's run folder after collection (debugging)
    keep_remote: bool = False
    #: run to real exhaustion (only on hosts marked labctl_disposable=true)
    exhaust: bool = False
    #: agent caps and floors, NAME=VALUE (e.g. disk_cap_bytes=256M)
    limits: tuple[str, ...] = ()


@dataclass
class HostOutcome:
    host: str
    path: Path | None = None
    error: LabctlError | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.data.get("status") == "ok"

    def line(self) -> str:
        if self.error is not None:
            return self.error.line()
        err = self.data.get("error") or {}
        return f"{self.host}: {err.get('message', 'the agent reported a failure')}"


def remote_dir(run_id: str) -> str:
    return f"{REMOTE_RUNS}/{run_id}"


def host_summary(host: HostRecord) -> dict[str, Any]:
    """What run.json keeps of a host so `labctl collect` can reconnect (never a password)."""
    return {
        "name": host.name,
        "address": host.address,
        "port": host.port,
        "user": host.user,
        "key_file": str(host.key_file) if host.key_file else None,
        "known_hosts": str(host.known_hosts) if host.known_hosts else None,
        "agent_python": host.agent_python,
        "disposable": host.disposable,
        "labels": host.labels,
    }


def host_from_summary(data: dict[str, Any]) -> HostRecord:
    return HostRecord(
        name=str(data["name"]),
        address=str(data["address"]),
        port=int(data.get("port", 22)),
        user=str(data.get("user", "root")),
        key_file=Path(data["key_file"]) if data.get("key_file") else None,
        known_hosts=Path(data["known_hosts"]) if data.get("known_hosts") else None,
        agent_python=data.get("agent_python"),
        disposable=bool(data.get("disposable", False)),
        labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()},
    )


def find_python(t: SSHTransport, host: HostRecord) -> str:
    candidates = (host.agent_python,) if host.agent_python else _PYTHONS
    script = "; ".join(
        f"command -v {shlex.quote(p)} >/dev/null 2>&1 && {{ echo {shlex.quote(p)}; exit 0; }}"
        for p in candidates
        if p
    )
    res = t.run(f"{script}; exit 1", timeout=30)
    if not res.ok or not res.stdout.strip():
        wanted = host.agent_python or "python3, python2 or python"
        raise ProbeError(
            f"no Python interpreter on the host (looked for {wanted})",
            host=host.name,
            hint="install python3 (2.6+ works), e.g. with `labctl provision`, "
            "or set labctl_agent_python",
        )
    return res.stdout.strip().splitlines()[0]


def _decorate(data: dict[str, Any], host: HostRecord) -> dict[str, Any]:
    data["labels"] = dict(host.labels)
    data["collected"] = utc_now()
    data["controller"] = {"address": host.address, "port": host.port, "user": host.user}
    data.setdefault("host", host.name)
    return data


class _HostProbe:
    """The probe of one host: one SSH connection, one agent run."""

    def __init__(self, run: RunDir, host: HostRecord, options: ProbeOptions, progress: Progress):
        self.run = run
        self.host = host
        self.options = options
        self.progress = progress
        self.rdir = remote_dir(run.run_id)
        self.result_path = f"{self.rdir}/result.json"
        self._progress_seen = 0

    def start(self, t: SSHTransport) -> int:
        python = find_python(t, self.host)
        mk = t.run(f"mkdir -p {shlex.quote(self.rdir)} && chmod 700 {shlex.quote(self.rdir)}")
        if not mk.ok:
            raise ProbeError(
                f"cannot create {self.rdir} ({mk.stderr.strip() or mk.stdout.strip()})",
                host=self.host.name,
                hint="check free space and that the SSH user may write to /var/tmp",
            )
        agent = f"{self.rdir}/probe_agent.py"
        digest = t.put(agent_path(), agent, mode=0o755)
        self.progress(self.host.name, f"agent pushed (sha256 {digest[:12]}), python {python}")
        args = [
            python,
            agent,
            "run",
            "--run-id",
            self.run.run_id,
            "--host",
            self.host.name,
            "--out",
            self.result_path,
            "--workdir",
            AGENT_WORKDIR,
            "--timeout",
            str(int(self.options.timeout)),
            "--experiments",
            ",".join(self.options.experiments),
        ]
        if self.options.exhaust:  # bounded is the agent's default
            args += ["--mode", "exhaust"]
        for limit in self.options.limits:
            args += ["--limit", limit]
        cmd = " ".join(shlex.quote(a) for a in args)
        log_file = shlex.quote(f"{self.rdir}/agent.log")
        launch = (
            f"cd {shlex.quote(self.rdir)} && "
            f"if command -v setsid >/dev/null 2>&1; then S=setsid; else S=; fi; "
            f"$S nohup {cmd} >{log_file} 2>&1 </dev/null & echo $!"
        )
        res = t.run(launch, timeout=30)
        try:
            return int(res.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise ProbeError(
                f"could not start the agent ({res.stderr.strip() or res.stdout.strip()})",
                host=self.host.name,
            ) from None

    def follow(self, t: SSHTransport, pid: int) -> tuple[dict[str, Any], SSHTransport]:
        """Poll until the agent's result appears; returns it and the (maybe new) connection.

        Polling uses one SFTP session, which needs no new process on the host, so it keeps
        working while an experiment exhausts the host's processes. When the connection drops
        anyway (sshd cannot fork, the host is swapping), it reconnects until the deadline: the
        agent runs on, detached.
        """
        deadline = time.monotonic() + self.options.timeout + 60
        lost: TransportError | None = None
        while True:
            try:
                if lost is not None:
                    t = SSHTransport(self.host).connect()
                    self.progress(self.host.name, "reconnected")
                    lost = None
                self._relay_progress(t)
                raw = t.read(self.result_path)
                if raw is not None:
                    self._relay_progress(t)
                    return self._parse(raw), t
                if not t.exists(f"/proc/{pid}") and not t.exists(self.result_path):
                    log_text = (t.read(f"{self.rdir}/agent.log") or b"").decode("utf-8", "replace")
                    detail = " | ".join(log_text.strip().splitlines()[-3:]) or "no output"
                    raise ProbeError(
                        f"the agent exited without a result ({detail})",
                        host=self.host.name,
                        hint=f"see {self.rdir}/agent.log on the host",
                    )
            except TransportError as err:
                if lost is None:
                    self.progress(self.host.name, f"connection lost ({err.message}); retrying")
                lost = err
                t.close()
            if time.monotonic() > deadline:
                why = f" (last: {lost.message})" if lost is not None else ""
                raise ProbeError(
                    f"the agent gave no result within {self.options.timeout:.0f} s{why}",
                    host=self.host.name,
                    hint=f"it may still finish: `labctl collect {self.run.path}` later",
                )
            time.sleep(self.options.poll_interval if lost is None else 2.0)

    def _relay_progress(self, t: SSHTransport) -> None:
        raw = t.read(f"{self.result_path}.progress")
        if not raw:
            return
        lines = raw.decode("utf-8", "replace").splitlines()
        for line in lines[self._progress_seen :]:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line being written right now; read again next time
            self._progress_seen += 1
            msg = event.get("message") or event.get("event", "")
            exp = event.get("experiment")
            self.progress(self.host.name, f"{exp}: {msg}" if exp else str(msg))

    def _parse(self, raw: bytes) -> dict[str, Any]:
        try:
            data = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ResultError(
                f"the agent's result file is not valid JSON ({exc})",
                host=self.host.name,
                hint=f"see {self.result_path} on the host",
            ) from exc
        if not isinstance(data, dict):
            raise ResultError("the agent's result is not a JSON object", host=self.host.name)
        return data

    def store(self, t: SSHTransport, data: dict[str, Any]) -> Path:
        path = self.run.write_host(self.host.name, _decorate(data, self.host))
        if not self.options.keep_remote:
            t.run(f"rm -rf {shlex.quote(self.rdir)}", timeout=60)
        return path


def _fail(run: RunDir, host: HostRecord, err: LabctlError) -> HostOutcome:
    path = run.write_host_error(host.name, err.kind, err.line(), labels=host.labels)
    return HostOutcome(host.name, path, err)


def probe_host(
    run: RunDir, host: HostRecord, options: ProbeOptions, progress: Progress
) -> HostOutcome:
    hp = _HostProbe(run, host, options, progress)
    if options.exhaust and not host.disposable:
        return _fail(
            run,
            host,
            ProbeError(
                "refusing --exhaust: the host is not marked disposable",
                host=host.name,
                hint="set labctl_disposable=true in the inventory if it may be driven to "
                "exhaustion, or run without --exhaust (bounded)",
            ),
        )
    try:
        with SSHTransport(host) as t:
            progress(host.name, "connected")
            pid = hp.start(t)
            progress(host.name, f"agent running (pid {pid})")
            data, live = hp.follow(t, pid)
            try:
                path = hp.store(live, data)
            finally:
                if live is not t:
                    live.close()
    except LabctlError as err:
        progress(host.name, f"failed: {err.message}")
        return _fail(run, host, err)
    except Exception as exc:  # a bug must not abort the other hosts
        log.debug("probe of %s crashed", host.name, exc_info=True)
        internal = ProbeError(
            f"internal error: {exc!r}", host=host.name, hint="re-run with --debug"
        )
        return _fail(run, host, internal)
    outcome = HostOutcome(host.name, path, None, data)
    progress(host.name, "done" if outcome.ok else f"agent reported: {outcome.line()}")
    return outcome


def collect_host(run: RunDir, host: HostRecord, progress: Progress) -> HostOutcome:
    """Fetch a finished result left on the host (after a dropped connection or a killed run)."""
    hp = _HostProbe(run, host, ProbeOptions(), progress)
    try:
        with SSHTransport(host) as t:
            raw = t.read(hp.result_path)
            if raw is None:
                state = "still running" if t.read(f"{hp.rdir}/agent.log") is not None else "gone"
                raise ProbeError(
                    f"no result for run {run.run_id} on the host (agent {state})",
                    host=host.name,
                    hint="wait and collect again" if state == "still running" else "re-run it",
                )
            path = hp.store(t, hp._parse(raw))
            data = json.loads(path.read_text(encoding="utf-8"))
    except LabctlError as err:
        return HostOutcome(host.name, None, err)
    progress(host.name, "collected")
    return HostOutcome(host.name, path, None, data)


def _parallel(
    fn: Callable[[HostRecord], HostOutcome], hosts: list[HostRecord], parallel: int
) -> list[HostOutcome]:
    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(hosts)))) as pool:
        return list(pool.map(fn, hosts))


def probe_hosts(
    run: RunDir,
    hosts: list[HostRecord],
    options: ProbeOptions | None = None,
    progress: Progress | None = None,
    parallel: int = 8,
) -> list[HostOutcome]:
    opts = options or ProbeOptions()
    prog = progress or (lambda _h, _m: None)
    return _parallel(lambda h: probe_host(run, h, opts, prog), hosts, parallel)


def collect_hosts(
    run: RunDir,
    hosts: list[HostRecord],
    progress: Progress | None = None,
    parallel: int = 8,
) -> list[HostOutcome]:
    prog = progress or (lambda _h, _m: None)
    return _parallel(lambda h: collect_host(run, h, prog), hosts, parallel)
