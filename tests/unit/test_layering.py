"""The import graph of `callout` runs one way (README "How the code is laid out").

Every import counts: module level, inside functions, and under ``TYPE_CHECKING`` — a lazy
import that hides an upward dependency is still one.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import callout
from tests.importgraph import imported_names

ROOT = Path(callout.__file__).parent

# Bottom to top. A module may import its own package and any package on a lower line; packages
# on one line are independent of each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("decision",),
    ("errors",),
    ("protocol",),
    ("credentials", "secretfiles", "serverconf"),
    ("settings",),
    ("policy",),
    ("backends",),
    ("observability",),
    ("state",),
    ("sessions",),
    ("service",),
    ("tools",),
    ("devserver", "testing"),
    ("bench",),
    ("cli",),
    ("__main__",),
)
LEVEL = {unit: level for level, units in enumerate(LAYERS) for unit in units}

# Upward or sideways imports still being removed: (importing unit, imported unit). This list
# only shrinks.
KNOWN: frozenset[tuple[str, str]] = frozenset()
# Import cycles still being broken (sorted module lists). This list only shrinks.
KNOWN_CYCLES: list[list[str]] = []


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in ROOT.rglob("*.py")}
    return {
        name: {
            target
            for target in imported_names(_module_name(path), path)
            if target in modules and target != name
        }
        for name, path in modules.items()
    }


def _unit(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def test_every_unit_has_a_layer() -> None:
    units = {_unit(module) for module in _graph()} - {"__init__", "examples"}
    assert units <= set(LEVEL), f"add these to LAYERS: {sorted(units - set(LEVEL))}"


def test_imports_only_go_down() -> None:
    wrong = set()
    for module, targets in _graph().items():
        for target in targets:
            mine, theirs = _unit(module), _unit(target)
            if "__init__" in (mine, theirs) or mine == theirs:
                continue
            if LEVEL[theirs] >= LEVEL[mine]:
                wrong.add((mine, theirs, module, target))
    found = {(mine, theirs) for mine, theirs, _, _ in wrong}
    new = sorted(item for item in wrong if (item[0], item[1]) not in KNOWN)
    assert not new, "imports that do not go down: " + "; ".join(f"{m} -> {t}" for *_, m, t in new)
    assert not KNOWN - found, f"fixed, remove from KNOWN: {sorted(KNOWN - found)}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = itertools.count()
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = next(counter)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = next(counter)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_itself_round_a_cycle() -> None:
    assert sorted(_cycles(_graph())) == KNOWN_CYCLES


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_the_readme_states_the_same_layering() -> None:
    """README "How the code is laid out" gives the layers in one line; it must be these."""
    readme = (ROOT.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## How the code is laid out", 1)[1]
    line = next(span for span in section.split("`") if "→" in span)
    stated = [tuple(unit.strip() for unit in layer.split(",")) for layer in line.split("→")]
    assert stated == [layer for layer in LAYERS if layer != ("__main__",)]
