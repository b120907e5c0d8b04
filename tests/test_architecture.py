"""The architecture as a test: glattn's import graph (glattn/ and hydra_plugins/, built with
`ast` from every import statement, those inside functions included) has no cycle and no
edge from a lower layer to a higher one (`glattn.LAYERS`, written out in glattn/__init__.py's
docstring); no module is over 400 lines, no function over 80 and the report package over
3,500 (docs/design.md).

``from x import y`` counts as an import of the submodule ``x.y`` when there is one, else of
``x``; ``import a.b.c`` of the longest prefix that is a module here. Registries and
resolvers named by import path strings (glattn.groups, glattn.resolvers) are not imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import glattn

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("glattn", "hydra_plugins")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
MAX_REPORT_LINES = 3500


def _modules() -> dict[str, Path]:
    out = {}
    for top in PACKAGES:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _known(name: str) -> str | None:
    """The longest prefix of dotted `name` that is one of our modules (None: not ours)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> dict[str, int]:
    """{imported module of ours: first line} for every import statement of `path`."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [_known(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, `level - 1` packages up
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in MODULES else _known(base))
        for target in targets:
            if target and target != module:
                found.setdefault(target, node.lineno)
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}
LAYER_OF_NAME = {name: i for i, (_, names) in enumerate(glattn.LAYERS) for name in names}


def layer(module: str) -> int | None:
    """Index into glattn.LAYERS; None for the package facade (glattn/__init__.py)."""
    parts = module.split(".")
    if parts[0] == "hydra_plugins":
        return LAYER_OF_NAME["hydra_plugins"]
    if len(parts) == 1:
        return None
    return LAYER_OF_NAME.get(parts[1], -1)


def _where(a: str, b: str) -> str:
    return f"{MODULES[a].relative_to(ROOT)}:{GRAPH[a][b]} imports {b}"


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _back_edges(graph: dict[str, dict[str, int]]) -> list[tuple[str, str]]:
    """Edges a -> b with b in a higher layer than a (the facade and unlayered left out)."""
    ranked = {m: layer(m) for m in {*graph, *(b for edges in graph.values() for b in edges)}}
    placed = {m for m, rank in ranked.items() if rank not in (None, -1)}
    return [
        (a, b)
        for a in sorted(graph)
        for b in graph[a]
        if a in placed and b in placed and ranked[b] > ranked[a]
    ]


def test_the_graph_sees_imports_inside_functions_and_resolves_submodules():
    """The builder itself: glattn.contract imports glattn.groups as `from glattn import
    groups` (a submodule), and the local_gpus launcher imports glattn.sweep.lpt inside
    `launch`."""
    assert "glattn.groups" in GRAPH["glattn.contract"]
    launcher = "hydra_plugins.glattn_local_gpus.local_gpus_launcher"
    assert "glattn.sweep.lpt" in GRAPH[launcher]
    assert _known("glattn.sweep.lpt.lpt_jobs") == "glattn.sweep.lpt"


def test_the_checks_find_a_planted_cycle_and_back_edge():
    graph = {
        "glattn.config": {"glattn.job.spec": 1},  # L1 -> L3: a back-edge
        "glattn.job.spec": {"glattn.job.build": 2},
        "glattn.job.build": {"glattn.job.spec": 3},  # same layer, but a cycle
    }
    assert _cycles(graph) == [["glattn.job.build", "glattn.job.spec"]]
    assert _back_edges(graph) == [("glattn.config", "glattn.job.spec")]


def test_every_module_has_a_layer():
    missing = sorted(m for m in MODULES if layer(m) == -1)
    assert not missing, (
        f"modules in no layer of glattn.LAYERS: {missing}; add their top-level name to "
        "LAYERS (and to the prose of glattn/__init__.py's docstring)"
    )


def test_no_import_cycles():
    cycles = _cycles(GRAPH)
    lines = []
    for component in cycles:
        edges = [_where(a, b) for a in component for b in GRAPH[a] if b in component]
        lines.append(" <-> ".join(component) + "\n    " + "\n    ".join(edges))
    assert not cycles, "import cycles:\n  " + "\n  ".join(lines)


def test_no_back_edges():
    back = [
        f"{_where(a, b)} (layer {glattn.LAYERS[layer(a)][0]} -> {glattn.LAYERS[layer(b)][0]})"
        for a, b in _back_edges(GRAPH)
    ]
    assert not back, "imports from a lower layer into a higher one:\n  " + "\n  ".join(back)


def test_nothing_imports_the_package_facade():
    """glattn/__init__.py re-exports from every layer; a module importing it reaches up."""
    users = sorted(_where(a, "glattn") for a in GRAPH if "glattn" in GRAPH[a])
    assert not users, "\n  ".join(["modules importing the glattn facade:", *users])


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_no_module_over_400_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in MODULES.values()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_the_report_package_stays_within_3500_lines():
    files = sorted((ROOT / "glattn" / "report").rglob("*.py"))
    lines = sum(len(p.read_text().splitlines()) for p in files)
    assert files and lines <= MAX_REPORT_LINES, (
        f"glattn/report/ is {lines} lines, over {MAX_REPORT_LINES}: use what pandas, scipy, "
        "statsmodels or MLflow already do, or remove a duplicate"
    )


def test_no_function_over_80_lines():
    long = {}
    for path in MODULES.values():
        for fn in _functions(ast.parse(path.read_text())):
            length = fn.end_lineno - fn.lineno + 1
            if length > MAX_FUNCTION_LINES:
                long[f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name}"] = length
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
