"""Shared fixtures. Tests marked ``lab`` get one real local lab for the whole session.

The lab is named after the test process, lives in a temporary LABCTL_HOME and is torn down at
the end of the session whatever happened; the debootstrap cache and the lab images are shared
with the user's labs (LABCTL_CACHE and image tags), so only the first run builds anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TEST_LAB_SUITES = ("bullseye", "bookworm", "trixie")


@pytest.fixture(scope="session")
def labctl_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("labctl-home")
    old = os.environ.get("LABCTL_HOME")
    os.environ["LABCTL_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("LABCTL_HOME", None)
    else:
        os.environ["LABCTL_HOME"] = old


@pytest.fixture(scope="session")
def docker_client() -> Any:
    import docker

    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:  # the engine is part of the test bed: say how to get it
        pytest.fail(f"no Docker engine ({exc}); run the tests through `bash scripts/setup.sh test`")
    return client


@pytest.fixture(scope="session")
def lab(labctl_home: Path, docker_client: Any) -> Iterator[Any]:
    """The three-suite test lab (small disks), torn down at the end of the session."""
    from labctl.drivers.docker import DockerLab, DockerLabSpec

    spec = DockerLabSpec(name=f"t{os.getpid()}", suites=TEST_LAB_SUITES, disk_size="512MiB")
    driver = DockerLab(spec, client=docker_client)
    try:
        state = driver.up()
        yield state
    finally:
        report = driver.down()
        assert report.ok, report.problems
