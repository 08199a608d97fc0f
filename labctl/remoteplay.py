"""The play on a worker node: ansible-runner's own remote mode, the one AWX's Receptor mesh uses.

``transmit`` here packs the job (the run's kwargs and a private data dir: a copy of the
playbooks as ``project/``, the worker's inventory, keys and known_hosts) into one stream;
``ansible-runner worker`` on the worker node, started over SSH, reads it from stdin, runs the
play and writes events, status and the zipped artifacts to stdout; ``process`` here reads that
back into the run folder's ``ansible/`` and hands each event to the same handler a local play
has (the live view, the provision report). Nothing of labctl runs on the worker.

Lab hosts listen on the controller's 127.0.0.1 only: for each such host the SSH connection to
the worker opens a reverse tunnel (the worker's 127.0.0.1:PORT to the host's port here), so
every connection stays on a loopback or inside SSH. Ctrl-C sends SIGTERM to the worker, which
cancels the play and still streams back what it did.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shlex
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko

from .ansible import (
    EventHandler,
    PlaybookRun,
    StreamedPlay,
    ansible_env,
    cancel_on_signals,
    process_stream,
    transmit_playbook,
)
from .errors import PlayInterrupted, ProvisionError, TransportError
from .hosts import HostRecord, Progress
from .transport import SSH_FAILURES, SSHTransport
from .workerenv import ensure_worker_env
from .workerinv import worker_view
from .workernode import URL_WORKER, WorkerNode, is_loopback

#: the worker's PATH besides its venv's bin (ansible-playbook is found there)
WORKER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: how long a cancelled worker may take to stream back what it did before the line is cut
CANCEL_GRACE_S = 30.0
#: the worker says something at least this often (a keepalive event when the play is quiet)...
KEEPALIVE_S = 15
#: ...so a worker silent for this long is gone (its host frozen, the network cut)
SILENT_S = 120.0
_PID_WORD = "labctl-worker-pid"


@dataclass
class RemotePlay:
    run: PlaybookRun
    #: hosts the worker could not be given (name -> one line)
    refused: dict[str, str] = field(default_factory=dict)


def _pump(chan: paramiko.Channel, target: tuple[str, int]) -> None:
    """Bytes both ways between a forwarded channel and the host's port on this machine."""
    try:
        sock = socket.create_connection(target, timeout=10)
    except OSError:
        chan.close()
        return
    try:
        while not chan.closed:
            waiting: list[Any] = [sock, chan]
            ready = select.select(waiting, [], [], 1.0)[0]
            if sock in ready:
                data = sock.recv(65536)
                if not data:
                    break
                chan.sendall(data)
            if chan in ready:
                data = chan.recv(65536)
                if not data:
                    break
                sock.sendall(data)
    except (OSError, *SSH_FAILURES):
        pass
    finally:
        chan.close()
        sock.close()


@contextlib.contextmanager
def reverse_tunnels(
    transport: paramiko.Transport, targets: Mapping[str, tuple[str, int]]
) -> Iterator[dict[str, int]]:
    """For each host name, a port on the worker's 127.0.0.1 that leads to its target here.
    The tunnels end with the SSH connection (cancelling each would wait on a frozen worker)."""
    routes: dict[int, tuple[str, int]] = {}

    def accept(chan: paramiko.Channel, origin: Any, server: tuple[str, int]) -> None:
        target = routes.get(server[1])
        if target is None:
            chan.close()
            return
        threading.Thread(target=_pump, args=(chan, target), daemon=True).start()

    ports: dict[str, int] = {}
    for name, target in targets.items():
        try:
            port = transport.request_port_forward("127.0.0.1", 0, accept)
        except SSH_FAILURES as exc:
            raise ProvisionError(
                f"the worker refused a tunnel to {name} ({exc})",
                hint="allow TCP forwarding in the worker's sshd (AllowTcpForwarding)",
            ) from exc
        routes[port] = target
        ports[name] = port
    yield ports


class _Watched:
    """The worker's stdout for ``process``; remembers whether it went silent."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.silent = False

    def readline(self) -> bytes:
        return bytes(self._call(self.source.readline))

    def read(self, size: int = -1) -> bytes:
        return bytes(self._call(lambda: self.source.read(size)))

    def __getattr__(self, name: str) -> Any:  # close, closed, flush, write: ansible-runner's
        return getattr(self.source, name)  # Base64IO asks for them

    def _call(self, read: Any) -> Any:
        try:
            return read()
        except TimeoutError:
            self.silent = True
            raise


class _StderrTail(threading.Thread):
    """The worker's stderr, drained (a full window would stall its stdout): its pid line and
    the last lines it said."""

    def __init__(self, chan: paramiko.Channel) -> None:
        super().__init__(daemon=True)
        self.chan = chan
        self.pid: int | None = None
        self.lines: list[str] = []
        self.pid_known = threading.Event()

    def run(self) -> None:
        buf = b""
        with contextlib.suppress(*SSH_FAILURES):
            while data := self.chan.recv_stderr(65536):
                buf += data
                *done, buf = buf.split(b"\n")
                for raw in done:
                    self._line(raw.decode("utf-8", "replace").strip())
        self._line(buf.decode("utf-8", "replace").strip())
        self.pid_known.set()

    def _line(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        if word == _PID_WORD and rest.isdigit() and self.pid is None:
            self.pid = int(rest)
            self.pid_known.set()
        elif line:
            self.lines = [*self.lines[-40:], line]


def _cancel_on(stop: threading.Event, done: threading.Event, t: SSHTransport,
               chan: paramiko.Channel, tail: _StderrTail) -> None:  # fmt: skip
    """On Ctrl-C: SIGTERM to the worker (it cancels the play and streams back the rest);
    the line is cut when it has not ended after :data:`CANCEL_GRACE_S`."""
    while not done.wait(0.2):
        if stop.is_set():
            break
    else:
        return
    tail.pid_known.wait(5)
    transport = t.client.get_transport()
    if tail.pid is not None and transport is not None:
        with contextlib.suppress(*SSH_FAILURES):  # a frozen worker: the line is cut below
            signal = transport.open_session(timeout=10)
            signal.exec_command(f"kill -TERM {tail.pid}")
            signal.close()
    if not done.wait(CANCEL_GRACE_S):
        chan.close()


def worker_command(bindir: str, wdir: str) -> str:
    """The worker's command: a new private folder, the pid on stderr, then ansible-runner."""
    q = shlex.quote
    return (
        f"umask 077 && mkdir -- {q(wdir)} && echo {_PID_WORD} $$ >&2 && "
        f"exec {q(bindir)}/ansible-runner worker --private-data-dir {q(wdir)} --delete "
        f"--keepalive-seconds {KEEPALIVE_S}"
    )


def play_on_worker(
    t: SSHTransport, bindir: str, wdir: str, job: Path, private_data_dir: Path,
    event_handler: EventHandler | None,
) -> tuple[StreamedPlay, list[str], bool]:  # fmt: skip
    """The job file to ``ansible-runner worker``'s stdin, its stdout through ``process``;
    (what process made of it, the worker's last stderr lines, whether Ctrl-C cut it)."""
    transport = t.client.get_transport()
    assert transport is not None
    try:
        chan = transport.open_session()
        chan.exec_command(worker_command(bindir, wdir))
        with job.open("rb") as fh:
            while chunk := fh.read(1 << 16):
                chan.sendall(chunk)
        chan.shutdown_write()
        chan.settimeout(SILENT_S)
    except SSH_FAILURES as exc:
        raise ProvisionError(
            f"cannot hand the play to the worker ({exc})", host=t.host.name
        ) from exc
    tail = _StderrTail(chan)
    tail.start()
    done = threading.Event()
    with cancel_on_signals() as stop:
        watcher = threading.Thread(target=_cancel_on, args=(stop, done, t, chan, tail), daemon=True)
        watcher.start()
        try:
            stream = _Watched(chan.makefile("rb"))  # readline and read: all process needs
            played = process_stream(stream, private_data_dir, event_handler)  # type: ignore[arg-type]
            if stream.silent:
                played.explanation = f"it said nothing for {SILENT_S:.0f} s (frozen, or cut off)"
        finally:
            done.set()
            chan.close()
            tail.join(5)
    return played, tail.lines, stop.is_set()


def _stage(staging: Path, playbook: Path, view_files: Mapping[str, bytes],
           inventory: dict[str, Any]) -> None:  # fmt: skip
    """The private data dir the worker unpacks: project/ (the playbooks), inventory, keys."""
    shutil.copytree(
        playbook.parent,
        staging / "project",
        symlinks=True,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.retry"),
    )
    (staging / "inventory").mkdir(mode=0o700)
    (staging / "inventory" / "hosts.yml").write_text(json.dumps(inventory, indent=1) + "\n")
    for rel, data in view_files.items():
        path = staging / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)


def worker_envvars(env: Mapping[str, str], playbooks: Path, wdir: str) -> dict[str, str]:
    """Variables that name a path in the playbooks folder name the worker's copy instead."""
    here = str(playbooks)
    return {
        k: (f"{wdir}/project{v[len(here) :]}" if v == here or v.startswith(here + "/") else v)
        for k, v in env.items()
    }


def run_remote_playbook(
    worker: WorkerNode,
    *,
    playbook: Path,
    inventory_data: Mapping[str, Any],
    hosts: list[HostRecord],
    private_data_dir: Path,
    event_handler: EventHandler | None = None,
    extravars: dict[str, Any] | None = None,
    check: bool = False,
    forks: int | None = None,
    timeout: int = 3600,
    envvars: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> RemotePlay:
    """The play for ``hosts`` run on the worker node, its events and artifacts back here."""
    wdir = f"/tmp/labctl-worker-{secrets.token_hex(8)}"
    with _connected(worker) as t:
        bindir = ensure_worker_env(t, worker.python, progress)
        transport = t.client.get_transport()
        assert transport is not None
        targets = {h.name: (h.address, h.port) for h in hosts if is_loopback(h.address)}
        with (
            reverse_tunnels(transport, targets) as ports,
            tempfile.TemporaryDirectory(prefix="labctl-transmit-") as tmp,
        ):
            view = worker_view(inventory_data, hosts, ports, wdir)
            names = [h.name for h in hosts if h.name not in view.refused]
            if not names:
                return RemotePlay(PlaybookRun("skipped", 0), view.refused)
            staging = Path(tmp) / "pdd"
            staging.mkdir(mode=0o700)
            _stage(staging, playbook, view.files, view.inventory)
            env = {
                "ANSIBLE_SSH_CONTROL_PATH_DIR": f"{wdir}/cp",
                **worker_envvars(envvars or {}, playbook.parent, wdir),
            }
            if (playbook.parent / "roles").is_dir():
                env.setdefault("ANSIBLE_ROLES_PATH", f"{wdir}/project/roles")
            job = Path(tmp) / "job"
            with job.open("wb") as out:
                transmit_playbook(
                    out,
                    staging=staging,
                    playbook=playbook.name,
                    inventory=str(staging / "inventory" / "hosts.yml"),
                    envvars=ansible_env(env, bindir=bindir, path=WORKER_PATH),
                    extravars=extravars or {},
                    limit=",".join(names),
                    forks=forks,
                    check=check,
                    timeout=timeout,
                )
            played, said, cut = play_on_worker(
                t, bindir, wdir, job, private_data_dir, event_handler
            )
    return RemotePlay(_as_run(played, said, cut, worker), view.refused)


@contextlib.contextmanager
def _connected(worker: WorkerNode) -> Iterator[SSHTransport]:
    """The SSH connection to the worker; a refusal's hint names --worker's own options."""
    t = SSHTransport(worker.host)
    try:
        t.connect()
    except TransportError as err:
        if worker.host.name == URL_WORKER:
            known = worker.host.known_hosts or "~/.ssh/known_hosts"
            err.hint = (
                f"check --worker, --worker-key and --worker-known-hosts (the worker's host key "
                f"must be in {known}: ssh-keyscan -p {worker.host.port} {worker.host.address})"
            )
        raise
    try:
        yield t
    finally:
        t.close()


def _as_run(played: StreamedPlay, said: list[str], cut: bool, worker: WorkerNode) -> PlaybookRun:
    """The worker's play as a local one's result; a cut play is PlayInterrupted, a worker that
    said nothing of the play one line with the last words it did say."""
    if cut or played.status == "canceled":
        raise PlayInterrupted(
            "interrupted: the play on the worker was cancelled; hosts it had not finished are "
            "provisioned again by the next run",
            hint=f"what it did is in {played.artifact_dir}",
        )
    rc_file = played.artifact_dir / "rc"
    try:
        rc = int(rc_file.read_text().strip())
    except (OSError, ValueError):
        rc = 0 if played.status == "successful" else 1
    if played.status == "error" and not played.stats:
        last = said[-1] if said and not played.events else played.explanation or "no word"
        what = "broke off the play" if played.events else "ran no play"
        raise ProvisionError(
            f"the worker {worker.where} {what}: {last[:300]}",
            host=worker.host.name,
            hint="check the worker over SSH; the hosts it had not finished are provisioned "
            "again by the next run",
        )
    return PlaybookRun(played.status, rc, played.stats, played.artifact_dir)
