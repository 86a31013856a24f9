"""The checklist events get an index of their own: ``ix_events_checklist`` on
``events (case_id, id) WHERE kind = 'checklist'`` (a partial index, on SQLite and
PostgreSQL alike).

The programme report as it stands (``dk2020flow report`` without ``--at``) reads the
cases' current state from the kept counts and replays only the screenings (the CAPF
checklist events) to show which requirements hold plans back; without this index that
meant reading the whole event log. Only checklist events are in it, so every other
event is written as fast as before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECKLIST = sa.text("kind = 'checklist'")


def upgrade() -> None:
    op.create_index(
        "ix_events_checklist",
        "events",
        ["case_id", "id"],
        sqlite_where=CHECKLIST,
        postgresql_where=CHECKLIST,
    )


def downgrade() -> None:
    op.drop_index("ix_events_checklist", table_name="events")
