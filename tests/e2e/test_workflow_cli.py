"""``dk2020flow workflow …`` as a process owner runs it: the installed command, in a subprocess."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / "workflows").glob("*.yaml"))
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<column>\d+): (?P<code>DF\d{3}) \S.*$")


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    command = shutil.which("dk2020flow")
    assert command, "the dk2020flow command is not installed (pip install -e .)"
    return subprocess.run(
        [command, "workflow", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_shipped_workflows_validate_clean() -> None:
    result = run("validate", *[str(p.relative_to(REPO)) for p in WORKFLOWS])
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for path in WORKFLOWS:
        assert f"{path.relative_to(REPO)}: ok" in result.stdout
    assert "0 errors" in result.stderr


BROKEN = """workflow: broken
version: "1"
title: Broken
roles:
  clerk: {receives_mail: true}
states:
  open: {initial: true}
  lost: {}
  done: {terminal: true}
transitions:
  - {trigger: finish, from: open, to: dnoe, roles: [clerk, boss]}
"""


def test_broken_file_gives_one_located_line_per_problem_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    result = run("validate", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    problems = [LINE.match(line) for line in result.stderr.splitlines()[:-1]]
    assert all(problems), result.stderr
    found = {(m["code"], int(m["line"]), int(m["column"])) for m in problems if m}
    assert found == {
        ("DF029", 8, 3),  # lost: unreachable
        ("DF030", 8, 3),  # lost: no way out
        ("DF030", 7, 3),  # open: its only transition goes to an unknown state
        ("DF029", 9, 3),  # done: unreachable, as the only way in names `dnoe`
        ("DF021", 11, 39),  # dnoe
        ("DF022", 11, 60),  # boss
    }
    assert all(m["file"] == str(path) for m in problems if m)
    assert result.stderr.splitlines()[-1] == "1 file checked: 6 errors, 0 warnings"


@pytest.mark.parametrize(
    "content", [b"", b"\x00\x01\x02binary", b"- just\n- a list\n", b"a: 1\na: 2\n", b"x: [\n"]
)
def test_unreadable_inputs_get_a_located_line_never_a_traceback(
    content: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    result = run("validate", str(path), str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 3 and all(LINE.match(line) for line in lines[:2]), result.stderr


def test_json_output(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    result = run("validate", "--json", str(path), "workflows/status_reports.yaml")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["errors"] == 6
    broken, valid = report["files"]
    assert not broken["valid"] and {d["code"] for d in broken["diagnostics"]} >= {"DF021"}
    assert valid["valid"] and len(valid["content_hash"]) == 64


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_graph_contains_every_state(path: Path, fmt: str) -> None:
    from dk2020flow.definition import load_workflow

    result = run("graph", str(path), "--format", fmt)
    assert result.returncode == 0, result.stderr
    for state in load_workflow(path, check_templates=False).workflow.states:
        assert re.search(rf"\b{state}\b", result.stdout), state


def test_graph_of_a_broken_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    result = run("graph", str(path))
    assert result.returncode == 2 and not result.stdout
    assert "DF021" in result.stderr


def test_schema_prints_the_shipped_schema() -> None:
    result = run("schema")
    assert result.returncode == 0
    shipped = REPO / "src" / "dk2020flow" / "schema" / "workflow.schema.json"
    assert result.stdout == shipped.read_text(encoding="utf-8")
