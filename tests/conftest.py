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
    from tests.helpers import docker_lab_up

    spec = {"name": f"t{os.getpid()}", "suites": TEST_LAB_SUITES, "disk_size": "512MiB"}
    with docker_lab_up(docker_client, **spec) as state:
        yield state


# -- engines built from source ------------------------------------------------------------------
ENGINE_SOURCE_ENV = "LABCTL_ENGINE_SOURCE"
ENGINE_SOURCE_NAME = "moby-v1.5.0.tar.gz"


def find_engine_source() -> tuple[Path | None, str]:
    """Docker 1.5.0's source archive for tests (never the network), or None and why not.

    ``$LABCTL_ENGINE_SOURCE``, else ``shared/engines/`` next to the project's checkout (CI puts
    the clone beside ``shared/``)."""
    env = os.environ.get(ENGINE_SOURCE_ENV)
    if env:
        path = Path(env)
        return (path, "") if path.is_file() else (None, f"{ENGINE_SOURCE_ENV}={env} is no file")
    root = Path(__file__).resolve().parent.parent
    candidates = [root.parent / "shared" / "engines" / ENGINE_SOURCE_NAME,
                  root / "shared" / "engines" / ENGINE_SOURCE_NAME]  # fmt: skip
    for path in candidates:
        if path.is_file():
            return path, ""
    return None, (
        f"no Docker 1.5.0 source archive: set {ENGINE_SOURCE_ENV} or put {ENGINE_SOURCE_NAME}"
        f" in {candidates[0].parent}"
    )


@pytest.fixture(scope="session")
def engine_source() -> Path:
    """The 1.5.0 source archive; missing: the test fails in CI (CI=true) and skips elsewhere."""
    path, why = find_engine_source()
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why)
        pytest.skip(why)
    return path


def fake_engine_build(directory: Path, payload: bytes = b"\x7fELF fake docker") -> Path:
    """A cached engine 'build' of 1.5.0 whose binary is a placeholder: for the code that reads
    the engine cache (manifests, inventory variables), never for anything that runs it."""
    import hashlib

    from labctl.engines import store, versions

    directory.mkdir(parents=True)
    (directory / store.BINARY).write_bytes(payload)
    store.write_manifest(
        directory,
        {
            "version": "1.5.0",
            "commit": versions.KNOWN_VERSIONS["1.5.0"].commit,
            "binary_sha256": hashlib.sha256(payload).hexdigest(),
            "binary_size": len(payload),
            "go": "go version go1.19.8 linux/amd64",
            "built_at": "2026-11-30T10:00:00Z",
        },
    )
    return directory


@pytest.fixture()
def engine_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty LABCTL_CACHE of the test's own."""
    monkeypatch.setenv("LABCTL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """labctl's wheel as ``python -m build`` makes it from this checkout (built once a session)."""
    from tests.helpers import build_wheel

    return build_wheel(tmp_path_factory.mktemp("wheel"))
