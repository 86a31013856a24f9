"""The pure engine on the DK2020 workflow: no database, no clock."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from dk2020flow.definition.loader import load_workflow
from dk2020flow.engine import decide, machine
from dk2020flow.engine.decide import Actor
from dk2020flow.engine.machine import CompiledWorkflow
from dk2020flow.engine.records import CaseSnapshot, Decision, DueTimer, EventKind, TimerKind
from dk2020flow.errors import RefusalReason, RefusedError

ROOT = Path(__file__).resolve().parents[3]
UTC = dt.UTC
JUNE = dt.datetime(2020, 6, 20, 8, 0, tzinfo=UTC)
AARHUS = decide.Organisation(code="751", name="Aarhus", region="Midtjylland")
COUNCIL = Actor(name="Aarhus byråd", role="council")


@pytest.fixture(scope="module")
def wf() -> CompiledWorkflow:
    loaded = load_workflow(ROOT / "workflows" / "dk2020.yaml", check_templates=False)
    return CompiledWorkflow(loaded.workflow, 1, loaded.content_hash, {})


def opened(wf: CompiledWorkflow, **kwargs: object) -> CaseSnapshot:
    decision = decide.open_case(wf, organisation=AARHUS, actor=COUNCIL, now=JUNE, **kwargs)  # type: ignore[arg-type]
    return replace(decision.case, id=1)


def participate(wf: CompiledWorkflow, case: CaseSnapshot, cohort: str = "round1") -> Decision:
    return decide.fire_trigger(
        wf,
        case,
        trigger="decide_participate",
        actor=COUNCIL,
        now=JUNE + dt.timedelta(days=60),
        data={
            "cohort": cohort,
            "decision_date": "2020-08-20",
            "contact_person_name": "Anna Jensen",
            "contact_person_email": "anna@aarhus.example.dk",
        },
    )


def test_open_arms_reply_deadline_and_reminders(wf: CompiledWorkflow) -> None:
    decision = decide.open_case(wf, organisation=AARHUS, actor=COUNCIL, now=JUNE)
    assert decision.case.state == "invited"
    assert decision.events[0].kind is EventKind.OPENED
    deadline = [a for a in decision.arm if a.kind is TimerKind.DEADLINE]
    assert [a.due_at for a in deadline] == [dt.datetime(2020, 8, 31, 21, 59, tzinfo=UTC)]
    reminders = sorted(a.due_at for a in decision.arm if a.kind is TimerKind.REMINDER)
    assert reminders == [
        dt.datetime(2020, 8, 17, 21, 59, tzinfo=UTC),
        dt.datetime(2020, 8, 28, 21, 59, tzinfo=UTC),
    ]
    assert [m.template for m in decision.mails] == ["invitation"]


def test_allowed_trigger_moves_and_rearms(wf: CompiledWorkflow) -> None:
    case = opened(wf)
    decision = participate(wf, case)
    assert decision.case.state == "decided"
    assert decision.case.cohort == "round1"
    assert decision.case.epoch == case.epoch + 1
    assert decision.cancel_pending
    assert {a.timer for a in decision.arm} == {"application_deadline"}
    assert all(a.epoch == decision.case.epoch for a in decision.arm)
    assert decision.case.version == case.version + 1


@pytest.mark.parametrize(
    ("trigger", "role", "data", "reason"),
    [
        ("no_such", "council", {}, RefusalReason.UNKNOWN_TRIGGER),
        ("submit_application", "contact_person", {}, RefusalReason.INVALID_FROM_STATE),
        ("decide_participate", "approver", {}, RefusalReason.ROLE),
        ("decide_participate", "council", {"cohort": "round1"}, RefusalReason.MISSING_DATA),
        ("decide_decline", "council", {"decision_date": "31/08/2020"}, RefusalReason.INVALID_DATA),
        (
            "decide_decline",
            "council",
            {"decision_date": "2020-08-20", "x": "1"},
            RefusalReason.INVALID_DATA,
        ),
    ],
)
def test_refusals_say_which_check_failed(
    wf: CompiledWorkflow, trigger: str, role: str, data: dict[str, str], reason: RefusalReason
) -> None:
    case = opened(wf)
    with pytest.raises(RefusedError) as refused:
        decide.fire_trigger(
            wf, case, trigger=trigger, actor=Actor(name="x", role=role), now=JUNE, data=data
        )
    assert refused.value.reason is reason


def test_guard_refusal_names_the_guard(wf: CompiledWorkflow) -> None:
    case = opened(wf)
    with pytest.raises(RefusedError, match="cohort") as refused:
        decide.fire_trigger(
            wf,
            case,
            trigger="decide_participate",
            actor=COUNCIL,
            now=JUNE,
            data={
                "cohort": "pilot",
                "decision_date": "2020-08-20",
                "contact_person_name": "A",
                "contact_person_email": "a@b.dk",
            },
        )
    assert refused.value.reason is RefusalReason.GUARD


def test_stale_timer_is_discarded(wf: CompiledWorkflow) -> None:
    case = opened(wf)
    moved = replace(participate(wf, case).case, id=1)
    stale = DueTimer(
        id=9,
        case_id=1,
        timer="reply_deadline",
        kind=TimerKind.DEADLINE,
        index=0,
        due_at=JUNE,
        deadline_at=JUNE,
        epoch=case.epoch,
    )
    assert decide.fire_timer(wf, moved, stale, JUNE) is None


def test_timer_trigger_fires_transition(wf: CompiledWorkflow) -> None:
    case = opened(wf)
    declined = decide.fire_trigger(
        wf,
        case,
        trigger="decide_decline",
        actor=COUNCIL,
        now=JUNE,
        data={"decision_date": "2020-08-20"},
    ).case
    closes = next(a for a in decide._enter(wf, declined, JUNE)[0] if a.timer == "round2_closes")
    due = DueTimer(
        id=1,
        case_id=1,
        timer="round2_closes",
        kind=TimerKind.DEADLINE,
        index=0,
        due_at=closes.due_at,
        deadline_at=closes.due_at,
        epoch=declined.epoch,
    )
    result = decide.fire_timer(wf, declined, due, closes.due_at)
    assert result is not None
    assert result.case.state == "not_participating"
    assert [e.kind for e in result.events] == [EventKind.TIMER, EventKind.TRANSITION]


def test_approval_in_either_order_then_automatic(wf: CompiledWorkflow) -> None:
    case = replace(opened(wf, cohort="round1"), state="approval", epoch=5)
    for first, second in [
        ("record_c40_approval", "record_council_adoption"),
        ("record_council_adoption", "record_c40_approval"),
    ]:
        data = {
            "record_c40_approval": {"c40_approval_date": "2022-05-01"},
            "record_council_adoption": {"adoption_date": "2022-06-01"},
        }
        roles = {"record_c40_approval": "approver", "record_council_adoption": "council"}
        one = decide.fire_trigger(
            wf,
            case,
            trigger=first,
            actor=Actor(name="a", role=roles[first]),
            now=JUNE,
            data=data[first],
        )
        assert one.case.state == "approval"
        assert one.case.epoch == case.epoch  # an internal transition keeps the timers
        two = decide.fire_trigger(
            wf,
            one.case,
            trigger=second,
            actor=Actor(name="b", role=roles[second]),
            now=JUNE,
            data=data[second],
        )
        assert two.case.state == "approved"
        assert [e.trigger for e in two.events] == [second, "approve"]
        assert two.case.version == one.case.version + 1


def test_checklist_guard(wf: CompiledWorkflow) -> None:
    case = replace(opened(wf, cohort="round1"), state="screening", epoch=3)
    secretariat = Actor(name="CONCITO", role="secretariat")
    with pytest.raises(RefusedError, match="16 item"):
        decide.fire_trigger(wf, case, trigger="pass_screening", actor=secretariat, now=JUNE)
    items = dict.fromkeys(wf.workflow.checklists["capf"].items, ("met", ""))
    items["P2.5"] = ("not_applicable", "covered by the regional risk assessment")
    checked = decide.record_checklist(
        wf, case, checklist="capf", items=items, actor=secretariat, now=JUNE
    )
    passed = decide.fire_trigger(
        wf, checked.case, trigger="pass_screening", actor=secretariat, now=JUNE
    )
    assert passed.case.state == "approval"
    with pytest.raises(RefusedError) as refused:
        decide.record_checklist(
            wf,
            case,
            checklist="capf",
            items={"P1.1": ("met", "")},
            actor=Actor(name="x", role="contact_person"),
            now=JUNE,
        )
    assert refused.value.reason is RefusalReason.ROLE


def test_open_later_state_needs_reason(wf: CompiledWorkflow) -> None:
    with pytest.raises(RefusedError, match="reason"):
        decide.open_case(
            wf, organisation=AARHUS, actor=COUNCIL, now=JUNE, state="guidance", cohort="pilot"
        )
    with pytest.raises(RefusedError, match="cannot be opened"):
        decide.open_case(
            wf, organisation=AARHUS, actor=COUNCIL, now=JUNE, state="approval", reason="x"
        )
    joined = decide.open_case(
        wf,
        organisation=AARHUS,
        actor=COUNCIL,
        now=JUNE,
        state="guidance",
        cohort="pilot",
        reason="pilot since 2019",
    )
    assert joined.case.state == "guidance"
    assert joined.events[0].comment == "pilot since 2019"


def test_extend_deadline(wf: CompiledWorkflow) -> None:
    case = opened(wf)
    deadline = dt.datetime(2020, 8, 31, 21, 59, tzinfo=UTC)
    follow_up = Actor(name="KL", role="follow_up")
    with pytest.raises(RefusedError) as refused:
        decide.extend_deadline(
            wf,
            case,
            timer="reply_deadline",
            current_deadline=deadline,
            by=None,
            new_deadline=deadline + dt.timedelta(days=7),
            actor=COUNCIL,
            reason="x",
            now=JUNE,
        )
    assert refused.value.reason is RefusalReason.ROLE
    from dk2020flow.definition.durations import parse_duration

    moved = decide.extend_deadline(
        wf,
        case,
        timer="reply_deadline",
        current_deadline=deadline,
        by=parse_duration("P14D"),
        actor=follow_up,
        reason="council meets 10 September",
        now=JUNE,
    )
    assert moved.cancel_timers == ("reply_deadline",)
    new = next(a for a in moved.arm if a.kind is TimerKind.DEADLINE)
    assert new.due_at == dt.datetime(2020, 9, 14, 21, 59, tzinfo=UTC)
    assert moved.events[0].kind is EventKind.DEADLINE_EXTENDED


def test_one_machine_per_definition_not_per_case(wf: CompiledWorkflow) -> None:
    wf.machine  # noqa: B018 - build it
    before = machine.MACHINES_BUILT
    for code in range(100, 200):
        case = decide.open_case(
            wf,
            organisation=decide.Organisation(code=str(code), name=f"M{code}", region="R"),
            actor=COUNCIL,
            now=JUNE,
        ).case
        participate(wf, replace(case, id=code))
    assert before == machine.MACHINES_BUILT
