"""The probe agent stays stdlib-only and runs on Python 2.6 through 3.13: every module of the
package, and the one .pyz the controller ships."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.agent import AGENT_VERSION
from tests.agenthelp import agent_command, agent_files, built_agent, need_py27, run_py27, sample

VENV_BIN = Path(sys.executable).parent

# what the agent may import: modules that exist in every stdlib from 2.6 to 3.13
STDLIB_26_313 = {
    "binascii",
    "errno",
    "hashlib",
    "json",
    "optparse",
    "os",
    "platform",
    "re",
    "shutil",
    "signal",
    "socket",
    "struct",
    "subprocess",
    "sys",
    "tarfile",
    "tempfile",
    "time",
    "traceback",
    "stat",
    "pwd",
    "__future__",
}


def _vermin() -> str:
    for cand in (VENV_BIN / "vermin", Path(sys.prefix) / "bin" / "vermin"):
        if cand.exists():
            return str(cand)
    pytest.skip("vermin is not installed in this venv (pip install -e '.[dev]')")
    raise AssertionError  # unreachable


def _trees() -> list[tuple[Path, ast.Module]]:
    files = agent_files()
    assert len(files) >= 20, files  # the package, not one file
    return [(p, ast.parse(p.read_text(encoding="utf-8"))) for p in files]


def test_vermin_reports_no_violations_for_26_and_30() -> None:
    # the modules the zip ships (not hostpaths.pyi, the controller's typed view of one)
    proc = subprocess.run(
        [
            _vermin(),
            "--no-tips",
            "-t=2.6-",
            "-t=3.0-",
            "--violations",
            *(str(p) for p in agent_files()),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Minimum required versions: 2.6, 3.0" in proc.stdout or "No known violations" in (
        proc.stdout
    ), proc.stdout


def test_agent_imports_only_old_stdlib_modules_and_itself() -> None:
    for path, tree in _trees():
        imported: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level == 1:
                    continue  # a sibling module of the package
                assert node.level == 0 and node.module, (path.name, ast.dump(node))
                imported.add(node.module.split(".")[0])
        assert imported <= STDLIB_26_313, (path.name, sorted(imported - STDLIB_26_313))


def test_agent_modules_import_each_other_without_a_cycle() -> None:
    """Relative imports only (they work from the folder and from the zip), and no cycle:
    a depth-first walk of the `from .x import` graph never meets a module on its path."""
    graph: dict[str, set[str]] = {}
    for path, tree in _trees():
        graph[path.stem] = {
            n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1
        }
        assert "" not in graph[path.stem], f"{path.name}: `from . import` hides a dependency"
    for deps in graph.values():
        assert deps <= set(graph), deps - set(graph)
    done: set[str] = set()

    def visit(mod: str, path: tuple[str, ...]) -> None:
        assert mod not in path, "import cycle: " + " -> ".join((*path, mod))
        if mod in done:
            return
        for dep in sorted(graph[mod]):
            visit(dep, (*path, mod))
        done.add(mod)

    for mod in sorted(graph):
        visit(mod, ())


def test_agent_modules_are_small() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in agent_files()}
    assert max(sizes.values()) <= 700, sizes


def test_agent_functions_are_short() -> None:
    long = {
        f"{path.stem}.{node.name}": node.end_lineno - node.lineno + 1
        for path, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > 80
    }
    assert long == {}, long


def test_agent_modules_share_no_private_names() -> None:
    """What one module takes from another is public: a `_name` stays in its module."""
    private = [
        f"{path.name}: from .{node.module} import {alias.name}"
        for path, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 1
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert private == []


def test_agent_file_headers_and_version_constant() -> None:
    consts: dict[str, object] = {}
    for path, tree in _trees():
        text = path.read_text(encoding="utf-8")
        assert text.splitlines()[0] == "# -*- coding: utf-8 -*-", path.name
        assert ast.get_docstring(tree), path.name
        consts.update(
            {
                t.id: n.value.value
                for n in tree.body
                if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
                for t in n.targets
                if isinstance(t, ast.Name)
            }
        )
    assert str(consts["AGENT_VERSION"]).count(".") == 2
    assert consts["SCHEMA_VERSION"] == 1


def test_agent_has_no_fstrings_or_set_literals() -> None:
    for path, tree in _trees():
        bad = [
            type(n).__name__
            for n in ast.walk(tree)
            if isinstance(n, (ast.JoinedStr, ast.Set, ast.SetComp, ast.DictComp))
        ]
        assert bad == [], path.name


def test_version_flag_under_python3() -> None:
    proc = subprocess.run(
        agent_command(sys.executable, "--version"), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == AGENT_VERSION


PY2_SCRIPT = r"""
import json
info = pa.parse_docker_info(open(sys.argv[3]).read())
version = pa.parse_docker_version(open(sys.argv[4]).read())
print(json.dumps({"info": info, "version": version, "size": pa.parse_size("107.4 GB"),
                  "redhat": pa.parse_redhat_release("CentOS release 6.6 (Final)\n"),
                  "py": list(sys.version_info[:2]), "from": pa.parse_size.__module__}))
"""


def test_parsers_run_under_python27(tmp_path: Path) -> None:
    info = tmp_path / "info.txt"
    info.write_text(sample("docker-info-1.5.0-ubuntu-aufs.txt"))
    version = tmp_path / "version.txt"
    version.write_text(sample("docker-version-1.5.0.txt"))
    out = run_py27(tmp_path, PY2_SCRIPT, str(info), str(version))
    assert out["py"] == [2, 7]
    assert out["from"] == "labctl_agent.text"  # from the built .pyz
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
    proc = subprocess.run(
        agent_command(need_py27(), "--version"), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == AGENT_VERSION
    assert built_agent().name.startswith("probe_agent-")
