"""The access log's batches (service/privacy.py ``AccessLogBuffer``): a read is logged
without a write transaction of its own, and nothing logged is lost — not when the service
closes, not when the database refuses a batch for a while. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from sqlalchemy import func, select, text

from dk2020flow.clock import ManualClock
from dk2020flow.service import Service
from dk2020flow.service.privacy import AccessLogBuffer, record_read
from dk2020flow.store import tables as t
from dk2020flow.store.repository import SqlStore

START = dt.datetime(2022, 5, 2, 9, 0, tzinfo=dt.UTC)


def logged(store: SqlStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.access_log)).scalar_one())


def read(service: Service, n: int = 1) -> None:
    for k in range(n):
        record_read(service, actor=f"reader{k}@example.dk", actor_kind="staff", via="console")


@pytest.fixture
def service(store: SqlStore) -> Service:
    return Service(store, clock=ManualClock(START))


def test_reads_wait_in_memory_until_a_flush_writes_them_in_one_go(
    service: Service, store: SqlStore
) -> None:
    service._access_log = AccessLogBuffer(service, flush_seconds=3600)
    read(service, 5)
    assert (service.access_log.pending(), logged(store)) == (5, 0)
    service.access_log.flush()
    assert (service.access_log.pending(), logged(store)) == (0, 5)


def test_the_read_that_fills_a_batch_writes_it(service: Service, store: SqlStore) -> None:
    service._access_log = AccessLogBuffer(service, flush_entries=3, flush_seconds=3600)
    read(service, 2)
    assert logged(store) == 0
    read(service, 1)
    assert (service.access_log.pending(), logged(store)) == (0, 3)


def test_closing_the_service_writes_what_waits(service: Service, store: SqlStore) -> None:
    read(service, 4)
    service.close()
    assert logged(store) == 4
    read(service, 1)  # after closing: written at once, not left in memory
    assert (service.access_log.pending(), logged(store)) == (0, 5)


def test_a_refused_batch_is_kept_and_written_when_the_database_takes_it_again(
    service: Service, store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    service._access_log = AccessLogBuffer(service, flush_seconds=3600)
    read(service, 3)
    with store.engine.begin() as conn:  # a real refusal: the table is gone for a while
        conn.execute(text("ALTER TABLE access_log RENAME TO access_log_away"))
    with caplog.at_level(logging.ERROR, logger="dk2020flow.service.privacy"):
        service.access_log.flush()  # logged, not raised into the read
    assert service.access_log.pending() == 3
    assert "access log not written (3 entries kept" in caplog.text
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE access_log_away RENAME TO access_log"))
    read(service, 1)
    service.access_log.flush()
    assert (service.access_log.pending(), logged(store)) == (0, 4)
