"""The layout holds: imports point one way, no private name crosses a sub-package, `import epiformer` stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "epiformer"
#: Layers, lowest first: a module may import from its own layer or a lower one, never a higher one.
LAYERS = {"<root>": 0, "io": 1, "datasets": 2, "pp": 2, "models": 3, "tl": 4, "pl": 5}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """Every import of the file, at any depth (function-level ones included): (module, names, line)."""
    tree = ast.parse(path.read_text())
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((module, [a.name for a in node.names], node.lineno))
    return found


def _subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and not parts[1].startswith("_") else "<root>"


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for module, names, _ in _imports(path):
            if not module.startswith("epiformer"):
                continue
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules] or [module]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def _is_ancestor(package: str, module: str) -> bool:
    return module.startswith(package + ".")


def test_no_import_cycle():
    graph = _graph()
    # a package's __init__ re-exporting its own modules is not a dependency of those modules on the package
    edges = {m: {t for t in ts if not _is_ancestor(t, m) or not t.count(".") < m.count(".")} for m, ts in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_dependencies_point_one_way_and_no_private_name_crosses():
    problems = []
    for path in SRC.rglob("*.py"):
        name = _module_name(path)
        own = _subpackage(name)
        for module, names, line in _imports(path):
            if not module.startswith("epiformer") or module == "epiformer":
                continue
            other = _subpackage(module)
            where = f"{path.relative_to(SRC.parent)}:{line} imports {module}"
            if LAYERS[other] > LAYERS[own] or (LAYERS[other] == LAYERS[own] and other != own):
                problems.append(f"{where} ({own} may not depend on {other})")
            if other != own:
                # package-root helper modules (`epiformer._utils`, ...) are shared, but not their private names
                private = [] if other == "<root>" else [p for p in module.split(".")[2:] if p.startswith("_")]
                private += [n for n in names if n.startswith("_")]
                if private:
                    problems.append(f"{where}: private {private} of another sub-package")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("heavy", ["torch", "lightning", "scvi"])
def test_import_is_light(heavy):
    code = f"import sys, epiformer; print({heavy!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", f"`import epiformer` imported {heavy}"
