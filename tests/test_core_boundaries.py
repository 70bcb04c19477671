"""The generic core knows no family: only the registry names them (as strings), so adding a family
touches its own package, the registry line and its card paragraph, never the core."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "longtasks"
CORE = sorted(
    path
    for path in PACKAGE.rglob("*.py")
    if "families" not in path.relative_to(PACKAGE).parts and path.name != "registry.py"
)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_modules_import_no_family(path):
    family_imports = sorted(m for m in imported_modules(path) if m.startswith("longtasks.families"))
    assert not family_imports, f"{path.relative_to(PACKAGE)} imports {family_imports}"


def test_the_core_is_what_this_test_scans():
    names = {str(p.relative_to(PACKAGE)) for p in CORE}
    assert {"generation.py", "fit.py", "sample.py", "lm_eval_tasks/dataset.py", "hub/card.py"} <= names
