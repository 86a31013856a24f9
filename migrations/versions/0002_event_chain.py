"""The event log: the transition taken, a hash chain, and triggers refusing UPDATE and DELETE.

``events.transition`` records which transition of the definition a transition event
took (its index; NULL for events written before this revision, which replay matches
by trigger, source and target state). ``events.hash`` chains each case's events
(``dk2020flow.store.chain``); the rows already there are hashed here, in order.
Then triggers make the table append-only in the database: UPDATE and DELETE (and, on
PostgreSQL, TRUNCATE) of ``events`` are refused.

A later migration that recreates ``events`` (SQLite batch mode copies the table)
must create the triggers again: ``create_append_only`` below.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from dk2020flow.store.chain import GENESIS, row_hash

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFUSAL = "events are append-only: the audit log cannot be changed or deleted"

SQLITE_TRIGGERS = (
    f"""CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, '{REFUSAL} (UPDATE refused)'); END""",
    f"""CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, '{REFUSAL} (DELETE refused)'); END""",
)
POSTGRES_TRIGGERS = (
    f"""CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{REFUSAL} (% refused)', TG_OP USING ERRCODE = 'integrity_constraint_violation';
    END $$""",
    """CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only()""",
    """CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only()""",
)


def create_append_only() -> None:
    """The triggers that refuse UPDATE and DELETE of ``events`` on this backend."""
    statements = SQLITE_TRIGGERS if op.get_bind().dialect.name == "sqlite" else POSTGRES_TRIGGERS
    for statement in statements:
        op.execute(statement)


def drop_append_only() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS events_no_update")
        op.execute("DROP TRIGGER IF EXISTS events_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS events_no_update_delete ON events")
        op.execute("DROP TRIGGER IF EXISTS events_no_truncate ON events")
        op.execute("DROP FUNCTION IF EXISTS events_append_only()")


def _hash_existing() -> None:
    """Chain the events written before this revision, case by case, in ``seq`` order."""
    from dk2020flow.store.types import UtcDateTime

    events = sa.table(
        "events",
        sa.column("id", sa.Integer()),
        sa.column("case_id", sa.Integer()),
        sa.column("seq", sa.Integer()),
        sa.column("at", UtcDateTime()),
        sa.column("kind", sa.String()),
        sa.column("actor", sa.String()),
        sa.column("role", sa.String()),
        sa.column("trigger", sa.String()),
        sa.column("from_state", sa.String()),
        sa.column("to_state", sa.String()),
        sa.column("comment", sa.Text()),
        sa.column("data", sa.JSON()),
        sa.column("epoch", sa.Integer()),
        sa.column("transition", sa.Integer()),
        sa.column("hash", sa.String()),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(events).order_by(events.c.case_id, events.c.seq)).mappings()
    updates: list[dict[str, Any]] = []
    case_id: int | None = None
    prev = GENESIS
    for row in rows:
        if row["case_id"] != case_id:
            case_id, prev = row["case_id"], GENESIS
        prev = row_hash(dict(row), prev)
        updates.append({"b_id": row["id"], "b_hash": prev})
    if updates:
        bind.execute(
            sa.update(events)
            .where(events.c.id == sa.bindparam("b_id"))
            .values(hash=sa.bindparam("b_hash")),
            updates,
        )


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("transition", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    _hash_existing()
    create_append_only()


def downgrade() -> None:
    drop_append_only()
    with op.batch_alter_table("events") as batch:
        batch.drop_column("hash")
        batch.drop_column("transition")
