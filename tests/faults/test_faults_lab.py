"""The CI subset of the fault campaign, on a small lab of its own (bookworm, and bullseye whose
agent runs under python2.7): one seeded trial of each kind that needs lab hosts, each followed
by a plain run after which nothing of the faulted run may be left on the hosts.

`python bench/faults.py` runs the full campaign (more trials, random moments) and prints the
table; this subset keeps CI short (storage-location and a small bounded processes check).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .campaign import run_any_trial
from .faultlib import FaultLab, next_run, say

pytestmark = [pytest.mark.lab, pytest.mark.faults]

CI_KINDS = ("ctrl-c", "kill-agent", "restart-host", "pause-host", "full-disk", "kill-controller",
            "two-collects", "engine-disk-full", "clock-step", "results-gone", "bad-set",
            "odd-host-name")  # fmt: skip


@pytest.mark.parametrize("kind", CI_KINDS)
def test_fault(kind: str, fault_lab: FaultLab, fault_seed: int, tmp_path: Path) -> None:
    seed = fault_seed + CI_KINDS.index(kind)
    trial = run_any_trial(fault_lab, kind, seed, tmp_path)
    say(trial.line())
    after = next_run(fault_lab, tmp_path)
    assert after.rc == 0 and not after.traceback, after.err[-2000:]
    trial.leftovers = fault_lab.leftovers()
    assert trial.tracebacks == 0, [c.err[-3000:] for c in trial.calls if c.traceback]
    assert trial.ok, trial.line()
