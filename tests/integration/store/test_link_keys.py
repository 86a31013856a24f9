"""The keys of case links (``link_keys``) on both backends: made once on first need even
when two transactions ask at once, read back by another store (a web worker), renewed."""

from __future__ import annotations

import datetime as dt
import threading

from dk2020flow.service.links import CaseLinks
from dk2020flow.store.repository import SqlStore

NOW = dt.datetime(2021, 3, 1, 9, 0, tzinfo=dt.UTC)


def test_the_first_key_is_made_once(store: SqlStore) -> None:
    with store.read() as tx:
        assert tx.link_key() is None
    with store.transaction() as tx:
        first = tx.ensure_link_key("aa" * 32, NOW)
        assert first == (1, "aa" * 32)
        assert tx.ensure_link_key("bb" * 32, NOW) == first
    with store.read() as tx:
        assert tx.link_key() == first


def test_two_processes_asking_at_once_share_one_key(store: SqlStore, db_url: str) -> None:
    other = SqlStore(db_url)
    found: list[tuple[int, str]] = []
    barrier = threading.Barrier(2)

    def make(on: SqlStore, secret: str) -> None:
        barrier.wait()
        with on.transaction() as tx:
            found.append(tx.ensure_link_key(secret, NOW))

    try:
        threads = [
            threading.Thread(target=make, args=(store, "aa" * 32)),
            threading.Thread(target=make, args=(other, "bb" * 32)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        other.close()
    assert len(found) == 2 and found[0] == found[1]
    with store.read() as tx:
        assert tx.link_key() == found[0]


def test_another_store_reads_the_key_and_renews_it(store: SqlStore, db_url: str) -> None:
    signer = CaseLinks(public_url="https://dk2020.example.dk")
    with store.transaction() as tx:
        assert signer.token(tx, 5, "Anna@Aarhus.example.dk", NOW).startswith("5.")
    checker = CaseLinks(public_url=None)  # a web worker's
    web = SqlStore(db_url)
    try:
        with web.read() as tx:
            key = tx.link_key()
        assert key is not None
        with web.transaction() as tx:
            renewed = checker.rotate_key(tx, NOW)
        assert renewed == key[0] + 1
        with web.read() as tx:
            assert tx.link_key() is not None and tx.link_key() != key
    finally:
        web.close()
