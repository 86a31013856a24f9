"""Property: replaying a case's events from its definition gives its current state."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from dk2020flow.definition.loader import load_workflow
from dk2020flow.engine import decide
from dk2020flow.engine.decide import Actor
from dk2020flow.engine.machine import CompiledWorkflow
from dk2020flow.engine.records import DueTimer, EventRecord
from dk2020flow.engine.replay import replay
from dk2020flow.errors import RefusedError

ROOT = Path(__file__).resolve().parents[3]
_loaded = load_workflow(ROOT / "workflows" / "dk2020.yaml", check_templates=False)
WF = CompiledWorkflow(_loaded.workflow, 1, _loaded.content_hash, {})
START = dt.datetime(2020, 6, 20, 8, 0, tzinfo=dt.UTC)

# A pool of plausible values for every field, valid and invalid.
VALUES = {
    "cohort": ["round1", "round2", "pilot"],
    "decision_date": ["2020-08-20", "bad"],
    "contact_person_name": ["Anna Jensen"],
    "contact_person_email": ["anna@aarhus.example.dk", "nope"],
    "decline_reason": ["budget"],
    "commitment_signed": ["true", "false"],
    "staff_hours_per_week": ["37", "x"],
    "advisor_name": ["Bo"],
    "inventory_base_year": ["2018"],
    "plan_url": ["https://aarhus.example.dk/plan.pdf"],
    "c40_approval_date": ["2022-05-01"],
    "adoption_date": ["2022-06-01"],
    "withdraw_reason": ["new council"],
}
TRIGGERS = sorted({t.trigger for t in WF.workflow.transitions})
ROLES = sorted(WF.workflow.roles)
ITEMS = sorted(WF.workflow.checklists["capf"].items)

step = st.one_of(
    st.tuples(
        st.just("fire"), st.sampled_from(TRIGGERS), st.sampled_from(ROLES), st.integers(0, 3)
    ),
    st.tuples(
        st.just("check"),
        st.sampled_from(ITEMS),
        st.sampled_from(["met", "not_met", "partly_met", "not_applicable"]),
        st.integers(0, 2),
    ),
    st.tuples(
        st.just("answer"),
        st.sampled_from(ITEMS),
        st.sampled_from(["Rettet i afsnit 3.", "See the new annex.", "  "]),
        st.integers(0, 1),
    ),
    st.tuples(st.just("timer"), st.just(""), st.just(""), st.integers(0, 5)),
)


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(step, max_size=40), seed=st.integers(0, 1000))
def test_replay_gives_the_current_state(steps: list[tuple[str, str, str, int]], seed: int) -> None:
    now = START
    decision = decide.open_case(
        WF,
        organisation=decide.Organisation(code="751", name="Aarhus", region="Midtjylland"),
        actor=Actor(name="KL", role="follow_up"),
        now=now,
    )
    case = replace(decision.case, id=1)
    events: list[EventRecord] = list(decision.events)
    pending = list(decision.arm)
    for number, (kind, a, b, n) in enumerate(steps):
        now += dt.timedelta(days=7)
        try:
            if kind == "fire":
                transition = WF.workflow.transitions_named(a)[0]
                wanted = list(transition.requires)[: len(transition.requires) - (n == 3)]
                data = {f: VALUES[f][(seed + number) % len(VALUES[f])] for f in wanted}
                result = decide.fire_trigger(
                    WF, case, trigger=a, actor=Actor(name="p", role=b), now=now, data=data
                )
            elif kind == "check":
                result = decide.record_checklist(
                    WF,
                    case,
                    checklist="capf",
                    items={a: (b, ["", "Mangler tal", "Uklart"][n])},
                    actor=Actor(name="s", role="secretariat"),
                    now=now,
                )
            elif kind == "answer":
                result = decide.answer_checklist(
                    WF,
                    case,
                    checklist="capf",
                    answers={a: b},
                    actor=Actor(name="c", role=["contact_person", "mayor"][n]),
                    now=now,
                )
            else:
                if not pending:
                    continue
                arm = pending[n % len(pending)]
                due = DueTimer(
                    id=number,
                    case_id=1,
                    timer=arm.timer,
                    kind=arm.kind,
                    index=arm.index,
                    due_at=arm.due_at,
                    deadline_at=arm.deadline_at,
                    epoch=arm.epoch,
                )
                fired = decide.fire_timer(WF, case, due, max(now, arm.due_at))
                if fired is None:
                    continue
                result = fired
        except RefusedError:
            continue
        case = replace(result.case, id=1)
        events.extend(result.events)
        if result.cancel_pending:
            pending = []
        pending = [p for p in pending if p.epoch == case.epoch] + list(result.arm)
    rebuilt = replay(WF.workflow, events)
    assert rebuilt.state == case.state
    assert rebuilt.epoch == case.epoch
    assert rebuilt.cohort == case.cohort
    assert rebuilt.data == dict(case.data)
    assert rebuilt.checklists == {k: dict(v) for k, v in case.checklists.items()}
