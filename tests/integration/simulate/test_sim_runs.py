"""Simulations through the real service, scheduler and delivery code, on small programmes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dk2020flow.cli import app
from dk2020flow.simulate import BehaviourError, ProblemKind, SimulationResult, run_simulation

DATA = Path(__file__).parent / "data"
START, END = dt.date(2024, 2, 15), dt.date(2024, 6, 30)


def simulate(workflow: str, seed: int, out: Path | None = None) -> SimulationResult:
    return run_simulation(
        DATA / "workflows" / f"{workflow}.yaml",
        start=START,
        end=END,
        participants_csv=DATA / "participants.csv",
        behaviour=DATA / f"{workflow}-behaviour.yaml",
        seed=seed,
        out_dir=out,
    )


def timeline(result: SimulationResult) -> list[tuple[str, str, str]]:
    return [(e.at.isoformat(), e.organisation, e.text) for e in result.timeline]


def test_the_same_seed_gives_the_same_timeline(tmp_path: Path) -> None:
    first = simulate("mini", seed=3, out=tmp_path / "first")
    again = simulate("mini", seed=3, out=tmp_path / "again")
    other = simulate("mini", seed=4)
    assert timeline(first) == timeline(again)
    assert timeline(first) != timeline(other)
    # The same files, byte for byte (MIME boundaries are derived from the content).
    first_mail = {p.name: p.read_bytes() for p in (tmp_path / "first").glob("*.eml")}
    again_mail = {p.name: p.read_bytes() for p in (tmp_path / "again").glob("*.eml")}
    assert first_mail and first_mail == again_mail


def test_without_out_no_mime_is_rendered_and_the_numbers_are_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dk2020flow.notify.message import MimeMessage

    with_files = simulate("mini", seed=3, out=tmp_path)
    rendered: list[str] = []
    made = vars(MimeMessage)["email"].fget
    assert made is not None

    def email(self: MimeMessage) -> object:
        rendered.append(self.message_id)
        return made(self)

    # Notes every message whose EmailMessage is made (to be written), and passes it on.
    monkeypatch.setattr(MimeMessage, "email", property(email))
    without = simulate("mini", seed=3)
    assert rendered == []
    assert with_files.summary is not None and without.summary is not None
    assert without.summary.mail == with_files.summary.mail
    assert without.summary.mail.get("sent", 0) == len(list(tmp_path.glob("*.eml"))) > 0
    assert timeline(without) == timeline(with_files)
    assert without.problems == with_files.problems


def test_a_healthy_programme_runs_to_its_end_through_the_real_paths(tmp_path: Path) -> None:
    result = simulate("mini", seed=3, out=tmp_path)
    assert result.summary is not None
    assert result.summary.cases == 6
    assert set(result.summary.by_state) <= {"done", "out"}
    assert result.problems == []
    kinds = {e.kind for e in result.timeline}
    assert {"opened", "transition", "timer"} <= kinds
    sent = result.summary.mail.get("sent", 0)
    assert sent == len(list(tmp_path.glob("*.eml"))) > 0
    message = next(tmp_path.glob("*.eml")).read_text(encoding="utf-8", errors="replace")
    assert "Subject:" in message


def test_a_broken_workflow_is_flagged() -> None:
    result = simulate("broken", seed=1)
    by_kind: dict[ProblemKind, list[str]] = {}
    for problem in result.problems:
        by_kind.setdefault(problem.kind, []).append(problem.message)
    text = "\n".join(p.message for p in result.problems)
    assert "stuck in 'limbo'" in text, text
    assert "'reply' (invited) fell on a weekend or holiday" in text, text
    assert "Sunday 2024-03-10" in text, text
    assert any("go out only after the deadline" in m for m in by_kind[ProblemKind.REMINDER_LATE])
    assert any("never sent" in m for m in by_kind[ProblemKind.REMINDER_LATE])
    assert any("no recipient in role mayor" in m for m in by_kind[ProblemKind.PARKED_MAIL])
    stuck = next(p for p in result.problems if p.kind is ProblemKind.STUCK)
    assert stuck.count == len(stuck.cases) > 0
    assert all(p.hint for p in result.problems)


def test_a_profile_for_another_workflow_is_refused_before_anything_runs() -> None:
    with pytest.raises(BehaviourError, match="not 'mini'"):
        run_simulation(
            DATA / "workflows" / "mini.yaml",
            start=START,
            end=END,
            participants_csv=DATA / "participants.csv",
            behaviour=DATA / "broken-behaviour.yaml",
        )


def test_the_command_prints_timeline_summary_and_problems(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            str(DATA / "workflows" / "broken.yaml"),
            "--from",
            "2024-02-15",
            "--to",
            "2024-06-30",
            "--participants",
            str(DATA / "participants.csv"),
            "--behaviour",
            str(DATA / "broken-behaviour.yaml"),
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "full timeline" in result.output
    assert (tmp_path / "timeline.txt").is_file()
    assert "problem(s) to fix" in result.output
    assert "stuck" in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--from", "2024-13-01"], "not a date"),
        (["--from", "2024-06-01", "--to", "2024-05-01"], "is not after"),
        (["--behaviour", "missing.yaml"], "is not a file"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(app, ["simulate", str(DATA / "workflows" / "mini.yaml"), *args])
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


def test_a_misfit_profile_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            str(DATA / "workflows" / "mini.yaml"),
            "--from",
            "2024-02-15",
            "--to",
            "2024-03-01",
            "--behaviour",
            str(DATA / "broken-behaviour.yaml"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "does not fit the workflow" in result.output


def test_a_shipped_workflow_is_simulated_by_its_name(tmp_path: Path) -> None:
    """`dk2020flow simulate dk2020` works from any folder, as `workflow load dk2020` does."""
    result = CliRunner().invoke(
        app,
        ["simulate", "dk2020", "--from", "2020-06-01", "--to", "2020-07-01", "--json"],
    )
    assert result.exit_code == 0, result.output
    assert '"workflow": "dk2020"' in result.output


def test_a_revision_round_fires_its_own_trigger_without_the_passing_triggers_data() -> None:
    # `pass_review` takes a score; `ask_revision` (the screening's `otherwise`) takes none.
    result = simulate("review", seed=1)
    assert result.problems == []
    assert result.summary is not None
    assert set(result.summary.by_state) == {"passed"}
    texts = [e.text for e in result.timeline]
    assert any("ask_revision" in text for text in texts)
    assert not any("refused" in text for text in texts)


def test_without_a_profile_a_workflows_own_is_used_or_a_clear_error_given(
    tmp_path: Path,
) -> None:
    # Next to the workflow: <its folder>/behaviour/<workflow>.yaml.
    folder = tmp_path / "workflows"
    (folder / "behaviour").mkdir(parents=True)
    workflow = folder / "review.yaml"
    workflow.write_text((DATA / "workflows" / "review.yaml").read_text())
    # No profile there: the built-in one is DK2020's, and the error says what to do.
    with pytest.raises(BehaviourError, match="no behaviour profile for workflow 'review'"):
        run_simulation(
            workflow, start=START, end=END, participants_csv=DATA / "participants.csv", seed=1
        )
    (folder / "behaviour" / "review.yaml").write_text((DATA / "review-behaviour.yaml").read_text())
    found = run_simulation(
        workflow, start=START, end=END, participants_csv=DATA / "participants.csv", seed=1
    )
    assert found.summary is not None and set(found.summary.by_state) == {"passed"}


def test_the_timeline_and_a_reports_day_are_in_the_workflows_time_zone(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    folder = tmp_path / "workflows"
    (folder / "behaviour").mkdir(parents=True)
    text = (DATA / "workflows" / "review.yaml").read_text()
    (folder / "review.yaml").write_text(
        text.replace("timezone: Europe/Copenhagen", "timezone: America/New_York")
    )
    (folder / "behaviour" / "review.yaml").write_text((DATA / "review-behaviour.yaml").read_text())
    out = tmp_path / "out"
    args = ["simulate", str(folder / "review.yaml"), "--from", "2024-02-15", "--to", "2024-03-31"]
    shown = CliRunner().invoke(
        app, [*args, "--participants", str(DATA / "participants.csv"), "--out", str(out)]
    )
    assert shown.exit_code == 0, shown.output
    # The cases open at the first day's midnight in New York (06:00 in Copenhagen).
    first = (out / "timeline.txt").read_text().splitlines()[0]
    assert first.startswith("2024-02-15 00:00"), first
    url = f"sqlite:///{tmp_path / 'kept.db'}"
    run_simulation(
        folder / "review.yaml",
        start=dt.date(2024, 2, 15),
        end=dt.date(2024, 3, 31),
        participants_csv=DATA / "participants.csv",
        db_url=url,
    )
    report = CliRunner().invoke(
        app, ["report", "--at", "2024-03-01", "--format", "json", "--db", url]
    )
    assert report.exit_code == 0, report.output
    at = dt.datetime.fromisoformat(json.loads(report.output)["at"])
    assert at == dt.datetime(2024, 3, 1, 23, 59, 59, tzinfo=ZoneInfo("America/New_York"))
