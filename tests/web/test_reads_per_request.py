"""What a page costs the database: read transactions per request, statements built once.

Each read transaction is a pool checkout, a BEGIN and a ROLLBACK (on PostgreSQL a ping
and round trips as well), and each statement built per request costs SQLAlchemy more
than SQLite takes to run it (docs/performance.md, the web console): these tests keep
the pages from drifting back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event

from dk2020flow.store.db import READ_ONLY_OPTION

from .conftest import web_service
from .portal_world import AARHUS, ANNA, add_contacts, case_id, sign_in_as_participant


@contextmanager
def read_transactions(client: TestClient) -> Iterator[list[int]]:
    """The read transactions begun meanwhile (the access log's writes, in a thread of
    their own, are write transactions and not counted)."""
    engine = web_service(client).store.engine
    begun: list[int] = []

    def on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            begun.append(1)

    event.listen(engine, "begin", on_begin)
    try:
        yield begun
    finally:
        event.remove(engine, "begin", on_begin)


@contextmanager
def statements(client: TestClient) -> Iterator[list[object]]:
    """The statement objects executed meanwhile."""
    engine = web_service(client).store.engine
    seen: list[object] = []

    def before(_conn: Any, clause: object, *_args: Any) -> None:
        seen.append(clause)

    event.listen(engine, "before_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_execute", before)


def test_a_participants_case_page_reads_in_three_transactions(
    client: TestClient, programme_url: str
) -> None:
    # The session with the person's roles, the case with the access check and
    # everything the page shows of it, then its documents (it read five: the roles and
    # the access check in transactions of their own).
    add_contacts(programme_url)
    portal = sign_in_as_participant(client, web_service(client), ANNA)
    page = f"/portal/cases/{case_id(programme_url, AARHUS)}"
    assert portal.get(page).status_code == 200  # the programme read and kept
    with read_transactions(client) as begun:
        response = portal.get(page)
    assert response.status_code == 200
    assert len(begun) == 3


def test_the_cases_table_builds_its_statements_once_per_filter_shape(
    client_as: Any,
) -> None:
    staff = client_as("secretariat")
    first = staff.get("/cases?region=Syddanmark&sort=-since")
    assert first.status_code == 200
    with statements(staff) as seen:
        other = staff.get("/cases?region=Hovedstaden&sort=-since")
    with statements(staff) as again:
        same = staff.get("/cases?region=Syddanmark&sort=-since")
    assert other.status_code == same.status_code == 200
    # Another value of the same filter: the same statements, bound to other values …
    table = _of_the_table(again)
    assert len(table) >= 3  # the counts, the page's ids, its rows
    assert all(a is b for a, b in zip(table, _of_the_table(seen), strict=True))
    # … that find other cases.
    assert _count(other.text) != _count(same.text)
    assert _count(same.text) == _count(first.text)


def _of_the_table(executed: list[object]) -> list[object]:
    return [s for s in executed if any(name in str(s) for name in ("cases", "case_counts"))]


def _count(html: str) -> str:
    start = html.index('<p role="status">')
    return html[start : html.index("</p>", start)]
