"""Room for the agent's result on a nearly full disk (issue 18, defect 3: with ~270 KB free the
checks ran, then result.json.tmp was cut at 4,096 bytes and the run was blamed on a restart)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from labctl.agent import runner


def test_the_reserve_shrinks_to_what_fits_and_is_zero_when_nothing_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = {"bytes": 600 * 1024}

    def reserve_space(path: str, size: int) -> int:
        return size if size <= room["bytes"] else 0

    monkeypatch.setattr(runner, "reserve_space", reserve_space)
    assert runner._reserve_result(str(tmp_path / "r"), 4 << 20) == 256 * 1024
    room["bytes"] = 100 * 1024
    assert runner._reserve_result(str(tmp_path / "r"), 4 << 20) == 0


def test_a_full_disk_keeps_every_metric_and_verdict_and_drops_the_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result: dict[str, Any] = {
        "status": "ok", "error": None, "experiments": [
            {"name": "disk", "status": "ok", "verdict": "contained", "metrics": {"a": 1},
             "series": {"t": list(range(5000))}},
            {"name": "storage-location", "status": "ok", "verdict": "in the tree",
             "metrics": {}},
        ],
    }  # fmt: skip
    real = runner.write_json_atomic  # type: ignore[attr-defined]
    calls = []

    def write_json_atomic(path: str, obj: Any, reserve: str | None = None) -> None:
        calls.append(obj)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, obj, reserve)

    class _Agent:
        def cleanup(self) -> None: ...
        def progress(self, *args: Any) -> None: ...

    monkeypatch.setattr(runner, "write_json_atomic", write_json_atomic)
    out = tmp_path / "result.json"
    assert runner._write_result(_Agent(), result, str(out), str(tmp_path / "res"), 0) == 0
    saved = json.loads(out.read_text())
    disk, location = saved["experiments"]
    assert "series" not in disk and disk["metrics"]["a"] == 1 and disk["verdict"] == "contained"
    assert "samples were left out" in disk["metrics"]["series_dropped"]
    assert location == result["experiments"][1]
    assert "series" in result["experiments"][0]  # the run's own record is not changed
