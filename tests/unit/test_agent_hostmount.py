"""storage-host-mount (the article's CentOS 7.0 hand mount): its pure parts, no Docker needed.

The thin-device record, the refusals, the verdict's words, and the rule that a run's folder is
never deleted through a mount (the check, the agent's cleanup and `reap` release it first).
The check itself runs on the article lab's c70 (tests/lab/test_article_engine_lab.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labctl.agent import context, handmount, hostmount, osparse, runstate
from labctl.agent.errors import SkipExperiment

ARTICLE_7_0 = {
    "read_before_ok": True,
    "write_ok": False,
    "write_error": "EROFS: Read-only file system",
    "container_sees_write": False,
    "read_after_container_wrote_ok": False,
    "read_after_container_wrote_error": "ENOENT: No such file or directory",
    "read_after_remount_ok": True,
    "container_ok_after": True,
}


def test_the_thin_device_record_of_a_container(tmp_path: Path) -> None:
    meta = tmp_path / "devicemapper" / "metadata"
    meta.mkdir(parents=True)
    # Docker 1.5.0's record (daemon/graphdriver/devmapper/deviceset.go, devInfo)
    record = {"device_id": 7, "size": 10737418240, "transaction_id": 9, "initialized": False}
    (meta / "abc123").write_text(json.dumps(record))
    (meta / "broken").write_text("{not json")
    (meta / "other").write_text('{"size": 1}')
    assert hostmount._metadata(str(tmp_path), "abc123") == record
    assert hostmount._metadata(str(tmp_path), "broken") is None
    assert hostmount._metadata(str(tmp_path), "other") is None
    assert hostmount._metadata(str(tmp_path), "missing") is None


class _Agent:
    def __init__(self, disposable: bool) -> None:
        self.disposable = disposable


@pytest.mark.parametrize(
    ("disposable", "driver", "said"),
    [
        (False, "devicemapper", "only on a disposable host"),
        (True, "overlay", "needs the devicemapper storage driver (this engine runs overlay)"),
    ],
)
def test_refused_off_disposable_hosts_and_off_devicemapper(
    disposable: bool, driver: str, said: str
) -> None:
    agent: Any = _Agent(disposable)
    agent.facts = {"docker": {"storage_driver": driver}}
    with pytest.raises(SkipExperiment) as exc:
        hostmount.experiment_storage_host_mount(agent, {})
    assert said in str(exc.value)


def test_the_verdict_tells_the_steps_and_whether_they_are_the_articles() -> None:
    said = hostmount.hand_mount_verdict(dict(ARTICLE_7_0))
    assert "read yes; write no (EROFS: Read-only file system)" in said
    assert "after the container wrote, read no (ENOENT" in said
    assert said.endswith("as the article's CentOS 7.0 account")
    # what bullseye's 5.10 did on the article lab's c70 (and what a hand run there showed)
    measured = dict(ARTICLE_7_0, write_ok=True, write_error=None, journal_replayed=True)
    measured.update(read_after_container_wrote_stale=True, read_after_drop_caches_ok=False,
                    read_after_drop_caches_error="ENOENT: No such file or directory")  # fmt: skip
    said = hostmount.hand_mount_verdict(measured)
    assert "write yes (the container does not see it)" in said
    assert "read no (ENOENT: No such file or directory) and a rewritten file still shows" in said
    assert "after dropping the host's caches, read no (ENOENT" in said
    assert "replayed the journal of the container's live filesystem" in said
    assert said.endswith("not as the article's CentOS 7.0 account (reads, no writes, then no "
                         "reads until a remount)")  # fmt: skip
    assert not hostmount.article_steps(measured) and hostmount.article_steps(ARTICLE_7_0)


MOUNTS = """\
/dev/vda / ext4 rw 0 0
/dev/mapper/labctl-hm-r1 /w/runs/r1/hostmount ext4 rw,nosuid 0 0
/dev/loop1 /w/runs/r1/hostmount/inner ext4 rw 0 0
/dev/mapper/x /w/runs/r10/hostmount ext4 rw 0 0
/dev/mapper/y /w/runs/r\\0401/hostmount ext4 rw 0 0
"""


def test_mounts_under_a_folder_deepest_first_and_only_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(osparse, "read_text", lambda path: MOUNTS)
    assert osparse.mounts_under("/w/runs/r1") == [
        "/w/runs/r1/hostmount/inner",
        "/w/runs/r1/hostmount",
    ]
    assert osparse.mounts_under("/w/runs/r 1/") == ["/w/runs/r 1/hostmount"]
    assert osparse.mounts_under("/w/runs/r2") == []


def test_nothing_mounted_and_no_device_releases_without_a_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[list[str]] = []
    monkeypatch.setattr(handmount, "run_cmd", lambda args, timeout=60: ran.append(args))
    assert handmount.release_hand_mount(str(tmp_path), "r-nothing") == []
    assert ran == []


def _stuck(run_dir: str, run_id: str) -> list[str]:
    return [f"mount {run_dir}/hostmount"]


def test_the_agent_never_deletes_its_folder_through_a_mount(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = context.Agent("r1", "h", str(tmp_path), 60)
    keep = Path(agent.ensure_run_dir()) / "hostmount" / "rootfs"
    keep.mkdir(parents=True)
    monkeypatch.setattr(context, "release_hand_mount", _stuck)
    agent.docker.path = None  # no engine to ask
    agent.cleanup()
    assert keep.is_dir()
    monkeypatch.setattr(context, "release_hand_mount", lambda run_dir, run_id: [])
    agent.cleanup()
    assert not Path(agent.run_dir).exists()


def test_reap_keeps_a_dead_runs_folder_it_cannot_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = Path(runstate.runs_dir(str(tmp_path)))
    (runs / "r-dead" / "hostmount").mkdir(parents=True)
    (runs / "r-gone").mkdir()
    asked: list[str] = []

    def release(run_dir: str, run_id: str) -> list[str]:
        asked.append(run_id)
        return _stuck(run_dir, run_id) if run_id == "r-dead" else []

    monkeypatch.setattr(runstate, "release_hand_mount", release)
    removed = runstate.reap(str(tmp_path), None)
    assert sorted(asked) == ["r-dead", "r-gone"]
    assert (runs / "r-dead" / "hostmount").is_dir() and not (runs / "r-gone").exists()
    assert removed["errors"] == [
        f"kept {runs / 'r-dead'}: could not release mount {runs / 'r-dead'}/hostmount"
    ]
