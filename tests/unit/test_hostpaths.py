"""The one rule for paths labctl uses on a host (labctl/agent/hostpaths.py), on real folders.

Folders owned by another user are made with chown, so these tests need root (as CI has)."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from labctl.agent import hostpaths

OTHER = 4242
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def problem(path: Path) -> tuple[str, str] | None:
    return hostpaths.path_problem(str(path), os.geteuid())


def test_a_private_folder_and_its_parents_keep_the_rule(tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir(mode=0o700)
    assert problem(own) is None  # /tmp on the way is root's with the sticky bit


@needs_root
def test_a_folder_of_another_user_is_named_with_its_owner(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, OTHER, OTHER)
    assert problem(theirs / "below") == (
        str(theirs),
        f"is owned by uid {OTHER}, not by root or the user labctl logs in as",
    )
    named = hostpaths.path_problem(str(theirs), 0, name_of=lambda uid: "mallory")
    assert named is not None and f"uid {OTHER} (mallory)" in named[1]


@pytest.mark.parametrize(
    "mode, who", [(0o777, "group and others"), (0o775, "group"), (0o757, "others")]
)
def test_a_folder_others_can_write_is_refused(tmp_path: Path, mode: int, who: str) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, mode)
    assert problem(open_dir) == (str(open_dir), f"is writable by {who} (mode {mode:04o})")
    # below it too: whoever writes there can rename what labctl made
    assert problem(open_dir / "mine") == (str(open_dir), f"is writable by {who} (mode {mode:04o})")


def test_the_sticky_bit_spares_a_folder_above_never_the_folder_itself(tmp_path: Path) -> None:
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    (sticky / "mine").mkdir(mode=0o700)
    assert problem(sticky / "mine") is None
    assert problem(sticky) == (str(sticky), "is writable by group and others (mode 1777)")


@needs_root
def test_the_sticky_bit_counts_only_on_roots_folders(tmp_path: Path) -> None:
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    os.chown(sticky, OTHER, OTHER)
    (sticky / "mine").mkdir(mode=0o700)
    found = problem(sticky / "mine")
    assert found is not None and found[0] == str(sticky) and "owned by uid" in found[1]


def test_links_files_and_odd_paths(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    assert problem(tmp_path / "link" / "x") == (str(tmp_path / "link"), "is a symbolic link")
    assert problem(tmp_path / "link") == (str(tmp_path / "link"), "is a symbolic link")
    (tmp_path / "file").write_text("x")
    assert problem(tmp_path / "file" / "x") == (str(tmp_path / "file"), "is not a folder")
    assert problem(tmp_path / "missing" / "x") == (str(tmp_path / "missing"), hostpaths.MISSING)
    for odd in ("relative/x", f"{tmp_path}/../x", f"{tmp_path}/./x"):
        found = hostpaths.path_problem(odd, 0)
        assert found is not None and "normalised" in found[1]


def test_ensure_dir_makes_what_is_missing_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    assert hostpaths.ensure_local_dir(str(target)) == str(target)
    for d in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert d.is_dir() and (d.stat().st_mode & 0o777) == 0o700
    assert hostpaths.ensure_local_dir(str(target)) == str(target)  # there already: checked


def test_ensure_dir_refuses_and_makes_nothing_below_an_unsafe_folder(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    with pytest.raises(hostpaths.UnsafePath) as err:
        hostpaths.ensure_local_dir(str(open_dir / "labctl"))
    assert err.value.path == str(open_dir) and "writable" in err.value.why
    assert not (open_dir / "labctl").exists()


def test_ensure_dir_takes_a_folder_made_meanwhile(tmp_path: Path) -> None:
    """Another run made the folder between the check and the mkdir: checked, not an error."""
    target = tmp_path / "t"

    def racing_mkdir(path: str, mode: int) -> None:
        os.mkdir(path, mode)
        raise FileExistsError(errno.EEXIST, "exists", path)

    assert hostpaths.ensure_dir(str(target), os.geteuid(), os.lstat, racing_mkdir) == str(target)


def test_the_rule_with_an_sftp_like_lstat() -> None:
    """The controller passes SFTP's lstat: anything with st_mode and st_uid, ENOENT as OSError."""
    tree = {
        "/": (0o40755, 0), "/var": (0o40755, 0), "/var/lib": (0o40755, 0),
        "/var/lib/labctl": (0o40700, 1000),
    }  # fmt: skip

    def lstat(path: str) -> SimpleNamespace:
        if path not in tree:
            raise FileNotFoundError(errno.ENOENT, "No such file", path)
        mode, uid = tree[path]
        return SimpleNamespace(st_mode=mode, st_uid=uid)

    made: list[str] = []

    def mkdir(path: str, mode: int) -> None:
        made.append(path)
        tree[path] = (0o40000 | mode, 1000)

    assert hostpaths.path_problem("/var/lib/labctl", 1000, lstat) is None
    assert hostpaths.path_problem("/var/lib/labctl", 1001, lstat) is not None
    assert hostpaths.ensure_dir("/var/lib/labctl/runs/r1", 1000, lstat, mkdir) == (
        "/var/lib/labctl/runs/r1"
    )
    assert made == ["/var/lib/labctl/runs", "/var/lib/labctl/runs/r1"]


def test_files_are_new_and_never_written_through_a_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("victim\n")
    link = tmp_path / "planted"
    link.symlink_to(victim)
    with pytest.raises(OSError):
        hostpaths.open_new(str(link))
    with pytest.raises(OSError):  # O_NOFOLLOW: ELOOP
        hostpaths.open_append(str(link))
    with hostpaths.open_replacing(str(link)) as fh:
        fh.write(b"mine\n")
    assert victim.read_text() == "victim\n"
    assert not link.is_symlink() and link.read_text() == "mine\n"
    assert (link.stat().st_mode & 0o777) == 0o600


def test_where_labctl_keeps_its_files() -> None:
    assert hostpaths.base_for(0, "/root") == "/var/lib/labctl"
    assert hostpaths.base_for(1000, "/home/ann") == "/home/ann/.local/state/labctl"
    assert hostpaths.runs_of("/b") == "/b/runs" and hostpaths.work_of("/b") == "/b/work"
