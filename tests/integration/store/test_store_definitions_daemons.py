"""Definitions (versioned by content) and daemon heartbeats."""

from __future__ import annotations

import datetime as dt

import pytest

from dk2020flow.errors import NotFoundError
from dk2020flow.store.port import DaemonInfo
from dk2020flow.store.repository import SqlStore

UTC = dt.UTC
T0 = dt.datetime(2020, 6, 1, 8, 0, tzinfo=UTC)


def _save(store: SqlStore, content_hash: str, label: str, name: str = "dk2020") -> tuple[int, bool]:
    with store.transaction() as tx:
        definition, created = tx.save_definition(
            name=name,
            version_label=label,
            content_hash=content_hash,
            source_text=f"name: {name}  # {label}\n",
            templates={"a.da.txt": "Hej {{ x }}"},
            source_path="/srv/workflows/dk2020.yaml",
            now=T0,
        )
    return definition.id, created


def test_definitions_are_versioned_by_content(store: SqlStore) -> None:
    first, created = _save(store, "sha256:1", "v1")
    assert created
    assert _save(store, "sha256:1", "v1 again") == (first, False)
    second, created = _save(store, "sha256:2", "v2")
    assert created
    assert second != first
    other, _ = _save(store, "sha256:1", "v1", name="pilot")

    with store.read() as tx:
        latest = tx.latest_definition("dk2020")
        assert latest is not None
        assert latest.id == second
        assert tx.latest_definition("nope") is None
        assert [(d.name, d.id) for d in tx.definitions()] == [
            ("dk2020", first),
            ("dk2020", second),
            ("pilot", other),
        ]
        stored = tx.definition(first)
    assert stored.version_label == "v1"
    assert stored.templates == {"a.da.txt": "Hej {{ x }}"}
    assert stored.source_text == "name: dk2020  # v1\n"
    assert stored.loaded_at == T0
    assert stored.loaded_at.tzinfo is UTC
    with (
        store.read() as tx,
        pytest.raises(NotFoundError, match="no workflow definition with id 99"),
    ):
        tx.definition(99)


def test_heartbeat_inserts_then_updates(store: SqlStore) -> None:
    info = DaemonInfo(
        id="host-a:123",
        host="host-a",
        pid=123,
        started_at=T0,
        last_tick_at=None,
        last_seen_at=T0,
        stopped_at=None,
        stats={"fired": 0},
    )
    with store.transaction() as tx:
        tx.heartbeat(info)
    later = T0 + dt.timedelta(minutes=1)
    with store.transaction() as tx:
        tx.heartbeat(
            DaemonInfo(
                id="host-a:123",
                host="host-a",
                pid=123,
                started_at=T0,
                last_tick_at=later,
                last_seen_at=later,
                stopped_at=None,
                stats={"fired": 7, "sent": 2},
            )
        )
        tx.heartbeat(
            DaemonInfo(
                id="host-b:9",
                host="host-b",
                pid=9,
                started_at=T0,
                last_tick_at=None,
                last_seen_at=T0,
                stopped_at=T0,
            )
        )
    with store.read() as tx:
        daemons = tx.daemons()
    assert [d.id for d in daemons] == ["host-a:123", "host-b:9"]
    assert daemons[0].stats == {"fired": 7, "sent": 2}
    assert daemons[0].last_tick_at == later
    assert daemons[0].last_tick_at.tzinfo is UTC
    assert daemons[1].stopped_at == T0
