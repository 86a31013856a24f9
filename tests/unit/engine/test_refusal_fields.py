"""A refusal for data names its fields as an attribute (``RefusedError.fields``), and the
API's ``errors`` list is made from it: no field names read back out of the message."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from dk2020flow.definition.loader import load_workflow
from dk2020flow.engine import decide
from dk2020flow.engine.decide import SYSTEM, Actor
from dk2020flow.engine.machine import CompiledWorkflow
from dk2020flow.engine.records import CaseSnapshot
from dk2020flow.errors import RefusalReason, RefusedError
from dk2020flow.web.api.problems import refused_fields

ROOT = Path(__file__).resolve().parents[3]
NOW = dt.datetime(2020, 9, 1, 10, 0, tzinfo=dt.UTC)
CONTACT = Actor(name="Anna Jensen", role="contact_person")
AARHUS = decide.Organisation(code="751", name="Aarhus", region="Midtjylland")
APPLICATION = {"commitment_signed": True, "staff_hours_per_week": 30}


@pytest.fixture(scope="module")
def wf() -> CompiledWorkflow:
    loaded = load_workflow(ROOT / "workflows" / "dk2020.yaml", check_templates=False)
    return CompiledWorkflow(loaded.workflow, 1, loaded.content_hash, {})


def decided(wf: CompiledWorkflow) -> CaseSnapshot:
    opened = decide.open_case(wf, organisation=AARHUS, actor=SYSTEM, now=NOW, cohort="round1")
    return replace(opened.case, id=1, state="decided")


def submit(wf: CompiledWorkflow, **changes: object) -> RefusedError:
    with pytest.raises(RefusedError) as refused:
        decide.fire_trigger(
            wf,
            decided(wf),
            trigger="submit_application",
            actor=CONTACT,
            now=NOW,
            data=changes.get("data", APPLICATION),  # type: ignore[arg-type]
            comment=str(changes.get("comment", "")),
            documents=frozenset(changes.get("documents", {"application"})),  # type: ignore[call-overload]
        )
    return refused.value


def api_fields(error: RefusedError) -> list[str]:
    return [problem.field for problem in refused_fields(error)]


def test_missing_unexpected_and_invalid_data_name_their_fields(wf: CompiledWorkflow) -> None:
    missing = submit(wf, data={"staff_hours_per_week": 30})
    assert missing.reason is RefusalReason.MISSING_DATA
    assert missing.fields == ("commitment_signed",)
    assert api_fields(missing) == ["data.commitment_signed"]
    unexpected = submit(wf, data={**APPLICATION, "colour": "red", "animal": "cat"})
    assert unexpected.fields == ("animal", "colour")
    assert api_fields(unexpected) == ["data.animal", "data.colour"]
    invalid = submit(wf, data={**APPLICATION, "staff_hours_per_week": "many"})
    assert invalid.reason is RefusalReason.INVALID_DATA
    assert invalid.fields == ("staff_hours_per_week",)
    assert [p.message for p in refused_fields(invalid)] == [str(invalid)]


def test_the_comment_is_named_as_the_comment(wf: CompiledWorkflow) -> None:
    refused = submit(wf, comment="a\x00b")
    assert refused.fields == ("comment",) and api_fields(refused) == ["comment"]


def test_a_refusal_about_no_field_names_none(wf: CompiledWorkflow) -> None:
    # The message's words are not taken for field names ("needs the document …" was read
    # as the fields "the", "document" and the document's name).
    documents = submit(wf, documents=set())
    assert "needs the document application" in str(documents)
    assert documents.fields == () and api_fields(documents) == []
    with pytest.raises(RefusedError) as no_reason:
        decide.open_case(wf, organisation=AARHUS, actor=SYSTEM, now=NOW, state="guidance")
    assert "needs a reason" in str(no_reason.value)
    assert api_fields(no_reason.value) == []


def test_a_refusal_made_elsewhere_names_its_fields_by_the_keyword() -> None:
    refused = RefusedError(RefusalReason.INVALID_DATA, "anything at all", fields=("a", "a", "b"))
    assert api_fields(refused) == ["data.a", "data.b"]
    assert RefusedError(RefusalReason.GUARD, "field 'x': words").fields == ()
