"""Run folders: ``results/<run-id>/`` with ``run.json`` and ``hosts/<host>.json``.

A host file is whatever the agent wrote, plus what the controller knows (``labels``,
``controller_error`` when the host could not be probed at all). Writes are atomic (temp file +
rename) so a killed controller never leaves half a file; loading never raises for one bad host
file: it becomes a :class:`HostResult` whose ``error`` says what is wrong with it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import itertools
import json
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import NoneType
from typing import Any

from . import __version__
from .errors import ResultError
from .files import unsafe_reason, write_json
from .hosts import usable_host_name

SCHEMA_VERSION = 1
#: the lock file in a run folder (RunDir.lock)
LOCK_NAME = ".labctl.lock"


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id() -> str:
    """Sortable and unique: ``20261127-231500-ab12``."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def write_problem(exc: OSError, what: Path, *, host: str | None = None, hint: str) -> ResultError:
    """A failed write (no space, no permission, read-only) as one line naming what and why."""
    why = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        why = "no space left on the results disk"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        why = "permission denied"
    elif exc.errno == errno.EROFS:
        why = "the results disk is read-only"
    return ResultError(f"cannot write {what} ({why})", host=host, hint=hint)


def new_private_dir(root: Path, name: str) -> Path:
    """A new folder ``root/name`` only its owner may enter (0700, whatever the umask), never one
    that is there already; refused when another user of this machine could change ``root`` or a
    folder above it (:func:`labctl.files.unsafe_reason`). ``root`` is used as checked: with its
    links resolved."""
    root = Path(os.path.realpath(root))
    unsafe = unsafe_reason(root)
    if unsafe is not None:
        raise ResultError(
            f"results folder {root}: {unsafe}: another user could change the results and what "
            "labctl reads back from them",
            hint="fix it (chown, chmod o-w) or give another --results",
        )
    path = root / name
    try:
        root.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700)
        os.chmod(path, 0o700)
    except OSError as exc:
        raise write_problem(
            exc, path, hint=f"free space, or give another --results than {root}"
        ) from exc
    return path


@dataclass
class HostResult:
    """One host's result as loaded from disk (or the reason it could not be)."""

    host: str
    path: Path
    data: dict[str, Any] = field(default_factory=dict)
    #: set when the host failed (controller error, agent error) or its file is unusable
    error: dict[str, str] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def facts(self) -> dict[str, Any]:
        facts = self.data.get("facts")
        return facts if isinstance(facts, dict) else {}

    @property
    def experiments(self) -> list[dict[str, Any]]:
        exps = self.data.get("experiments")
        return [e for e in exps if isinstance(e, dict)] if isinstance(exps, list) else []

    @property
    def labels(self) -> dict[str, str]:
        labels = self.data.get("labels")
        return labels if isinstance(labels, dict) else {}


def _holds_agent_result(path: Path) -> bool:
    """Whether ``path`` is a host file with an agent's result in it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and bool(data.get("agent_version"))


def _note_holder(fd: int) -> None:
    """Write this process's pid into the held lock file, for the next labctl's "waiting"
    line. Advisory only: on a full disk the lock still holds, and the write that matters
    (a result, run.json) says what is full."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass


@dataclass
class RunDir:
    """A results folder for one run."""

    path: Path
    #: this process wrote run.json already (then it vanishing means the folder was tampered with)
    _run_written: bool = field(default=False, init=False, repr=False, compare=False)

    @classmethod
    def create(cls, root: Path, run_id: str | None = None) -> RunDir:
        """A new run folder under ``root`` (see :func:`new_private_dir`), with ``hosts/``."""
        run = cls(new_private_dir(root, run_id or new_run_id()))
        try:
            (run.path / "hosts").mkdir(mode=0o700)
        except OSError as exc:
            raise write_problem(
                exc, run.path, hint="free space, or give another --results"
            ) from exc
        return run

    def check_private(self) -> None:
        """Refuse a run folder (or run.json) another user could have changed: `collect`
        connects to the hosts run.json names, with the keys it names."""
        for path in (self.path, self.run_file):
            unsafe = unsafe_reason(path)
            if unsafe is not None:
                raise ResultError(
                    f"{path}: {unsafe}: another user could have changed the hosts and keys "
                    "it names",
                    hint="check it, fix it (chown, chmod go-w) and run again",
                )

    @contextlib.contextmanager
    def lock(self, waiting: Callable[[str], None] | None = None) -> Iterator[None]:
        """One labctl at a time on this run folder (a probe, a collect); another one waits,
        told who holds it. (Two collects at once each wrote "its agent never started" over the
        results the other had fetched, and removed the hosts' copies: every result was lost.)"""
        path = self.path / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except OSError as exc:
            raise write_problem(exc, path, hint="free space or fix permissions") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
                if waiting is not None:
                    waiting(f"waiting for the labctl (pid {holder}) working on {self.path}")
                fcntl.flock(fd, fcntl.LOCK_EX)
            _note_holder(fd)
            yield
        finally:
            os.close(fd)  # and with it the lock

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def hosts_dir(self) -> Path:
        return self.path / "hosts"

    @property
    def run_file(self) -> Path:
        return self.path / "run.json"

    def host_file(self, host: str) -> Path:
        if not usable_host_name(host):
            raise ResultError(f"host name {host!r} cannot name a result file", host=host)
        return self.hosts_dir / f"{host}.json"

    # -- writing ----------------------------------------------------------------------------
    def _still_here(self) -> None:
        """A write into a run folder removed (or emptied) during the run would make a new,
        incomplete one in its place: refuse it instead."""
        if not self.hosts_dir.is_dir():
            raise ResultError(
                f"the run folder {self.path} was removed during the run",
                hint="nothing more is saved there; the results of agents that started stay on "
                "their hosts for a week: run again, or restore the folder and `labctl collect` it",
            )

    def write_run(self, **fields: Any) -> None:
        """Create or update run.json (merged with what is already there)."""
        self._still_here()
        if not self.run_file.exists() and self._run_written:
            raise ResultError(
                f"{self.run_file} was removed during the run",
                hint="the run's record is lost; the results of agents that started stay on "
                "their hosts for a week",
            )
        current = self.read_run() if self.run_file.exists() else {}
        current.update(fields)
        current.setdefault("schema", SCHEMA_VERSION)
        current.setdefault("run_id", self.run_id)
        current.setdefault("labctl_version", __version__)
        try:
            write_json(self.run_file, current)
            self._run_written = True
        except OSError as exc:
            raise write_problem(
                exc,
                self.run_file,
                hint=f"free space or fix permissions, then `labctl collect {self.path}`",
            ) from exc

    def write_host(self, host: str, data: dict[str, Any]) -> Path:
        """Write one host's file; a failed write is a ResultError naming the host."""
        path = self.host_file(host)
        self._still_here()
        try:
            write_json(path, data)
        except OSError as exc:
            raise write_problem(
                exc,
                path,
                host=host,
                hint="the result stays on the host: free space or fix permissions, then "
                f"`labctl collect {self.path}`",
            ) from exc
        return path

    def write_host_error(
        self, host: str, kind: str, message: str, labels: dict[str, str] | None = None
    ) -> Path:
        """Record a host the controller could not probe, so the matrix still shows it; an
        agent's result already here is never replaced by an error."""
        path = self.host_file(host)
        if _holds_agent_result(path):
            return path
        return self.write_host(
            host,
            {
                "schema": SCHEMA_VERSION,
                "host": host,
                "run_id": self.run_id,
                "status": "error",
                "error": {"kind": kind, "message": message},
                "labels": labels or {},
                "facts": {},
                "experiments": [],
                "collected": utc_now(),
            },
        )

    # -- reading ----------------------------------------------------------------------------
    def read_run(self) -> dict[str, Any]:
        try:
            data = json.loads(self.run_file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ResultError(
                f"{self.path} has no run.json", hint="is this a labctl results folder?"
            ) from exc
        except (OSError, ValueError, RecursionError) as exc:
            why = "nested too deep" if isinstance(exc, RecursionError) else exc
            raise ResultError(f"{self.run_file} is unreadable ({why})") from exc
        if not isinstance(data, dict):
            raise ResultError(f"{self.run_file} does not hold a JSON object")
        return data

    def load_hosts(self) -> list[HostResult]:
        """Every host file, sorted by host name; bad files become errored results."""
        if not self.hosts_dir.is_dir():
            raise ResultError(
                f"{self.path} has no hosts/ folder", hint="is this a labctl results folder?"
            )
        try:
            run_id = str(self.read_run().get("run_id") or self.run_id)
        except ResultError:
            run_id = self.run_id
        return [load_host_file(p, run_id) for p in sorted(self.hosts_dir.glob("*.json"))]


#: a host file larger than this is refused unread (a run's largest real files are a few MB)
MAX_HOST_FILE_BYTES = 256 * 1024 * 1024
#: metrics the verdicts read as booleans, and name endings that are always numbers
_BOOL_METRICS = ("host_affected", "host_can_read", "host_can_write", "limit_applied",
                 "container_started", "oom_killed", "container_sees_host_write")  # fmt: skip
_NUMBER_SUFFIXES = ("_bytes", "_ratio", "_bytes_min", "_inodes_min", "_pids_min", "_s")
_SCALARS = (str, int, float, bool, type(None))


def _bad(host: str, path: Path, what: str) -> HostResult:
    return HostResult(
        host,
        path,
        error={
            "kind": "result",
            "message": f"result file {path.name} {what}; "
            "re-run the probe or `labctl collect` for this host",
        },
    )


def _schema_problem(data: dict[str, Any], host: str, run_id: str | None) -> str | None:
    """What is wrong with a decoded host file (identity, then types), or None."""
    named = data.get("host")
    if not isinstance(named, str) or not named:
        return f"has host {named!r}, expected the string {host!r}"
    if named != host:
        return f"names host {named!r}, not {host!r} (a file copied from another host?)"
    rid = data.get("run_id")
    if rid is not None and not isinstance(rid, str):
        return f"has run_id {rid!r}, not a string"
    if run_id and rid and rid != run_id:
        return f"belongs to run {rid!r}, not to this run {run_id!r}"
    if not isinstance(data.get("status"), str):
        return f"has status {data.get('status')!r}, not a string"
    for key in ("facts", "labels", "error"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            return f"has {key} of type {type(data[key]).__name__}, expected an object"
    exps = data.get("experiments")
    if exps is not None and not isinstance(exps, list):
        return f"has experiments of type {type(exps).__name__}, expected a list"
    for i, exp in enumerate(exps or []):
        if not isinstance(exp, dict):
            return f"has experiment #{i + 1} of type {type(exp).__name__}, expected an object"
        name = exp.get("name")
        if not isinstance(name, str) or not name:
            return f"has experiment #{i + 1} without a name"
        if not isinstance(exp.get("status"), str):
            return f"has {name}.status {exp.get('status')!r}, not a string"
        if exp.get("verdict") is not None and not isinstance(exp["verdict"], str):
            return f"has {name}.verdict of type {type(exp['verdict']).__name__}"
        for key in ("series", "error"):
            if exp.get(key) is not None and not isinstance(exp[key], dict):
                return f"has {name}.{key} of type {type(exp[key]).__name__}, expected an object"
        metrics = exp.get("metrics")
        if metrics is None:
            continue
        if not isinstance(metrics, dict):
            return f"has {name}.metrics of type {type(metrics).__name__}, expected an object"
        problem = _metrics_problem(name, metrics)
        if problem is not None:
            return problem
    return None


def _metrics_problem(name: str, metrics: dict[str, Any]) -> str | None:
    """The first metric of an experiment whose value is not a JSON scalar, or not of the type
    its name asks for (``*_ok``: a boolean, ``*_bytes``: a number...), or None."""
    # most files (270 metrics a host): every value of a JSON type, checked in C loops, and
    # only the metrics whose names ask for a type looked at
    if _SCALAR_TYPES.issuperset(map(type, metrics.values())):
        for key in itertools.compress(metrics, map(_metric_type, metrics)):
            kind = type(metrics[key])
            wants = _metric_type(key)
            if kind is not NoneType and (
                (wants & _WANTS_BOOL and kind is not bool)
                or (wants & _WANTS_NUMBER and kind is not int and kind is not float)
            ):
                break
        else:
            return None
    for key, value in metrics.items():  # a problem: the first one, in the file's order
        if not isinstance(value, _SCALARS):
            return f"has {name}.{key} of type {type(value).__name__}, expected a value"
        if value is None:
            continue
        wants = _metric_type(key)
        if wants & _WANTS_BOOL and not isinstance(value, bool):
            return f"has {name}.{key} = {value!r}, expected true or false"
        if wants & _WANTS_NUMBER and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            return f"has {name}.{key} = {value!r}, expected a number"
    return None


_SCALAR_TYPES = frozenset(_SCALARS)
_WANTS_BOOL, _WANTS_NUMBER = 1, 2


@functools.lru_cache(maxsize=4096)
def _metric_type(key: str) -> int:
    """What a metric's name asks of its value: _WANTS_BOOL, _WANTS_NUMBER (or both), 0."""
    wants = _WANTS_BOOL if key in _BOOL_METRICS or key.endswith("_ok") else 0
    return wants | (_WANTS_NUMBER if key.endswith(_NUMBER_SUFFIXES) else 0)


def load_host_file(path: Path, run_id: str | None = None) -> HostResult:
    """One host file, validated: any problem (unreadable, not UTF-8, not JSON, too deep, wrong
    schema, another host's or run's file, wrong types) becomes a result whose ``error`` names it.

    The host is always the file's name, so a damaged file never shows up as another host.
    """
    host = path.stem
    try:
        size = path.stat().st_size
        if size > MAX_HOST_FILE_BYTES:
            return _bad(host, path, f"is {size} bytes, more than any result could be")
        raw = path.read_bytes()
    except OSError as exc:
        return _bad(host, path, f"is unreadable ({exc.strerror or exc})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _bad(host, path, f"is not UTF-8 text (byte {exc.start})")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # an error at the very end of the text means the file was cut short
        cut = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated")
        what = "truncated" if cut else "malformed"
        return _bad(host, path, f"is {what} JSON ({exc})")
    except RecursionError:
        return _bad(host, path, "is JSON nested too deep to be a result")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        return HostResult(
            host,
            path,
            error={
                "kind": "result",
                "message": f"result file {path.name} has schema {found!r}, expected "
                f"{SCHEMA_VERSION}; re-run the probe with this labctl version",
            },
        )
    problem = _schema_problem(data, host, run_id)
    if problem is not None:
        return _bad(host, path, problem)
    result = HostResult(host, path, data)
    if data.get("status") != "ok":
        err = data.get("error")
        if isinstance(err, dict):
            result.error = {
                "kind": str(err.get("kind", "error")),
                "message": str(err.get("message", "failed")),
            }
        else:
            result.error = {"kind": "error", "message": f"host status is {data.get('status')!r}"}
    return result
