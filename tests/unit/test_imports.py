"""labctl's modules import one another one way: no cycle, not even through a function-level
import or one under TYPE_CHECKING (read from the source with ast, nothing is imported)."""

from __future__ import annotations

import ast
from pathlib import Path

import labctl

ROOT = Path(labctl.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The labctl modules that ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, mod] if mod else base)
            targets = [mod + "." + a.name for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_in_labctl() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert "labctl.report.model" in graph["labctl.report.build"]  # the reader sees imports
    assert _cycles(graph) == []


def _package(name: str) -> str:
    """``labctl.drivers.qemu.vm`` -> ``labctl.drivers``; a top-level module is its own."""
    return ".".join(name.split(".")[:2])


def test_no_import_cycle_between_packages() -> None:
    """Packages lean one way too (drivers on engines, never back; the report stage on results,
    never the other way), lazy and type-only imports counted."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = {_package(d) for d in _imports(name, path, modules)} - {_package(name)}
        graph.setdefault(_package(name), set()).update(deps)
    assert "labctl.engines" in graph["labctl.drivers"]
    assert _cycles(graph) == []


#: the report stage's modules, lowest first: each may import only those before it
REPORT_LAYERS = (
    "runs", "formats", "classify", "model", "samekernel", "matrix", "tables", "frame",
    "baseline.model", "baseline.load", "baseline.score", "baseline.ruleset", "baseline.byhand",
    "baseline.claims", "baseline.pair", "baseline", "compare",
    "plots", "render",
    "build", "text",
)  # fmt: skip


def test_the_report_stage_layers_point_down() -> None:
    modules = _modules()
    order = [f"labctl.report.{m}" for m in REPORT_LAYERS]
    for i, name in enumerate(order):
        inside = {
            d for d in _imports(name, modules[name], modules) if d.startswith("labctl.report.")
        }
        assert inside <= set(order[:i]), (name, sorted(inside - set(order[:i])))


def test_modules_and_functions_stay_readable_in_one_sitting() -> None:
    """No module over 700 lines, no function over 80 (molecule's longest is 77)."""
    too_long = []
    for name, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > 700:
            too_long.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 80:
                    too_long.append(f"{name}.{node.name}: {length} lines")
    assert too_long == []
