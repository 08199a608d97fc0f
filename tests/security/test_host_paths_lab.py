"""No local user of a lab host becomes root through a probe (issue 21).

An unprivileged user of the host (tests/security/attacker.py) prepares folders, symlinks and a
watcher; then `labctl probe` runs as a user would run it. The probe either works safely (labctl
never uses what the user made) or refuses with one line naming the path; either way the user's
code never runs as root and no root-owned file appears where the user can reach it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import host_named, labctl, only_run, remote
from tests.security import attacker

pytestmark = [pytest.mark.lab, pytest.mark.security]

HOST = "bookworm"
#: where labctl before issue 21 kept its files: any local user could make them first
OLD_RUNS, OLD_WORK = "/var/tmp/labctl-runs", "/var/tmp/labctl"
#: a folder the tests hand to labctl_host_dir
MINE = "/var/tmp/labctl-mine"


def probe(lab: Any, tmp_path: Path, inventory: Path | None = None) -> Any:
    return labctl(
        "probe", "-i", str(inventory or lab.inventory), "--limit", HOST,
        "--results", str(tmp_path / "results"), "--experiments", "storage-location",
        "--timeout", "120",
    )  # fmt: skip


def inventory_with(lab: Any, tmp_path: Path, **host_vars: str) -> Path:
    """The lab's inventory with extra variables for HOST (JSON is valid YAML)."""
    text = Path(lab.inventory).read_text()
    inv = json.loads(text.partition("\n")[2])
    group = next(iter(inv["all"]["children"].values()))
    group["hosts"][HOST].update(host_vars)
    path = tmp_path / "inventory.yml"
    path.write_text(json.dumps(inv))
    return path


@pytest.fixture()
def host(lab: Any) -> Any:
    h = host_named(lab, HOST)
    attacker.prepare(h)
    yield h
    attacker.clean(h, OLD_RUNS, OLD_WORK, MINE, "/var/lib/labctl-test")


def test_a_swapped_run_folder_never_runs_the_users_code(lab: Any, host: Any, tmp_path: Path):
    """The exploit as reported: the user makes the run folders first and swaps the pushed
    agent for their own right after labctl's checksum read."""
    remote(host, attacker.as_user(f"mkdir -m 777 {OLD_RUNS} {OLD_WORK}; chmod 777 {OLD_RUNS}"))
    attacker.start_watcher(host, OLD_RUNS, bound=60)
    proc = probe(lab, tmp_path)
    watched = attacker.stop_watcher(host)
    assert attacker.pwned(host) == "", f"the user's code ran: {watched}"
    assert proc.returncode == 0, proc.stderr
    assert attacker.root_files_under(host, OLD_RUNS, OLD_WORK) == []
    data = json.loads((only_run(tmp_path / "results") / "hosts" / f"{HOST}.json").read_text())
    assert data["status"] == "ok"


def refused_line(proc: Any) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("problem:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    "setup, host_dir, why",
    [
        # the folder itself is the user's, and open to all
        (attacker.as_user(f"mkdir -m 777 {MINE} && chmod 777 {MINE}"), MINE, "owned by uid 4242"),
        # root's folder, but inside one the user owns
        (attacker.as_user(f"mkdir -m 755 {MINE}") + f" && mkdir {MINE}/base", f"{MINE}/base",
         "owned by uid 4242"),
        # a symlink the user planted to a folder of root's
        ("mkdir -m 700 /var/lib/labctl-test && "
         + attacker.as_user(f"ln -s /var/lib/labctl-test {MINE}"), MINE, "symbolic link"),
        # root's folder, writable by all (no sticky bit)
        (f"mkdir -m 777 {MINE} && chmod 777 {MINE}", MINE, "writable by group and others"),
    ],
    ids=["user-owned", "user-owned-parent", "symlink", "world-writable"],
)  # fmt: skip
def test_an_unsafe_host_folder_is_refused_in_one_line(
    lab: Any, host: Any, tmp_path: Path, setup: str, host_dir: str, why: str
) -> None:
    remote(host, setup)
    before = attacker.root_files_under(host, MINE)  # what the setup itself made as root
    proc = probe(lab, tmp_path, inventory_with(lab, tmp_path, labctl_host_dir=host_dir))
    line = refused_line(proc)
    assert proc.returncode == 4, proc.stderr
    assert line.startswith(f"problem: {HOST}: {MINE} ") and why in line, line
    assert "labctl_host_dir" in line, line
    assert attacker.root_files_under(host, MINE) == before
    assert attacker.pwned(host) == ""


@pytest.mark.parametrize("part", ["runs", "work"])
def test_a_symlinked_runs_or_work_folder_is_refused(
    lab: Any, host: Any, tmp_path: Path, part: str
) -> None:
    """Even root's own symlink: labctl's folders are real folders or nothing."""
    remote(
        host,
        f"mkdir -m 700 /var/lib/labctl-test /var/lib/labctl-test/elsewhere && "
        f"ln -s elsewhere /var/lib/labctl-test/{part}",
    )
    inv = inventory_with(lab, tmp_path, labctl_host_dir="/var/lib/labctl-test")
    line = refused_line(probe(lab, tmp_path, inv))
    assert f"/var/lib/labctl-test/{part}" in line and "symbolic link" in line, line
    assert remote(host, "ls -A /var/lib/labctl-test/elsewhere").strip() == ""


def test_a_planted_part_file_is_not_followed(lab: Any, host: Any, tmp_path: Path) -> None:
    """A leftover symlink where the upload's .part goes: the upload replaces it, never
    writes through it."""
    from labctl.transport import SSHTransport

    remote(
        host,
        "mkdir -m 700 /var/lib/labctl-test && echo victim > /var/lib/labctl-test/v && "
        "ln -s v /var/lib/labctl-test/agent.pyz.part",
    )
    local = tmp_path / "agent.pyz"
    local.write_bytes(b"payload")
    with SSHTransport(host) as t:
        t.put(local, "/var/lib/labctl-test/agent.pyz")
    assert remote(host, "cat /var/lib/labctl-test/v").strip() == "victim"
    assert remote(host, "cat /var/lib/labctl-test/agent.pyz") == "payload"
