"""The package's walls: no import cycles, the lab and the front ends above the core, one windowing seam.

Imports are read with ``ast`` from the source (function-level imports included), so a lazy import
cannot hide a cycle or an arrow that runs back up.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "semanticodec_rt"

# Layers, bottom to top; a module may import its own layer or lower ones only.
LAYERS = [
    {"version", "config", "timing", "ops"},
    {"audio", "encoder", "bitstream"},
    {"decoder"},
    {"windowing"},
    {"codec"},
    {"weights"},
    {"api", "__init__"},
    {"live", "link"},
    {"lab"},
    {"cli", "__main__"},
]


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """module -> the package modules it imports (``from . import x`` resolved to ``pkg.x`` when
    that is a module)."""
    files = {_module(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                for alias in node.names:
                    sub = f"{src}.{alias.name}"
                    deps.add(sub if sub in files else src)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[mod] = {d for d in deps if d in files and d != mod}
    return graph


def _layer(mod: str) -> int:
    top = mod.split(".")[1] if "." in mod else "__init__"
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{mod}: top-level name {top!r} is in no layer of this test")


def test_no_import_cycles():
    graph = _imports()
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d] if d in stack else [m, d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_no_arrow_runs_back_up():
    bad = [f"{m} -> {d}" for m, deps in _imports().items() for d in deps
           # a package's face may re-export what its own modules define
           if _layer(d) > _layer(m) and not (m == "semanticodec_rt" and _layer(d) <= _layer("semanticodec_rt.api"))]
    assert not bad, "imports from a lower layer up: " + "; ".join(sorted(bad))


def test_only_the_windowing_asks_the_regime():
    # the rt grid's section is read by windowing/ only; the speech route's sizes are read by its
    # own networks too, but whether a config *is* the speech route is asked in windowing/ only
    pattern = re.compile(r"stream is None|stream is not None|\.cfg\.stream\b|\bcfg\.stream\b"
                         r"|speech is None|speech is not None")
    hits = [f"{p.relative_to(REPO)}:{i}" for p in PKG.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if pattern.search(line) and "windowing" not in p.relative_to(PKG).parts]
    assert not hits, hits


def test_front_ends_do_not_import_the_command_line():
    users = list((REPO / "examples").glob("*.py")) + [
        p for p in PKG.rglob("*.py") if "cli" not in p.relative_to(PKG).parts and p.name != "__main__.py"]
    hits = [str(p.relative_to(REPO)) for p in users
            if re.search(r"semanticodec_rt\.cli\b|from \.+cli\b", p.read_text())]
    assert not hits, hits
