"""The package's shape: no import cycles, a light `--help`, every subpackage shipped."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "lm_eval", "numpy")


def _modules() -> dict[str, Path]:
    """Every module of the installed package by dotted name; tasks/ is evalsuite.tasks."""
    found = {}
    for base, prefix in ((ROOT / "evalsuite", "evalsuite"), (ROOT / "tasks", "evalsuite.tasks")):
        for path in base.rglob("*.py"):
            parts = path.relative_to(base).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((prefix, *parts))] = path
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the evalsuite modules it imports anywhere in its text (top level, in functions, under
    TYPE_CHECKING: a cycle of any of them is a cycle in the design)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve against this module's package
                    pkg = name.split(".") if is_package else name.split(".")[:-1]
                    base = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                # `from pkg import mod` imports the module pkg.mod; `from mod import name` the module mod
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, three colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_among_evalsuite_modules() -> None:
    graph = import_graph(_modules())
    assert len(graph) > 40 and graph["evalsuite.pipeline.run"], "the graph must hold the real package"
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_finder_sees_a_cycle_through_a_function_level_import() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


# The folders ("rooms") of evalsuite from the bottom up: a module may import modules of its own room and
# of the rooms of lower layers, never of its layer's other rooms or of a layer above (README, "Architecture").
# tasks/ (shipped as evalsuite.tasks) holds the benchmarks' hook modules: one room with benchmarks/.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("<root>", "errors"),  # evalsuite's version, the error classes
    ("naming", "paths", "fsio", "cache", "precision", "choices"),  # leaves: small helpers and data types
    ("hub", "checks"),
    ("benchmarks",),
    ("scoring",),
    ("results",),
    ("data", "moe"),
    ("engine",),
    ("card", "resume"),
    ("pipeline",),
    ("fidelity", "demo"),
    ("compare",),
    ("merge",),
    ("cli",),
)
LAYER_OF = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}


def room(module: str) -> str:
    """evalsuite.engine.fast.lm -> engine; evalsuite.scoring -> scoring; evalsuite -> <root>."""
    parts = module.split(".")
    if len(parts) == 1:
        return "<root>"
    return "benchmarks" if parts[1] == "tasks" else parts[1]


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Every import of a module in another room that is not in a lower layer."""
    return sorted(
        (a, b)
        for a, targets in graph.items()
        for b in targets
        if room(a) != room(b) and LAYER_OF[room(b)] >= LAYER_OF[room(a)]
    )


def test_every_room_has_a_place_in_the_layers() -> None:
    rooms = {room(m) for m in _modules()}
    assert rooms == set(LAYER_OF), f"place these in LAYERS: {sorted(rooms - set(LAYER_OF))}"


def test_a_folder_imports_only_folders_below_it() -> None:
    graph = import_graph(_modules())
    assert upward_imports(graph) == []


def test_an_injected_upward_import_is_found() -> None:
    graph = import_graph(_modules())
    graph["evalsuite.results.types"].add("evalsuite.pipeline.run")  # data types reaching up to the pipeline
    graph["evalsuite.card.update"].add("evalsuite.resume.store")  # a room of the same layer
    assert upward_imports(graph) == [
        ("evalsuite.card.update", "evalsuite.resume.store"),
        ("evalsuite.results.types", "evalsuite.pipeline.run"),
    ]


@pytest.mark.parametrize(
    "command", [[], ["run"], ["data", "pull"], ["card"], ["compare"], ["router-stats"], ["verify"], ["merge"]]
)
def test_help_imports_no_heavy_library(command: list[str]) -> None:
    code = (
        "import json, sys\n"
        "from evalsuite.cli.main import main\n"
        "try:\n"
        f"    main({command + ['--help']!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "usage: evalsuite" in done.stdout
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_every_package_under_evalsuite_ships() -> None:
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    present = {"evalsuite.tasks"} | {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "evalsuite").rglob("__init__.py")
    }
    assert declared == present
