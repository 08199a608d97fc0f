"""labctl installed from its wheel, as a new user installs it (issue 19): `python -m build`, a
fresh venv outside the checkout, `pip install` of the wheel, then `labctl lab up` and `labctl run`
from another folder. The run must provision with the playbooks the wheel carries (an install once
looked for .../site-packages/playbooks/site.yml) and probe."""

from __future__ import annotations

import json
import os
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from labctl.agent import AGENT_VERSION
from tests.helpers import CHECKOUT, make_venv, only_run, pip_install

pytestmark = pytest.mark.lab


def _installed(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The venv's ``labctl ARGS`` run in ``cwd`` with nothing pointing back at the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LABCTL_PLAYBOOKS")}
    return subprocess.run(
        [str(venv / "bin" / "labctl"), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_the_installed_wheel_provisions_and_probes_a_lab_from_another_folder(
    built_wheel: Path, labctl_home: Path, docker_client: Any, tmp_path: Path
) -> None:
    took: dict[str, float] = {}
    start = time.monotonic()
    venv = make_venv(tmp_path / "venv").parent.parent
    # --no-compile: byte-compiling ansible-core, pandas and matplotlib took 2/3 of the install
    # (34 s against 12 s); the installed labctl compiles what it imports as it runs
    pip_install(venv / "bin" / "python", "--no-compile", str(built_wheel))
    took["venv + pip install"] = time.monotonic() - start
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    version = metadata.version("labctl")  # pyproject.toml's, as the test venv installed it
    assert _installed(venv, elsewhere, "--version").stdout.strip() == f"labctl, version {version}"
    name = f"w{os.getpid()}"
    try:
        start = time.monotonic()
        up = _installed(venv, elsewhere, "lab", "up", "--name", name, "--suites", "bookworm",
                        "--disk-size", "512MiB")  # fmt: skip
        assert up.returncode == 0, up.stderr[-3000:]
        took["lab up"] = time.monotonic() - start
        start = time.monotonic()
        run = _installed(venv, elsewhere, "run", "--lab", name, "--experiments", "storage-location")
        took["run"] = time.monotonic() - start
    finally:
        down = _installed(venv, elsewhere, "lab", "down", "--name", name)
        assert down.returncode == 0, down.stdout + down.stderr
    print("wheel lab:", ", ".join(f"{k} {v:.1f} s" for k, v in took.items()))
    assert run.returncode == 0, run.stderr[-3000:]
    run_dir = only_run(elsewhere / "results")
    assert f"matrix:   {run_dir / 'matrix.csv'}" in run.stdout
    # provisioned, with the playbooks inside the installed package (not the checkout's)
    artifacts = run_dir / "ansible" / "artifacts" / "provision"
    assert (artifacts / "rc").read_text().strip() == "0"
    playbooks = Path(json.loads((artifacts / "command").read_text())["cwd"])
    assert playbooks.is_relative_to(venv) and not playbooks.is_relative_to(CHECKOUT), playbooks
    assert playbooks.parts[-3:] == ("labctl", "_data", "playbooks"), playbooks
    assert "bookworm Stamp the host as provisioned" in run.stderr
    # and probed
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "ok" and meta["problems"] == [], meta
    host = json.loads((run_dir / "hosts" / "bookworm.json").read_text())
    assert host["status"] == "ok" and host["agent_version"] == AGENT_VERSION, host["status"]
    checks = {e["name"]: e["status"] for e in host["experiments"]}
    assert checks == {"storage-location": "ok"}, checks
