"""Run folders: ``results/<run-id>/`` with ``run.json`` and ``hosts/<host>.json``.

A host file is whatever the agent wrote, plus what the controller knows (``labels``,
``controller_error`` when the host could not be probed at all). Writes are atomic (temp file +
rename) so a killed controller never leaves half a file; loading never raises for one bad host
file: it becomes a :class:`HostResult` whose ``error`` says what is wrong with it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ResultError

SCHEMA_VERSION = 1
_HOST_NAME = re.compile(r"^[A-Za-z0-9_.@:-]+$")


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id() -> str:
    """Sortable and unique: ``20261127-231500-ab12``."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def atomic_write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


@dataclass
class RunDir:
    """A results folder for one run."""

    path: Path

    @classmethod
    def create(cls, root: Path, run_id: str | None = None) -> RunDir:
        run = cls(root / (run_id or new_run_id()))
        (run.path / "hosts").mkdir(parents=True, exist_ok=False)
        return run

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
        if not _HOST_NAME.match(host):
            raise ResultError(f"host name {host!r} cannot name a result file", host=host)
        return self.hosts_dir / f"{host}.json"

    # -- writing ----------------------------------------------------------------------------
    def write_run(self, **fields: Any) -> None:
        """Create or update run.json (merged with what is already there)."""
        current = self.read_run() if self.run_file.exists() else {}
        current.update(fields)
        current.setdefault("schema", SCHEMA_VERSION)
        current.setdefault("run_id", self.run_id)
        current.setdefault("labctl_version", __version__)
        atomic_write_json(self.run_file, current)

    def write_host(self, host: str, data: dict[str, Any]) -> Path:
        path = self.host_file(host)
        atomic_write_json(path, data)
        return path

    def write_host_error(
        self, host: str, kind: str, message: str, labels: dict[str, str] | None = None
    ) -> Path:
        """Record a host the controller could not probe, so the matrix still shows it."""
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
        except (OSError, ValueError) as exc:
            raise ResultError(f"{self.run_file} is unreadable ({exc})") from exc
        if not isinstance(data, dict):
            raise ResultError(f"{self.run_file} does not hold a JSON object")
        return data

    def load_hosts(self) -> list[HostResult]:
        """Every host file, sorted by host name; bad files become errored results."""
        if not self.hosts_dir.is_dir():
            raise ResultError(
                f"{self.path} has no hosts/ folder", hint="is this a labctl results folder?"
            )
        return [load_host_file(p) for p in sorted(self.hosts_dir.glob("*.json"))]


def load_host_file(path: Path) -> HostResult:
    host = path.stem
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return HostResult(host, path, error={"kind": "result", "message": f"unreadable: {exc}"})
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # an error at the very end of the text means the file was cut short
        cut = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated")
        what = "truncated" if cut else "malformed"
        return HostResult(
            host,
            path,
            error={
                "kind": "result",
                "message": f"result file {path.name} is {what} JSON ({exc}); "
                "re-run the probe or `labctl collect` for this host",
            },
        )
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
    result = HostResult(str(data.get("host") or host), path, data)
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
