"""Result files: atomic writes, loading good, failed, malformed and truncated host files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.errors import ResultError
from labctl.files import write_json
from labctl.results import SCHEMA_VERSION, RunDir, load_host_file, new_run_id


def test_run_ids_sort_by_time_and_are_unique() -> None:
    ids = {new_run_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i.split("-")) == 3 for i in ids)


def test_atomic_write_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "x.json"
    write_json(target, {"b": 1, "a": [1, 2]})
    assert json.loads(target.read_text()) == {"a": [1, 2], "b": 1}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_atomic_write_keeps_old_file_when_serialising_fails(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    write_json(target, {"ok": True})
    with pytest.raises(TypeError):
        write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"ok": True}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_run_dir_round_trip(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r1")
    run.write_run(asked={"command": "run"})
    run.write_run(status="ok")
    meta = run.read_run()
    assert meta["asked"] == {"command": "run"} and meta["status"] == "ok"
    assert meta["schema"] == SCHEMA_VERSION and meta["run_id"] == "r1"
    run.write_host("h1", {"schema": SCHEMA_VERSION, "host": "h1", "status": "ok", "facts": {}})
    run.write_host_error("h2", "unreachable", "h2: cannot connect", {"suite": "x"})
    hosts = run.load_hosts()
    assert [h.host for h in hosts] == ["h1", "h2"]
    assert hosts[0].ok and not hosts[1].ok
    assert hosts[1].error == {"kind": "unreachable", "message": "h2: cannot connect"}
    assert hosts[1].labels == {"suite": "x"}


def test_host_names_that_cannot_be_file_names_are_refused(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r1")
    with pytest.raises(ResultError, match="cannot name a result file"):
        run.host_file("../etc/passwd")


@pytest.mark.parametrize(
    ("text", "word"),
    [('{"schema": 1, "host": "h", "facts": {"ker', "truncated"), ("[1, 2,, 3]", "malformed")],
)
def test_bad_host_file_becomes_an_errored_result(tmp_path: Path, text: str, word: str) -> None:
    path = tmp_path / "h.json"
    path.write_text(text)
    res = load_host_file(path)
    assert not res.ok and res.host == "h"
    assert res.error is not None and word in res.error["message"]
    assert "labctl collect" in res.error["message"]


def test_wrong_schema_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"schema": 99, "status": "ok"}))
    res = load_host_file(path)
    assert res.error is not None and "schema 99" in res.error["message"]


def test_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(ResultError, match=r"has no run\.json"):
        RunDir(tmp_path).read_run()
    with pytest.raises(ResultError, match="has no hosts/ folder"):
        RunDir(tmp_path).load_hosts()


def test_one_labctl_at_a_time_on_a_run_folder(tmp_path: Path) -> None:
    """A second probe or collect on the folder waits, told who holds it (two collects at once
    wrote errors over each other's results)."""
    import os
    import threading

    run = RunDir.create(tmp_path)
    held, release, said = threading.Event(), threading.Event(), []

    def first() -> None:
        with run.lock():
            held.set()
            release.wait(10)

    t = threading.Thread(target=first)
    t.start()
    held.wait(10)

    def waiting(msg: str) -> None:
        said.append(msg)
        release.set()

    with run.lock(waiting):
        assert said == [f"waiting for the labctl (pid {os.getpid()}) working on {run.path}"]
    t.join(10)
    with run.lock(waiting):  # free again: no wait
        assert len(said) == 1


def test_the_lock_holds_on_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The holder's pid is a courtesy: a disk with no room for it still gives the lock
    (CI's full-disk fault once got a traceback here instead of the write's own message)."""
    import errno
    import os

    run = RunDir.create(tmp_path)

    def no_room(*_: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", no_room)
    with run.lock():
        assert (run.path / ".labctl.lock").exists()


def test_an_error_never_replaces_an_agent_result(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path)
    good = {"host": "h1", "status": "ok", "agent_version": "0.1.0", "experiments": []}
    path = run.write_host("h1", good)
    run.write_host_error("h1", "probe", "h1: its agent never started on this host")
    assert json.loads(path.read_text())["status"] == "ok"
    run.write_host_error("h2", "probe", "h2: unreachable")
    assert json.loads(run.host_file("h2").read_text())["status"] == "error"


def test_a_run_folder_removed_during_the_run_is_never_made_again(tmp_path: Path) -> None:
    """Deleted during the probe, it was silently made again, with a run.json lacking its start,
    hosts and inventory, and the run ended `ok` (issue 18, defect 6)."""
    import shutil

    run = RunDir.create(tmp_path)
    run.write_run(started="2026-12-07T00:00:00Z", hosts=[])
    shutil.rmtree(run.path)
    with pytest.raises(ResultError, match="was removed during the run"):
        run.write_host("h1", {"host": "h1"})
    with pytest.raises(ResultError, match="was removed during the run"):
        run.write_run(status="ok")
    assert not run.path.exists()
    run2 = RunDir.create(tmp_path)
    run2.write_run(started="x")
    run2.run_file.unlink()  # the record alone removed
    with pytest.raises(ResultError, match=r"run\.json was removed during the run"):
        run2.write_run(status="ok")


def test_ansibles_own_write_failures_are_one_line(tmp_path: Path) -> None:
    from labctl.ansible import _artifacts_written

    with pytest.raises(ResultError) as exc, _artifacts_written(tmp_path / "ansible"):
        raise FileNotFoundError(2, "No such file or directory", str(tmp_path / "ansible/x"))
    assert str(exc.value).startswith(f"cannot write ansible's artifacts in {tmp_path}/ansible: ")
    assert "No such file or directory" in str(exc.value)
