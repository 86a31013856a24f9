"""Without Chromium the browser test skips on a developer's machine and fails in CI
(``CI=true`` or ``DK2020FLOW_REQUIRE_BROWSER=1``, tests/conftest.py's ``chromium`` fixture)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parents[1]
NEEDS_CHROMIUM = "def test_browser(chromium):\n    assert chromium\n"


@pytest.mark.parametrize(
    ("extra", "outcome"),
    [
        ({}, "1 skipped"),
        ({"DK2020FLOW_REQUIRE_BROWSER": "1"}, "1 error"),
        ({"CI": "true"}, "1 error"),
    ],
)
def test_a_missing_chromium_fails_in_ci(
    tmp_path: Path, extra: dict[str, str], outcome: str
) -> None:
    (tmp_path / "test_needs_chromium.py").write_text(NEEDS_CHROMIUM, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "DK2020FLOW_REQUIRE_BROWSER")}
    env.update(extra, PATH=str(Path(sys.executable).parent), PYTHONPATH=str(TESTS))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "conftest",
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(tmp_path),
            "test_needs_chromium.py",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    out = done.stdout + done.stderr
    assert outcome in out, out
    if extra:
        assert "chromium is not installed" in out, out
