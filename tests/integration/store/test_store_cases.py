"""Cases, events and the all-or-nothing rule, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from dk2020flow.engine.records import ChecklistItem, EventKind, TimerStatus
from dk2020flow.errors import ConflictError, NotFoundError
from dk2020flow.store.errors import NaiveDatetimeError
from dk2020flow.store.port import CaseFilter
from dk2020flow.store.repository import SqlStore

from .conftest import Build

CPH = dt.timezone(dt.timedelta(hours=2))
T0 = dt.datetime(2020, 6, 20, 10, 0, tzinfo=CPH)
UTC = dt.UTC


def test_a_new_case_round_trips(store: SqlStore, build: Build) -> None:
    case = build.case(
        checklists={
            "capf": {
                "P1.1": ChecklistItem(status="met", comment="ok"),
                "P1.2": ChecklistItem(status="open"),
            }
        },
    )
    opened = build.event(comment="åbnet", data={"reason": "pilot", "count": 2})
    with store.transaction() as tx:
        case_id = tx.insert_case(build.decision(case, [opened]), [])

    with store.read() as tx:
        loaded = tx.load_case(case_id)
        history = tx.history(case_id)

    assert loaded == replace(
        case,
        id=case_id,
        organisation_name="Aarhus",
        region="Midtjylland",
        country="DK",
        version=1,
    )
    assert loaded.entered_at.tzinfo is UTC
    assert [e.seq for e in history] == [1]
    assert history[0].record == opened
    assert history[0].case_id == case_id


def test_times_come_back_as_the_same_instant_in_utc(store: SqlStore, build: Build) -> None:
    local = dt.datetime(2020, 10, 25, 2, 30, tzinfo=CPH)
    case_id = build.open(store, entered_at=local, opened_at=local)
    with store.read() as tx:
        loaded = tx.load_case(case_id)
    assert loaded.entered_at == local
    assert loaded.entered_at.tzinfo is UTC
    assert loaded.entered_at.hour == 0


def test_a_naive_datetime_is_refused_and_nothing_is_written(store: SqlStore, build: Build) -> None:
    naive = dt.datetime(2020, 6, 20, 10, 0)
    with pytest.raises(NaiveDatetimeError, match="naive datetime 2020-06-20T10:00:00"):
        build.open(store, entered_at=naive)
    with store.read() as tx:
        assert tx.cases(CaseFilter()) == []


def test_apply_writes_case_events_timers_and_mail_together(store: SqlStore, build: Build) -> None:
    due = dt.datetime(2020, 8, 31, 23, 59, tzinfo=CPH)
    case_id = build.open(store, arm=[build.arm("reply", due=due)])
    with store.read() as tx:
        case = tx.load_case(case_id)

    moved = replace(case, state="decided", epoch=2, data={**case.data, "decision": "yes"})
    decision = build.decision(
        moved,
        [
            build.event(
                EventKind.TRANSITION,
                trigger="decide",
                from_state="invited",
                to_state="decided",
                role="council",
                at=T0 + dt.timedelta(days=3),
            )
        ],
        arm=(build.arm("onboarding", due=due + dt.timedelta(days=30), epoch=2),),
        cancel_pending=True,
    )
    with store.transaction() as tx:
        tx.apply(decision, [build.mail(template="welcome")], expected_version=case.version)

    with store.read() as tx:
        after = tx.load_case(case_id)
        history = tx.history(case_id)
        pending = tx.timers_of(case_id)
        every = tx.timers_of(case_id, pending_only=False)
        mail = tx.outbox(case_id=case_id)
    assert (after.state, after.epoch, after.version) == ("decided", 2, 2)
    assert after.data["decision"] == "yes"
    assert [e.seq for e in history] == [1, 2]
    assert history[1].record.trigger == "decide"
    assert [(t.timer, t.epoch) for t in pending] == [("onboarding", 2)]
    discarded = [t for t in every if t.status is TimerStatus.DISCARDED]
    assert [t.timer for t in discarded] == ["reply"]
    assert [m.template for m in mail] == ["welcome"]
    assert mail[0].case_id == case_id


def test_cancel_timers_discards_named_firings_at_the_current_epoch_before_re_arming(
    store: SqlStore, build: Build
) -> None:
    due = dt.datetime(2020, 8, 31, 21, 59, tzinfo=UTC)
    case_id = build.open(
        store,
        arm=[
            build.arm("reply", due=due),
            build.arm("reply", due=due, index=1),
            build.arm("other", due=due),
        ],
    )
    with store.read() as tx:
        case = tx.load_case(case_id)
    later = due + dt.timedelta(days=14)
    decision = build.decision(
        case,
        [build.event(EventKind.DEADLINE_EXTENDED, comment="more time")],
        cancel_timers=("reply",),
        arm=(build.arm("reply", due=later),),
    )
    with store.transaction() as tx:
        tx.apply(decision, [], expected_version=case.version)
    with store.read() as tx:
        pending = tx.timers_of(case_id)
    assert sorted((t.timer, t.due_at) for t in pending) == [("other", due), ("reply", later)]


def test_optimistic_lock_the_second_writer_gets_a_conflict_and_writes_nothing(
    store: SqlStore, build: Build
) -> None:
    case_id = build.open(store)
    with store.read() as tx:
        first = tx.load_case(case_id)
    with store.read() as tx:
        second = tx.load_case(case_id)
    assert first.version == second.version == 1

    with store.transaction() as tx:
        tx.apply(
            build.decision(replace(first, state="a", epoch=2)),
            [build.mail()],
            expected_version=first.version,
        )
    with (
        pytest.raises(ConflictError, match=f"case {case_id} was changed by someone else"),
        store.transaction() as tx,
    ):
        tx.apply(
            build.decision(
                replace(second, state="b", epoch=2),
                arm=(build.arm(due=T0 + dt.timedelta(days=1), epoch=2),),
            ),
            [build.mail(template="other")],
            expected_version=second.version,
        )

    with store.read() as tx:
        after = tx.load_case(case_id)
        assert (after.state, after.version) == ("a", 2)
        assert len(tx.history(case_id)) == 2
        assert tx.timers_of(case_id) == []
        assert [m.template for m in tx.outbox()] == ["invitation"]


def test_an_exception_inside_the_transaction_leaves_nothing(store: SqlStore, build: Build) -> None:
    case_id = build.open(store)
    with store.read() as tx:
        case = tx.load_case(case_id)

    class BoomError(Exception):
        pass

    def change_then_fail() -> None:
        with store.transaction() as tx:
            tx.apply(
                build.decision(
                    replace(case, state="decided", epoch=2), arm=(build.arm(due=T0, epoch=2),)
                ),
                [build.mail()],
                expected_version=case.version,
            )
            raise BoomError

    with pytest.raises(BoomError):
        change_then_fail()

    with store.read() as tx:
        assert tx.load_case(case_id) == case
        assert len(tx.history(case_id)) == 1
        assert tx.timers_of(case_id, pending_only=False) == []
        assert tx.outbox() == []


def test_a_failing_savepoint_does_not_undo_its_neighbours(store: SqlStore, build: Build) -> None:
    ids = [build.open(store, code) for code in ("101", "147", "751")]

    with store.transaction() as tx:
        for n, case_id in enumerate(ids):
            try:
                with tx.savepoint():
                    case = tx.load_case(case_id)
                    tx.apply(
                        build.decision(replace(case, state="next", epoch=2)),
                        [build.mail()],
                        expected_version=case.version,
                    )
                    if n == 1:
                        raise RuntimeError("this firing fails")
            except RuntimeError:
                tx.append_event(case_id, build.event(EventKind.TIMER, comment="failed"))

    with store.read() as tx:
        states = [tx.load_case(i).state for i in ids]
        mail = [m.case_id for m in tx.outbox()]
        failed_history = tx.history(ids[1])
    assert states == ["next", "invited", "next"]
    assert sorted(mail) == sorted([ids[0], ids[2]])
    assert [(e.seq, e.record.comment) for e in failed_history] == [(1, ""), (2, "failed")]


def test_a_second_case_for_the_same_organisation_and_workflow_is_refused(
    store: SqlStore, build: Build
) -> None:
    first = build.open(store, "751")
    with pytest.raises(ConflictError, match=f"751 .*already has a case .*case {first}"):
        build.open(store, "751")
    build.open(store, "751", workflow="other")  # another workflow is fine


def test_unknown_case_and_organisation(store: SqlStore, build: Build) -> None:
    with store.read() as tx, pytest.raises(NotFoundError, match="no case 999"):
        tx.load_case(999)
    with store.read() as tx, pytest.raises(NotFoundError, match="no case 999"):
        tx.history(999)
    with pytest.raises(NotFoundError, match="no organisation with code 999"):
        build.open(store, "999")


def test_case_filters(store: SqlStore, build: Build) -> None:
    due = dt.datetime(2020, 9, 1, tzinfo=UTC)
    aarhus = build.open(store, "751", arm=[build.arm(due=due)])
    kbh = build.open(store, "101", state="decided", cohort="round2")
    odense = build.open(store, "461", closed=True)
    other = build.open(store, "751", workflow="other")

    def ids(**flt: object) -> list[int]:
        with store.read() as tx:
            found = tx.case_ids(CaseFilter(**flt))  # type: ignore[arg-type]
            assert [c.id for c in tx.cases(CaseFilter(**flt))] == found  # type: ignore[arg-type]
            return found

    assert ids() == [aarhus, kbh, odense, other]
    assert ids(workflow="dk2020") == [aarhus, kbh, odense]
    assert ids(state="decided") == [kbh]
    assert ids(cohort="round2") == [kbh]
    assert ids(region="Midtjylland") == [aarhus, other]
    assert ids(open_only=True) == [aarhus, kbh, other]
    assert ids(overdue_at=due + dt.timedelta(seconds=1)) == [aarhus]
    assert ids(overdue_at=due) == []


def test_find_cases_by_ref(store: SqlStore, build: Build) -> None:
    kbh = build.open(store, "101")
    aarhus = build.open(store, "751")
    aarhus_other = build.open(store, "751", workflow="other")

    def refs(ref: str, workflow: str | None = None) -> list[int | None]:
        with store.read() as tx:
            return [c.id for c in tx.find_cases_by_ref(ref, workflow)]

    assert refs(f"#{kbh}") == [kbh]
    assert refs(f"#{aarhus}") == [aarhus]
    assert refs(str(aarhus)) == []  # a bare number is an organisation code, never a case number
    assert refs("101") == [kbh]
    assert refs("KØBENHAVN") == [kbh]
    assert refs(" aarhus ") == [aarhus, aarhus_other]
    assert refs("Aarhus", "other") == [aarhus_other]
    assert refs("751", "dk2020") == [aarhus]
    assert refs("Atlantis") == []


def test_append_event_continues_the_sequence(store: SqlStore, build: Build) -> None:
    case_id = build.open(store)
    with store.transaction() as tx:
        tx.append_event(case_id, build.event(EventKind.FIRING_SKIPPED, comment="missed"))
        tx.append_event(case_id, build.event(EventKind.MAIL_PARKED, comment="no contact"))
    with store.read() as tx:
        history = tx.history(case_id)
    assert [(e.seq, e.record.kind) for e in history] == [
        (1, EventKind.OPENED),
        (2, EventKind.FIRING_SKIPPED),
        (3, EventKind.MAIL_PARKED),
    ]
