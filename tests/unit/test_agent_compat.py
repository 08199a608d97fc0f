"""The probe agent stays one stdlib-only file that runs on Python 2.6 through 3.13."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.agent import probe_agent

AGENT = Path(__file__).resolve().parents[2] / "labctl" / "agent" / "probe_agent.py"
VENV_BIN = Path(sys.executable).parent
PY27 = Path.home() / ".pyenv" / "versions" / "2.7.18" / "bin" / "python2.7"

# what the agent may import: modules that exist in every stdlib from 2.6 to 3.13
STDLIB_26_313 = {
    "binascii", "errno", "hashlib", "json", "optparse", "os", "platform", "re", "shutil",
    "signal", "socket", "subprocess", "sys", "tarfile", "tempfile", "time", "traceback",
    "__future__",
}


def _vermin() -> str:
    for cand in (VENV_BIN / "vermin", Path(sys.prefix) / "bin" / "vermin"):
        if cand.exists():
            return str(cand)
    pytest.skip("vermin is not installed in this venv (pip install -e '.[dev]')")
    raise AssertionError  # unreachable


def test_vermin_reports_no_violations_for_26_and_30() -> None:
    proc = subprocess.run(
        [_vermin(), "--no-tips", "-t=2.6-", "-t=3.0-", "--violations", str(AGENT)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Minimum required versions: 2.6, 3.0" in proc.stdout or "No known violations" in (
        proc.stdout), proc.stdout


def test_agent_imports_only_old_stdlib_modules() -> None:
    tree = ast.parse(AGENT.read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= STDLIB_26_313, sorted(imported - STDLIB_26_313)


def test_agent_file_header_and_version_constant() -> None:
    text = AGENT.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "# -*- coding: utf-8 -*-"
    tree = ast.parse(text)
    assert ast.get_docstring(tree)
    consts = {
        t.id: n.value.value
        for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
        for t in n.targets if isinstance(t, ast.Name)
    }
    assert consts["AGENT_VERSION"].count(".") == 2
    assert consts["SCHEMA_VERSION"] == 1


def test_agent_has_no_fstrings_or_set_literals() -> None:
    tree = ast.parse(AGENT.read_text(encoding="utf-8"))
    bad = [type(n).__name__ for n in ast.walk(tree)
           if isinstance(n, (ast.JoinedStr, ast.Set, ast.SetComp, ast.DictComp))]
    assert bad == []


def test_version_flag_under_python3() -> None:
    proc = subprocess.run([sys.executable, str(AGENT), "--version"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0
    assert proc.stdout.strip() == probe_agent.AGENT_VERSION


PY2_SCRIPT = r"""
import imp, json, sys
pa = imp.load_source("probe_agent", sys.argv[1])
info = pa.parse_docker_info(open(sys.argv[2]).read())
version = pa.parse_docker_version(open(sys.argv[3]).read())
print(json.dumps({"info": info, "version": version, "size": pa.parse_size("107.4 GB"),
                  "redhat": pa.parse_redhat_release("CentOS release 6.6 (Final)\n"),
                  "py": list(sys.version_info[:2])}))
"""

INFO_150_AUFS = """\
Containers: 2
Images: 14
Storage Driver: aufs
 Root Dir: /var/lib/docker/aufs
 Backing Filesystem: extfs
 Dirs: 18
Execution Driver: native-0.2
Kernel Version: 3.13.0-46-generic
Operating System: Ubuntu 14.04.2 LTS
CPUs: 2
Total Memory: 1.955 GiB
Name: ubuntu1404
WARNING: No swap limit support
"""

VERSION_150 = """\
Client version: 1.5.0
Client API version: 1.17
Go version (client): go1.4.1
Git commit (client): a8a31ef
OS/Arch (client): linux/amd64
Server version: 1.5.0
Server API version: 1.17
Go version (server): go1.4.1
Git commit (server): a8a31ef
"""


def test_parsers_run_under_python27(tmp_path: Path) -> None:
    if not PY27.exists():
        pytest.skip(f"python2.7 not found at {PY27}; install it with `pyenv install 2.7.18`")
    info = tmp_path / "info.txt"
    info.write_text(INFO_150_AUFS)
    version = tmp_path / "version.txt"
    version.write_text(VERSION_150)
    script = tmp_path / "check.py"
    script.write_text(PY2_SCRIPT)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([str(PY27), str(script), str(AGENT), str(info), str(version)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["py"] == [2, 7]
    assert out["info"]["storage_driver"] == "aufs"
    assert out["info"]["backing_filesystem"] == "extfs"
    assert out["info"]["root_dir"] == "/var/lib/docker"
    assert out["info"]["warnings"] == ["No swap limit support"]
    assert out["info"]["mem_total_bytes"] == round(1.955 * 1024**3)
    assert out["version"]["server_version"] == "1.5.0"
    assert out["version"]["git_commit"] == "a8a31ef"
    assert out["size"] == 107_400_000_000
    assert out["redhat"]["id"] == "centos" and out["redhat"]["version"] == "6.6"


def test_version_flag_under_python27() -> None:
    if not PY27.exists():
        pytest.skip(f"python2.7 not found at {PY27}; install it with `pyenv install 2.7.18`")
    proc = subprocess.run([str(PY27), str(AGENT), "--version"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().count(".") == 2
