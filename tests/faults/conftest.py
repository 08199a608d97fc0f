"""Fixtures of the fault suite: a small lab of its own (faults restart and pause its hosts, so
it is not the session lab), and the seed of the session's random moments, printed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .faultlib import FaultLab, campaign_seed, say


@pytest.fixture(scope="session")
def fault_seed() -> int:
    seed = campaign_seed()
    say(f"fault suite seed: {seed} (rerun with LABCTL_FAULTS_SEED={seed})")
    return seed


@pytest.fixture(scope="module")
def fault_lab(labctl_home: Path, docker_client: object) -> Iterator[FaultLab]:
    lab = FaultLab(f"f{os.getpid()}", labctl_home, suites=("bookworm", "bullseye"))
    try:
        yield lab.up()
    finally:
        problems = lab.down()
        assert not problems, problems
