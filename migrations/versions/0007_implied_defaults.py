"""Each stored definition records the defaults it was loaded under: ``definitions`` gains
``implied_defaults`` (JSON, NOT NULL, ``{}`` by default), what its text means by the keys
it leaves unsaid (``timezone``, ``calendar_country``).

A definition row is its text exactly as loaded, parsed again whenever it is used; when a
later version of the code changes a default, the text alone would silently mean another
workflow (its deadlines moved). Every row stored before this revision was loaded by code
whose defaults were Denmark's: the timezone Europe/Copenhagen and the calendar of country
DK, which is what they get here. Rows stored after record the defaults of the code that
loads them.

Going down drops the column (the text is what it always was).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOADED_BEFORE_0007 = {"timezone": "Europe/Copenhagen", "calendar_country": "DK"}
"""The defaults of the code that stored every definition before this revision (history:
the code's defaults are neutral since)."""


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("definitions") as batch:
        batch.add_column(
            sa.Column("implied_defaults", _json(), nullable=False, server_default=sa.text("'{}'"))
        )
    definitions = sa.table("definitions", sa.column("implied_defaults", _json()))
    op.execute(definitions.update().values(implied_defaults=LOADED_BEFORE_0007))


def downgrade() -> None:
    with op.batch_alter_table("definitions") as batch:
        batch.drop_column("implied_defaults")
