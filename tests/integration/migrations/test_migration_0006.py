"""Migration 0006 (participants are organisations): a DK2020 database with cases, events,
contacts and mail goes down to 0005 and up again with every row as it was, on both
backends, and its console counts go on counting after (docs/data-model.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dk2020flow.clock import ManualClock
from dk2020flow.service import Service
from dk2020flow.store.db import downgrade, make_engine, upgrade
from dk2020flow.store.port import Contact, Organisation
from dk2020flow.store.repository import SqlStore

ROOT = Path(__file__).resolve().parents[3]
DK2020 = ROOT / "workflows" / "dk2020.yaml"
JUNE = dt.datetime(2020, 6, 20, 8, 0, tzinfo=dt.UTC)
SKIPPED = {"alembic_version"}


def _rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order."""
    engine = make_engine(url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        found: dict[str, list[tuple[Any, ...]]] = {}
        with engine.connect() as conn:
            for name, table in sorted(meta.tables.items()):
                if name in SKIPPED:
                    continue
                rows = conn.execute(sa.select(table)).fetchall()
                found[name] = sorted((tuple(row) for row in rows), key=repr)
        return found
    finally:
        engine.dispose()


def _scalar(url: str, sql: str) -> Any:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()


def _programme(url: str) -> None:
    """DK2020 loaded (its 98 municipalities with it), contacts, every case opened, and
    Aarhus's council's decision: cases, events, mail queued and parked."""
    store = SqlStore(url)
    try:
        service = Service(store, clock=ManualClock(JUNE))
        service.load_workflow(DK2020)
        with store.transaction() as tx:
            tx.replace_participants(
                [],
                [
                    Contact(
                        organisation_code=code,
                        role=role,
                        name=f"{role} of {code}",
                        email=f"{role}@{code}.example.dk",
                        language="da",
                    )
                    for code in ("751", "461")
                    for role in ("mayor", "contact_person")
                ],
            )
        service.open_cases("dk2020", None, actor="test", role="secretariat")
        service.fire(
            "Aarhus",
            "decide_participate",
            actor="test",
            role="contact_person",
            workflow="dk2020",
            data={
                "cohort": "round1",
                "decision_date": "2020-06-18",
                "contact_person_name": "Mette",
                "contact_person_email": "contact_person@751.example.dk",
            },
        )
    finally:
        store.close()


def test_a_dk2020_database_goes_down_to_0005_and_up_again_with_every_row(
    empty_db_url: str,
) -> None:
    url = empty_db_url
    upgrade(url)
    _programme(url)
    downgrade(url, "0006")  # what 0006 left (later revisions' columns aside)
    before = _rows(url)
    assert len(before["organisations"]) == 98
    assert len(before["cases"]) == 98
    assert len(before["events"]) >= 99
    assert before["outbox"]

    downgrade(url, "0005")
    assert _scalar(url, "SELECT count(*) FROM municipalities") == 98
    assert (
        _scalar(
            url,
            "SELECT count(*) FROM cases c JOIN municipalities m ON m.code = c.municipality_code "
            "WHERE c.municipality_region = m.region",
        )
        == 98
    )
    assert _scalar(url, "SELECT count(*) FROM events") == len(before["events"])
    assert _scalar(url, "SELECT count(*) FROM outbox") == len(before["outbox"])

    upgrade(url, "0006")
    assert _rows(url) == before
    upgrade(url)

    # The counts' triggers work under their new names: one more case is counted.
    store = SqlStore(url)
    try:
        with store.transaction() as tx:
            tx.replace_participants(
                [Organisation(code="BE-LEU", name="Leuven", region="Flanders")], []
            )
        Service(store, clock=ManualClock(JUNE)).open_case(
            "dk2020", "Leuven", actor="test", role="secretariat"
        )
    finally:
        store.close()
    counted = _scalar(url, "SELECT sum(n) FROM case_counts WHERE region = 'Flanders'")
    assert counted == 1
    assert _scalar(url, "SELECT sum(n) FROM case_counts") == 99


def test_going_below_0006_refuses_organisations_the_old_table_cannot_hold(
    empty_db_url: str,
) -> None:
    url = empty_db_url
    upgrade(url)
    store = SqlStore(url)
    try:
        with store.transaction() as tx:
            tx.replace_participants([Organisation(code="BE-LEU", name="Leuven")], [])
    finally:
        store.close()
    downgrade(url, "0006")
    before = _rows(url)
    with pytest.raises(
        RuntimeError, match=r"cannot go below revision 0006: 1 organisation.*BE-LEU"
    ):
        downgrade(url, "0005")
    assert _rows(url) == before
    assert _scalar(url, "SELECT version_num FROM alembic_version") == "0006"
