"""DK2020's data for the tests: its data set, its staff roles, and a database holding its
98 municipalities. Imported as ``from dk2020_data import …`` (a module of its own: several
folders have a ``conftest.py``, and ``from dk2020_data import`` takes whichever was imported
first)."""

from __future__ import annotations

from pathlib import Path

from dk2020flow.service.participants import import_participants
from dk2020flow.store.db import upgrade
from dk2020flow.store.port import Organisation
from dk2020flow.store.repository import SqlStore

REPO = Path(__file__).resolve().parent.parent
DK2020_MUNICIPALITIES = REPO / "workflows" / "data" / "dk2020_municipalities.csv"
"""DK2020's data set (``organisations:`` in workflows/dk2020.yaml)."""

DK2020_ACTING_ROLES = ("secretariat", "follow_up", "approver", "regional_advisor")
"""DK2020's staff roles that act on cases (the web tests' accounts hold these)."""
DK2020_STAFF_ROLES = (*DK2020_ACTING_ROLES, "admin", "read_only")
"""The roles the web and API tests' staff accounts and tokens are made with."""
DK2020_PROGRAMME_ROLES = ("secretariat", "follow_up", "approver", "admin", "read_only")
"""DK2020's roles that act for the programme (a shared mailbox), not one municipality:
a token in another role needs ``every_case``."""


def dk2020_municipalities() -> list[Organisation]:
    """DK2020's data set, parsed (what a contacts file of DK2020 may name)."""
    from dk2020flow.service.participants import parse_participants_csv

    return parse_participants_csv(DK2020_MUNICIPALITIES, known=())[0]


def with_dk2020_municipalities(url: str) -> str:
    """Migrate the database at ``url`` and import DK2020's 98 municipalities into it."""
    upgrade(url)
    store = SqlStore(url)
    try:
        with store.transaction() as tx:
            import_participants(tx, DK2020_MUNICIPALITIES)
    finally:
        store.close()
    return url
