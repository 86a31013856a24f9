"""The database's schema: bring it to this release's, or say where it stands.

Module-level functions, not ``Service`` methods: they run before the schema exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from dk2020flow.store.db import current_revision, head_revision, make_engine, safe_url, upgrade


@dataclass(frozen=True, kw_only=True, slots=True)
class DatabaseStatus:
    """Where the schema stands: ``current`` (None: empty database) against ``head``."""

    url: str
    """The URL with any password hidden."""
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def upgrade_database(database_url: str) -> DatabaseStatus:
    """Migrate the database to the newest schema (creating it; seeding the organisations)."""
    upgrade(database_url)
    head = head_revision()
    return DatabaseStatus(url=safe_url(database_url), current=head, head=head)


def database_status(database_url: str) -> DatabaseStatus:
    """The database's schema revision and this release's."""
    engine = make_engine(database_url)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    return DatabaseStatus(url=safe_url(database_url), current=current, head=head_revision())
