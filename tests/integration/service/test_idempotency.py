"""Idempotency-Key and If-Match on the service's changes, over a real store (SQLite and
PostgreSQL): a key makes one change and one answer, also for two requests at once."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from dk2020flow.clock import ManualClock
from dk2020flow.definition.durations import parse_duration
from dk2020flow.engine.records import CaseSnapshot, EventKind
from dk2020flow.errors import IdempotencyKeyReusedError, PreconditionFailedError, RefusedError
from dk2020flow.service import Service
from dk2020flow.service.tokens import Answer, Idempotency, request_fingerprint, token_actor
from dk2020flow.store import tables as t
from dk2020flow.store.repository import SqlStore

ROOT = Path(__file__).resolve().parents[3]
MINI = ROOT / "tests" / "data" / "mini" / "workflows" / "mini.yaml"
START = dt.datetime(2020, 6, 20, 8, 0, tzinfo=dt.UTC)
PATH = "/api/v1/cases/1/triggers/submit"
BODY = {"data": {"note": "klar"}}


class Responder:
    """``Idempotency.respond``: the answer to remember, counting how often it is made."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, case: CaseSnapshot) -> tuple[int, dict[str, Any]]:
        self.calls.append(case.version)
        return 200, {"id": case.id, "state": case.state, "version": case.version}


@pytest.fixture
def service(store: SqlStore) -> Service:
    svc = Service(store, clock=ManualClock(START))
    svc.load_workflow(MINI)
    svc.open_case("mini", "Aarhus", actor="tester", role="secretariat")
    return svc


@pytest.fixture
def token_id(service: Service) -> int:
    made = service.tokens.create("portal", ["contact_person"], created_by="t", every_case=True)
    return made.token.id


def key(token: int, value: str, respond: Responder, body: Any = BODY) -> Idempotency:
    return Idempotency(token, value, request_fingerprint("POST", PATH, body), respond)


def submit(service: Service, idempotency: Idempotency, **extra: Any) -> Answer:
    return service.fire_idempotent(
        "Aarhus",
        "submit",
        idempotency=idempotency,
        actor=token_actor("portal"),
        role=extra.pop("role", "contact_person"),
        data=BODY["data"],
        **extra,
    )


def kinds(service: Service) -> list[EventKind]:
    _, events = service.history("Aarhus")
    return [e.record.kind for e in events]


def key_count(store: SqlStore) -> int:
    with store.read() as tx:
        return int(
            tx.connection.execute(select(func.count()).select_from(t.idempotency_keys)).scalar_one()
        )


def test_fired_twice_with_a_key_changes_once_and_answers_the_same(
    service: Service, token_id: int
) -> None:
    respond = Responder()
    first = submit(service, key(token_id, "k-1", respond))
    assert first == Answer(
        status_code=200, body={"id": 1, "state": "submitted", "version": 2}, replayed=False
    )
    again = submit(service, key(token_id, "k-1", respond))
    assert again == Answer(status_code=first.status_code, body=first.body, replayed=True)
    assert respond.calls == [2]  # the answer was made once
    assert kinds(service) == [EventKind.OPENED, EventKind.TRANSITION]
    case, events = service.history("Aarhus")
    assert case.version == 2 and events[-1].record.actor == "token:portal"

    # The plain method with the same key replays too; it answers with the case as it is.
    replayed = service.fire(
        "Aarhus",
        "submit",
        actor="token:portal",
        role="contact_person",
        data=BODY["data"],
        idempotency=key(token_id, "k-1", respond),
    )
    assert replayed.version == 2 and replayed.state == "submitted"
    assert len(kinds(service)) == 2


def test_the_same_key_with_another_request_is_refused(
    service: Service, store: SqlStore, token_id: int
) -> None:
    respond = Responder()
    submit(service, key(token_id, "k-1", respond))
    other = key(token_id, "k-1", respond, body={"data": {"note": "changed my mind"}})
    with pytest.raises(IdempotencyKeyReusedError, match="'k-1' was used already") as raised:
        service.set_data_idempotent(
            "Aarhus", {"note": "changed my mind"}, idempotency=other, actor="x", role=None
        )
    assert raised.value.exit_code == 2
    case, _ = service.history("Aarhus")
    assert case.version == 2 and case.data["note"] == "klar"
    assert key_count(store) == 1


def test_a_key_is_the_token_s_own(service: Service, token_id: int) -> None:
    other_token = service.tokens.create("other", ["secretariat"], created_by="t").token.id
    respond = Responder()

    def set_note(token: int, note: str) -> Answer:
        body = {"values": {"note": note}}
        return service.set_data_idempotent(
            "Aarhus",
            {"note": note},
            idempotency=Idempotency(
                token, "same", request_fingerprint("PATCH", "/d", body), respond
            ),
            actor="t",
            role="secretariat",
        )

    assert not set_note(token_id, "a").replayed
    assert not set_note(other_token, "a").replayed  # another token's key of the same name
    assert set_note(token_id, "a").replayed
    assert kinds(service).count(EventKind.DATA_SET) == 2


def test_a_stale_if_match_changes_nothing(service: Service, store: SqlStore, token_id: int) -> None:
    respond = Responder()
    with pytest.raises(PreconditionFailedError, match="at version 1, not 7") as raised:
        submit(service, key(token_id, "k-1", respond), expected_version=7)
    assert (raised.value.expected_version, raised.value.current_version) == (7, 1)
    assert raised.value.exit_code == 4  # a ConflictError
    assert kinds(service) == [EventKind.OPENED]
    assert key_count(store) == 0 and respond.calls == []
    with pytest.raises(PreconditionFailedError):
        service.extend(
            "Aarhus", "submit_by", actor="s", role="secretariat", reason="r",
            by=parse_duration("P7D"), expected_version=2,
        )  # fmt: skip
    assert kinds(service) == [EventKind.OPENED]

    # The version read (the ETag) holds: the change is made.
    answer = submit(service, key(token_id, "k-1", respond), expected_version=1)
    assert answer.body["version"] == 2 and not answer.replayed
    # Sent again (a retry after a lost answer), the If-Match is stale but the key answers.
    assert submit(service, key(token_id, "k-1", respond), expected_version=1).replayed


def test_a_refusal_is_not_remembered(service: Service, store: SqlStore, token_id: int) -> None:
    respond = Responder()
    with pytest.raises(RefusedError):
        submit(service, key(token_id, "k-1", respond), role="secretariat")  # not its role
    # The refusal for the role is in the log; the case did not change, the key is free.
    assert kinds(service) == [EventKind.OPENED, EventKind.REFUSED]
    assert key_count(store) == 0
    answer = submit(service, key(token_id, "k-1", respond))
    assert not answer.replayed and answer.body["state"] == "submitted"


def test_extend_with_a_key_moves_the_deadline_once(service: Service, token_id: int) -> None:
    respond = Responder()

    def extend() -> Answer:
        return service.extend_idempotent(
            "Aarhus",
            "submit_by",
            idempotency=key(token_id, "ext", respond, body={"by": "P7D"}),
            actor="token:portal",
            role="secretariat",
            reason="asked for a week",
            by=parse_duration("P7D"),
        )

    assert not extend().replayed
    assert extend().replayed
    assert kinds(service).count(EventKind.DEADLINE_EXTENDED) == 1


def _wait_for_a_lock_waiter(store: SqlStore) -> None:
    """Return once another connection to the database waits on a lock (PostgreSQL)."""
    deadline = time.monotonic() + 30
    with store.engine.connect() as conn:
        while True:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
            conn.rollback()
            if waiting:
                return
            assert time.monotonic() < deadline, "the second request never waited for the key"
            time.sleep(0.01)


def test_two_requests_with_one_key_at_once_change_the_case_once(
    service: Service, store: SqlStore, token_id: int, backend: str
) -> None:
    started = threading.Barrier(2)
    both_sent = threading.Event()
    in_flight = [0]
    lock = threading.Lock()

    class Holding(Responder):
        """Makes the answer only once the other request is under way: on PostgreSQL, once
        it waits for this one's key (so the two surely overlap)."""

        def __call__(self, case: CaseSnapshot) -> tuple[int, dict[str, Any]]:
            assert both_sent.wait(30)
            if backend == "postgres":
                _wait_for_a_lock_waiter(store)
            return super().__call__(case)

    respond = Holding()
    answers: list[Answer] = []
    errors: list[BaseException] = []

    def request() -> None:
        started.wait(30)
        with lock:
            in_flight[0] += 1
            if in_flight[0] == 2:
                both_sent.set()
        try:
            answers.append(submit(service, key(token_id, "once", respond)))
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=request) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert sorted(a.replayed for a in answers) == [False, True]
    assert answers[0].body == answers[1].body == {"id": 1, "state": "submitted", "version": 2}
    assert answers[0].status_code == answers[1].status_code == 200
    assert respond.calls == [2]
    assert kinds(service) == [EventKind.OPENED, EventKind.TRANSITION]
    assert key_count(store) == 1
