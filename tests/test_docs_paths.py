"""No drift between the text and the tree: every repository path cited in README.md, docs/,
the package's docstrings and comments, and the tests exists, every ``ncanalyze.x.y`` named
there can be imported (or is an attribute of an importable module), and every relative
markdown link of the docs points at a file."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Where a cited path must exist: the repository's top-level folders a text may point into.
PATH = re.compile(r"(?<![\w/.\-])((?:ncanalyze|tests|docs|examples|benchmarks)/[\w./\-]*\w)")
DOTTED = re.compile(r"(?<![\w./\-])(ncanalyze(?:\.[A-Za-z_]\w*)+)")
LINK = re.compile(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)")


def _texts() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    files += sorted((ROOT / "ncanalyze").rglob("*.py")) + sorted((ROOT / "tests").rglob("*.py"))
    return [f for f in files if f != Path(__file__).resolve()]  # its examples are made up


def _cited_paths(text: str) -> set[str]:
    found = set()
    for m in PATH.finditer(text):
        path = m.group(1).rstrip(".")
        if any(ch in path for ch in "*<{"):  # a pattern or a placeholder, not a path
            continue
        found.add(path)
    return found


def _module_file(parts: list[str]) -> Path | None:
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _names(body) -> dict[str, ast.AST]:
    """Names a module or class body defines (functions, classes, assignments, imports)."""
    out: dict[str, ast.AST] = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        out[n.id] = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                out[(alias.asname or alias.name).split(".")[0]] = node
        elif isinstance(node, (ast.If, ast.Try)):
            out.update(_names(node.body))
    return out


def _resolves(dotted: str) -> bool:
    """``dotted`` names a module of the package, or a name its source defines (read with
    :mod:`ast`: nothing is imported, so no optional dependency is needed)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        file = _module_file(parts[:cut])
        if file is None:
            continue
        tree = ast.parse(file.read_text(encoding="utf-8"))
        body = tree.body
        lazy = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                and isinstance(n.value, str)} if "__getattr__" in _names(body) else set()
        inherits = False
        for name in parts[cut:]:
            defined = _names(body)
            if name.startswith("__") or inherits and name not in defined:
                return True  # a module dunder, or a member a base class may define
            if name in lazy and body is tree.body:  # a module __getattr__ serves it by name
                return True
            if name not in defined:
                return _module_file(parts[:cut] + [name]) is not None and name == parts[-1]
            node = defined[name]
            if not isinstance(node, ast.ClassDef):
                return True  # an attribute of a function or value: not checked further
            body, inherits = node.body, bool(node.bases)
        return True
    return False


def test_every_cited_path_exists():
    missing = []
    for file in _texts():
        text = file.read_text(encoding="utf-8")
        for path in _cited_paths(text):
            if not (ROOT / path).exists():
                missing.append(f"{file.relative_to(ROOT)}: {path}")
    assert not missing, "cited paths that do not exist:\n" + "\n".join(sorted(missing))


def test_every_named_module_or_attribute_exists():
    missing = []
    for file in _texts():
        for dotted in set(DOTTED.findall(file.read_text(encoding="utf-8"))):
            if not dotted.endswith((".h5", ".py", ".md")) and not _resolves(dotted):
                missing.append(f"{file.relative_to(ROOT)}: {dotted}")
    assert not missing, "named modules/attributes that do not exist:\n" + "\n".join(
        sorted(missing))


def test_markdown_links_point_at_files():
    missing = []
    for file in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in LINK.findall(file.read_text(encoding="utf-8")):
            if not (file.parent / target).exists():
                missing.append(f"{file.relative_to(ROOT)}: {target}")
    assert not missing, "\n".join(missing)


def test_the_checker_finds_a_missing_path(tmp_path):
    gone = "tests/test_gone.py"
    assert _cited_paths(f"see `{gone}` and ncanalyze/io/reader.py.") == {
        gone, "ncanalyze/io/reader.py"}
    assert not _resolves("ncanalyze.io.run") and _resolves("ncanalyze.io.reader.Run")
    assert not _resolves("ncanalyze.analysis.snr_dynamics") and _resolves("ncanalyze.snr")
