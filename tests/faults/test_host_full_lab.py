"""A nearly full disk under labctl's folder on a host (issue 18, defect 3): the agent reserves
room for its result before any check, shrinking the reserve to what fits; with no room at all it
runs nothing and labctl says the disk is full, naming the host. Never "killed or restarted".

The host's /var/lib/labctl is a small tmpfs of the test's own (mode 0700, as labctl's rule
wants), filled to leave ``free`` bytes, and unmounted on every path. With 200 KiB the agent
(~330 KiB) cannot be pushed; with 1 MiB it starts, reserves its result's room, and the probe
image's tarball finds the disk full; with 12 MiB the run completes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .faultlib import FaultLab, run_dirs, say
from .stagefaults import HOST_BASE as BASE
from .stagefaults import nearly_full

pytestmark = [pytest.mark.lab, pytest.mark.faults]


@pytest.mark.parametrize(
    ("free_kib", "exit_code", "said"),
    [(200, 4, "is full"), (1024, 4, "no space left on the disk holding"), (12 * 1024, 0, "")],
)
def test_a_nearly_full_host_folder_is_said_and_loses_nothing(
    free_kib: int, exit_code: int, said: str, fault_lab: FaultLab, tmp_path: Path
) -> None:
    lab = fault_lab
    host, other = lab.hosts[0], lab.hosts[1]
    results = tmp_path / "results"
    with nearly_full(lab, host, BASE, free_kib * 1024) as free_now:
        say(f"{host}: {BASE} {free_now}")
        call = lab.labctl(*lab.probe_args(results, "storage-location", ()), timeout=400)
    say(f"{free_kib} KiB free on {host}: exit {call.rc}")
    assert not call.traceback, call.err[-3000:]
    assert call.rc == exit_code, call.err[-3000:]
    (run,) = run_dirs(results)
    assert '"agent_version"' in (run / "hosts" / f"{other}.json").read_text()
    mine = [line for line in call.problem_lines() if f" {host}: " in line]
    if said:
        assert mine and said in mine[0], call.err[-3000:]
        assert "killed or the host restarted" not in call.err and "crashed" not in call.err
    else:  # the reserve shrank to what fits; the result is whole
        assert mine == [], mine
        assert '"agent_version"' in (run / "hosts" / f"{host}.json").read_text()
    assert lab.leftovers() == []
