"""The web application's tables: users, sign-in links and sessions, rate limits, saved
views of the cases table, and bulk runs (docs/web.md).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from dk2020flow.store.types import UtcDateTime

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _when(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, UtcDateTime(), nullable=nullable)


def _id() -> sa.Column[Any]:
    return sa.Column("id", sa.Integer(), nullable=False)


def _backfill_deadlines() -> None:
    """``cases.deadline_at``/``deadline_timer`` of every case, by the definition the store
    keeps them with (the earliest current deadline arm the case can be late on), spelt
    out on this revision's columns so that later changes to the tables leave it alone."""
    from dk2020flow.store.sql.timers import counting_timer_condition

    conn = op.get_bind()
    definitions = sa.table(
        "definitions",
        sa.column("id", sa.Integer()),
        sa.column("content_hash", sa.String()),
        sa.column("source_text", sa.Text()),
        sa.column("source_path", sa.Text()),
    )
    cases = sa.table(
        "cases",
        sa.column("id", sa.Integer()),
        sa.column("definition_id", sa.Integer()),
        sa.column("state", sa.String()),
        sa.column("epoch", sa.Integer()),
        sa.column("deadline_at", UtcDateTime()),
        sa.column("deadline_timer", sa.String()),
    )
    timers = sa.table(
        "timers",
        sa.column("id", sa.Integer()),
        sa.column("case_id", sa.Integer()),
        sa.column("timer", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("epoch", sa.Integer()),
        sa.column("status", sa.String()),
        sa.column("deadline_at", UtcDateTime()),
    )
    arm, later = timers.alias("arm"), timers.alias("later")
    newer = sa.exists().where(
        later.c.case_id == arm.c.case_id,
        later.c.epoch == arm.c.epoch,
        later.c.kind == "deadline",
        later.c.timer == arm.c.timer,
        later.c.id > arm.c.id,
    )
    first = (
        sa.select(arm.c.deadline_at, arm.c.timer)
        .where(
            arm.c.case_id == cases.c.id,
            arm.c.epoch == cases.c.epoch,
            arm.c.kind == "deadline",
            arm.c.status != "discarded",
            arm.c.deadline_at.is_not(None),
            counting_timer_condition(
                conn, cases.c.definition_id, cases.c.state, arm.c.timer, definitions
            ),
            ~newer,
        )
        .order_by(arm.c.deadline_at, arm.c.timer)
        .limit(1)
    )
    conn.execute(
        sa.update(cases).values(
            deadline_at=first.with_only_columns(arm.c.deadline_at).scalar_subquery(),
            deadline_timer=first.with_only_columns(arm.c.timer).scalar_subquery(),
        )
    )


def upgrade() -> None:
    # The console's cases table (store/sql/console.py): sorted by region, filtered by
    # round, sorted by since, and a case's current deadline arms read from one index.
    op.create_index("ix_municipalities_region_name", "municipalities", ["region", "name"])
    op.create_index("ix_cases_workflow_cohort", "cases", ["workflow", "cohort"])
    op.create_index("ix_cases_workflow_entered_at", "cases", ["workflow", "entered_at"])
    op.create_index(
        "ix_timers_case_id_epoch_kind",
        "timers",
        ["case_id", "epoch", "kind", "timer", "status", "deadline_at"],
    )
    # A case's earliest current deadline it can be late on, kept by the store's writes
    # (store/sql/timers.py ``refresh_deadline_columns``); existing cases filled in here.
    op.add_column("cases", _when("deadline_at", nullable=True))
    op.add_column("cases", sa.Column("deadline_timer", sa.String(length=64), nullable=True))
    covered = ["closed", "definition_id", "state", "deadline_timer"]
    op.create_index("ix_cases_workflow_deadline_at", "cases", ["workflow", "deadline_at", *covered])
    op.create_index("ix_cases_deadline_at", "cases", ["deadline_at", *covered])
    # The overview's counts per (workflow, state, round, region), without the case rows.
    op.create_index(
        "ix_cases_workflow_state_cohort",
        "cases",
        ["workflow", "state", "cohort", "municipality_code"],
    )
    _backfill_deadlines()
    op.create_table(
        "users",
        _id(),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("roles", _json(), nullable=False),
        sa.Column("municipality_code", sa.String(length=3), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _when("created_at"),
        _when("disabled_at", nullable=True),
        sa.Column("oidc_subject", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["municipality_code"],
            ["municipalities.code"],
            name=op.f("fk_users_municipality_code_municipalities"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        sa.UniqueConstraint("oidc_subject", name=op.f("uq_users_oidc_subject")),
    )
    op.create_table(
        "sign_in_tokens",
        _id(),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        _when("created_at"),
        _when("expires_at"),
        _when("used_at", nullable=True),
        sa.Column("code_attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sign_in_tokens_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sign_in_tokens_token_hash")),
    )
    op.create_table(
        "web_sessions",
        _id(),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        _when("created_at"),
        _when("last_seen_at"),
        _when("expires_at"),
        _when("revoked_at", nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_web_sessions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_sessions_token_hash")),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_table(
        "sign_in_attempts",
        _id(),
        sa.Column("key", sa.String(length=80), nullable=False),
        _when("at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_attempts")),
    )
    op.create_index("ix_sign_in_attempts_key_at", "sign_in_attempts", ["key", "at"])
    op.create_table(
        "saved_views",
        _id(),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("shared_role", sa.String(length=64), nullable=True),
        sa.Column("query", sa.Text(), nullable=False),
        _when("created_at"),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_saved_views_owner_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_views")),
    )
    op.create_index("ix_saved_views_owner_id", "saved_views", ["owner_id"])
    op.create_table(
        "bulk_runs",
        _id(),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=True),
        sa.Column("trigger", sa.String(length=64), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("data", _json(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        _when("created_at"),
        _when("finished_at", nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_runs")),
    )
    op.create_table(
        "bulk_items",
        _id(),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        _when("at", nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["bulk_runs.id"], name=op.f("fk_bulk_items_run_id_bulk_runs")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_bulk_items_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_items")),
        sa.UniqueConstraint("run_id", "case_id", name=op.f("uq_bulk_items_run_id_case_id")),
    )


def downgrade() -> None:
    for table in (
        "bulk_items",
        "bulk_runs",
        "saved_views",
        "sign_in_attempts",
        "web_sessions",
        "sign_in_tokens",
        "users",
    ):
        op.drop_table(table)
    op.drop_index("ix_cases_workflow_state_cohort", table_name="cases")
    op.drop_index("ix_cases_deadline_at", table_name="cases")
    op.drop_index("ix_cases_workflow_deadline_at", table_name="cases")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("deadline_timer")
        batch.drop_column("deadline_at")
    op.drop_index("ix_timers_case_id_epoch_kind", table_name="timers")
    op.drop_index("ix_cases_workflow_entered_at", table_name="cases")
    op.drop_index("ix_cases_workflow_cohort", table_name="cases")
    op.drop_index("ix_municipalities_region_name", table_name="municipalities")
