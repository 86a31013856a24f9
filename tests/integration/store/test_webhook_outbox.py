"""The webhooks' outbox: notices queued in the transaction of their events, leases, outcomes,
dead letters and retries, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import event, func, select

from dk2020flow.engine.records import EventKind, TimerStatus
from dk2020flow.errors import ConflictError, NotFoundError
from dk2020flow.store import tables as t
from dk2020flow.store.port import (
    BatchItem,
    DecisionStep,
    TimerFinish,
    WebhookOutcome,
    WebhookStatus,
    WebhookSubscription,
)
from dk2020flow.store.repository import SqlStore

from .conftest import T0, Build

LEASE = dt.timedelta(minutes=5)
PENDING, SENT, DEAD = WebhookStatus.PENDING, WebhookStatus.SENT, WebhookStatus.DEAD


def _subscribe(store: SqlStore, *events: str, url: str = "http://127.0.0.1:9/h") -> int:
    with store.transaction() as tx:
        added = tx.add_webhook(
            url=url,
            events=list(events),
            secret="whsec_c2VjcmV0",
            description="",
            created_by="test",
            now=T0,
        )
    return added.id


def _bodies(store: SqlStore) -> list[dict[str, Any]]:
    with store.read() as tx:
        found = tx.webhook_deliveries(limit=1000)
    return [json.loads(d.body) for d in reversed(found)]


def _advance(build: Build, store: SqlStore, case_id: int, **changes: Any) -> None:
    """A transition of the case (version 1 -> 2), with ``changes`` to the snapshot."""
    with store.read() as tx:
        case = tx.load_case(case_id)
    moved = replace(case, version=case.version + 1, epoch=case.epoch + 1, **changes)
    transition = build.event(
        EventKind.TRANSITION,
        trigger="go",
        from_state=case.state,
        to_state=moved.state,
        role="secretariat",
        comment="onwards",
    )
    with store.transaction() as tx:
        tx.apply(build.decision(moved, [transition]), [], expected_version=case.version)


def test_subscriptions_are_added_listed_and_removed(store: SqlStore) -> None:
    first = _subscribe(store, "case.opened")
    second = _subscribe(store, "case.closed", url="https://example.org/hook")
    with store.read() as tx:
        listed = tx.webhooks()
        assert [w.id for w in listed] == [first, second]
        assert listed[1] == WebhookSubscription(
            id=second,
            url="https://example.org/hook",
            events=("case.closed",),
            secret="whsec_c2VjcmV0",
            description="",
            active=True,
            created_by="test",
            created_at=T0,
            disabled_at=None,
        )
    with store.transaction() as tx:
        assert tx.remove_webhook(first, T0) == (True, 0)
        assert tx.remove_webhook(first, T0) == (False, 0)
        with pytest.raises(NotFoundError, match="no webhook subscription 99"):
            tx.remove_webhook(99, T0)
    with store.read() as tx:
        assert [w.id for w in tx.webhooks()] == [second]
        removed = tx.webhooks(include_removed=True)[0]
        assert (removed.active, removed.disabled_at) == (False, T0)


def test_nothing_is_queued_without_a_subscriber(store: SqlStore, build: Build) -> None:
    _subscribe(store, "case.closed")  # nobody asks for case.opened
    build.open(store)
    with store.read() as tx:
        assert tx.webhook_deliveries() == []
        assert tx.webhook_counts() == {PENDING: 0, SENT: 0, DEAD: 0}
        assert tx.next_webhook_at() is None


def test_a_change_queues_one_notice_per_subscriber_with_the_payload(
    store: SqlStore, build: Build
) -> None:
    both = _subscribe(store, "case.opened", "case.state_changed")
    opened_only = _subscribe(store, "case.opened")
    case_id = build.open(store)
    _advance(build, store, case_id, state="deciding")
    with store.read() as tx:
        deliveries = list(reversed(tx.webhook_deliveries()))
        events = tx.history(case_id)
        assert tx.next_webhook_at() == T0
    assert [(d.subscription_id, d.event_type) for d in deliveries] == [
        (both, "case.opened"),
        (opened_only, "case.opened"),
        (both, "case.state_changed"),
    ]
    assert len({d.delivery_id for d in deliveries}) == 3
    assert all(d.delivery_id.startswith("msg_") and len(d.delivery_id) == 36 for d in deliveries)
    assert all((d.status, d.attempts, d.case_id) == (PENDING, 0, case_id) for d in deliveries)
    assert all(d.next_attempt_at == d.created_at == T0 for d in deliveries)
    with store.engine.connect() as conn:
        event_ids = list(
            conn.execute(select(t.events.c.id).where(t.events.c.case_id == case_id)).scalars()
        )
    assert [d.event_id for d in deliveries] == [event_ids[0], event_ids[0], event_ids[1]]
    changed = json.loads(deliveries[2].body)
    assert changed == {
        "id": deliveries[2].delivery_id,
        "type": "case.state_changed",
        "occurred_at": "2020-06-20T08:00:00Z",
        "case": {
            "id": case_id,
            "workflow": "dk2020",
            "organisation": {"code": "751", "name": "Aarhus"},
            "state": "deciding",
            "version": 2,
        },
        "event": {
            "seq": events[1].seq,
            "kind": "transition",
            "trigger": "go",
            "from_state": "invited",
            "to_state": "deciding",
            "actor": "secretariat@example.dk",
            "role": "secretariat",
            "comment": "onwards",
        },
    }
    opened = json.loads(deliveries[0].body)
    assert (opened["type"], opened["case"]["version"], opened["event"]["seq"]) == (
        "case.opened",
        1,
        1,
    )


def test_a_rolled_back_change_leaves_no_delivery(store: SqlStore, build: Build) -> None:
    _subscribe(store, "case.opened", "case.state_changed")

    def open_then_fail() -> None:
        with store.transaction() as tx:
            tx.insert_case(build.decision(build.case()), [])
            raise RuntimeError("the change fails after its events were written")

    def apply_stale(case_id: int) -> None:
        with store.transaction() as tx:  # a version that moved on: apply writes nothing
            moved = replace(tx.load_case(case_id), state="deciding", version=9)
            transition = build.event(EventKind.TRANSITION, from_state="invited")
            tx.apply(build.decision(moved, [transition]), [], expected_version=8)

    with pytest.raises(RuntimeError):
        open_then_fail()
    case_id = build.open(store, "101")
    with pytest.raises(ConflictError):
        apply_stale(case_id)
    with store.read() as tx:
        assert [d.event_type for d in tx.webhook_deliveries()] == ["case.opened"]


def test_closing_transition_is_state_changed_and_closed(store: SqlStore, build: Build) -> None:
    _subscribe(store, "case.state_changed", "case.closed", "case.data_changed")
    case_id = build.open(store)
    _advance(build, store, case_id, state="declined", closed=True)
    with store.read() as tx:
        case = tx.load_case(case_id)
        data = build.event(EventKind.DATA_SET, from_state="declined", to_state="declined")
    with store.transaction() as tx:
        tx.apply(
            build.decision(replace(case, version=3), [data]), [], expected_version=case.version
        )
    assert [b["type"] for b in _bodies(store)] == [
        "case.state_changed",
        "case.closed",
        "case.data_changed",
    ]


def test_a_dispatch_batch_queues_its_notices_with_its_events(store: SqlStore, build: Build) -> None:
    _subscribe(store, "case.state_changed")
    due = T0 + dt.timedelta(days=1)
    cases = [build.open(store, code, arm=[build.arm(due=due)]) for code in ("101", "751")]
    with store.transaction() as tx:
        claimed = tx.claim_due_timers(due, 10)
        loaded = tx.load_cases(cases)
        items = []
        for timer in claimed:
            case = loaded[timer.case_id]
            moved = replace(case, state="late", epoch=2, version=2)
            events = [
                build.event(EventKind.TIMER, trigger="reply:deadline", from_state="invited"),
                build.event(
                    EventKind.TRANSITION, trigger="timeout", from_state="invited", to_state="late"
                ),
            ]
            items.append(
                BatchItem(
                    case_id=timer.case_id,
                    expected_version=1,
                    at=due,
                    steps=(
                        TimerFinish(timer_id=timer.id, status=TimerStatus.FIRED),
                        DecisionStep(decision=build.decision(moved, events, cancel_pending=True)),
                    ),
                )
            )
        outcome = tx.apply_batch(items)
    assert (outcome.conflicts, dict(outcome.failures)) == (frozenset(), {})
    bodies = _bodies(store)
    assert sorted(b["case"]["id"] for b in bodies) == sorted(cases)
    assert {(b["event"]["seq"], b["event"]["to_state"], b["case"]["version"]) for b in bodies} == {
        (3, "late", 2)
    }
    with store.read() as tx:
        for delivery in tx.webhook_deliveries():
            history = tx.history(delivery.case_id or 0)
            assert history[2].record.kind is EventKind.TRANSITION
            assert delivery.event_id == history[2].id


def test_claims_lease_and_outcomes_belong_to_their_claim(store: SqlStore, build: Build) -> None:
    subscription = _subscribe(store, "case.opened")
    for code in ("101", "147", "151", "153"):
        build.open(store, code)
    with store.transaction() as tx:
        first = tx.claim_webhooks(T0, 3, T0 + LEASE)
    assert [c.delivery.attempts for c in first] == [1, 1, 1]
    assert {(c.url, c.secret) for c in first} == {("http://127.0.0.1:9/h", "whsec_c2VjcmV0")}
    assert all(c.delivery.lease_until == c.delivery.next_attempt_at == T0 + LEASE for c in first)
    with store.transaction() as tx:  # leased ones are not handed out again
        (rest,) = tx.claim_webhooks(T0 + dt.timedelta(minutes=1), 10, T0 + LEASE)
        assert rest.delivery.id not in {c.delivery.id for c in first}
    sent, retried, dead = (c.delivery for c in first)
    later = T0 + dt.timedelta(minutes=1)
    with store.transaction() as tx:
        written = tx.finish_webhooks(
            [
                WebhookOutcome(id=sent.id, attempts=1, status=SENT, at=later, http_status=204),
                WebhookOutcome(
                    id=retried.id,
                    attempts=1,
                    status=PENDING,
                    at=later,
                    next_attempt_at=later + dt.timedelta(minutes=20),
                    http_status=500,
                    error="HTTP 500 Internal Server Error",
                ),
                WebhookOutcome(id=dead.id, attempts=1, status=DEAD, at=later, error="gave up"),
                # An outcome of an earlier claim of the same row is not written.
                WebhookOutcome(id=rest.delivery.id, attempts=0, status=SENT, at=later),
            ]
        )
    assert written == 3
    with store.read() as tx:
        now_sent = tx.webhook_delivery(sent.delivery_id)
        now_retried = tx.webhook_delivery(retried.id)
        now_dead = tx.webhook_delivery(str(dead.id))
        assert tx.webhook_counts() == {PENDING: 2, SENT: 1, DEAD: 1}
        assert [d.id for d in tx.webhook_deliveries(status=DEAD)] == [dead.id]
        assert len(tx.webhook_deliveries(subscription_id=subscription)) == 4
    assert now_sent is not None and now_retried is not None and now_dead is not None
    assert (now_sent.status, now_sent.sent_at, now_sent.last_status) == (SENT, later, 204)
    assert now_sent.lease_until is None
    assert (now_retried.status, now_retried.last_status, now_retried.lease_until) == (
        PENDING,
        500,
        None,
    )
    assert now_retried.next_attempt_at == later + dt.timedelta(minutes=20)
    assert now_retried.last_error == "HTTP 500 Internal Server Error"
    assert (now_dead.status, now_dead.dead_at, now_dead.last_error) == (DEAD, later, "gave up")
    with store.transaction() as tx:  # the lease of ``rest`` ran out: it is due again
        assert tx.claim_webhooks(T0 + LEASE - dt.timedelta(seconds=1), 10, T0 + 2 * LEASE) == []
        again = tx.claim_webhooks(T0 + LEASE, 10, T0 + 2 * LEASE)
    assert [(c.delivery.id, c.delivery.attempts) for c in again] == [(rest.delivery.id, 2)]
    with store.transaction() as tx:  # released: back as it was, not counted
        tx.finish_webhooks(
            [WebhookOutcome(id=rest.delivery.id, attempts=2, status=PENDING, at=T0, released=True)]
        )
        back = tx.webhook_delivery(rest.delivery.id)
    assert back is not None and (back.attempts, back.next_attempt_at) == (1, T0)


def test_retry_brings_a_dead_delivery_back(store: SqlStore, build: Build) -> None:
    subscription = _subscribe(store, "case.opened")
    build.open(store)
    with store.transaction() as tx:
        (claimed,) = tx.claim_webhooks(T0, 10, T0 + LEASE)
        delivery = claimed.delivery
        with pytest.raises(ConflictError, match="is pending, not dead"):
            tx.retry_webhook(delivery.delivery_id, T0)
        tx.finish_webhooks([WebhookOutcome(id=delivery.id, attempts=1, status=DEAD, at=T0)])
    later = T0 + dt.timedelta(hours=1)
    with store.transaction() as tx:
        back = tx.retry_webhook(delivery.delivery_id, later)
        with pytest.raises(NotFoundError, match="no webhook delivery msg_nope"):
            tx.retry_webhook("msg_nope", later)
    assert (back.status, back.attempts, back.next_attempt_at, back.dead_at) == (
        PENDING,
        0,
        later,
        None,
    )
    assert back.body == delivery.body and back.delivery_id == delivery.delivery_id
    with store.transaction() as tx:  # removing the subscription gives its pending ones up
        assert tx.remove_webhook(subscription, later) == (True, 1)
        with pytest.raises(ConflictError, match="was removed"):
            tx.retry_webhook(delivery.id, later)
        gone = tx.webhook_delivery(delivery.id)
    assert gone is not None and (gone.status, gone.last_error) == (
        DEAD,
        "its subscription was removed",
    )


@pytest.fixture
def statements(store: SqlStore) -> Iterator[list[str]]:
    """The SQL the store runs while the test runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


def test_without_subscriptions_a_transaction_reads_them_once(
    store: SqlStore, build: Build, statements: list[str]
) -> None:
    with store.transaction() as tx:
        for code in ("101", "147", "151"):
            tx.insert_case(build.decision(build.case(code)), [])
    reads = [s for s in statements if "webhook_subscriptions" in s]
    assert len(reads) == 1, reads
    assert not [s for s in statements if "webhook_deliveries" in s]
    statements.clear()
    _subscribe(store, "case.opened")  # seen by the next transaction
    build.open(store, "153")
    assert len([s for s in statements if "INSERT INTO webhook_deliveries" in s]) == 1
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.webhook_deliveries)).scalar() == 1


@pytest.mark.postgres
def test_two_transactions_never_claim_the_same_delivery(pg_url: str) -> None:
    first, second = SqlStore(pg_url), SqlStore(pg_url)
    try:
        with first.transaction() as tx:
            definition, _ = tx.save_definition(
                name="dk2020",
                version_label="1",
                content_hash="sha256:bb",
                source_text="name: dk2020\n",
                templates={},
                source_path="x.yaml",
                now=T0,
            )
        build = Build(definition.id)
        _subscribe(first, "case.opened")
        for code in ("101", "147", "151", "153"):
            build.open(first, code)
        with first.transaction() as one:
            mine = one.claim_webhooks(T0, 2, T0 + LEASE)
            with second.transaction() as other:  # while the first claim is not committed
                theirs = other.claim_webhooks(T0, 10, T0 + LEASE)
        assert len(mine) == 2 and len(theirs) == 2
        assert not {c.delivery.id for c in mine} & {c.delivery.id for c in theirs}
    finally:
        first.close()
        second.close()
