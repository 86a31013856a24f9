"""Participants are organisations: ``municipalities`` becomes ``organisations`` (code,
name, kind, country, subdivision, region, group, language, titles), and the columns
that named a municipality (``cases``, ``contacts``, ``users``) name an organisation.

Codes grow from 3 to 32 characters (``BE-LEU``, a company number …). Existing rows are
carried over as they were: the engine knew only Denmark's municipalities before, so
each becomes kind ``municipality``, country ``DK``, language ``da``, with the formal
names the templates showed (``title``: "Aarhus Kommune" / "Aarhus Municipality"). The
console's triggers (migration 0004) are created again for the new names.

Going down refuses, changing nothing, when an organisation does not fit the old table
(a code of more than 3 characters or a name of more than 100).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NEW_NAMES = (
    ("municipalities", "organisations"),
    ("municipality_code", "organisation_code"),
    ("municipality_region", "organisation_region"),
)
"""Old name -> new name: the only words of 0004's trigger statements that change."""

_CODE_COLUMNS = ("cases", "contacts", "users")
"""The tables whose ``municipality_code`` referred to ``municipalities.code``."""

_UNIQUE = {
    "cases": ("workflow", "{code}"),
    "contacts": ("{code}", "role", "email"),
}
_COVERED = ("closed", "deadline_at", "deadline_timer", "definition_id", "entered_at")
_INDEXES: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    # (name, columns, INCLUDE (id) on PostgreSQL): the indexes of cases that name a
    # renamed column (0003, 0004), dropped before and created again after.
    ("ix_cases_workflow_state_cohort", ("workflow", "state", "cohort", "{code}"), False),
    (
        "ix_cases_workflow_cohort_region",
        ("workflow", "cohort", "{region}", "state", *_COVERED),
        True,
    ),
    (
        "ix_cases_workflow_region_state",
        ("workflow", "{region}", "state", "cohort", *_COVERED),
        True,
    ),
    (
        "ix_cases_workflow_entered_at_state",
        (
            "workflow",
            "entered_at",
            "id",
            "state",
            "cohort",
            "{region}",
            "closed",
            "deadline_at",
            "deadline_timer",
            "definition_id",
        ),
        False,
    ),
)


def _console_triggers() -> Any:
    """Migration 0004's module (its file name is not an identifier ``import`` takes)."""
    return importlib.import_module("dk2020flow._migrations.versions.0004_api_documents")


def _renamed(statement: str) -> str:
    for old, new in _NEW_NAMES:
        statement = statement.replace(old, new)
    return statement


def console_trigger_drops(dialect: str) -> list[str]:
    """The statements that drop the console's triggers as this revision names them."""
    return [_renamed(statement) for statement in _console_triggers().console_trigger_drops(dialect)]


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _legacy_title(name: str, language: str) -> str:
    """The formal name templates showed before organisations had titles of their own."""
    if name.lower().endswith(("kommune", "municipality")):
        return name
    if name == "Bornholm":
        return "Bornholms Regionskommune" if language == "da" else "Bornholm Regional Municipality"
    return f"{name} Kommune" if language == "da" else f"{name} Municipality"


def _fill(columns: Sequence[str], code: str, region: str) -> list[str]:
    return [c.format(code=code, region=region) for c in columns]


def _drop_indexes() -> None:
    for name, _, _ in _INDEXES:
        op.drop_index(name, table_name="cases")


def _create_indexes(code: str, region: str) -> None:
    for name, columns, include in _INDEXES:
        op.create_index(
            name,
            "cases",
            _fill(columns, code, region),
            postgresql_include=["id"] if include else [],
        )


def _move_references(
    *,
    old_table: str,
    new_table: str,
    old: str,
    new: str,
    length: int,
    old_region: str,
    new_region: str,
) -> None:
    """Point ``cases``, ``contacts`` and ``users`` at ``new_table`` by column ``new``."""
    for table in _CODE_COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_{old}_{old_table}", type_="foreignkey")
            if table in _UNIQUE:
                unique = _fill(_UNIQUE[table], old, "")
                batch.drop_constraint(f"uq_{table}_{'_'.join(unique)}", type_="unique")
            batch.alter_column(
                old,
                new_column_name=new,
                type_=sa.String(length=length),
                existing_nullable=table == "users",
            )
            if table == "cases":
                batch.alter_column(
                    old_region,
                    new_column_name=new_region,
                    existing_type=sa.String(length=64),
                    existing_nullable=True,
                )
        # A second pass: SQLite's batch mode loses constraints on a column renamed in the
        # same pass.
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(f"fk_{table}_{new}_{new_table}", new_table, [new], ["code"])
            if table in _UNIQUE:
                unique = _fill(_UNIQUE[table], new, "")
                batch.create_unique_constraint(f"uq_{table}_{'_'.join(unique)}", unique)


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    triggers = _console_triggers()
    for statement in triggers.console_trigger_drops(dialect):
        op.execute(statement)
    _drop_indexes()

    name = sa.String(length=64)
    organisations = op.create_table(
        "organisations",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", name, nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("subdivision", sa.String(length=8), nullable=False),
        sa.Column("region", name, nullable=False),
        sa.Column("group", name, nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("titles", _json(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_organisations")),
        sa.UniqueConstraint("name", name=op.f("uq_organisations_name")),
    )
    assert organisations is not None
    rows = bind.execute(sa.text("SELECT code, name, region, dk2020_group FROM municipalities"))
    carried = [
        {
            "code": row.code,
            "name": row.name,
            "kind": "municipality",
            "country": "DK",
            "subdivision": "",
            "region": row.region,
            "group": row.dk2020_group,
            "language": "da",
            "titles": {lang: _legacy_title(row.name, lang) for lang in ("da", "en")},
        }
        for row in rows
    ]
    if carried:
        op.bulk_insert(organisations, carried)

    _move_references(
        old_table="municipalities",
        new_table="organisations",
        old="municipality_code",
        new="organisation_code",
        length=32,
        old_region="municipality_region",
        new_region="organisation_region",
    )
    op.drop_table("municipalities")
    op.create_index("ix_organisations_region_name", "organisations", ["region", "name"])
    _create_indexes("organisation_code", "organisation_region")
    for statement in triggers.console_trigger_statements(dialect):
        op.execute(_renamed(statement))


def downgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    too_long = bind.execute(
        sa.text(
            "SELECT code, name FROM organisations "
            "WHERE length(code) > 3 OR length(name) > 100 ORDER BY code"
        )
    ).fetchall()
    if too_long:
        shown = ", ".join(row.code for row in too_long[:5])
        raise RuntimeError(
            f"cannot go below revision 0006: {len(too_long)} organisation(s) do not fit the "
            f"municipalities table of 0005 (a code of more than 3 characters or a name of "
            f"more than 100): {shown}"
        )
    triggers = _console_triggers()
    for statement in console_trigger_drops(dialect):
        op.execute(statement)
    _drop_indexes()

    municipalities = op.create_table(
        "municipalities",
        sa.Column("code", sa.String(length=3), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("dk2020_group", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_municipalities")),
        sa.UniqueConstraint("name", name=op.f("uq_municipalities_name")),
    )
    assert municipalities is not None
    rows = bind.execute(sa.text('SELECT code, name, region, "group" FROM organisations'))
    carried = [
        {"code": r.code, "name": r.name, "region": r.region, "dk2020_group": r.group} for r in rows
    ]
    if carried:
        op.bulk_insert(municipalities, carried)
    _move_references(
        old_table="organisations",
        new_table="municipalities",
        old="organisation_code",
        new="municipality_code",
        length=3,
        old_region="organisation_region",
        new_region="municipality_region",
    )
    op.drop_table("organisations")
    op.create_index("ix_municipalities_region_name", "municipalities", ["region", "name"])
    _create_indexes("municipality_code", "municipality_region")
    for statement in triggers.console_trigger_statements(dialect):
        op.execute(statement)
