"""No drift between the text and the tree: every repository path cited in README.md, docs/,
the package's docstrings and comments, and the tests exists, every ``ncanalyze.x.y`` named
there can be imported (or is an attribute of an importable module), and every relative
markdown link of the docs points at a file."""

from __future__ import annotations

import importlib
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


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    if "__main__" in parts:  # importing it runs the command line
        return (ROOT / "ncanalyze" / "__main__.py").exists()
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
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
