"""A broken workflow file for every diagnostic code, with the exact places it reports.

Each file in cases/ ends with ``# expect: CODE LINE:COLUMN`` lines: loading it must
give exactly those diagnostics, no more and no fewer.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from definition_helpers import CASES, diagnostics_of

from dk2020flow.definition.diagnostics import CODES

EXPECT = re.compile(r"^# expect: (DF\d{3}) (\d+):(\d+)$", re.MULTILINE)
LINE_FORMAT = re.compile(r"^(?P<file>.+?):(\d+):(\d+): (DF\d{3}) (warning: )?\S.*$")

# Codes that need bytes, folders or templates a YAML case file cannot hold: see test_loader.py.
CODES_TESTED_ELSEWHERE = {
    "DF001",
    "DF002",
    "DF003",
    "DF004",
    "DF005",
    "DF006",
    "DF007",
    "DF008",
    "DF009",
    "DF061",
    "DF062",
}


def expected(path: Path) -> list[tuple[str, int, int]]:
    found = [(code, int(line), int(col)) for code, line, col in EXPECT.findall(path.read_text())]
    assert found, f"{path.name} has no # expect: lines"
    return sorted(found)


CASE_FILES = sorted(CASES.glob("*.yaml"))


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_case_gives_exactly_the_expected_diagnostics(path: Path) -> None:
    diagnostics = diagnostics_of(path)
    assert sorted((d.code, d.line, d.column) for d in diagnostics) == expected(path)
    code = path.stem.split("_")[0]
    assert code in {d.code for d in diagnostics}
    for diagnostic in diagnostics:
        assert diagnostic.file == str(path)
        assert LINE_FORMAT.match(str(diagnostic)), str(diagnostic)
        assert diagnostic.hint, f"{diagnostic} has no hint"


def test_every_code_has_a_broken_file_or_an_inline_test() -> None:
    in_files = {p.stem.split("_")[0] for p in CASE_FILES}
    assert set(CODES) == in_files | CODES_TESTED_ELSEWHERE
    assert not in_files & CODES_TESTED_ELSEWHERE


def test_every_code_is_documented() -> None:
    from definition_helpers import REPO

    docs = (REPO / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    for code, title in CODES.items():
        assert f"## {code}" in docs, f"{code} ({title}) is missing from docs/diagnostics.md"
