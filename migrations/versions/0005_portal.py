"""The participants' portal: links in milestone mail bound to one person and case, and the
privacy log of who looked at and changed a person's data (docs/data-model.md).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # --- mail links (case links in milestone mail) ---
    _links_upgrade()  # mail links: the keys that sign case links (below)
    # --- privacy (access log) ---
    _privacy_upgrade()  # privacy: the access log and the forgotten people (below)


def downgrade() -> None:
    # --- privacy (access log) ---
    _privacy_downgrade()  # privacy
    # --- mail links (case links in milestone mail) ---
    _links_downgrade()  # mail links


# --- privacy (access log) --- the tables of service/privacy.py (docs/portal.md "Your data")


def _privacy_upgrade() -> None:
    import sqlalchemy as sa
    from alembic import op
    from sqlalchemy.dialects import postgresql

    from dk2020flow.store.types import UtcDateTime

    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("what", sa.String(length=32), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("subject", sa.String(length=320), nullable=True),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_log")),
    )
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.create_index("ix_access_log_case_id_at", ["case_id", "at"], unique=False)
        batch_op.create_index("ix_access_log_subject", ["subject"], unique=False)
        batch_op.create_index("ix_access_log_at", ["at"], unique=False)
    op.create_table(
        "forgotten_people",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("forgotten_at", UtcDateTime(), nullable=False),
        sa.Column("digests", json, nullable=False),
        sa.Column("summary", json, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forgotten_people")),
    )


def _privacy_downgrade() -> None:
    from alembic import op

    op.drop_table("forgotten_people")
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.drop_index("ix_access_log_at")
        batch_op.drop_index("ix_access_log_subject")
        batch_op.drop_index("ix_access_log_case_id_at")
    op.drop_table("access_log")


# --- end privacy ---


# --- mail links (case links in milestone mail) --- the keys of service/links.py


def _links_upgrade() -> None:
    import sqlalchemy as sa
    from alembic import op

    from dk2020flow.store.types import UtcDateTime

    op.create_table(
        "link_keys",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_keys")),
    )


def _links_downgrade() -> None:
    from alembic import op

    op.drop_table("link_keys")
