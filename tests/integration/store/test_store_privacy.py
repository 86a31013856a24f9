"""The access log and the forgotten people, on both backends: entries go in with one
INSERT (on PostgreSQL without waiting for the WAL flush) and come back by person or case;
the purge deletes by age; ``is_forgotten`` answers from the digests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from dk2020flow.store.port import AccessEntry, person_digest
from dk2020flow.store.repository import SqlStore

AT = dt.datetime(2021, 3, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    found = SqlStore(db_url)
    try:
        yield found
    finally:
        found.close()


def _entry(days_ago: int, **changes: object) -> AccessEntry:
    values: dict[str, object] = {
        "at": AT - dt.timedelta(days=days_ago),
        "actor": "kl@example.dk",
        "actor_kind": "staff",
        "action": "read",
        "what": "case",
        "via": "console",
        "case_id": 7,
    }
    return AccessEntry(**{**values, **changes})  # type: ignore[arg-type]


def test_entries_by_person_or_case_and_the_purge_by_age(store: SqlStore) -> None:
    with store.transaction() as tx:
        tx.record_access([_entry(800), _entry(10)])
    with store.transaction() as tx:
        tx.record_access(
            [_entry(1, case_id=None, what="my_data", subject="anna@example.dk", actor="x")]
        )
        tx.record_access([_entry(1, case_id=8)])
    with store.read() as tx:
        by_case = tx.access_entries("nobody@example.dk", [7])
        by_person = tx.access_entries("ANNA@example.dk", [])
    assert [e.at for e in by_case] == [AT - dt.timedelta(days=800), AT - dt.timedelta(days=10)]
    assert [(e.what, e.subject) for e in by_person] == [("my_data", "anna@example.dk")]
    with store.transaction() as tx:
        assert tx.purge_access_log(AT - dt.timedelta(days=730)) == 1
    with store.read() as tx:
        assert len(tx.access_entries("anna@example.dk", [7, 8])) == 3


def test_is_forgotten_reads_the_digests(store: SqlStore) -> None:
    with store.read() as tx:
        assert not tx.is_forgotten("anna@example.dk")
        assert tx.forgotten_digests() == frozenset()
    with store.transaction() as tx:
        # The address is in no contact row: forgetting only records its digest.
        counts = tx.forget_person(
            "anna@example.dk", [], [person_digest("anna@example.dk")], "(x)", AT, apply=True
        )
        assert counts.contacts == 0
    with store.read() as tx:
        assert tx.is_forgotten(" Anna@Example.dk")
        assert not tx.is_forgotten("ole@example.dk")
