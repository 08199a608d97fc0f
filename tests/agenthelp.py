"""The probe agent's test tools, in one place.

- ``pa``: every name of the agent's modules in one namespace (unit tests of pure logic);
  patch a function in the module that uses it, not here.
- ``built_agent()``: the ``probe_agent-<hash>.pyz`` the controller ships, built once per test
  process into a temporary folder; integration and Python 2.7 tests run THAT file.
- ``run_py27(tmp_path, script, *args)``: a script under Python 2.7 with ``pa`` made from the
  built .pyz, its stdout read as JSON.
- ``sample(name)``: a recorded command output under tests/data/samples/.
- ``docker(...)``, ``engine_or_skip()``, ``container_names(prefix)``, ``new_run_id(tag)`` and
  ``run_agent(...)``: the agent run for real against this machine's engine.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from labctl.agentpack import AGENT_DIR, PACKAGE, build_agent

SAMPLES = Path(__file__).resolve().parent / "data" / "samples"
PY27 = Path.home() / ".pyenv" / "versions" / "2.7.18" / "bin" / "python2.7"
# /usr/local/bin/docker on this machine is a client without an engine: put Debian's first
ENV = dict(os.environ, PATH="/usr/bin:" + os.environ.get("PATH", ""))
MIB = 1024**2
GIB = 1024**3


def agent_files() -> list[Path]:
    """Every module of the agent package (what the guards check and the .pyz holds)."""
    return sorted(AGENT_DIR.glob("*.py"))


def module_names() -> list[str]:
    """The agent's modules that hold code (not the package's __init__ and __main__)."""
    return [p.stem for p in agent_files() if not p.stem.startswith("__")]


def _namespace() -> SimpleNamespace:
    names: dict[str, Any] = {}
    for mod in module_names():
        module = importlib.import_module(f"labctl.agent.{mod}")
        names.update((k, v) for k, v in vars(module).items() if not k.startswith("__"))
    return SimpleNamespace(**names)


pa: Any = _namespace()


@functools.cache
def built_agent() -> Path:
    """The shipped agent, built once per test process (removed at its exit)."""
    cache = Path(tempfile.mkdtemp(prefix="labctl-test-agent-"))
    atexit.register(shutil.rmtree, cache, True)
    return build_agent(cache)


def sample(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")


def need_py27() -> str:
    if not PY27.exists():
        pytest.skip(f"python2.7 not found at {PY27}; install it with `pyenv install 2.7.18`")
    return str(PY27)


# the agent's names as `pa` in a Python 2.7 script: argv[1] is the .pyz, argv[2] the modules;
# the script's own arguments follow (sys.argv[3:])
_PY27_PRELUDE = f"""\
import importlib, sys
sys.path.insert(0, sys.argv[1])


class _Names(object):
    pass


pa = _Names()
for _mod in sys.argv[2].split(","):
    for _k, _v in vars(importlib.import_module("{PACKAGE}." + _mod)).items():
        if not _k.startswith("__"):
            setattr(pa, _k, _v)
"""


def run_py27(tmp_path: Path, script: str, *args: str) -> Any:
    """``script`` under Python 2.7 against the built .pyz -> its stdout as JSON."""
    py27 = need_py27()
    path = tmp_path / "check27.py"
    path.write_text(_PY27_PRELUDE + script)
    proc = subprocess.run(
        [py27, str(path), str(built_agent()), ",".join(module_names()), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# -- the agent against this machine's engine ----------------------------------------------------


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )


def engine_or_skip() -> None:
    try:
        proc = docker("info", timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"no usable Docker engine (`docker info` failed: {exc})")
    if proc.returncode != 0:
        pytest.skip(
            "no usable Docker engine (`docker info` failed: "
            f"{(proc.stderr or proc.stdout).strip()[:200]}); start dockerd first"
        )


def container_names(prefix: str) -> list[str]:
    out = docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    return [n for n in out if n.startswith(prefix)]


def new_run_id(tag: str) -> str:
    return f"t{os.getpid()}-{tag}-{uuid.uuid4().hex[:6]}"


@dataclass
class AgentRun:
    proc: subprocess.CompletedProcess[str]
    result: dict[str, Any]
    progress: list[dict[str, Any]]


def agent_command(python: str, *args: str) -> list[str]:
    return [python, str(built_agent()), *args]


def oom_killed_at_limit(**more: object) -> dict[str, object]:
    """memory-limited's metrics when the container was OOM-killed at its 64 MiB -m limit and
    the host kept plenty (20 GiB available, a 16 MiB allocation worked), plus ``more``."""
    return {
        "stop_reason": "container-limit",
        "memory_limit_bytes": 64 * MIB,
        "resident_bytes": 64 * MIB,
        "host_mem_available_min": 20 * GIB,
        "host_alloc_ok": True,
        "host_alloc_bytes": 16 * MIB,
        **more,
    }


def run_command(python: str, run_id: str, out: Path, work: Path, *extra: str) -> list[str]:
    """``run`` of the built agent for host "local", its result to ``out``, its work in ``work``."""
    args = ["run", "--run-id", run_id, "--host", "local", "--out", str(out)]
    return agent_command(python, *args, "--workdir", str(work), *extra)


def run_agent(
    tmp_path: Path,
    run_id: str,
    python: str = sys.executable,
    experiments: str | None = None,
    limits: Sequence[str] = (),
    agent_timeout: int = 90,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> AgentRun:
    """``run`` of the built agent into tmp_path/results/<run_id>.json (work dir
    tmp_path/work); the result must be there, written atomically."""
    out = tmp_path / "results" / f"{run_id}.json"
    args = run_command(python, run_id, out, tmp_path / "work", "--timeout", str(agent_timeout))
    if experiments:
        args += ["--experiments", experiments]
    for lim in limits:
        args += ["--limit", lim]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env or ENV)
    assert out.exists(), f"no result file; rc={proc.returncode} stderr={proc.stderr}"
    for suffix in (".tmp", ".reserve"):
        assert not Path(str(out) + suffix).exists(), suffix
    progress_file = Path(str(out) + ".progress")
    progress = [json.loads(line) for line in progress_file.read_text().splitlines()]
    return AgentRun(proc, json.loads(out.read_text()), progress)
