"""Every kind of fault the campaign knows (both rounds), by name: what bench/faults.py runs."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from . import faultlib, inputfaults, stagefaults
from .faultlib import FaultLab, Trial

TrialFn = Callable[[FaultLab, Trial, random.Random, Path], Trial]
#: the second round's kinds (issue 18), each a function of (lab, trial, rng, work)
SECOND_ROUND: dict[str, TrialFn] = {
    "provision-signal": stagefaults.trial_provision_signal,
    "host-dir-full": stagefaults.trial_host_dir_full,
    "engine-disk-full": stagefaults.trial_engine_disk_full,
    "dead-engine": stagefaults.trial_dead_engine,
    "clock-step": stagefaults.trial_clock_step,
    "results-gone": inputfaults.trial_results_gone,
    "bad-set": inputfaults.trial_bad_set,
    "odd-host-name": inputfaults.trial_odd_host_name,
}
assert set(SECOND_ROUND) == set(stagefaults.KINDS)
KINDS = faultlib.KINDS + stagefaults.KINDS
EXIT_CODES = {**faultlib.EXIT_CODES, **stagefaults.EXIT_CODES}
#: kinds after which the plain next run needs no lab of its own (offline ones)
OFFLINE = {"damaged-file"}


def run_any_trial(
    lab: FaultLab, kind: str, seed: int, work: Path, golden: Path | None = None
) -> Trial:
    """One trial of any kind (the first round's through faultlib.run_trial)."""
    fn = SECOND_ROUND.get(kind)
    if fn is None:
        return faultlib.run_trial(lab, kind, seed, work, golden=golden)
    work.mkdir(parents=True, exist_ok=True)
    return fn(lab, Trial(kind, seed), random.Random(seed), work)
