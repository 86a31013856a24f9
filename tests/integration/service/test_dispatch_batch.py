"""The batched dispatch (SQLite and PostgreSQL): a batch of firings written in bulk.

Each case's firings stay all or nothing: a failing one is marked failed without
undoing its neighbours, a case changed meanwhile keeps its rows pending for the
next tick, and every timer fires exactly once with its event, its mail and a
Message-ID derived from its outbox row.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from dk2020flow.clock import ManualClock
from dk2020flow.engine.records import CaseSnapshot, Decision
from dk2020flow.engine.replay import replay
from dk2020flow.notify.render import TemplateRenderError
from dk2020flow.service import Service
from dk2020flow.service.mail import MailComposer
from dk2020flow.settings import Settings
from dk2020flow.store import bulk
from dk2020flow.store import tables as t
from dk2020flow.store.port import BatchItem, NewMail, Tx
from dk2020flow.store.repository import SqlStore, SqlTx, message_id_for

ROOT = Path(__file__).resolve().parents[3]
MINI = ROOT / "tests" / "data" / "mini" / "workflows" / "mini.yaml"
START = dt.datetime(2020, 6, 20, 8, 0, tzinfo=dt.UTC)
LATER = START + dt.timedelta(days=20)  # submit_by's reminder and deadline are both due
CASES = 8
PER_CASE = 2  # the reminder, then the deadline (which expires the case)


def open_cases(service: Service, count: int) -> list[CaseSnapshot]:
    service.load_workflow(MINI)
    with service.store.read() as tx:
        organisations = tx.organisations()[:count]
    return [
        service.open_case("mini", m.code, actor="tester", role="secretariat") for m in organisations
    ]


@pytest.fixture
def service(store: SqlStore) -> Service:
    return Service(store, clock=ManualClock(START), settings=Settings(batch_size=500))


def timer_statuses(store: SqlStore) -> Counter[str]:
    with store.engine.connect() as conn:
        return Counter(
            {
                str(status): int(n)
                for status, n in conn.execute(
                    select(t.timers.c.status, func.count()).group_by(t.timers.c.status)
                )
            }
        )


def check_case(store: SqlStore, service: Service, case_id: int) -> None:
    """Events numbered 1..n, replaying to the stored state; Message-IDs from the rows."""
    with store.read() as tx:
        history = tx.history(case_id)
        case = tx.load_case(case_id)
        mails = tx.outbox(case_id=case_id, limit=1000)
    assert [e.seq for e in history] == list(range(1, len(history) + 1))
    wf = service.compiled_latest("mini").workflow
    assert replay(wf, [e.record for e in history]).state == case.state
    for mail in mails:
        assert mail.message_id == message_id_for(mail.id, mail.created_at)


def test_a_batch_fires_every_case_in_bulk_exactly_once(
    service: Service, store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = open_cases(service, CASES)
    one_by_one: list[int] = []
    write_one = bulk.write_one

    def spy(tx: Tx, item: BatchItem) -> None:
        one_by_one.append(item.case_id)
        write_one(tx, item)

    monkeypatch.setattr(bulk, "write_one", spy)
    result = service.fire_due(LATER)
    assert one_by_one == []  # all of it in bulk, no fallback
    assert (result.fired, result.failed, result.deferred) == (CASES * PER_CASE, 0, 0)
    assert service.fire_due(LATER).total == 0
    statuses = timer_statuses(store)
    assert statuses["fired"] == CASES * PER_CASE
    assert statuses["pending"] == 0
    for case in cases:
        assert case.id is not None
        with store.read() as tx:
            stored = tx.load_case(case.id)
            mails = tx.outbox(case_id=case.id, limit=100)
        assert stored.state == "expired"
        # opened + reminder firing, then the deadline firing and its transition: 3 changes
        assert stored.version == case.version + PER_CASE
        assert len(mails) == 1 + PER_CASE  # the welcome, the reminder, the deadline notice
        check_case(store, service, case.id)


def test_a_firing_that_cannot_render_fails_alone(
    service: Service, store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = open_cases(service, CASES)
    broken = cases[3].id
    render_all = MailComposer.render_all

    def render_or_fail(
        self: MailComposer, tx: Tx, wf: Any, decision: Decision, now: dt.datetime
    ) -> list[NewMail]:
        if decision.case.id == broken:
            raise TemplateRenderError("note.da.jinja:1: 'case' has no attribute 'missing'")
        return render_all(self, tx, wf, decision, now)

    monkeypatch.setattr(MailComposer, "render_all", render_or_fail)
    result = service.fire_due(LATER)
    assert result.failed == PER_CASE
    assert result.fired == (CASES - 1) * PER_CASE
    assert len(result.errors) == 1
    assert f"case {broken}:" in result.errors[0]
    assert "no attribute 'missing'" in result.errors[0]
    with store.read() as tx:
        assert broken is not None
        failed = tx.timers_of(broken, pending_only=False)
        assert {(tm.status.value, tm.note[:13]) for tm in failed if tm.timer == "submit_by"} == {
            ("failed", "note.da.jinja")
        }
        assert tx.load_case(broken).state == "draft"  # nothing of its firing was written
        assert len(tx.history(broken)) == 1
    for case in cases:
        assert case.id is not None
        if case.id != broken:
            assert service.show(str(case.organisation_code)).case.state == "expired"
            check_case(store, service, case.id)


def test_a_firing_the_database_refuses_fails_alone(service: Service, store: SqlStore) -> None:
    """The bulk write fails: it is redone case by case, and only the refused one fails."""
    cases = open_cases(service, CASES)
    refused = cases[5].id
    with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON events FOR EACH ROW "
                    f"WHEN (NEW.case_id = {refused}) EXECUTE FUNCTION refuse()"
                )
            )
        else:
            conn.execute(
                text(
                    f"CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.case_id = {refused} "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
    result = service.fire_due(LATER)
    assert result.failed == PER_CASE
    assert result.fired == (CASES - 1) * PER_CASE
    assert "refused" in result.errors[0]
    assert timer_statuses(store)["pending"] == 0
    with store.read() as tx:
        assert refused is not None
        assert tx.load_case(refused).state == "draft"
        assert len(tx.outbox(case_id=refused, limit=100)) == 1  # the welcome only
    for case in cases:
        assert case.id is not None
        if case.id != refused:
            check_case(store, service, case.id)


def test_a_case_changed_meanwhile_keeps_its_rows_pending(
    service: Service, store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = open_cases(service, CASES)
    changed = cases[2].id
    assert changed is not None
    load_cases = SqlTx.load_cases

    def load_then_change(self: SqlTx, case_ids: Sequence[int]) -> dict[int, CaseSnapshot]:
        loaded = load_cases(self, case_ids)
        # Someone else writes the case between the read and the write.
        self.connection.execute(
            t.cases.update().where(t.cases.c.id == changed).values(version=t.cases.c.version + 1)
        )
        return loaded

    monkeypatch.setattr(SqlTx, "load_cases", load_then_change)
    result = service.fire_due(LATER)
    assert result.deferred == PER_CASE
    assert result.failed == 0
    assert result.fired == (CASES - 1) * PER_CASE
    with store.read() as tx:
        assert {tm.status.value for tm in tx.timers_of(changed)} == {"pending"}
        assert len(tx.timers_of(changed)) == PER_CASE
        assert tx.load_case(changed).state == "draft"
    monkeypatch.undo()
    # The next tick fires them against the new version.
    again = service.fire_due(LATER)
    assert (again.fired, again.deferred, again.failed) == (PER_CASE, 0, 0)
    for case in cases:
        assert case.id is not None
        check_case(store, service, case.id)


def test_small_batches_fire_every_timer_exactly_once(store: SqlStore) -> None:
    service = Service(store, clock=ManualClock(START), settings=Settings(batch_size=3))
    cases = open_cases(service, CASES)
    fired = 0
    for _ in range(100):
        result = service.fire_due(LATER)
        assert result.failed == 0
        fired += result.fired
        if result.total == 0 and result.deferred == 0:
            break
    assert fired == CASES * PER_CASE
    assert timer_statuses(store)["fired"] == CASES * PER_CASE
    for case in cases:
        assert case.id is not None
        check_case(store, service, case.id)


@pytest.mark.postgres
def test_two_dispatchers_on_postgres_fire_every_timer_exactly_once(pg_url: str) -> None:
    stores = [SqlStore(pg_url), SqlStore(pg_url)]
    services = [
        Service(s, clock=ManualClock(START), settings=Settings(batch_size=4)) for s in stores
    ]
    cases = open_cases(services[0], 40)
    fired = [0, 0]
    errors: list[str] = []
    barrier = threading.Barrier(2)

    def run(n: int) -> None:
        barrier.wait()
        for _ in range(500):
            result = services[n].fire_due(LATER)
            errors.extend(result.errors)
            fired[n] += result.fired
            if result.total == 0 and result.deferred == 0:
                return

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert not errors
        assert sum(fired) == 40 * PER_CASE
        assert timer_statuses(stores[0])["fired"] == 40 * PER_CASE
        e = t.events.c
        with stores[0].engine.connect() as conn:
            doubled = conn.execute(
                select(e.case_id, e.trigger, func.count())
                .where(e.kind == "timer")
                .group_by(e.case_id, e.trigger)
                .having(func.count() > 1)
            ).all()
        assert doubled == []
        for case in cases:
            assert case.id is not None
            check_case(stores[0], services[0], case.id)
    finally:
        for s in stores:
            s.close()


def raw_rows(store: SqlStore, table: str, case_id: int, skip: set[str]) -> list[dict[str, Any]]:
    """A case's rows as the database stores them (no type processing), minus ``skip``."""
    column = "id" if table == "cases" else "case_id"
    with store.engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT * FROM {table} WHERE {column} = :id ORDER BY id"), {"id": case_id}
        ).mappings()
        return [{k: v for k, v in row.items() if k not in skip} for row in rows]


def test_the_bulk_write_stores_what_one_by_one_stores(
    service: Service, store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half the cases written in bulk, half one by one (``finish_timer``/``apply``): the
    stored rows are the same, byte for byte where the database keeps text."""
    cases = open_cases(service, 4)
    one_by_one = {c.id for c in cases[1::2]}
    bulk_ok = bulk._bulk_ok
    monkeypatch.setattr(
        bulk, "_bulk_ok", lambda item: item.case_id not in one_by_one and bulk_ok(item)
    )
    assert service.fire_due(LATER).fired == 4 * PER_CASE
    mailed = {"id", "case_id", "message_id", "subject", "text", "html", "to_addresses", "reason"}
    for bulk_case, single_case in ((cases[0], cases[1]), (cases[2], cases[3])):
        assert bulk_case.id is not None and single_case.id is not None
        for table, skip in (
            ("cases", {"id", "organisation_code"}),
            ("events", {"id", "case_id", "hash"}),  # the hash covers the case id
            ("timers", {"id", "case_id"}),
            ("outbox", mailed),
        ):
            assert raw_rows(store, table, bulk_case.id, skip) == raw_rows(
                store, table, single_case.id, skip
            ), table
    # Both paths chain the events alike (#15.6): every log checks out.
    assert all(check.ok for check in service.verify())
