"""Tests import their helpers as CI's ``pytest`` finds them: tests/ itself is on sys.path
(it has no ``__init__.py``), the repository root is not. ``from tests.api.served import …``
works under ``python -m pytest`` (the working directory is on sys.path) and fails to collect
under plain ``pytest`` — the README's and CI's command."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_test_imports_the_tests_folder_as_a_package() -> None:
    wrong: list[str] = []
    for path in sorted(TESTS.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            wrong += [
                f"{path.relative_to(TESTS)}:{node.lineno}: {name}"
                for name in names
                if name == "tests" or name.startswith("tests.")
            ]
    assert wrong == [], "import them without `tests.` (e.g. `from api.served import …`)"
