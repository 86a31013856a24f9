"""The case page's view-model (``service/casepage.py``) on a real database: what it shows
and which actions it offers to which roles; the engine still decides."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from dk2020flow.bundled import workflow_path
from dk2020flow.clock import ManualClock
from dk2020flow.engine.records import EventKind
from dk2020flow.errors import RefusedError
from dk2020flow.service import Service
from dk2020flow.service.casepage import case_page, checklist_role, extend_role, role_to_fire
from dk2020flow.store.repository import SqlStore

OPENED = dt.datetime(2020, 8, 3, 9, 0, tzinfo=dt.UTC)
DECIDED = dt.datetime(2021, 5, 30, 9, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2021, 12, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def service(db_url: str) -> Iterator[Service]:
    store = SqlStore(db_url)
    try:
        svc = Service(store, clock=ManualClock(NOW))
        svc.load_workflow(workflow_path("dk2020"), now=OPENED)
        for name in ("Odense", "Vejle"):
            svc.open_case("dk2020", name, actor="setup", role="secretariat", now=OPENED)
        svc.fire(
            "Odense",
            "decide_participate",
            actor="kl@example.dk",
            role="follow_up",
            data={
                "cohort": "round2",
                "decision_date": "2021-05-30",
                "contact_person_name": "Kontakt Odense",
                "contact_person_email": "kontakt@example.dk",
            },
            now=DECIDED,
        )
        yield svc
    finally:
        store.close()


def test_the_page_shows_the_case_in_the_page_language(service: Service) -> None:
    da = case_page(service, "Odense", roles=("secretariat",), language="da")
    en = case_page(service, "Odense", roles=("secretariat",), language="en")
    assert (da.case.organisation_name, da.case.state) == ("Odense", "decided")
    assert en.case.id == da.case.id
    assert (da.state_title, en.state_title) == ("Deltagelse besluttet", "Participation decided")
    assert (da.cohort_title, en.cohort_title) == ("Runde 2", "Round 2")
    fields = {f.name: f for f in da.fields}
    assert fields["contact_person_name"].value == "Kontakt Odense"
    assert fields["contact_person_name"].title == "Kontaktperson"
    assert fields["cohort"].label == "Runde 2"
    assert fields["plan_url"].value is None
    # The history, newest first, with the workflow's titles.
    assert [e.event.record.kind for e in da.history] == [EventKind.TRANSITION, EventKind.OPENED]
    assert da.history[0].trigger_title == "Kommunalbestyrelsen deltager"
    assert (da.history[0].from_title, da.history[0].to_title) == (
        "Inviteret",
        "Deltagelse besluttet",
    )
    # The mail of this case only.
    assert {m.template for m in da.outbox} == {"invitation", "decision_confirmation"}
    assert all(m.case_id == da.case.id for m in da.outbox)


def test_deadlines_say_how_late_by_the_one_definition_of_late(service: Service) -> None:
    page = case_page(service, "Odense", roles=("secretariat",), language="da")
    (deadline,) = page.deadlines
    assert deadline.timer == "application_deadline"
    assert deadline.title == "Ansøgningsfrist"
    assert deadline.deadline_at == dt.datetime(2021, 8, 26, 21, 59, tzinfo=dt.UTC)
    assert deadline.left == deadline.deadline_at - NOW
    late = {(d.case.organisation_name, d.timer) for d in service.late_deadlines(NOW, "dk2020")}
    assert late == {("Odense", "application_deadline"), ("Vejle", "reply_deadline")}
    assert deadline.late is True
    assert deadline.extend_as == "secretariat"
    # A moved deadline wins, and is no longer late.
    service.extend(
        "Odense",
        "application_deadline",
        actor="s@example.dk",
        role="secretariat",
        reason="Byrådsmøde flyttet",
        to=dt.datetime(2022, 1, 14, 11, 0, tzinfo=dt.UTC),
    )
    (moved,) = case_page(service, "Odense", roles=("secretariat",), language="da").deadlines
    assert moved.deadline_at == dt.datetime(2022, 1, 14, 11, 0, tzinfo=dt.UTC)
    assert moved.late is False
    assert moved.left > dt.timedelta(0)


def test_actions_are_the_triggers_the_users_roles_may_fire(service: Service) -> None:
    secretariat = case_page(service, "Odense", roles=("secretariat",), language="da")
    # From `decided`: submit_application is the contact person's, withdraw follow_up's.
    assert secretariat.actions == ()
    both = case_page(service, "Odense", roles=("secretariat", "follow_up"), language="da")
    (withdraw,) = both.actions
    assert (withdraw.trigger, withdraw.role, withdraw.roles) == (
        "withdraw",
        "follow_up",
        ("follow_up",),
    )
    assert withdraw.title == "Udtræd af DK2020"
    (reason,) = withdraw.fields
    assert (reason.name, reason.required, reason.title) == (
        "withdraw_reason",
        True,
        "Begrundelse for udtræden",
    )
    # Vejle is invited: follow_up may decide, with the decision's fields as inputs.
    vejle = case_page(service, "Vejle", roles=("follow_up",), language="en")
    decide = vejle.action("decide_participate")
    assert decide is not None
    inputs = {f.name: f for f in decide.fields}
    assert list(inputs) == [
        "cohort",
        "decision_date",
        "contact_person_name",
        "contact_person_email",
    ]
    assert [c.value for c in inputs["cohort"].choices] == ["pilot", "round1", "round2"]
    assert inputs["cohort"].choices[2].label == "Round 2"
    declines = vejle.action("decide_decline")
    assert declines is not None
    assert [(f.name, f.required) for f in declines.fields] == [
        ("decision_date", True),
        ("decline_reason", False),
    ]


@pytest.mark.parametrize("roles", [("read_only",), ("admin",), ("admin", "read_only")])
def test_read_only_and_admin_see_no_actions(service: Service, roles: tuple[str, ...]) -> None:
    page = case_page(service, "Vejle", roles=roles, language="da")
    assert page.actions == ()
    assert page.roles == ()
    assert all(c.edit_as is None for c in page.checklists)
    assert all(d.extend_as is None for d in page.deadlines)
    assert role_to_fire(page.workflow, page.case, "decide_participate", roles) is None


def test_the_role_taken_is_one_the_transition_allows_else_the_engine_refuses(
    service: Service,
) -> None:
    page = case_page(service, "Odense", roles=("secretariat",), language="da")
    wf, case = page.workflow, page.case
    assert role_to_fire(wf, case, "withdraw", ("secretariat", "follow_up")) == "follow_up"
    assert role_to_fire(wf, case, "withdraw", ("read_only", "secretariat")) == "secretariat"
    assert extend_role(wf, case, "application_deadline", ("approver", "follow_up")) == "follow_up"
    assert checklist_role(wf, "capf", ("follow_up", "approver")) == "approver"
    # Offered or not, the engine decides: secretariat may not withdraw an organisation.
    role = role_to_fire(wf, case, "withdraw", ("secretariat",))
    with pytest.raises(RefusedError, match="role 'secretariat' may not fire 'withdraw'"):
        service.fire("Odense", "withdraw", actor="s", role=role, data={"withdraw_reason": "x"})


def test_checklists_show_status_comment_and_who_may_record(service: Service) -> None:
    service.check(
        "Odense",
        "capf",
        {"P1.1": ("met", "Fin vision"), "P2.3": ("partly_met", "")},
        actor="s@example.dk",
        role="secretariat",
    )
    page = case_page(service, "Odense", roles=("follow_up", "approver"), language="da")
    (capf,) = page.checklists
    assert (capf.title, capf.roles, capf.edit_as) == (
        "CAPF-screening",
        ("secretariat", "approver"),
        "approver",
    )
    assert capf.role_titles == ("Sekretariatet (CONCITO)", "C40")
    rows = {r.item: r for r in capf.items}
    assert len(rows) == 16
    assert (rows["P1.1"].status, rows["P1.1"].comment) == ("met", "Fin vision")
    assert (rows["P2.3"].status, rows["P3.6"].status) == ("partly_met", None)
    follow_up = case_page(service, "Odense", roles=("follow_up",), language="da")
    assert follow_up.checklists[0].edit_as is None
