"""Push the probe agent to each host over SSH, start it detached, follow it, collect its result.

The agent runs under ``setsid nohup`` so a dropped SSH connection or a killed controller does not
stop it; it writes its result file on the host atomically, and :func:`collect_hosts` can fetch
it later. The controller keeps its files on the host in ``<labctl's folder>/runs/<run-id>/``
(:mod:`labctl.hostdirs`: made and checked so that no other user of the host can change them),
which it removes once the result is safely on the controller.
"""

from __future__ import annotations

import json
import logging
import queue
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import hostdirs
from .errors import (
    HostNotAnswering,
    HostUnreachable,
    Interrupted,
    LabctlError,
    ProbeError,
    ResultError,
    TransportError,
    UnsafeHostPath,
)
from .experiments import ALL, EXPERIMENTS
from .fanout import forks_for
from .hostdirs import HostSide
from .hosts import HostRecord, Progress
from .paths import agent_path
from .results import RunDir, utc_now
from .transport import SSHTransport

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENTS = EXPERIMENTS
#: what the agent says on stderr (its log) when it refuses a path (agent/cli.py)
_AGENT_REFUSES = "refusing to run: "
#: a host folder with less room than this is full for the agent (its result needs ~128 KiB)
FULL_DISK_KIB = 256
#: set on Ctrl-C/SIGTERM: every host's follower stops at its next poll (the agents run on)
STOP = threading.Event()
#: field 22 of /proc/PID/stat (start time in ticks): with the pid, it names one process for good
_START_TIME = "sed 's/.*) //' /proc/$p/stat 2>/dev/null | cut -d' ' -f20"
_LAB_LOCK = threading.Lock()
#: how long a host that does not answer (paused, restarting) is tried again before a probe
CONNECT_PATIENCE = 60.0


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
    #: hosts probed at once (None: every host, up to fanout.FORKS_CAP)
    forks: int | None = None


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
        "host_dir": host.host_dir,
        "experiments": list(host.experiments) if host.experiments else None,
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
        host_dir=data.get("host_dir"),
        experiments=tuple(data["experiments"]) if data.get("experiments") else None,
        disposable=bool(data.get("disposable", False)),
        labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()},
    )


def host_experiments(asked: tuple[str, ...], host: HostRecord) -> tuple[str, ...]:
    """The checks one host runs: what the probe asks, within the host's own list
    (labctl_experiments; asking for all the checks means all of the host's, opt-in ones
    included); a ProbeError when none is left."""
    if host.experiments is None:
        return asked
    every = set(ALL) <= set(asked)
    mine = tuple(e for e in EXPERIMENTS if e in host.experiments and (every or e in asked))
    if not mine:
        raise ProbeError(
            f"none of the checks asked ({', '.join(asked)}) is in this host's labctl_experiments "
            f"({', '.join(host.experiments)})",
            host=host.name,
            hint="ask for one of those, or change labctl_experiments in the inventory",
        )
    return mine


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
        self.side: HostSide | None = None
        self.rdir = ""
        self.result_path = ""
        self._progress_seen = 0
        self.start_time: str | None = None

    def locate(self, t: SSHTransport, *, python: bool = False) -> HostSide:
        """Who labctl is on the host and where this run's files are there."""
        self.side = hostdirs.identify(t, python=python)
        self.rdir = self.side.run_dir(self.run.run_id)
        self.result_path = f"{self.rdir}/result.json"
        return self.side

    def start(self, t: SSHTransport) -> int:
        side = self.locate(t, python=True)
        hostdirs.prepare_run(t, side, self.run.run_id)
        local = agent_path()  # probe_agent-<hash>.pyz: the reaper knows agents by that name
        agent = f"{self.rdir}/{local.name}"
        digest = t.put(local, agent, mode=0o700)
        # the file and every folder above it: only root and the login user can change them,
        # so what runs next is what was checked
        hostdirs.check(t, side, agent)
        self.progress(self.host.name, f"agent pushed (sha256 {digest[:12]}), python {side.python}")
        args = [
            side.python,
            agent,
            "run",
            "--run-id",
            self.run.run_id,
            "--host",
            self.host.name,
            "--out",
            self.result_path,
            "--workdir",
            side.work,
            "--timeout",
            str(int(self.options.timeout)),
            "--experiments",
            ",".join(host_experiments(self.options.experiments, self.host)),
        ]
        if self.options.exhaust:  # bounded is the agent's default
            args += ["--mode", "exhaust"]
        if self.host.disposable:
            args.append("--disposable")
        for limit in self.options.limits:
            args += ["--limit", limit]
        cmd = " ".join(shlex.quote(a) for a in args)
        log_file = shlex.quote(f"{self.rdir}/agent.log")
        launch = (
            f"cd {shlex.quote(self.rdir)} && "
            f"if command -v setsid >/dev/null 2>&1; then S=setsid; else S=; fi; "
            f"$S nohup {cmd} >{log_file} 2>&1 </dev/null & p=$!; "
            # pid and start time: what says later whether this agent still lives
            f'echo "$p $({_START_TIME})" | tee {shlex.quote(self.rdir + "/agent.pid")}'
        )
        res = t.run(launch, timeout=30)
        try:
            fields = res.stdout.strip().splitlines()[-1].split()
            self.start_time = fields[1] if len(fields) > 1 else None
            return int(fields[0])
        except (ValueError, IndexError):
            raise ProbeError(
                f"could not start the agent (exit {res.exit_status}: "
                f"{res.stderr.strip() or res.stdout.strip() or 'no output'})",
                host=self.host.name,
                hint=f"re-run the probe; see {self.rdir} on the host",
            ) from None

    def follow(self, t: SSHTransport, pid: int) -> tuple[dict[str, Any], SSHTransport]:
        """Poll until the agent's result appears; returns it and the (maybe new) connection.

        Polling uses one SFTP session, which needs no new process on the host, so it keeps
        working while an experiment exhausts the host's processes. When the connection drops
        anyway (sshd cannot fork, the host is swapping), it reconnects until the deadline: the
        agent runs on, detached.
        """
        started = time.monotonic()
        deadline = started + self.options.timeout + 60
        lost: TransportError | None = None
        lost_since = 0.0
        while True:
            if STOP.is_set():
                raise Interrupted("stopped following", host=self.host.name)
            try:
                if lost is not None:
                    self._reread_from_lab()
                    t = SSHTransport(self.host).connect()
                    self.progress(self.host.name, "reconnected")
                    lost = None
                self._relay_progress(t)
                raw = t.read(self.result_path)
                if raw is not None:
                    self._relay_progress(t)
                    return self._parse(raw), t
                if not self._alive(t, pid) and not t.exists(self.result_path):
                    log_text = (t.read(f"{self.rdir}/agent.log") or b"").decode("utf-8", "replace")
                    if _AGENT_REFUSES in log_text:
                        raise UnsafeHostPath(
                            log_text.split(_AGENT_REFUSES, 1)[1].strip().splitlines()[0],
                            host=self.host.name,
                        )
                    detail = " | ".join(log_text.strip().splitlines()[-3:]) or "no output"
                    raise ProbeError(
                        f"the agent exited without a result ({detail})",
                        host=self.host.name,
                        hint=self._why_no_result(t, log_text),
                    )
            except TransportError as err:
                if lost is None:
                    self.progress(self.host.name, f"connection lost ({err.message}); retrying")
                    lost_since = time.monotonic()
                lost = err
                t.close()
            now = time.monotonic()
            if now > deadline:
                if lost is not None:
                    raise ProbeError(
                        f"the host has not answered for {now - lost_since:.0f} s "
                        f"(last: {lost.message}); gave up after {now - started:.0f} s",
                        host=self.host.name,
                        hint=f"when it is back, `labctl collect {self.run.path}` fetches the "
                        "result if the agent finished (else re-run the probe)",
                    )
                raise ProbeError(
                    f"the agent is still running after {now - started:.0f} s "
                    f"(--timeout {self.options.timeout:.0f})",
                    host=self.host.name,
                    hint=f"it may still finish: `labctl collect {self.run.path}` later",
                )
            STOP.wait(self.options.poll_interval if lost is None else 2.0)

    def _alive(self, t: SSHTransport, pid: int) -> bool:
        """Whether the agent process lives: its pid, with the start time seen at launch (a
        restarted host may have given the pid to another process). Over SFTP, no fork."""
        raw = t.read(f"/proc/{pid}/stat")
        if raw is None:
            return False
        if not self.start_time:
            return True
        fields = raw.decode("ascii", "replace").rsplit(")", 1)[-1].split()
        return len(fields) > 19 and fields[19] == self.start_time

    def connect(self) -> SSHTransport:
        """A connection to the host. When it fails, the host's lab is asked where it is now; a
        host whose port answers but not its SSH (paused, busy), or a lab host that is
        restarting, is tried again for up to CONNECT_PATIENCE seconds."""
        deadline = time.monotonic() + CONNECT_PATIENCE
        waited = False
        while True:
            try:
                return SSHTransport(self.host).connect()
            except HostUnreachable as err:
                before = self.host
                self._reread_from_lab()
                if self.host != before:
                    continue
                patient = isinstance(err, HostNotAnswering) or "lab" in self.host.labels
                if not patient or time.monotonic() > deadline or STOP.is_set():
                    raise
                if not waited:
                    self.progress(self.host.name, f"{err.message}; trying again")
                waited = True
                STOP.wait(2.0)

    def _reread_from_lab(self) -> None:
        """A lab host that came back (restart) may have a new address or port: ask its lab."""
        moved = reread_from_lab(self.host)
        if moved is not None:
            self.progress(self.host.name, f"the lab says it is now {moved.address}:{moved.port}")
            self.host = moved

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

    def agent_state(self, t: SSHTransport) -> str:
        """'running' when an agent of this run lives on the host (pid + start time from the
        launch's or the agent's own pid file); 'gone' when one was started and is dead;
        'never' when none was started (the controller stopped first)."""
        assert self.side is not None
        own = f"{self.side.work}/runs/{self.run.run_id}/agent.pid"  # the agent's own pid file
        files = " ".join(shlex.quote(f) for f in (f"{self.rdir}/agent.pid", own))
        script = (
            f'seen=; for f in {files}; do [ -e "$f" ] && seen=1; '
            'read p s < "$f" 2>/dev/null || continue; '
            f'[ -n "$p" ] && [ -n "$s" ] && [ "$({_START_TIME})" = "$s" ] '
            "&& { echo running; exit 0; }; done; "
            f'if [ -n "$seen" ] || [ -e {shlex.quote(self.rdir + "/agent.log")} ]; '
            "then echo gone; else echo never; fi"
        )
        res = t.run(script, timeout=30)
        state = res.stdout.strip()
        return state if state in ("running", "never") else "gone"

    def _why_no_result(self, t: SSHTransport, log_text: str) -> str:
        """What to do about an agent that ended without a result: a full disk under labctl's
        folder says so (the agent could not even log, or said it had no room); an agent that
        said why is pointed at; else it was killed or the host restarted."""
        free = t.free_kib(self.rdir)
        if "No space left" in log_text or "no room for the result" in log_text or (
            free is not None and free < FULL_DISK_KIB
        ):  # fmt: skip
            left = f" ({free} KiB free)" if free is not None else ""
            return (
                f"the disk holding {self.rdir} on the host is full{left}: free space there "
                "(or set labctl_host_dir to a roomier place), then re-run the probe"
            )
        if log_text.strip():
            return f"see {self.rdir}/agent.log on the host, then re-run the probe"
        return (
            f"it was killed or the host restarted: re-run the probe (see {self.rdir}/agent.log "
            "on the host)"
        )

    def store(self, t: SSHTransport, data: dict[str, Any]) -> Path:
        path = self.run.write_host(self.host.name, _decorate(data, self.host))
        if not self.options.keep_remote:
            t.run(f"rm -rf {shlex.quote(self.rdir)}", timeout=60)
        return path


def reread_from_lab(host: HostRecord) -> HostRecord | None:
    """The host as its lab sees it now, when that differs (a restarted lab host gets a new
    published port); None for hosts of no lab, or when nothing changed."""
    lab, driver = host.labels.get("lab"), host.labels.get("driver")
    if not lab or not driver:
        return None
    from .drivers.registry import make_lab

    with _LAB_LOCK:  # one writer of the lab's known_hosts and lab.json at a time
        try:
            port = make_lab(lab, driver=driver).refresh_port(host.name, host.port)
        except LabctlError:
            return None
    return None if port is None else replace(host, port=port)


def _fail(run: RunDir, host: HostRecord, err: LabctlError) -> HostOutcome:
    try:
        path: Path | None = run.write_host_error(
            host.name, err.kind, err.line(), labels=host.labels
        )
    except ResultError:  # the results disk is full: the probe's error says what happened
        path = None
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
        with hp.connect() as t:
            progress(host.name, "connected")
            pid = hp.start(t)
            progress(host.name, f"agent running (pid {pid})")
            data, live = hp.follow(t, pid)
            try:
                path = hp.store(live, data)
            finally:
                if live is not t:
                    live.close()
    except Interrupted as err:  # the agent runs on; `collect` fetches its result
        return HostOutcome(host.name, None, err)
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
        with hp.connect() as t:
            hostdirs.check_if_there(t, hp.locate(t), hp.rdir)
            raw = t.read(hp.result_path)
            if raw is None:
                state = hp.agent_state(t)
                if state == "never":
                    raise ProbeError(
                        f"no result for run {run.run_id}: its agent never started on this host "
                        "(the controller stopped before launching it)",
                        host=host.name,
                        hint="re-run the probe for this host",
                    )
                if state == "running":
                    raise ProbeError(
                        f"no result for run {run.run_id} yet: its agent is still running",
                        host=host.name,
                        hint=f"wait and `labctl collect {run.path}` again",
                    )
                raise ProbeError(
                    f"no result for run {run.run_id} on the host: its agent is gone "
                    "(killed, or the host restarted)",
                    host=host.name,
                    hint="re-run the probe for this host",
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
    """``fn`` over the hosts in daemon threads, the caller waiting in short steps: Ctrl-C or
    SIGTERM (KeyboardInterrupt here) sets STOP and returns at once, whatever a host's SSH does.
    """
    if not hosts:
        return []
    STOP.clear()
    results: list[HostOutcome | None] = [None] * len(hosts)
    todo: queue.Queue[int] = queue.Queue()
    for i in range(len(hosts)):
        todo.put(i)

    def worker() -> None:
        while not STOP.is_set():
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            results[i] = fn(hosts[i])

    threads = [
        threading.Thread(target=worker, name=f"labctl-host-{n}", daemon=True)
        for n in range(max(1, min(parallel, len(hosts))))
    ]
    try:
        for th in threads:
            th.start()
        for th in threads:
            while th.is_alive():
                th.join(0.2)
    except BaseException:
        STOP.set()
        raise
    return [
        r if r is not None else HostOutcome(h.name, None, Interrupted("not probed", host=h.name))
        for h, r in zip(hosts, results, strict=True)
    ]


def probe_hosts(
    run: RunDir,
    hosts: list[HostRecord],
    options: ProbeOptions | None = None,
    progress: Progress | None = None,
) -> list[HostOutcome]:
    opts = options or ProbeOptions()
    prog = progress or (lambda _h, _m: None)
    if hosts:
        agent_path()  # built and checked once, before any host: a refusal is one line
    parallel = forks_for(len(hosts), opts.forks)
    return _parallel(lambda h: probe_host(run, h, opts, prog), hosts, parallel)


def collect_hosts(
    run: RunDir,
    hosts: list[HostRecord],
    progress: Progress | None = None,
    forks: int | None = None,
) -> list[HostOutcome]:
    prog = progress or (lambda _h, _m: None)
    return _parallel(lambda h: collect_host(run, h, prog), hosts, forks_for(len(hosts), forks))
