"""Migration 0007 (each definition records the defaults it was loaded under): a database
whose workflow text says neither ``timezone`` nor ``calendar`` was loaded when the code's
defaults were Denmark's (Europe/Copenhagen, the DK calendar); after the upgrade its
stored definition still means that, and a new firing arms the deadline it armed before,
while a file loaded now without them is UTC on weekends alone (docs/data-model.md)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dk2020flow.clock import ManualClock
from dk2020flow.definition.loader import content_hash
from dk2020flow.service import Service
from dk2020flow.store.db import HEAD_REVISION, downgrade, make_engine, upgrade
from dk2020flow.store.port import Organisation
from dk2020flow.store.repository import SqlStore

# A reply due 3 business days after the case enters `open`, at noon local time: from
# Tuesday 23 December 2025 that is Friday 2 January 2026 12:00 in Copenhagen on the Danish
# calendar (24 and 31 December closed, 25-26 December and 1 January holidays), but
# Friday 26 December 12:00 UTC on weekends alone.
UNSAID = """\
workflow: unsaid
version: "1"
title: Defaults left unsaid
roles:
  clerk: {receives_mail: false}
states:
  open:
    initial: true
    timers:
      reply:
        due: {business_days: 3, time: "12:00"}
  paused: {}
  done: {terminal: true}
transitions:
  - {trigger: pause, from: open, to: paused, roles: clerk}
  - {trigger: resume, from: paused, to: open, roles: clerk}
  - {trigger: finish, from: [open, paused], to: done, roles: clerk}
"""
OPENED = dt.datetime(2025, 12, 23, 9, 0, tzinfo=dt.UTC)
COPENHAGEN_DUE = dt.datetime(2026, 1, 2, 11, 0, tzinfo=dt.UTC)  # 12:00 CET
UTC_DUE = dt.datetime(2025, 12, 26, 12, 0, tzinfo=dt.UTC)
LOADED_BEFORE_0007 = {"timezone": "Europe/Copenhagen", "calendar_country": "DK"}


def _scalar(url: str, sql: str) -> Any:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            return conn.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()


def _columns(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {column["name"] for column in sa.inspect(engine).get_columns("definitions")}
    finally:
        engine.dispose()


def _reply_due(service: Service, case_id: int) -> dt.datetime:
    with service.store.read() as tx:
        (timer,) = [t for t in tx.timers_of(case_id) if t.kind == "deadline"]
    return timer.deadline_at


def _as_loaded_before_0007(url: str, file: Path) -> int:
    """The workflow stored as the code before 0007 stored it (its text, with the Danish
    defaults it was read with), its one case opened and its deadline armed under them.
    (Stored through the store, not ``load_workflow``: that would compile the text with
    this code's defaults first, and compiled versions are kept per process.)"""
    store = SqlStore(url)
    try:
        with store.transaction() as tx:
            tx.save_definition(
                name="unsaid",
                version_label="1",
                content_hash=content_hash(UNSAID, {}),
                source_text=UNSAID,
                templates={},
                source_path=str(file),
                now=OPENED,
                implied_defaults=LOADED_BEFORE_0007,
            )
            tx.replace_participants([Organisation(code="EX-1", name="Northtown")], [])
        service = Service(store, clock=ManualClock(OPENED))
        case = service.open_case("unsaid", "Northtown", actor="test", role="clerk")
        assert case.id is not None
        assert _reply_due(service, case.id) == COPENHAGEN_DUE
        return case.id
    finally:
        store.close()


def test_a_definition_stored_before_0007_keeps_its_danish_defaults(
    empty_db_url: str, tmp_path: Path
) -> None:
    url = empty_db_url
    file = tmp_path / "workflows" / "unsaid.yaml"
    file.parent.mkdir()
    file.write_text(UNSAID, encoding="utf-8")
    upgrade(url)
    case_id = _as_loaded_before_0007(url, file)

    downgrade(url, "0006")  # the database as the code before 0007 left it
    assert "implied_defaults" not in _columns(url)
    assert _scalar(url, "SELECT count(*) FROM timers WHERE status = 'pending'") == 1

    upgrade(url)
    assert _scalar(url, "SELECT version_num FROM alembic_version") == HEAD_REVISION
    stored = _scalar(url, "SELECT implied_defaults FROM definitions")
    assert (json.loads(stored) if isinstance(stored, str) else stored) == LOADED_BEFORE_0007

    store = SqlStore(url)
    try:
        service = Service(store, clock=ManualClock(OPENED))
        with store.read() as tx:
            (definition,) = tx.definitions()
            assert definition.source_text == UNSAID  # the text exactly as loaded
            workflow = service.compiled(tx, definition.id).workflow
        assert workflow.timezone == "Europe/Copenhagen"
        assert workflow.calendar.country == "DK"
        assert _reply_due(service, case_id) == COPENHAGEN_DUE  # the armed one, untouched

        # A new firing re-enters `open` as of the same instant: the same deadline.
        service.fire("Northtown", "pause", actor="test", role="clerk")
        service.fire("Northtown", "resume", actor="test", role="clerk")
        assert _reply_due(service, case_id) == COPENHAGEN_DUE

        # The same file loaded by this code is the same text: still the stored version.
        _stored, created = service.load_workflow(file)
        assert not created
    finally:
        store.close()


def test_a_file_loaded_now_without_a_timezone_is_utc(empty_db_url: str, tmp_path: Path) -> None:
    url = empty_db_url
    file = tmp_path / "workflows" / "unsaid.yaml"
    file.parent.mkdir()
    # Another version label: another text than the test above's (compiled versions are
    # kept per process by id and content hash).
    file.write_text(UNSAID.replace('version: "1"', 'version: "2"'), encoding="utf-8")
    upgrade(url)
    store = SqlStore(url)
    try:
        service = Service(store, clock=ManualClock(OPENED))
        stored, created = service.load_workflow(file)
        assert created
        assert stored.implied_defaults == {"timezone": "UTC", "calendar_country": None}
        with store.transaction() as tx:
            tx.replace_participants([Organisation(code="EX-1", name="Northtown")], [])
        case = service.open_case("unsaid", "Northtown", actor="test", role="clerk")
        assert case.id is not None
        with store.read() as tx:
            workflow = service.compiled(tx, stored.id).workflow
        assert (workflow.timezone, workflow.calendar.country) == ("UTC", None)
        assert _reply_due(service, case.id) == UTC_DUE
    finally:
        store.close()
