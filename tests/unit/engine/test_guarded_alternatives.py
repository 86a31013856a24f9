"""One trigger, several guarded transitions from one state (#15.1, #15.2, #15.3, #15.22).

The engine chooses among the transitions the actor's role allows whose guard holds on the
case as it was plus the trigger's data, validates the data against the transition chosen,
applies that transition's ``sets`` afterwards, and records which one it took (replay).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dk2020flow.definition.loader import load_workflow_text
from dk2020flow.engine import decide
from dk2020flow.engine.decide import Actor
from dk2020flow.engine.machine import CompiledWorkflow
from dk2020flow.engine.records import CaseSnapshot, EventKind
from dk2020flow.engine.replay import replay
from dk2020flow.errors import RefusalReason, RefusedError

ROOT = Path(__file__).resolve().parents[3]
MINI = (ROOT / "tests" / "data" / "mini" / "workflows" / "mini.yaml").read_text("utf-8")
T0 = dt.datetime(2021, 3, 1, 9, 0, tzinfo=dt.UTC)
HERE = decide.Organisation(code="101", name="København", region="Hovedstaden")
CONTACT = Actor(name="Anna", role="contact_person")
SECRETARIAT = Actor(name="Sekretariatet", role="secretariat")

ALTERNATIVES = """
  - trigger: submit
    from: draft
    to: submitted
    roles: [contact_person]
    accepts: [note]
    when:
      - {field: note, equals: a}
    sets: {lane: contact}
  - trigger: submit
    from: draft
    to: accepted
    roles: [secretariat]
    requires: [note]
    accepts: [reason]
    when:
      - {field: note, equals: b}
    sets: {lane: secretariat}
  - trigger: route
    from: draft
    to: submitted
    roles: [secretariat]
    requires: [note]
    when:
      - {field: note, equals: fast}
    sets: {lane: fast}
  - trigger: route
    from: draft
    to: draft
    roles: [secretariat]
    requires: [note, reason]
    when:
      - {field: note, equals: slow}
    sets: {lane: slow}
  - trigger: suspend
    from: draft
    to: suspended
    roles: [secretariat]
    requires: [suspended_for]
  - trigger: resume
    from: suspended
    to: draft
    roles: [secretariat]
    when:
      - {field: suspended_for, equals: secap}
    sets: {suspended_for: null}
  - trigger: resume
    from: suspended
    to: expired
    roles: [secretariat]
    when:
      - {field: suspended_for, equals: other}
"""


def _workflow_text() -> str:
    text = MINI.replace(
        "  contact_person_name: {type: text}\n",
        "  contact_person_name: {type: text}\n"
        "  lane: {type: text}\n  reason: {type: text}\n  suspended_for: {type: text}\n",
    )
    text = text.replace(
        "  accepted:\n",
        "  suspended:\n    title: {da: Stillet i bero, en: Suspended}\n  accepted:\n",
    )
    head, _, rest = text.partition("transitions:\n")
    # Keep mini's `accept` and `expire` (the timers fire them); replace its `submit`.
    kept = rest.split("  - trigger: accept\n", 1)[1]
    return head + "transitions:\n" + ALTERNATIVES + "  - trigger: accept\n" + kept


@functools.cache
def _compiled() -> CompiledWorkflow:
    loaded = load_workflow_text(_workflow_text(), "alternatives.yaml")
    return CompiledWorkflow(loaded.workflow, 7, loaded.content_hash, {})


@pytest.fixture(scope="module")
def wf() -> CompiledWorkflow:
    return _compiled()


def _opened(wf: CompiledWorkflow) -> CaseSnapshot:
    decision = decide.open_case(wf, organisation=HERE, actor=SECRETARIAT, now=T0)
    return replace(decision.case, id=1)


def _fire(
    wf: CompiledWorkflow, case: CaseSnapshot, trigger: str, actor: Actor, **data: str
) -> CaseSnapshot:
    decision = decide.fire_trigger(
        wf, case, trigger=trigger, actor=actor, now=T0 + dt.timedelta(hours=1), data=data
    )
    return decision.case


# ------------------------------------------------------------------ #15.1: the choice


def test_contact_person_takes_their_own_transition(wf: CompiledWorkflow) -> None:
    case = _fire(wf, _opened(wf), "submit", CONTACT, note="a")
    assert case.state == "submitted"
    assert case.data["lane"] == "contact"


def test_contact_person_with_the_secretariats_guard_is_refused(wf: CompiledWorkflow) -> None:
    """The issue's reproduction: note=b is the secretariat's guard, not the contact's."""
    with pytest.raises(RefusedError) as refused:
        _fire(wf, _opened(wf), "submit", CONTACT, note="b")
    assert refused.value.reason is RefusalReason.GUARD
    assert "note is 'b', needs 'a'" in str(refused.value)


def test_secretariat_takes_the_second_transition(wf: CompiledWorkflow) -> None:
    case = _fire(wf, _opened(wf), "submit", SECRETARIAT, note="b", reason="late")
    assert case.state == "accepted"
    assert case.data["lane"] == "secretariat"


def test_secretariat_with_the_contacts_guard_is_refused(wf: CompiledWorkflow) -> None:
    with pytest.raises(RefusedError) as refused:
        _fire(wf, _opened(wf), "submit", SECRETARIAT, note="a")
    assert refused.value.reason is RefusalReason.GUARD


def test_data_is_checked_against_the_transition_taken(wf: CompiledWorkflow) -> None:
    """`reason` is accepted by the secretariat's transition only."""
    with pytest.raises(RefusedError) as refused:
        _fire(wf, _opened(wf), "submit", CONTACT, note="a", reason="x")
    assert refused.value.reason is RefusalReason.INVALID_DATA
    assert "does not take reason" in str(refused.value)


def test_requires_of_the_chosen_alternative(wf: CompiledWorkflow) -> None:
    """Both `route`s are the secretariat's; the guard chooses, then that one's `requires`."""
    fast = _fire(wf, _opened(wf), "route", SECRETARIAT, note="fast")
    assert (fast.state, fast.data["lane"]) == ("submitted", "fast")
    with pytest.raises(RefusedError) as refused:
        _fire(wf, _opened(wf), "route", SECRETARIAT, note="slow")
    assert refused.value.reason is RefusalReason.MISSING_DATA
    assert "needs reason" in str(refused.value)
    slow = _fire(wf, _opened(wf), "route", SECRETARIAT, note="slow", reason="busy")
    assert (slow.state, slow.data["lane"]) == ("draft", "slow")


def test_no_alternative_holds_names_every_reason(wf: CompiledWorkflow) -> None:
    with pytest.raises(RefusedError) as refused:
        _fire(wf, _opened(wf), "route", SECRETARIAT, note="other", reason="r")
    assert refused.value.reason is RefusalReason.GUARD
    message = str(refused.value)
    # Each alternative with its first failing check: data it does not take, then the guard.
    assert "to 'submitted': 'route' does not take reason" in message
    assert "to 'draft': note is 'other', needs 'slow'" in message


def test_a_role_allowed_by_no_alternative_is_refused(wf: CompiledWorkflow) -> None:
    with pytest.raises(RefusedError) as refused:
        _fire(wf, _opened(wf), "route", CONTACT, note="fast")
    assert refused.value.reason is RefusalReason.ROLE


# ------------------------------------------------------------------ #15.3: sets after when


def test_guard_reads_the_case_before_sets(wf: CompiledWorkflow) -> None:
    suspended = _fire(wf, _opened(wf), "suspend", SECRETARIAT, suspended_for="secap")
    resumed = _fire(wf, suspended, "resume", SECRETARIAT)
    assert resumed.state == "draft"
    assert resumed.data.get("suspended_for") is None


def test_guard_reads_the_triggers_own_data(wf: CompiledWorkflow) -> None:
    """A guard sees the data given with the trigger (what `requires` + `when` rely on)."""
    case = _fire(wf, _opened(wf), "route", SECRETARIAT, note="fast")
    assert case.state == "submitted"


# ------------------------------------------------------------------ #15.2: the event says


def test_the_event_records_the_transition_taken(wf: CompiledWorkflow) -> None:
    decision = decide.fire_trigger(
        wf, _opened(wf), trigger="submit", actor=SECRETARIAT, now=T0, data={"note": "b"}
    )
    (event,) = [e for e in decision.events if e.kind is EventKind.TRANSITION]
    assert event.transition is not None
    assert wf.workflow.transitions[event.transition].to == "accepted"


def test_replay_takes_the_recorded_transition(wf: CompiledWorkflow) -> None:
    opened = decide.open_case(wf, organisation=HERE, actor=SECRETARIAT, now=T0)
    fired = decide.fire_trigger(
        wf,
        replace(opened.case, id=1),
        trigger="route",
        actor=SECRETARIAT,
        now=T0,
        data={"note": "slow", "reason": "busy"},
    )
    rebuilt = replay(wf.workflow, [*opened.events, *fired.events])
    assert rebuilt.state == fired.case.state == "draft"
    assert rebuilt.data == dict(fired.case.data)
    assert rebuilt.data["lane"] == "slow"


def test_replay_of_an_event_without_the_transition_falls_back(wf: CompiledWorkflow) -> None:
    """Events written before the transition was recorded: matched by trigger, source, target."""
    opened = decide.open_case(wf, organisation=HERE, actor=SECRETARIAT, now=T0)
    fired = decide.fire_trigger(
        wf,
        replace(opened.case, id=1),
        trigger="submit",
        actor=SECRETARIAT,
        now=T0,
        data={"note": "b"},
    )
    old = [replace(e, transition=None) for e in fired.events]
    rebuilt = replay(wf.workflow, [*opened.events, *old])
    assert rebuilt.state == "accepted"
    assert rebuilt.data["lane"] == "secretariat"


# ------------------------------------------------------------------ #15.2: the property

NOTES = ["a", "b", "fast", "slow", "other", "secap", None]
ROLES = ["contact_person", "secretariat", None]

alternative_step = st.tuples(
    st.sampled_from(["submit", "route", "suspend", "resume", "accept", "expire"]),
    st.sampled_from(ROLES),
    st.sampled_from(NOTES),
    st.booleans(),
    st.sampled_from(["secap", "other"]),
)


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(alternative_step, max_size=12))
def test_replay_reproduces_every_run_over_guarded_alternatives(
    steps: list[tuple[str, str | None, str | None, bool, str]],
) -> None:
    wf = _compiled()
    opened = decide.open_case(wf, organisation=HERE, actor=SECRETARIAT, now=T0)
    case = replace(opened.case, id=1)
    events = list(opened.events)
    now = T0
    for trigger, role, note, with_reason, suspended_for in steps:
        now += dt.timedelta(hours=1)
        data: dict[str, str] = {}
        if note is not None:
            data["note"] = note
        if with_reason:
            data["reason"] = "because"
        if trigger == "suspend":
            data = {"suspended_for": suspended_for}
        actor = Actor(name="x", role=role) if role else decide.SYSTEM
        try:
            decision = decide.fire_trigger(
                wf, case, trigger=trigger, actor=actor, now=now, data=data
            )
        except RefusedError:
            continue
        case = replace(decision.case, id=1)
        events.extend(decision.events)
        rebuilt = replay(wf.workflow, events)
        assert (rebuilt.state, rebuilt.epoch) == (case.state, case.epoch)
        assert rebuilt.data == dict(case.data)
