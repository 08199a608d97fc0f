"""A nearly full disk under labctl's folder on a host (issue 18, defect 3): the agent reserves
room for its result before any check, shrinking the reserve to what fits; with no room at all it
runs nothing and labctl says the disk is full, naming the host. Never "killed or restarted".

The host's /var/lib/labctl is a small tmpfs of the test's own (mode 0700, as labctl's rule
wants), filled to leave ``free`` bytes, and unmounted on every path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from .faultlib import FaultLab, run_dirs, say

pytestmark = [pytest.mark.lab, pytest.mark.faults]

BASE = "/var/lib/labctl"


@contextlib.contextmanager
def nearly_full(lab: FaultLab, host: str, free: int) -> Iterator[None]:
    rc, out = lab.exec(host, f"mkdir -p {BASE} && mount -t tmpfs -o size=2m,mode=0700 "
                             f"labctl-full {BASE} && head -c $(( $(df -Pk {BASE} | awk "
                             f"'NR==2 {{print $4}}') * 1024 - {free} )) /dev/zero > {BASE}/fill; "
                             f"df -Pk {BASE} | tail -1")  # fmt: skip
    assert rc == 0, out
    say(f"{host}: {BASE} {out.split()[-3] if out.split() else '?'} KiB free")
    try:
        yield
    finally:
        lab.exec(host, f"umount {BASE} || umount -l {BASE}")


@pytest.mark.parametrize(("free_kib", "finishes"), [(300, False), (900, True)])
def test_a_nearly_full_host_folder_is_said_and_loses_nothing(
    free_kib: int, finishes: bool, fault_lab: FaultLab, tmp_path: Path
) -> None:
    lab = fault_lab
    host, other = lab.hosts[0], lab.hosts[1]
    results = tmp_path / "results"
    with nearly_full(lab, host, free_kib * 1024):
        call = lab.labctl(*lab.probe_args(results, "storage-location", ()), timeout=400)
    say(f"{free_kib} KiB free on {host}: exit {call.rc}")
    assert not call.traceback, call.err[-3000:]
    (run,) = run_dirs(results)
    said = (run / "hosts" / f"{host}.json").read_text()
    assert f'"{other}"' in (run / "hosts" / f"{other}.json").read_text()
    assert '"agent_version"' in (run / "hosts" / f"{other}.json").read_text()
    if finishes:  # the reserve shrank to what fits; the result is whole
        assert call.rc == 0, call.err[-3000:]
        assert '"agent_version"' in said
    else:
        assert call.rc == 4, call.err[-3000:]
        mine = [line for line in call.problem_lines() if f" {host}: " in line]
        assert mine and "is full" in mine[0], call.err[-3000:]
        assert "killed or the host restarted" not in call.err
    assert lab.leftovers() == []
