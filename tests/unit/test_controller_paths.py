"""What labctl keeps on the controller is safe from its other users (issue 21): run folders are
private and made new, collect trusts no run.json another user could change, keys open to others
and known_hosts files others can write are refused, the agent in the cache is checked before it
is pushed, and files are never written through a planted link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labctl.errors import AuthenticationFailed, LabError, ProbeError, ResultError, UnknownHostKey
from labctl.files import unsafe_reason, write_atomic, write_json
from labctl.hosts import HostRecord
from labctl.results import RunDir
from labctl.transport import SSHTransport, load_private_key

OTHER = 4242
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_a_run_folder_is_new_and_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        run = RunDir.create(tmp_path / "results")
        run.write_run(status="ok")
    finally:
        os.umask(old)
    assert mode_of(run.path) == 0o700 and mode_of(run.hosts_dir) == 0o700
    assert mode_of(run.run_file) == 0o600
    with pytest.raises(ResultError):  # never one that is there already
        RunDir.create(tmp_path / "results", run.run_id)


def test_a_group_writable_results_folder_is_fine_one_others_can_write_is_not(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o775)  # umask 002: the user's own group
    assert RunDir.create(shared).path.is_dir()
    os.chmod(shared, 0o777)
    with pytest.raises(ResultError) as err:
        RunDir.create(shared)
    assert f"results folder {shared}: {shared} is writable by group and others" in str(err.value)
    assert len(list(shared.iterdir())) == 1  # the first run's folder: the refused one made none


@needs_root
def test_a_results_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, OTHER, OTHER)
    with pytest.raises(ResultError) as err:
        RunDir.create(theirs / "results")
    assert f"is owned by uid {OTHER}" in err.value.line()
    assert list(theirs.iterdir()) == []


def test_collect_refuses_a_run_json_others_could_change(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "results")
    run.write_run(hosts=[])
    run.check_private()
    os.chmod(run.run_file, 0o666)
    with pytest.raises(ResultError) as err:
        run.check_private()
    assert "another user could have changed the hosts and keys it names" in err.value.line()


def test_files_are_replaced_never_written_through_a_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("victim\n")
    for name in ("matrix.csv", "run.json"):
        (tmp_path / name).symlink_to(victim)
    write_atomic(tmp_path / "matrix.csv", "a,b\n")
    write_json(tmp_path / "run.json", {"x": 1})
    assert victim.read_text() == "victim\n"
    assert (tmp_path / "matrix.csv").read_text() == "a,b\n"
    assert mode_of(tmp_path / "matrix.csv") == 0o644 and mode_of(tmp_path / "run.json") == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["matrix.csv", "run.json", "victim"]


def test_a_private_key_open_to_others_is_refused_as_ssh_refuses_it(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    key.write_text("not even a key")
    os.chmod(key, 0o644)
    host = HostRecord(name="h1", address="127.0.0.1", key_file=key)
    with pytest.raises(AuthenticationFailed) as err:
        load_private_key(host)
    assert err.value.line() == (
        f"h1: private key {key} is open to other users (mode 0644); ssh refuses such a key "
        f"too; chmod 600 {key}"
    )


def test_a_known_hosts_file_others_can_write_is_refused_before_connecting(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    os.chmod(known, 0o666)
    host = HostRecord(name="h1", address="127.0.0.1", port=1, known_hosts=known)
    with pytest.raises(UnknownHostKey) as err:
        SSHTransport(host).connect()
    assert "another user could put any key there" in err.value.line()


def test_the_agent_in_a_cache_others_can_write_is_never_pushed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labctl.paths import agent_path

    cache = tmp_path / "cache"
    monkeypatch.setenv("LABCTL_CACHE", str(cache))
    assert agent_path().is_file()
    os.chmod(cache / "agent", 0o777)
    with pytest.raises(ProbeError) as err:
        agent_path()
    assert "another user could change the code labctl runs on every host" in err.value.line()


@needs_root
def test_a_lab_folder_of_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labctl.drivers.docker import DockerLab, DockerLabSpec

    monkeypatch.setenv("LABCTL_HOME", str(tmp_path / "home"))
    lab_dir = tmp_path / "home" / "labs" / "x"
    lab_dir.mkdir(parents=True, mode=0o755)
    os.chown(lab_dir, OTHER, OTHER)
    lab = DockerLab(DockerLabSpec(name="x", suites=("bookworm",)), client=object())
    with pytest.raises(LabError) as err:
        lab._make_directory()
    assert f"is owned by uid {OTHER}" in err.value.line()
    assert list(lab_dir.iterdir()) == []


def test_unsafe_reason_follows_the_hosts_rule_but_trusts_the_group(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    os.chmod(d, 0o770)
    assert unsafe_reason(d) is None and unsafe_reason(d / "not-yet") is None
    os.chmod(d, 0o707)
    assert unsafe_reason(d / "x") == f"{d} is writable by others (mode 0707)"
