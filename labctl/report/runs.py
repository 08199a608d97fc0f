"""``labctl runs``: the run folders under a results folder, with time, hosts and status.

A folder that is not a run (no run.json and no hosts/) is skipped; a run whose run.json is
broken still shows, with a one-line note.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ResultError


@dataclass
class RunRow:
    run_id: str
    path: str
    started: str
    finished: str
    duration_s: float | None
    status: str
    hosts: list[str] = field(default_factory=list)
    failed_hosts: list[str] = field(default_factory=list)
    experiments: list[str] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _host_status(path: Path) -> tuple[str, bool]:
    """(host name, ok) without loading the whole file into a result."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return path.stem, False
    if not isinstance(data, dict):
        return path.stem, False
    return str(data.get("host") or path.stem), data.get("status") == "ok"


def read_run_row(folder: Path) -> RunRow | None:
    run_file, hosts_dir = folder / "run.json", folder / "hosts"
    if not run_file.exists() and not hosts_dir.is_dir():
        return None
    note = ""
    meta: dict[str, Any] = {}
    try:
        loaded = json.loads(run_file.read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            meta = loaded
        else:
            note = "run.json does not hold a JSON object"
    except FileNotFoundError:
        note = "no run.json (interrupted before it was written?)"
    except (OSError, ValueError) as exc:
        note = f"run.json is unreadable ({' '.join(str(exc).split())})"
    hosts: list[str] = []
    failed: list[str] = []
    if hosts_dir.is_dir():
        for p in sorted(hosts_dir.glob("*.json")):
            name, ok = _host_status(p)
            hosts.append(name)
            if not ok:
                failed.append(name)
    elif not note:
        note = "no hosts/ folder"
    status = str(meta.get("status") or "")
    if not status:
        status = "broken" if note else ("finished" if meta.get("finished") else "unfinished")
    exps = meta.get("experiments")
    duration = meta.get("duration_s")
    return RunRow(
        run_id=str(meta.get("run_id") or folder.name),
        path=str(folder),
        started=str(meta.get("started") or ""),
        finished=str(meta.get("finished") or ""),
        duration_s=float(duration) if isinstance(duration, int | float) else None,
        status=status,
        hosts=hosts,
        failed_hosts=failed,
        experiments=[str(e) for e in exps] if isinstance(exps, list) else [],
        note=note,
    )


def list_runs(results_dir: Path) -> list[RunRow]:
    """Every run folder directly under ``results_dir``, oldest first (run ids sort by time)."""
    if not results_dir.is_dir():
        raise ResultError(
            f"{results_dir} is not a folder", hint="give the folder that holds the run folders"
        )
    rows = []
    for folder in sorted(p for p in results_dir.iterdir() if p.is_dir()):
        row = read_run_row(folder)
        if row is not None:
            rows.append(row)
    return rows
