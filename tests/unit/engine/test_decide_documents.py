"""The engine's document requirement: a person's trigger waits for its documents."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from dk2020flow.definition.loader import load_workflow
from dk2020flow.engine import decide
from dk2020flow.engine.decide import SYSTEM, Actor, documents_needed
from dk2020flow.engine.machine import CompiledWorkflow
from dk2020flow.engine.records import CaseSnapshot
from dk2020flow.errors import RefusalReason, RefusedError

ROOT = Path(__file__).resolve().parents[3]
NOW = dt.datetime(2020, 9, 1, 10, 0, tzinfo=dt.UTC)
CONTACT = Actor(name="Anna Jensen", role="contact_person")
APPLICATION = {"commitment_signed": True, "staff_hours_per_week": 30}


@pytest.fixture(scope="module")
def wf() -> CompiledWorkflow:
    loaded = load_workflow(ROOT / "workflows" / "dk2020.yaml", check_templates=False)
    return CompiledWorkflow(loaded.workflow, 1, loaded.content_hash, {})


def in_state(wf: CompiledWorkflow, state: str) -> CaseSnapshot:
    organisation = decide.Organisation(code="751", name="Aarhus", region="Midtjylland")
    decision = decide.open_case(
        wf, organisation=organisation, actor=SYSTEM, now=NOW, cohort="round1"
    )
    return replace(decision.case, id=1, state=state)


def submit(wf: CompiledWorkflow, documents: frozenset[str] | None, **changes: object) -> str:
    case = in_state(wf, "decided")
    decision = decide.fire_trigger(
        wf,
        case,
        trigger="submit_application",
        actor=changes.get("actor", CONTACT),  # type: ignore[arg-type]
        now=NOW,
        data=changes.get("data", APPLICATION),  # type: ignore[arg-type]
        documents=documents,
    )
    return decision.case.state


def test_a_person_s_trigger_is_refused_without_its_document(wf: CompiledWorkflow) -> None:
    with pytest.raises(RefusedError) as refused:
        submit(wf, frozenset({"draft_plan"}))
    assert refused.value.reason is RefusalReason.MISSING_DATA
    assert "needs the document application" in str(refused.value)
    assert "Ansøgning med forpligtelseserklæring" in str(refused.value)  # its title
    assert "'decided'" in str(refused.value)


def test_with_its_document_the_trigger_fires(wf: CompiledWorkflow) -> None:
    assert submit(wf, frozenset({"application"})) == "application_submitted"


def test_the_data_is_checked_before_the_documents(wf: CompiledWorkflow) -> None:
    with pytest.raises(RefusedError, match="needs commitment_signed"):
        submit(wf, frozenset(), data={"staff_hours_per_week": 30})


def test_documents_are_not_checked_for_the_engine_or_an_untracking_caller(
    wf: CompiledWorkflow,
) -> None:
    # The engine's own firings (timers) hand in nothing and are not held up; a caller that
    # does not track documents (None) is not either. The service always passes them.
    assert submit(wf, frozenset(), actor=SYSTEM) == "application_submitted"
    assert submit(wf, None) == "application_submitted"


def test_documents_needed_from_a_state(wf: CompiledWorkflow) -> None:
    assert documents_needed(wf, "decided", "submit_application") == ("application",)
    assert documents_needed(wf, "revising", "resubmit_plan") == ("draft_plan",)
    assert documents_needed(wf, "approval", "record_council_adoption") == ("council_decision",)
    assert documents_needed(wf, "approval", "record_c40_approval") == ()
    assert documents_needed(wf, "invited", "submit_application") == ()  # not from there
