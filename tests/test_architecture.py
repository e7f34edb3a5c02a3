"""The import contract: layers point one way and no module imports itself round a cycle.

cli → orchestration (api, analysis, passes, epoch, tasks, gates, parallel, plots, workflow helpers)
    → {io, core} → backend; errors is importable from everywhere.

The graph is read from the source with :mod:`ast`, lazy (function-level) imports included,
so a cycle hidden behind a deferred import is still a cycle; a module that imports by name
(``importlib.import_module``) is taken to import every module its string constants name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ncanalyze"

# Third-party modules each layer may not import.  Exceptions carry their reason.
ONLY_IN = {
    "h5py": ("ncanalyze.io",),
    "cupy": ("ncanalyze.backend",),
    # capture and recorder hook a torch model (ranks: its torch.distributed group) and convert
    # reads .pt dumps (dumps, one file): torch as the *training framework*, not as a compute
    # backend.
    "torch": ("ncanalyze.backend", "ncanalyze.capture", "ncanalyze.recorder", "ncanalyze.ranks",
              "ncanalyze.convert", "ncanalyze.dumps", "ncanalyze.integrations"),
    # Training-framework callbacks: optional modules a user imports, nothing else does.
    "transformers": ("ncanalyze.integrations.hf",),
    "lightning": ("ncanalyze.integrations.lightning",),
    "pytorch_lightning": ("ncanalyze.integrations.lightning",),
    "typer": ("ncanalyze.cli",),
    "rich": ("ncanalyze.cli",),
    "matplotlib": ("ncanalyze.plots",),
}

# Internal prefixes each layer may import (besides itself and ncanalyze.errors).
MAY_IMPORT = {
    "ncanalyze.backend": (),
    # limits: the size limits of a run (constants, imports nothing), shared by the reader,
    # the writers and the API's checks of in-memory labels.
    "ncanalyze.limits": (),
    "ncanalyze.core": ("ncanalyze.backend", "ncanalyze.limits"),
    # atomic and lock are the file-system rules every writer shares (output paths, the
    # writer lock); they import only errors.
    "ncanalyze.io": ("ncanalyze.backend", "ncanalyze.atomic", "ncanalyze.lock", "ncanalyze.limits"),
    "ncanalyze.atomic": (),
    "ncanalyze.lock": ("ncanalyze.atomic",),
    "ncanalyze._version": (),
    # plots draw from results (and may evaluate a fitted law with core's pure math);
    # they never open a run or run an analysis themselves.
    "ncanalyze.plots": ("ncanalyze.results", "ncanalyze.atomic",
                        "ncanalyze.core"),
}


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(node: ast.ImportFrom, current: str, is_package: bool, modules: set[str]) -> list[str]:
    """Absolute names of the modules an ``ImportFrom`` node imports."""
    if node.level:
        base = current.split(".")
        base = base if is_package else base[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    targets = []
    for alias in node.names:
        candidate = f"{prefix}.{alias.name}"
        targets.append(candidate if candidate in modules else prefix)
    return targets


def import_graph(root: Path) -> dict[str, set[str]]:
    """Map each module of the package at ``root`` to every module name it imports."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    modules = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        edges: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        by_name = any(isinstance(n, ast.Attribute) and n.attr == "import_module"
                      or isinstance(n, ast.Name) and n.id == "import_module"
                      for n in ast.walk(tree))
        for node in ast.walk(tree):
            if by_name and isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                    node.value in modules or node.value.split(".")[0] in ONLY_IN):
                edges.add(node.value)
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
                edges.update(resolve(node, name, path.name == "__init__.py", modules))
        graph[name] = edges
    return graph


def internal_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
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
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that breaks the layer rules, as readable lines."""
    bad = []
    for module, edges in sorted(graph.items()):
        for target in sorted(edges):
            top = target.split(".")[0]
            if top in ONLY_IN and not module.startswith(ONLY_IN[top]):
                bad.append(f"{module} imports {target} (only {', '.join(ONLY_IN[top])} may)")
            if not target.startswith("ncanalyze") or target == "ncanalyze.errors":
                continue
            if target.startswith("ncanalyze.cli") and not module.startswith(
                    ("ncanalyze.cli", "ncanalyze.__main__")):
                bad.append(f"{module} imports {target} (nothing imports the CLI)")
            for layer, allowed in MAY_IMPORT.items():
                if module.startswith(layer) and not target.startswith((layer,) + allowed):
                    bad.append(f"{module} imports {target} ({layer} may import only "
                               f"{', '.join((layer,) + allowed) or 'itself'})")
    return bad


def test_no_import_cycles():
    assert internal_cycles(import_graph(PACKAGE)) == []


def test_layers_point_one_way():
    assert violations(import_graph(PACKAGE)) == []


@pytest.fixture
def toy_package(tmp_path):
    root = tmp_path / "ncanalyze"
    for sub in ("", "core", "cli"):
        (root / sub).mkdir(exist_ok=True)
        (root / sub / "__init__.py").write_text("")
    return root


def test_the_contract_catches_a_lazy_cycle(toy_package):
    (toy_package / "analysis.py").write_text("from .parallel import run\n")
    (toy_package / "parallel.py").write_text("def run():\n    from .analysis import Analysis\n")
    assert internal_cycles(import_graph(toy_package)) == [
        ["ncanalyze.analysis", "ncanalyze.parallel"]]


def test_the_contract_catches_a_package_cycle(toy_package):
    (toy_package / "__init__.py").write_text("__version__ = '1'\nfrom .analysis import A\n")
    (toy_package / "analysis.py").write_text("from . import __version__\nA = 1\n")
    assert internal_cycles(import_graph(toy_package)) == [["ncanalyze", "ncanalyze.analysis"]]


def test_the_contract_catches_layer_breaks(toy_package):
    (toy_package / "core" / "stats.py").write_text("import h5py\nfrom ..cli import app\n")
    lines = violations(import_graph(toy_package))
    assert any("ncanalyze.core.stats imports h5py" in line for line in lines)
    assert any("nothing imports the CLI" in line for line in lines)
    assert any("ncanalyze.core may import only" in line for line in lines)


def test_the_rules_name_only_modules_that_exist():
    """A rule about a module that does not exist protects nothing (and hides a rename)."""
    graph = import_graph(PACKAGE)
    named = [*MAY_IMPORT, *(m for allowed in MAY_IMPORT.values() for m in allowed),
             *(m for owners in ONLY_IN.values() for m in owners)]
    missing = [m for m in named if not any(g == m or g.startswith(m + ".") for g in graph)]
    assert missing == []


def test_imports_by_name_are_followed(toy_package):
    (toy_package / "core" / "stats.py").write_text(
        "import importlib\n\ndef f():\n    return importlib.import_module('torch')\n")
    (toy_package / "__init__.py").write_text(
        "_LAZY = {'x': ('ncanalyze.cli', 'app')}\n"
        "def __getattr__(n):\n    import importlib\n"
        "    return importlib.import_module(_LAZY[n][0])\n")
    graph = import_graph(toy_package)
    assert "torch" in graph["ncanalyze.core.stats"]
    assert "ncanalyze.cli" in graph["ncanalyze"]
    assert any("ncanalyze.core.stats imports torch" in line for line in violations(graph))


def test_tests_import_builders_not_other_test_modules():
    """Shared builders live in conftest.py, factories.py, reference.py and the child programs
    (cli_worker.py, writer_child.py); a test module imported by others would run its tests
    twice and tie unrelated suites together."""
    tests = PACKAGE.parent / "tests"
    bad = []
    for path in sorted(tests.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            if isinstance(node, ast.ImportFrom) and node.module == "tests":
                names = [f"tests.{a.name}" for a in node.names]
            bad += [f"{path.relative_to(tests)}: {n}" for n in names
                    if n.startswith("tests.") and n.rsplit(".", 1)[-1].startswith("test_")]
    assert bad == []
