"""Migration 0002 chains the events already logged and makes the table append-only (#15.6)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import exc, inspect, text

from dk2020flow.engine.records import EventKind, EventRecord
from dk2020flow.service.verify import chain_problems
from dk2020flow.store.db import downgrade, make_engine, upgrade
from dk2020flow.store.repository import SqlStore


def _old_log(url: str) -> None:
    """A database at revision 0001 with one case and three events, as 0001 wrote them."""
    upgrade(url, "0001")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO municipalities (code, name, region, dk2020_group) "
                    "VALUES ('751', 'Aarhus', 'Midtjylland', 'x')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO definitions (id, name, version_label, content_hash, source_text,"
                    " templates, source_path, loaded_at) VALUES (1, 'mini', '1', 'h', '', '{}',"
                    " 'mini.yaml', :at)"
                ),
                {"at": dt.datetime(2020, 6, 20, 8, tzinfo=dt.UTC)},
            )
            conn.execute(
                text(
                    "INSERT INTO cases (id, workflow, definition_id, municipality_code, state,"
                    " epoch, cohort, data, checklists, entered_at, opened_at, closed, version)"
                    " VALUES (1, 'mini', 1, '751', 'submitted', 2, NULL, '{}', '{}', :at, :at,"
                    " false, 2)"
                ),
                {"at": dt.datetime(2020, 6, 20, 8, tzinfo=dt.UTC)},
            )
            for seq, kind, trigger in ((1, "opened", None), (2, "transition", "submit")):
                conn.execute(
                    text(
                        "INSERT INTO events (case_id, seq, at, kind, actor, role, trigger,"
                        " from_state, to_state, comment, data, epoch) VALUES (1, :seq, :at,"
                        " :kind, 'anna', NULL, :trigger, 'draft', 'submitted', '',"
                        ' \'{"note": "klar"}\', :seq)'
                    ),
                    {
                        "seq": seq,
                        "kind": kind,
                        "trigger": trigger,
                        "at": dt.datetime(2020, 6, 20, 8, seq, tzinfo=dt.UTC),
                    },
                )
    finally:
        engine.dispose()


def test_upgrade_chains_the_events_already_there(empty_db_url: str) -> None:
    _old_log(empty_db_url)
    upgrade(empty_db_url)
    store = SqlStore(empty_db_url)
    try:
        with store.read() as tx:
            events = tx.history(1)
        assert [e.seq for e in events] == [1, 2]
        assert all(e.hash for e in events)
        assert all(e.record.transition is None for e in events)  # not known for old events
        assert chain_problems(events) == []
        with pytest.raises(exc.DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(text("UPDATE events SET comment = 'x'"))
        # A new event goes on from the last old one's hash.
        with store.transaction() as tx:
            tx.append_event(
                1,
                EventRecord(
                    kind=EventKind.DATA_SET,
                    at=dt.datetime(2020, 6, 21, tzinfo=dt.UTC),
                    actor="sekretariat",
                    data={"note": "ok"},
                ),
            )
        with store.read() as tx:
            assert chain_problems(tx.history(1)) == []
    finally:
        store.close()


def test_downgrade_removes_the_columns_and_the_triggers(empty_db_url: str) -> None:
    _old_log(empty_db_url)
    upgrade(empty_db_url)
    downgrade(empty_db_url, "0001")
    engine = make_engine(empty_db_url)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("events")}
        assert "hash" not in columns and "transition" not in columns
        with engine.begin() as conn:  # no trigger any more
            conn.execute(text("UPDATE events SET comment = 'x'"))
    finally:
        engine.dispose()
    upgrade(empty_db_url)
