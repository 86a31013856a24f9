"""The outbox: queueing, Message-IDs, claims with leases, retries, dead letters."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from dk2020flow.errors import NotFoundError
from dk2020flow.store.port import OutboxStatus
from dk2020flow.store.repository import SqlStore

from .conftest import Build

UTC = dt.UTC
T0 = dt.datetime(2020, 8, 1, 12, 0, tzinfo=UTC)
LEASE = dt.timedelta(minutes=30)


def _minutes(n: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


def test_queued_mail_round_trips_with_a_stable_message_id(
    store: SqlStore, build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DK2020FLOW_MAIL_DOMAIN", "dk2020.example.dk")
    mail = build.mail(ics="BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", urgent=True, created_at=T0)
    with store.transaction() as tx:
        (message_id,) = tx.queue_mail([mail])
    with store.read() as tx:
        stored = tx.outbox_message(message_id)
    assert stored is not None
    assert stored.message_id == f"<dk2020flow.{message_id}.20200801@dk2020.example.dk>"
    assert (stored.to, stored.cc) == (mail.to, mail.cc)
    assert (stored.subject, stored.text, stored.html, stored.ics) == (
        mail.subject,
        mail.text,
        mail.html,
        mail.ics,
    )
    assert (stored.status, stored.attempts, stored.last_error) == (OutboxStatus.PENDING, 0, "")
    assert stored.not_before == stored.next_attempt_at == mail.not_before
    assert stored.created_at.tzinfo is UTC
    assert (stored.lease_until, stored.sent_at) == (None, None)


def test_message_ids_are_unique_and_default_to_the_local_domain(
    store: SqlStore, build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DK2020FLOW_MAIL_DOMAIN", raising=False)
    with store.transaction() as tx:
        ids = tx.queue_mail([build.mail(), build.mail()])
    with store.read() as tx:
        message_ids = [tx.outbox_message(i).message_id for i in ids]  # type: ignore[union-attr]
    assert len(set(message_ids)) == 2
    assert all(re.fullmatch(r"<dk2020flow\.\d+\.\d{8}@dk2020flow\.local>", m) for m in message_ids)


def test_claim_outbox_respects_not_before_and_puts_urgent_first(
    store: SqlStore, build: Build
) -> None:
    with store.transaction() as tx:
        later, normal, urgent = tx.queue_mail(
            [
                build.mail(not_before=_minutes(10)),
                build.mail(),
                build.mail(urgent=True),
            ]
        )
    with store.transaction() as tx:
        claimed = tx.claim_outbox(T0, limit=10, lease_until=T0 + LEASE)
    assert [m.id for m in claimed] == [urgent, normal]
    assert all(m.status is OutboxStatus.SENDING and m.attempts == 1 for m in claimed)
    assert all(m.lease_until == T0 + LEASE for m in claimed)
    with store.transaction() as tx:  # leased rows are not handed out again
        assert tx.claim_outbox(_minutes(1), limit=10, lease_until=_minutes(6)) == []
        assert [m.id for m in tx.claim_outbox(_minutes(10), 10, _minutes(15))] == [later]


def test_an_expired_lease_is_claimed_again(store: SqlStore, build: Build) -> None:
    with store.transaction() as tx:
        (message_id,) = tx.queue_mail([build.mail()])
    with store.transaction() as tx:
        tx.claim_outbox(T0, limit=10, lease_until=T0 + LEASE)
    # the daemon that took it dies; once its lease runs out another one takes it
    with store.transaction() as tx:
        assert tx.claim_outbox(T0 + LEASE - dt.timedelta(seconds=1), 10, _minutes(60)) == []
        (again,) = tx.claim_outbox(T0 + LEASE, 10, lease_until=_minutes(60))
    assert (again.id, again.attempts, again.lease_until) == (message_id, 2, _minutes(60))


def test_expired_leases_come_first_and_share_the_limit_with_pending_mail(
    store: SqlStore, build: Build
) -> None:
    with store.transaction() as tx:
        a, b, c, d = tx.queue_mail([build.mail(not_before=T0) for _ in range(4)])
    with store.transaction() as tx:  # a and b, then c, are leased; their daemons die
        tx.claim_outbox(T0, limit=2, lease_until=_minutes(20))
        tx.claim_outbox(T0, limit=1, lease_until=_minutes(10))
    with store.transaction() as tx:
        late, urgent = tx.queue_mail(
            [build.mail(not_before=_minutes(5)), build.mail(not_before=_minutes(5), urgent=True)]
        )
    with store.read() as tx:
        assert tx.next_due_at() == T0  # d is pending
    with store.transaction() as tx:
        claimed = tx.claim_outbox(_minutes(30), limit=5, lease_until=_minutes(60))
    # Expired leases by lease_until then id (c's ran out first), then pending mail,
    # urgent first; the limit counts both.
    assert [m.id for m in claimed] == [c, a, b, urgent, d]
    assert [m.attempts for m in claimed] == [2, 2, 2, 1, 1]
    assert all(m.status is OutboxStatus.SENDING for m in claimed)
    assert all(m.lease_until == _minutes(60) for m in claimed)
    with store.read() as tx:
        assert tx.next_due_at() == _minutes(5)  # ``late`` is still pending
    with store.transaction() as tx:
        assert [m.id for m in tx.claim_outbox(_minutes(30), 5, _minutes(60))] == [late]
    with store.read() as tx:
        assert tx.next_due_at() == _minutes(60)  # nothing pending: the leases' expiry


def test_retry_dead_requeue_sent_and_purge(store: SqlStore, build: Build) -> None:
    with store.transaction() as tx:
        first, second = tx.queue_mail([build.mail(), build.mail(not_before=_minutes(30))])
    with store.transaction() as tx:
        tx.claim_outbox(T0, 10, T0 + LEASE)
        tx.mark_retry(first, _minutes(2), "421 try later")
    with store.read() as tx:
        retry = tx.outbox_message(first)
        assert retry is not None
        assert (retry.status, retry.next_attempt_at, retry.last_error, retry.lease_until) == (
            OutboxStatus.PENDING,
            _minutes(2),
            "421 try later",
            None,
        )
        assert tx.next_due_at() == _minutes(2)
    with store.transaction() as tx:
        assert tx.claim_outbox(_minutes(1), 10, _minutes(6)) == []
        (m,) = tx.claim_outbox(_minutes(2), 10, _minutes(7))
        assert m.attempts == 2
        tx.mark_dead(first, "550 no such user", _minutes(2))
    with store.read() as tx:
        assert [m.id for m in tx.outbox(status=OutboxStatus.DEAD)] == [first]

    with store.transaction() as tx:
        assert tx.requeue(first, _minutes(3)) is True
        assert tx.requeue(second, _minutes(3)) is False  # pending: nothing to requeue
    with store.read() as tx:
        again = tx.outbox_message(first)
        assert again is not None
        assert (again.status, again.attempts, again.next_attempt_at) == (
            OutboxStatus.PENDING,
            0,
            _minutes(3),
        )

    with store.transaction() as tx:
        (m,) = tx.claim_outbox(_minutes(3), 10, _minutes(8))
        tx.mark_sent(m.id, _minutes(4))
    with store.read() as tx:
        sent = tx.outbox_message(first)
        assert sent is not None
        assert (sent.status, sent.sent_at) == (OutboxStatus.SENT, _minutes(4))
    with store.transaction() as tx:
        assert tx.purge_sent(_minutes(4)) == 0
        assert tx.purge_sent(_minutes(5)) == 1
        assert tx.outbox_message(first) is None
        assert [m.id for m in tx.outbox()] == [second]


def test_parked_mail_is_kept_with_its_reason_and_can_be_requeued(
    store: SqlStore, build: Build
) -> None:
    with store.transaction() as tx:
        (parked,) = tx.queue_mail(
            [build.mail(to=(), status=OutboxStatus.PARKED, reason="no contact_person for 751")]
        )
    with store.transaction() as tx:
        assert tx.claim_outbox(_minutes(60), 10, _minutes(65)) == []
        assert [m.id for m in tx.outbox(status=OutboxStatus.PARKED)] == [parked]
        assert tx.requeue(parked, T0) is True
        assert [m.id for m in tx.claim_outbox(T0, 10, T0 + LEASE)] == [parked]


def test_outbox_listing_filters_and_unknown_ids(store: SqlStore, build: Build) -> None:
    case_id = build.open(store, mails=[build.mail(template="invitation")])
    with store.transaction() as tx:
        (loose,) = tx.queue_mail([build.mail(template="digest")])
    with store.read() as tx:
        assert [m.template for m in tx.outbox()] == ["digest", "invitation"]  # newest first
        assert [m.template for m in tx.outbox(case_id=case_id)] == ["invitation"]
        assert len(tx.outbox(limit=1)) == 1
        assert tx.outbox_counts()[OutboxStatus.PENDING] == 2
        assert tx.outbox_message(loose + 100) is None
    with store.transaction() as tx, pytest.raises(NotFoundError, match="no message 999"):
        tx.mark_sent(999, T0)


def test_sent_with_a_note_keeps_it(store: SqlStore, build: Build) -> None:
    with store.transaction() as tx:
        (message_id,) = tx.queue_mail([build.mail()])
    with store.transaction() as tx:
        tx.claim_outbox(T0, 10, T0 + LEASE)
        tx.mark_sent(message_id, T0, note="gone@aarhus.example.dk: 550 no such user")
    with store.read() as tx:
        sent = tx.outbox_message(message_id)
    assert sent is not None
    assert (sent.status, sent.last_error, sent.lease_until) == (
        OutboxStatus.SENT,
        "gone@aarhus.example.dk: 550 no such user",
        None,
    )
