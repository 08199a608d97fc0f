"""The only importer of ansible_runner: list an inventory, run a playbook.

ansible-runner starts ``ansible-inventory`` / ``ansible-playbook`` as subprocesses, so the
interpreter's bin folder (the venv) goes first on PATH. Every call gets its own private data
dir: ansible-runner silently reuses ``env/envvars`` from an old one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import ansible_runner

from .errors import InventoryError, PlayInterrupted, ResultError
from .paths import collections_dir, inventories_dir

EventHandler = Callable[[dict[str, Any]], None]
#: ansible-core's own default collections path (where ``ansible-galaxy collection install`` puts
#: a user's collections), kept after labctl's own when the user has set none
DEFAULT_COLLECTIONS_PATH = "~/.ansible/collections:/usr/share/ansible/collections"
#: how often ansible-runner looks at its cancel callback while the play is quiet (its default
#: is 5 s: a Ctrl-C then took 5 s to stop the play)
POLL_SECONDS = 0.25
#: the play recap's counts, as ansible-runner's Runner.stats keeps them
_STATS = ("skipped", "ok", "dark", "failures", "ignored", "rescued", "processed", "changed")

#: the artifacts' folder name (artifacts/<ident>); the local run, transmit and process agree
PLAY_IDENT = "provision"


def check_cmdline(check: bool) -> str | None:
    """ansible-playbook's extra words for --check (a dry run that shows its diffs)."""
    return "--check --diff" if check else None


def ansible_env(
    extra: dict[str, str] | None = None, *, bindir: str | None = None, path: str | None = None
) -> dict[str, str]:
    """Environment for ansible subprocesses: our venv first (or ``bindir`` before ``path``: a
    worker node's), strict inventory parsing."""
    bindir = bindir or str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "") if path is None else path
    env = {
        "PATH": bindir + os.pathsep + path if path else bindir,
        # a file ansible cannot parse is an error, not an empty inventory with a warning
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        # modules go through the SSH session's stdin: one round trip a task instead of three
        # (a host whose sudo wants a tty, as CentOS 6/7's default sudoers: set the inventory
        # variable ansible_pipelining=false for it)
        "ANSIBLE_PIPELINING": "True",
    }
    if extra:
        env.update(extra)
    return env


def collections_path(playbooks: Path) -> str:
    """ANSIBLE_COLLECTIONS_PATH for a run of ``playbooks``: the collection beside site.yml first
    (labctl.lab as this labctl carries it, even when the user installed another version), then
    the user's own collections."""
    user = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or DEFAULT_COLLECTIONS_PATH
    return os.pathsep.join([str(collections_dir(playbooks)), user])


def _venv_on_path() -> None:
    """ansible-runner finds ansible-playbook with shutil.which on *our* PATH."""
    bindir = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if bindir not in parts:
        os.environ["PATH"] = os.pathsep.join([bindir, *[p for p in parts if p]])


def list_inventory(path: Path) -> dict[str, Any]:
    """``ansible-inventory --list`` of ``path`` as a dict; InventoryError when it cannot parse."""
    if not path.exists():
        examples = inventories_dir()
        raise InventoryError(
            f"inventory {path} does not exist",
            hint=f"pass an existing file with -i (examples to copy and fill in: {examples})",
        )
    _venv_on_path()
    with tempfile.TemporaryDirectory(prefix="labctl-inv-") as pdd:
        out, err = ansible_runner.get_inventory(
            action="list",
            inventories=[str(path.resolve())],
            response_format="json",
            private_data_dir=pdd,
            envvars=ansible_env(),
            quiet=True,
            timeout=120,
        )
    data: Any = out
    if isinstance(out, str | bytes):
        try:
            data = json.loads(out) if out else None
        except ValueError:
            data = None
    if not isinstance(data, dict):
        detail = _first_error_line(str(err or out or ""))
        raise InventoryError(
            f"inventory {path} cannot be parsed: {detail}",
            hint="fix the file (see `ansible-inventory -i FILE --list`)",
        )
    return data


def _first_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "ERROR" in ln or "Error" in ln or "error" in ln:
            return ln.removeprefix("[ERROR]:").removeprefix("ERROR!").strip()
    return lines[0] if lines else "no output from ansible-inventory"


@contextlib.contextmanager
def cancel_on_signals() -> Iterator[threading.Event]:
    """SIGINT and SIGTERM during a play set the event (ansible-runner's cancel callback: it kills
    ansible-playbook at its next poll); the process's own handlers are back afterwards.

    Left to itself ansible-runner installs handlers of its own that stay for good: labctl then
    ignored Ctrl-C for the rest of the run, and a cut play went on as if it had ended.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _cancel(signum: int, frame: Any) -> None:
        stop.set()

    for sig in before:
        signal.signal(sig, _cancel)
    try:
        yield stop
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _artifacts_written(private_data_dir: Path) -> Iterator[None]:
    """ansible-runner's own writes (its artifacts folder removed or read-only mid-play) as one
    line, not a traceback."""
    try:
        yield
    except OSError as exc:
        raise ResultError(
            f"cannot write ansible's artifacts in {private_data_dir}: "
            f"{exc.strerror or exc} ({exc.filename or private_data_dir})",
            hint="keep the results folder in place and writable during the run, then run again",
        ) from None


@dataclass
class PlaybookRun:
    status: str
    rc: int
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    artifact_dir: Path | None = None


def run_playbook(
    *,
    playbook: Path,
    inventory: Path,
    private_data_dir: Path,
    event_handler: EventHandler | None = None,
    extravars: dict[str, Any] | None = None,
    limit: str | None = None,
    check: bool = False,
    timeout: int = 3600,
    envvars: dict[str, str] | None = None,
    forks: int | None = None,
) -> PlaybookRun:
    _venv_on_path()
    private_data_dir.mkdir(parents=True, exist_ok=True)
    cmdline = check_cmdline(check)

    def _handler(event: dict[str, Any]) -> bool:
        if event_handler is not None:
            event_handler(event)
        return True

    # SSH connections are reused within the run (ControlMaster), in a folder of our own with a
    # short path (a socket path is at most 107 bytes), closed when the run ends
    control_dir = Path(tempfile.mkdtemp(prefix="labctl-cp-"))
    try:
        env = {
            "ANSIBLE_COLLECTIONS_PATH": collections_path(playbook.parent),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
            **(envvars or {}),
        }
        with cancel_on_signals() as stop, _artifacts_written(private_data_dir):
            runner = ansible_runner.run(
                private_data_dir=str(private_data_dir),
                project_dir=str(playbook.parent),
                playbook=playbook.name,
                inventory=str(inventory.resolve()),
                envvars=ansible_env(env),
                extravars=extravars or {},
                limit=limit,
                forks=forks,
                cmdline=cmdline,
                quiet=True,
                event_handler=_handler,
                timeout=timeout,
                ident=PLAY_IDENT,
                rotate_artifacts=0,
                cancel_callback=stop.is_set,
                settings={"pexpect_timeout": POLL_SECONDS},
            )
    finally:
        close_control_masters(control_dir)
    stats = runner.stats or {}
    artifact_dir = Path(runner.config.artifact_dir) if runner.config else None
    if stop.is_set() or runner.status == "canceled":
        raise PlayInterrupted(
            "interrupted: the play was cut; hosts it had not finished are provisioned again "
            "by the next run",
            hint=f"what it did is in {artifact_dir}" if artifact_dir else None,
        )
    return PlaybookRun(str(runner.status), int(runner.rc or 0), dict(stats), artifact_dir)


def close_control_masters(control_dir: Path) -> None:
    """End the SSH master connections ansible left in ``control_dir`` (they would otherwise
    linger for ControlPersist's 60 s), then remove the folder. A play just cut may still be
    opening a master there while the folder goes: then it is tried again (the fault campaign
    once found an empty ``labctl-cp-*`` left after a cut play)."""
    ssh = shutil.which("ssh")
    for attempt in range(4):
        for sock in sorted(control_dir.iterdir()) if control_dir.is_dir() else []:
            if ssh and sock.is_socket():
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    subprocess.run(
                        [ssh, "-o", f"ControlPath={sock}", "-O", "exit", "labctl-control-master"],
                        capture_output=True,
                        timeout=10,
                        check=False,
                    )
        shutil.rmtree(control_dir, ignore_errors=True)
        if not control_dir.exists():
            return
        time.sleep(0.25 * (attempt + 1))


# -- ansible-runner's remote mode (transmit | worker | process), see labctl.remoteplay ------------
def transmit_playbook(
    out: BinaryIO,
    *,
    staging: Path,
    playbook: str,
    inventory: str,
    envvars: dict[str, str],
    extravars: dict[str, Any],
    limit: str | None,
    forks: int | None,
    check: bool,
    timeout: int,
) -> None:
    """The job as ansible-runner's transmit stream into ``out`` (a real file: ansible-runner
    asks its name): the run's kwargs, then ``staging`` zipped (project/, inventory, keys)."""
    with _artifacts_written(staging):
        ansible_runner.run(
            streamer="transmit",
            _output=out,
            private_data_dir=str(staging),
            playbook=playbook,
            inventory=inventory,
            envvars=envvars,
            extravars=extravars,
            limit=limit,
            forks=forks,
            cmdline=check_cmdline(check),
            quiet=True,
            timeout=timeout,
            ident=PLAY_IDENT,
            rotate_artifacts=0,
            settings={"pexpect_timeout": POLL_SECONDS},
            cancel_callback=lambda: False,  # else ansible-runner takes SIGINT for good
        )


@dataclass
class StreamedPlay:
    """What ``process`` made of the worker's stream."""

    status: str
    stats: dict[str, dict[str, int]]
    artifact_dir: Path
    explanation: str = ""
    #: the play's events that came back
    events: int = 0


def process_stream(
    source: BinaryIO, private_data_dir: Path, event_handler: EventHandler | None = None
) -> StreamedPlay:
    """Read a worker's stream (events, status, the artifacts zipped) to its end: events to
    ``event_handler``, job_events and artifacts into ``private_data_dir/artifacts/provision``."""
    stats: dict[str, dict[str, int]] = {}
    said: list[str] = []
    seen = [0]

    def on_event(event: dict[str, Any]) -> bool:
        seen[0] += 1
        if event.get("event") == "playbook_on_stats":
            data = event.get("event_data") or {}
            stats.update({k: dict(data.get(k) or {}) for k in _STATS})
        if event_handler is not None:
            event_handler(event)
        return True

    def on_status(status: dict[str, Any], runner_config: Any = None) -> None:
        if status.get("job_explanation"):
            said.append(str(status["job_explanation"]))

    private_data_dir.mkdir(parents=True, exist_ok=True)
    with _artifacts_written(private_data_dir):
        proc = ansible_runner.run(
            streamer="process",
            _input=source,
            private_data_dir=str(private_data_dir),
            ident=PLAY_IDENT,
            quiet=True,
            event_handler=on_event,
            status_handler=on_status,
            cancel_callback=lambda: False,
        )
    return StreamedPlay(
        str(proc.status), stats, Path(proc.artifact_dir), " ".join(said[-1:]).strip(), seen[0]
    )
