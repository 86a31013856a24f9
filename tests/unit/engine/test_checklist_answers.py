"""The organisation's answers to the CAPF screening's comments (``decide.answer_checklist``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from dk2020flow.definition.loader import load_workflow
from dk2020flow.engine import decide
from dk2020flow.engine.decide import Actor
from dk2020flow.engine.machine import CompiledWorkflow
from dk2020flow.engine.records import CaseSnapshot, ChecklistItem, EventKind
from dk2020flow.engine.replay import replay
from dk2020flow.errors import RefusalReason, RefusedError

ROOT = Path(__file__).resolve().parents[3]
JUNE = dt.datetime(2022, 6, 20, 8, 0, tzinfo=dt.UTC)
AARHUS = decide.Organisation(code="751", name="Aarhus", region="Midtjylland")
SECRETARIAT = Actor(name="signe@concito.example.dk", role="secretariat")
CONTACT = Actor(name="anna@aarhus.example.dk", role="contact_person")


@pytest.fixture(scope="module")
def wf() -> CompiledWorkflow:
    loaded = load_workflow(ROOT / "workflows" / "dk2020.yaml", check_templates=False)
    return CompiledWorkflow(loaded.workflow, 1, loaded.content_hash, {})


def reviewed(wf: CompiledWorkflow) -> tuple[CaseSnapshot, list[object]]:
    """A case in revising whose reviewer marked P2.3 not met and P3.5 partly met."""
    opened = decide.open_case(wf, organisation=AARHUS, actor=SECRETARIAT, now=JUNE)
    case = replace(opened.case, id=1, state="screening", epoch=3)
    items = dict.fromkeys(wf.workflow.checklists["capf"].items, ("met", ""))
    items["P2.3"] = ("not_met", "The base year's inventory lacks transport.")
    items["P3.5"] = ("partly_met", "Give the effects in tonnes of CO2e.")
    checked = decide.record_checklist(
        wf, case, checklist="capf", items=items, actor=SECRETARIAT, now=JUNE
    )
    revising = decide.fire_trigger(
        wf, checked.case, trigger="request_revision", actor=SECRETARIAT, now=JUNE
    )
    return revising.case, [*opened.events, *checked.events, *revising.events]


def test_the_contact_person_answers_items_that_need_revision(wf: CompiledWorkflow) -> None:
    case, _events = reviewed(wf)
    later = JUNE + dt.timedelta(days=10)
    answered = decide.answer_checklist(
        wf,
        case,
        checklist="capf",
        answers={"P2.3": "  Transport is in annex B now. ", "P3.5": "See table 4."},
        actor=CONTACT,
        now=later,
    )
    capf = answered.case.checklists["capf"]
    assert capf["P2.3"] == ChecklistItem(
        status="not_met",
        comment="The base year's inventory lacks transport.",
        answer="Transport is in annex B now.",
    )
    assert capf["P3.5"].answer == "See table 4."
    assert capf["P1.1"] == ChecklistItem(status="met", comment="")
    assert answered.case.state == "revising"  # the statuses and the state are untouched
    assert answered.case.version == case.version + 1
    (event,) = answered.events
    assert event.kind is EventKind.CHECKLIST_ANSWER
    assert (event.actor, event.role, event.trigger, event.at) == (
        CONTACT.name,
        "contact_person",
        "capf",
        later,
    )
    assert event.data == {
        "checklist": "capf",
        "answers": {"P2.3": "Transport is in annex B now.", "P3.5": "See table 4."},
    }
    # A second answer replaces the first; the other item keeps its own.
    again = decide.answer_checklist(
        wf,
        answered.case,
        checklist="capf",
        answers={"P3.5": "Table 4, p. 12."},
        actor=CONTACT,
        now=later,
    )
    assert again.case.checklists["capf"]["P3.5"].answer == "Table 4, p. 12."
    assert again.case.checklists["capf"]["P2.3"].answer == "Transport is in annex B now."


def test_answers_replay_exactly_and_a_new_review_starts_the_answer_over(
    wf: CompiledWorkflow,
) -> None:
    case, events = reviewed(wf)
    answered = decide.answer_checklist(
        wf, case, checklist="capf", answers={"P2.3": "Fixed."}, actor=CONTACT, now=JUNE
    )
    resubmitted = decide.fire_trigger(
        wf,
        answered.case,
        trigger="resubmit_plan",
        actor=CONTACT,
        now=JUNE,
        data={"plan_url": "https://aarhus.example.dk/plan-2.pdf"},
        documents=["draft_plan"],
    )
    assert resubmitted.case.state == "screening"
    assert resubmitted.case.checklists["capf"]["P2.3"].answer == "Fixed."
    met = decide.record_checklist(
        wf,
        resubmitted.case,
        checklist="capf",
        items={"P2.3": ("met", "Good."), "P3.5": ("met", "")},
        actor=SECRETARIAT,
        now=JUNE,
    )
    assert met.case.checklists["capf"]["P2.3"] == ChecklistItem(status="met", comment="Good.")
    all_events = [*events, *answered.events, *resubmitted.events, *met.events]
    for upto, snapshot in (
        (len(events) + 1, answered.case),
        (len(events) + 2, resubmitted.case),
        (len(all_events), met.case),
    ):
        rebuilt = replay(wf.workflow, all_events[:upto])  # type: ignore[arg-type]
        assert rebuilt.checklists == {k: dict(v) for k, v in snapshot.checklists.items()}
        assert rebuilt.state == snapshot.state
    passed = decide.fire_trigger(
        wf, met.case, trigger="pass_screening", actor=SECRETARIAT, now=JUNE
    )
    assert passed.case.state == "approval"


@pytest.mark.parametrize(
    ("actor", "checklist", "answers", "reason", "message"),
    [
        (SECRETARIAT, "capf", {"P2.3": "x"}, RefusalReason.ROLE, "may not answer capf"),
        (
            Actor(name="m", role="mayor"),
            "capf",
            {"P2.3": "x"},
            RefusalReason.ROLE,
            "contact_person",
        ),
        (CONTACT, "capff", {"P2.3": "x"}, RefusalReason.INVALID_DATA, "not a checklist"),
        (CONTACT, "capf", {}, RefusalReason.MISSING_DATA, "at least one ITEM=ANSWER"),
        (CONTACT, "capf", {"P9.9": "x"}, RefusalReason.INVALID_DATA, "not an item of capf"),
        (
            CONTACT,
            "capf",
            {"P1.1": "x"},
            RefusalReason.INVALID_DATA,
            "P1.1 does not need revision \\(status met\\).*those now: P2.3, P3.5",
        ),
        (CONTACT, "capf", {"P2.3": "   "}, RefusalReason.MISSING_DATA, "P2.3 is empty"),
        (CONTACT, "capf", {"P2.3": "a\x00b"}, RefusalReason.INVALID_DATA, "control characters"),
    ],
)
def test_refusals_name_what_is_wrong_and_change_nothing(
    wf: CompiledWorkflow,
    actor: Actor,
    checklist: str,
    answers: dict[str, str],
    reason: RefusalReason,
    message: str,
) -> None:
    case, _events = reviewed(wf)
    with pytest.raises(RefusedError, match=message) as refused:
        decide.answer_checklist(
            wf, case, checklist=checklist, answers=answers, actor=actor, now=JUNE
        )
    assert refused.value.reason is reason
    assert case.checklists["capf"]["P2.3"].answer == ""


def test_an_item_never_recorded_cannot_be_answered(wf: CompiledWorkflow) -> None:
    opened = decide.open_case(wf, organisation=AARHUS, actor=SECRETARIAT, now=JUNE)
    with pytest.raises(RefusedError, match="status not recorded"):
        decide.answer_checklist(
            wf, opened.case, checklist="capf", answers={"P1.1": "x"}, actor=CONTACT, now=JUNE
        )


def test_a_closed_case_takes_no_answers(wf: CompiledWorkflow) -> None:
    case, _events = reviewed(wf)
    with pytest.raises(RefusedError):
        decide.answer_checklist(
            wf,
            replace(case, closed=True),
            checklist="capf",
            answers={"P2.3": "x"},
            actor=CONTACT,
            now=JUNE,
        )
