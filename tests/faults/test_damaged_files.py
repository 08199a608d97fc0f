"""Damaged host files (offline, no lab): each gives a named per-host problem and exit 5 from
`report` and `compare`, the healthy hosts are still reported, and nothing prints a traceback."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from .faultlib import DAMAGES, FaultLab, Trial, damaged_trial

pytestmark = pytest.mark.faults

GOOD = Path(__file__).resolve().parents[1] / "data" / "run-resources"


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("golden") / "20261128-091500-c0de"
    shutil.copytree(GOOD, run)
    (run / "hosts" / "centos66.json").unlink()  # the one failed host: golden means all good
    return run


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_host_file(how: str, golden: Path, tmp_path: Path, fault_seed: int) -> None:
    lab = FaultLab("offline", tmp_path / "home", suites=())
    lab.hosts = [p.stem for p in (golden / "hosts").glob("*.json")]
    rng = random.Random(f"{fault_seed}-{how}")
    trial = damaged_trial(lab, Trial("damaged-file", fault_seed), rng, tmp_path, golden, how)
    assert trial.ok, trial.line()
    assert trial.detail.endswith(how)
