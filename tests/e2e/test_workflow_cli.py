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


# ----------------------------------------------------------------------------- #15.10: templates


def test_the_template_folder_is_found_however_the_path_is_spelled(tmp_path: Path) -> None:
    # <folder of the workflow file>/../notifications/<workflow name>/: with a relative path,
    # an absolute one, and from another current folder (it once depended on the spelling).
    programme = tmp_path / "programme"
    created = run("init", "covenant", str(programme), cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    workflows = programme / "workflows"
    for cwd, spelled in [
        (workflows, "covenant.yaml"),
        (workflows, str(workflows / "covenant.yaml")),
        (programme, "workflows/covenant.yaml"),
        (programme, str(workflows / "covenant.yaml")),
        (tmp_path, "programme/workflows/covenant.yaml"),
        (programme / "notifications", "../workflows/covenant.yaml"),
        (REPO, str(workflows / "covenant.yaml")),
    ]:
        result = run("validate", spelled, cwd=cwd)
        assert result.returncode == 0, (cwd, spelled, result.stderr)
        assert "8 template files" in result.stdout, (cwd, spelled, result.stdout)
        assert "DF060" not in result.stderr


def test_init_writes_a_valid_programme_and_never_overwrites(tmp_path: Path) -> None:
    result = run("init", "covenant", "new", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    workflow = tmp_path / "new" / "workflows" / "covenant.yaml"
    assert workflow.read_text(encoding="utf-8").startswith(
        "# yaml-language-server: $schema=workflow.schema.json\n"
    )
    assert (tmp_path / "new" / "workflows" / "workflow.schema.json").is_file()
    templates = sorted(p.name for p in (tmp_path / "new" / "notifications" / "covenant").iterdir())
    assert templates == sorted(
        f"{name}.{lang}.jinja"
        for name in ("invitation", "reminder", "overdue", "accepted")
        for lang in ("da", "en")
    )
    valid = run("validate", str(workflow), cwd=tmp_path)
    assert valid.returncode == 0 and "0 errors, 0 warnings" in valid.stderr, valid.stderr
    # Business days in reminders and escalations (#15.8) are what the starter uses.
    assert "before: [{business_days: 5}]" in workflow.read_text(encoding="utf-8")

    workflow.write_text(workflow.read_text(encoding="utf-8") + "# mine\n", encoding="utf-8")
    again = run("init", "covenant", "new", cwd=tmp_path)
    assert again.returncode == 1 and not again.stdout
    assert "already exists" in again.stderr and "nothing was written" in again.stderr
    assert "Traceback" not in again.stderr
    assert workflow.read_text(encoding="utf-8").endswith("# mine\n")


def test_init_assumes_no_country_unless_told(tmp_path: Path) -> None:
    assert run("init", "covenant", "plain", cwd=tmp_path).returncode == 0
    text = (tmp_path / "plain" / "workflows" / "covenant.yaml").read_text(encoding="utf-8")
    assert "\ntimezone: UTC\n" in text
    assert "\ncalendar:" not in text and "#   country: DE" in text  # said, not set
    assert "example.org" in text and "example.dk" not in text
    data = tmp_path / "plain" / "workflows" / "data" / "covenant_organisations.csv"
    rows = data.read_text(encoding="utf-8").splitlines()
    assert rows[0] == "code,name,kind,country,region,language,title_da,title_en"
    assert [row.split(",")[1] for row in rows[1:]] == ["Northtown", "Riverside", "Hillcrest"]
    assert all(row.split(",")[3] == "" for row in rows[1:])

    told = run(
        "init", "covenant", "told", "--timezone", "America/Toronto", "--country", "ca", cwd=tmp_path
    )
    assert told.returncode == 0, told.stderr
    text = (tmp_path / "told" / "workflows" / "covenant.yaml").read_text(encoding="utf-8")
    assert "\ntimezone: America/Toronto\ncalendar:\n  country: CA\n" in text
    valid = run("validate", str(tmp_path / "told" / "workflows" / "covenant.yaml"), cwd=tmp_path)
    assert valid.returncode == 0 and "0 errors, 0 warnings" in valid.stderr, valid.stderr


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--timezone", "Europe/Kopenhagen", "--timezone: unknown timezone 'Europe/Kopenhagen'"),
        ("--country", "XX", "--country: the holidays package knows no country 'XX'"),
    ],
)
def test_init_refuses_a_bad_place_and_writes_nothing(
    option: str, value: str, message: str, tmp_path: Path
) -> None:
    result = run("init", "covenant", "new", option, value, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {message}")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("name", ["Covenant", "2020", "a-b", ""])
def test_init_refuses_a_bad_name(name: str, tmp_path: Path) -> None:
    result = run("init", name, "new", cwd=tmp_path)
    assert result.returncode == 2 and "not a workflow name" in result.stderr
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("name", ["dk2020", "eu_mission", "status_reports"])
def test_export_copies_a_shipped_workflow_that_validates_from_its_folder(
    name: str, tmp_path: Path
) -> None:
    result = run("export", name, "mine", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "mine"
    shipped = (REPO / "workflows" / f"{name}.yaml").read_text(encoding="utf-8")
    copied = (folder / "workflows" / f"{name}.yaml").read_text(encoding="utf-8")
    assert copied.split("\n", 1)[1] == shipped.split("\n", 1)[1]  # all but the schema line
    for template in (REPO / "notifications" / name).glob("*.jinja"):
        exported = folder / "notifications" / name / template.name
        assert exported.read_bytes() == template.read_bytes()
    for cwd, spelled in [
        (folder, f"workflows/{name}.yaml"),
        (folder / "workflows", f"{name}.yaml"),
        (REPO, str(folder / "workflows" / f"{name}.yaml")),
    ]:
        valid = run("validate", spelled, cwd=cwd)
        assert valid.returncode == 0, (spelled, valid.stderr)
        assert "0 errors" in valid.stderr
    again = run("export", name, "mine", cwd=tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_export_of_an_unknown_workflow_names_the_shipped_ones(tmp_path: Path) -> None:
    result = run("export", "dk2021", "mine", cwd=tmp_path)
    assert result.returncode == 2
    assert "dk2020, eu_mission, status_reports" in result.stderr
    assert not (tmp_path / "mine").exists()


# ----------------------------------------------------------------------------- #15.11b, 11c


TIMER = "    timers:\n      t: {due: {at: 2021-02-29}}\n"


@pytest.mark.parametrize(
    ("snippet", "where"),
    [
        ("calendar: {extra_closed_days: [2021-02-29]}\n", "calendar.extra_closed_days[0]"),
        (
            "fields: {cohort: {type: cohort}}\ncohorts:\n  c1: {title: C, "
            "application_deadline: 2020-08-31, start: 2021-02-29, planned_end: 2022-01-01}\n",
            "cohorts.c1.start",
        ),
        ("due", "states.open.timers.t.due.at"),
    ],
    ids=["extra_closed_days", "start", "due-at"],
)
def test_an_impossible_bare_date_is_a_located_df012(
    snippet: str, where: str, tmp_path: Path
) -> None:
    text = BROKEN.replace("  lost: {}\n", "").replace(
        "dnoe, roles: [clerk, boss]", "done, roles: clerk"
    )
    if snippet == "due":
        text = text.replace("  open: {initial: true}\n", "  open:\n    initial: true\n" + TIMER)
    else:
        text = text.replace("roles:\n", snippet + "roles:\n", 1)
    path = tmp_path / "dates.yaml"
    path.write_text(text, encoding="utf-8")
    result = run("validate", str(path))
    assert result.returncode == 2, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if LINE.match(line)]
    assert f": DF012 {where}: not a date in the calendar" in line, line
    database = f"sqlite:///{tmp_path / 'flow.db'}"
    command = shutil.which("dk2020flow")
    assert command
    subprocess.run([command, "db", "upgrade", "--db", database], check=True, capture_output=True)
    loaded = run("load", str(path), "--db", database)
    assert loaded.returncode == 2, loaded.stderr
    assert "DF012" in loaded.stderr and "internal error" not in loaded.stderr


def test_workflow_load_of_a_broken_file_exits_2_like_validate(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    database = f"sqlite:///{tmp_path / 'flow.db'}"
    command = shutil.which("dk2020flow")
    assert command
    subprocess.run([command, "db", "upgrade", "--db", database], check=True, capture_output=True)
    result = run("load", str(path), "--db", database)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert f"error: {path}:7:3: DF030" in result.stderr and "(and 5 more)" in result.stderr
    assert "Traceback" not in result.stderr


def test_df002_names_the_real_size(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"# " + b"x" * (5_452_595 - 3) + b"\n")
    result = run("validate", str(path))
    assert result.returncode == 2
    assert "the file is 5.2 MB" in result.stderr, result.stderr


def test_business_day_offsets_arm_through_the_engine(tmp_path: Path) -> None:
    # #15.8 end to end: the starter programme's reply deadline is 20 business days after
    # the invitation at 12:00, its reminder 5 business days before, its escalation 3 after.
    # Invited Wed 10 March 2021: 20 business days, skipping Easter (1, 2 and 5 April), is
    # Mon 12 April 12:00 CEST; five business days before it is Wed 31 March (Fri 9, Thu 8,
    # Wed 7, Tue 6, Wed 31); three after it is Thu 15 April (a programme in Copenhagen on
    # the Danish calendar: `init --timezone --country`).
    started = run(
        "init",
        "covenant",
        str(tmp_path / "p"),
        "--timezone",
        "Europe/Copenhagen",
        "--country",
        "DK",
    )
    assert started.returncode == 0
    command = shutil.which("dk2020flow")
    assert command
    database = f"sqlite:///{tmp_path / 'flow.db'}"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [command, *args, "--db", database], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, (args, done.stderr)
        return done

    cli("db", "upgrade")
    cli("workflow", "load", str(tmp_path / "p" / "workflows" / "covenant.yaml"))
    now = "2021-03-10T10:00+01:00"
    cli("case", "open", "covenant", "Northtown", "--role", "secretariat", "--now", now)
    shown = json.loads(cli("case", "show", "Northtown", "--json", "--now", now).stdout)
    assert [(t["kind"], t["index"], t["due_at"]) for t in shown["pending_timers"]] == [
        ("reminder", 1, "2021-03-31T10:00:00+00:00"),
        ("deadline", 0, "2021-04-12T10:00:00+00:00"),
        ("escalation", 0, "2021-04-15T10:00:00+00:00"),
    ]
    assert {t["deadline_at"] for t in shown["pending_timers"]} == {"2021-04-12T10:00:00+00:00"}
