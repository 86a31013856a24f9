"""The REST API's tokens and idempotency keys, webhook subscriptions and their deliveries
(the webhooks' outbox), and documents uploaded to cases (docs/data-model.md).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from dk2020flow.store.types import UtcDateTime

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _when(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, UtcDateTime(), nullable=nullable)


def _id() -> sa.Column[Any]:
    return sa.Column("id", sa.Integer(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        _id(),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("roles", _json(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        _when("created_at"),
        _when("expires_at", nullable=True),
        _when("revoked_at", nullable=True),
        _when("last_used_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_tokens_secret_hash")),
    )
    op.create_table(
        "webhook_subscriptions",
        _id(),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", _json(), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        _when("created_at"),
        _when("disabled_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions")),
    )
    op.create_table(
        "documents",
        _id(),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("slot", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage", sa.String(length=16), nullable=False),
        sa.Column("storage_key", sa.Text(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=200), nullable=False),
        sa.Column("uploaded_role", sa.String(length=64), nullable=True),
        _when("uploaded_at"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_documents_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
    )
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.create_index("ix_documents_case_id", ["case_id"], unique=False)

    op.create_table(
        "idempotency_keys",
        _id(),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", _json(), nullable=False),
        _when("created_at"),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_idempotency_keys_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["token_id"], ["api_tokens.id"], name=op.f("fk_idempotency_keys_token_id_api_tokens")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("token_id", "key", name=op.f("uq_idempotency_keys_token_id_key")),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index("ix_idempotency_keys_created_at", ["created_at"], unique=False)

    op.create_table(
        "webhook_deliveries",
        _id(),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _when("next_attempt_at"),
        _when("lease_until", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        _when("created_at"),
        _when("sent_at", nullable=True),
        _when("dead_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_webhook_deliveries_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["webhook_subscriptions.id"],
            name=op.f("fk_webhook_deliveries_subscription_id_webhook_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("delivery_id", name=op.f("uq_webhook_deliveries_delivery_id")),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_deliveries_status_next_attempt_at",
            ["status", "next_attempt_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_webhook_deliveries_subscription_id", ["subscription_id"], unique=False
        )

    op.create_table(
        "document_contents",
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_document_contents_document_id_documents"),
        ),
        sa.PrimaryKeyConstraint("document_id", name=op.f("pk_document_contents")),
    )
    _console_counts_upgrade()  # console-perf: see the block at the end of this module


def downgrade() -> None:
    _console_counts_downgrade()  # console-perf: see the block at the end of this module
    op.drop_table("document_contents")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_subscription_id")
        batch_op.drop_index("ix_webhook_deliveries_status_next_attempt_at")

    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_idempotency_keys_created_at")

    op.drop_table("idempotency_keys")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index("ix_documents_case_id")

    op.drop_table("documents")
    op.drop_table("webhook_subscriptions")
    op.drop_table("api_tokens")


# ============================================================================ console counts
# (console-perf) What the console's overview and cases table count, kept by the database
# itself so that a page reads a few dozen rows instead of 100 000 cases:
#
# - ``cases.municipality_region``: the region of the case's municipality (the cases
#   table filters by region without joining the municipalities);
# - ``case_counts``: cases per (workflow, state, cohort, region);
# - ``deadline_counts``: open cases per (workflow, definition, state, cohort, region,
#   deadline timer, deadline) — those with a current deadline (``cases.deadline_at``);
# - ``outbox_counts``: messages per status.
#
# Triggers on ``cases``, ``municipalities`` and ``outbox`` keep them on every write, by
# whichever code writes (the store, bulk SQL, a bench's loader), in the writing
# transaction. A count is the SUM of its key's rows: a writer adds its change to one
# row of the key that no other transaction holds (PostgreSQL: ``FOR UPDATE SKIP
# LOCKED``), or to a new row, so two writers never wait on each other for a count and
# cannot deadlock on one (a key has at most as many rows as writers changed it at once);
# a row that comes to 0 is deleted. A no-cohort key is ``''``.
#
# A later migration that recreates one of these three tables on SQLite (batch mode
# copies it) must create the triggers again: ``create_console_triggers`` below.

_COUNT_KEYS = {
    "case_counts": ("workflow", "state", "cohort", "region"),
    "deadline_counts": (
        "workflow",
        "definition_id",
        "state",
        "cohort",
        "region",
        "deadline_timer",
        "deadline_at",
    ),
    "outbox_counts": ("status",),
}


def _region_of(row: str) -> str:
    return f"coalesce((SELECT region FROM municipalities WHERE code = {row}.municipality_code), '')"


def _case_key(row: str) -> tuple[str, ...]:
    return (f"{row}.workflow", f"{row}.state", f"coalesce({row}.cohort, '')", _region_of(row))


def _deadline_key(row: str) -> tuple[str, ...]:
    return (
        f"{row}.workflow",
        f"{row}.definition_id",
        f"{row}.state",
        f"coalesce({row}.cohort, '')",
        _region_of(row),
        f"{row}.deadline_timer",
        f"{row}.deadline_at",
    )


def _has_deadline(row: str, false: str) -> str:
    return (
        f"{row}.closed = {false} AND {row}.deadline_at IS NOT NULL "
        f"AND {row}.deadline_timer IS NOT NULL"
    )


_CASE_COLUMNS = ("workflow", "state", "cohort", "municipality_code")
_DEADLINE_COLUMNS = (*_CASE_COLUMNS, "definition_id", "closed", "deadline_at", "deadline_timer")


def _changed(columns: Sequence[str], differ: str) -> str:
    return " OR ".join(f"OLD.{c} {differ} NEW.{c}" for c in columns)


def _sqlite_add(table: str, values: Sequence[str], delta: str) -> str:
    """Add ``delta`` to ``table``'s count of the key ``values`` (SQLite: one writer at a
    time, so one row per key)."""
    keys = _COUNT_KEYS[table]
    match = " AND ".join(f"{k} = {v}" for k, v in zip(keys, values, strict=True))
    return (
        f"UPDATE {table} SET n = n + ({delta}) "
        f"WHERE id = (SELECT id FROM {table} WHERE {match} LIMIT 1); "
        f"INSERT INTO {table} ({', '.join(keys)}, n) SELECT {', '.join(values)}, {delta} "
        f"WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {match}); "
        f"DELETE FROM {table} WHERE {match} AND n = 0;"
    )


def _sqlite_triggers() -> list[str]:
    region = "(SELECT region FROM municipalities WHERE code = NEW.municipality_code)"
    moved = "OLD.region IS NOT NEW.region"
    return [
        # cases.municipality_region
        f"""CREATE TRIGGER cases_region_insert AFTER INSERT ON cases
        WHEN NEW.municipality_region IS NOT {region}
        BEGIN UPDATE cases SET municipality_region = {region} WHERE id = NEW.id; END""",
        f"""CREATE TRIGGER cases_region_update
        AFTER UPDATE OF municipality_code, municipality_region ON cases
        WHEN NEW.municipality_region IS NOT {region}
        BEGIN UPDATE cases SET municipality_region = {region} WHERE id = NEW.id; END""",
        # case_counts
        f"""CREATE TRIGGER cases_count_insert AFTER INSERT ON cases
        BEGIN {_sqlite_add("case_counts", _case_key("NEW"), "1")} END""",
        f"""CREATE TRIGGER cases_count_delete AFTER DELETE ON cases
        BEGIN {_sqlite_add("case_counts", _case_key("OLD"), "-1")} END""",
        f"""CREATE TRIGGER cases_count_update AFTER UPDATE OF {", ".join(_CASE_COLUMNS)} ON cases
        WHEN {_changed(_CASE_COLUMNS, "IS NOT")}
        BEGIN {_sqlite_add("case_counts", _case_key("OLD"), "-1")}
        {_sqlite_add("case_counts", _case_key("NEW"), "1")} END""",
        # deadline_counts
        f"""CREATE TRIGGER cases_deadline_insert AFTER INSERT ON cases
        WHEN {_has_deadline("NEW", "0")}
        BEGIN {_sqlite_add("deadline_counts", _deadline_key("NEW"), "1")} END""",
        f"""CREATE TRIGGER cases_deadline_delete AFTER DELETE ON cases
        WHEN {_has_deadline("OLD", "0")}
        BEGIN {_sqlite_add("deadline_counts", _deadline_key("OLD"), "-1")} END""",
        f"""CREATE TRIGGER cases_deadline_update_old
        AFTER UPDATE OF {", ".join(_DEADLINE_COLUMNS)} ON cases
        WHEN ({_changed(_DEADLINE_COLUMNS, "IS NOT")}) AND {_has_deadline("OLD", "0")}
        BEGIN {_sqlite_add("deadline_counts", _deadline_key("OLD"), "-1")} END""",
        f"""CREATE TRIGGER cases_deadline_update_new
        AFTER UPDATE OF {", ".join(_DEADLINE_COLUMNS)} ON cases
        WHEN ({_changed(_DEADLINE_COLUMNS, "IS NOT")}) AND {_has_deadline("NEW", "0")}
        BEGIN {_sqlite_add("deadline_counts", _deadline_key("NEW"), "1")} END""",
        # a municipality moved to another region: its cases and their counts move with it
        f"""CREATE TRIGGER municipalities_region_update AFTER UPDATE OF region ON municipalities
        WHEN {moved}
        BEGIN {_region_moved("0")} END""",
        # outbox_counts
        f"""CREATE TRIGGER outbox_count_insert AFTER INSERT ON outbox
        BEGIN {_sqlite_add("outbox_counts", ("NEW.status",), "1")} END""",
        f"""CREATE TRIGGER outbox_count_delete AFTER DELETE ON outbox
        BEGIN {_sqlite_add("outbox_counts", ("OLD.status",), "-1")} END""",
        f"""CREATE TRIGGER outbox_count_update AFTER UPDATE OF status ON outbox
        WHEN OLD.status IS NOT NEW.status
        BEGIN {_sqlite_add("outbox_counts", ("OLD.status",), "-1")}
        {_sqlite_add("outbox_counts", ("NEW.status",), "1")} END""",
    ]


def _region_moved(false: str) -> str:
    """The statements that move a municipality's cases (``NEW.code``) and their counts
    from ``OLD.region`` to ``NEW.region`` (set-based: extra rows for a key are summed)."""
    statements = [
        "UPDATE cases SET municipality_region = NEW.region WHERE municipality_code = NEW.code;"
    ]
    for region, sign in (("OLD.region", "-"), ("NEW.region", "")):
        statements.append(
            "INSERT INTO case_counts (workflow, state, cohort, region, n) "
            f"SELECT workflow, state, coalesce(cohort, ''), {region}, {sign}count(*) FROM cases "
            "WHERE municipality_code = NEW.code GROUP BY workflow, state, coalesce(cohort, '');"
        )
        statements.append(
            "INSERT INTO deadline_counts (workflow, definition_id, state, cohort, region, "
            "deadline_timer, deadline_at, n) "
            f"SELECT workflow, definition_id, state, coalesce(cohort, ''), {region}, "
            f"deadline_timer, deadline_at, {sign}count(*) FROM cases "
            f"WHERE municipality_code = NEW.code AND {_has_deadline('cases', false)} "
            "GROUP BY workflow, definition_id, state, coalesce(cohort, ''), deadline_timer, "
            "deadline_at;"
        )
    return " ".join(statements)


def _pg_add_function(table: str, types: Sequence[str]) -> str:
    """``{table}_add(key…, delta)``: add to one folded row (``tx`` null) of the key that no
    other transaction holds (``SKIP LOCKED``: never waits), else to a new one; delete a
    row that comes to 0."""
    keys = _COUNT_KEYS[table]
    params = ", ".join(f"k_{k} {ty}" for k, ty in zip(keys, types, strict=True))
    match = " AND ".join(f"{k} = k_{k}" for k in keys)
    return f"""CREATE FUNCTION {table}_add({params}, delta integer) RETURNS void
    LANGUAGE plpgsql AS $$
    DECLARE found_id integer;
    BEGIN
        SELECT id INTO found_id FROM {table} WHERE {match} AND tx IS NULL
        LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF found_id IS NULL THEN
            INSERT INTO {table} ({", ".join(keys)}, n)
            VALUES ({", ".join(f"k_{k}" for k in keys)}, delta);
        ELSE
            UPDATE {table} SET n = n + delta WHERE id = found_id;
            DELETE FROM {table} WHERE id = found_id AND n = 0;
        END IF;
    END $$"""


_XID = "pg_current_xact_id()::text::bigint"


def _pg_deltas(table: str, key: Sequence[str], where: str, events: Sequence[str]) -> str:
    """Insert the statement's changes to ``table`` as rows of this transaction (``tx``):
    -1 for each row of ``old_rows``, +1 for each of ``new_rows`` (those ``events`` name),
    summed per key; keys whose rows only changed otherwise sum to 0 and get none. Only
    inserts: no row is updated twice in a transaction (PostgreSQL keeps every version a
    transaction writes, so a transaction that updated one count row for each of 100 000
    cases would slow down with every case)."""
    # The region comes from the municipality (when the key has one), as it is now.
    join = (
        " LEFT JOIN municipalities m ON m.code = r.municipality_code"
        if any("m." in expr for expr in key)
        else ""
    )
    parts = [
        f"SELECT {', '.join(f'{expr} AS k{i}' for i, expr in enumerate(key))}, {sign}1 AS d "
        f"FROM {rows} r{join} WHERE {where}"
        for rows, sign in (("old_rows", "-"), ("new_rows", ""))
        if rows in events
    ]
    keys = ", ".join(f"k{i}" for i in range(len(key)))
    return (
        f"INSERT INTO {table} ({', '.join(_COUNT_KEYS[table])}, n, tx) "
        f"SELECT {keys}, sum(d), {_XID} FROM ({' UNION ALL '.join(parts)}) changes "
        f"GROUP BY {keys} HAVING sum(d) <> 0; "
        "GET DIAGNOSTICS added = ROW_COUNT; changed := changed + added;"
    )


def _pg_counting(function: str, counts: Sequence[tuple[str, Sequence[str], str]]) -> list[str]:
    """A statement-level trigger function over ``old_rows``/``new_rows``: each count
    table's ``_pg_deltas``, then (once per transaction) the mark that folds them into the
    counts when it commits (``count_folds``)."""
    branches = {
        "INSERT": ("new_rows",),
        "DELETE": ("old_rows",),
        "UPDATE": ("old_rows", "new_rows"),
    }
    body = " ".join(
        f"{'IF' if i == 0 else 'ELSIF'} TG_OP = '{op}' THEN "
        + " ".join(_pg_deltas(table, key, where, rows) for table, key, where in counts)
        for i, (op, rows) in enumerate(branches.items())
    )
    return [
        f"""CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE added bigint; changed bigint := 0;
        BEGIN
            {body} END IF;
            IF changed > 0 THEN
                INSERT INTO count_folds (tx) VALUES ({_XID}) ON CONFLICT (tx) DO NOTHING;
            END IF;
            RETURN NULL;
        END $$""",
    ]


def _pg_fold_function() -> str:
    """``count_folds_fold``: at commit (a deferred trigger on the transaction's mark), the
    transaction's rows of each count table are summed per key and added to the folded
    rows (``_add``: one update per key per transaction), then deleted."""
    loops = []
    for table, keys in _COUNT_KEYS.items():
        listed = ", ".join(keys)
        loops.append(
            f"FOR rec IN WITH gone AS (DELETE FROM {table} WHERE tx = NEW.tx "
            f"RETURNING {listed}, n) SELECT {listed}, sum(n) AS d FROM gone "
            f"GROUP BY {listed} HAVING sum(n) <> 0 ORDER BY {listed} LOOP "
            f"PERFORM {table}_add({', '.join(f'rec.{k}' for k in keys)}, rec.d::integer); "
            "END LOOP;"
        )
    return f"""CREATE FUNCTION count_folds_fold() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE rec record;
    BEGIN
        {" ".join(loops)}
        DELETE FROM count_folds WHERE tx = NEW.tx;
        RETURN NULL;
    END $$"""


def _pg_statement_triggers(prefix: str, table: str, function: str) -> list[str]:
    return [
        f"""CREATE TRIGGER {prefix}_insert AFTER INSERT ON {table}
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()""",
        f"""CREATE TRIGGER {prefix}_update AFTER UPDATE ON {table}
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION {function}()""",
        f"""CREATE TRIGGER {prefix}_delete AFTER DELETE ON {table}
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()""",
    ]


def _pg_triggers() -> list[str]:
    """PostgreSQL: statement-level triggers (a row-level one would update a count row
    once per row, and PostgreSQL keeps every version a transaction writes: a bulk write
    of many cases would slow down with each row)."""
    text_key = ("text",) * 4
    deadline_types = ("text", "integer", "text", "text", "text", "text", "timestamptz")
    region = "coalesce(m.region, '')"
    case_key = ("r.workflow", "r.state", "coalesce(r.cohort, '')", region)
    deadline_key = (
        "r.workflow",
        "r.definition_id",
        "r.state",
        "coalesce(r.cohort, '')",
        region,
        "r.deadline_timer",
        "r.deadline_at",
    )
    return [
        _pg_add_function("case_counts", text_key),
        _pg_add_function("deadline_counts", deadline_types),
        _pg_add_function("outbox_counts", ("text",)),
        # cases.municipality_region, set before the row is written
        """CREATE FUNCTION cases_region() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.municipality_region :=
                (SELECT region FROM municipalities WHERE code = NEW.municipality_code);
            RETURN NEW;
        END $$""",
        """CREATE TRIGGER cases_region_insert BEFORE INSERT ON cases
        FOR EACH ROW EXECUTE FUNCTION cases_region()""",
        """CREATE TRIGGER cases_region_update
        BEFORE UPDATE OF municipality_code, municipality_region ON cases FOR EACH ROW
        WHEN (OLD.municipality_code IS DISTINCT FROM NEW.municipality_code
              OR OLD.municipality_region IS DISTINCT FROM NEW.municipality_region)
        EXECUTE FUNCTION cases_region()""",
        # case_counts and deadline_counts
        *_pg_counting(
            "cases_counts_keep",
            (
                ("case_counts", case_key, "true"),
                ("deadline_counts", deadline_key, _has_deadline("r", "false")),
            ),
        ),
        *_pg_statement_triggers("cases_counts", "cases", "cases_counts_keep"),
        f"""CREATE FUNCTION municipalities_region_moved() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {_region_moved("false")} RETURN NULL; END $$""",
        """CREATE TRIGGER municipalities_region_update AFTER UPDATE OF region ON municipalities
        FOR EACH ROW WHEN (OLD.region IS DISTINCT FROM NEW.region)
        EXECUTE FUNCTION municipalities_region_moved()""",
        # outbox_counts
        *_pg_counting("outbox_counts_keep", (("outbox_counts", ("r.status",), "true"),)),
        *_pg_statement_triggers("outbox_counts", "outbox", "outbox_counts_keep"),
        # each transaction's changes folded in as it commits
        _pg_fold_function(),
        """CREATE CONSTRAINT TRIGGER count_folds_fold AFTER INSERT ON count_folds
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION count_folds_fold()""",
    ]


_SQLITE_TRIGGER_NAMES = (
    "cases_region_insert",
    "cases_region_update",
    "cases_count_insert",
    "cases_count_delete",
    "cases_count_update",
    "cases_deadline_insert",
    "cases_deadline_delete",
    "cases_deadline_update_old",
    "cases_deadline_update_new",
    "municipalities_region_update",
    "outbox_count_insert",
    "outbox_count_delete",
    "outbox_count_update",
)
_PG_TRIGGERS = (
    ("cases_region_insert", "cases"),
    ("cases_region_update", "cases"),
    ("cases_counts_insert", "cases"),
    ("cases_counts_update", "cases"),
    ("cases_counts_delete", "cases"),
    ("municipalities_region_update", "municipalities"),
    ("outbox_counts_insert", "outbox"),
    ("outbox_counts_update", "outbox"),
    ("outbox_counts_delete", "outbox"),
    ("count_folds_fold", "count_folds"),
)
_PG_FUNCTIONS = (
    "cases_region()",
    "cases_counts_keep()",
    "municipalities_region_moved()",
    "outbox_counts_keep()",
    "count_folds_fold()",
    "case_counts_add(text, text, text, text, integer)",
    "deadline_counts_add(text, integer, text, text, text, text, timestamptz, integer)",
    "outbox_counts_add(text, integer)",
)


def console_trigger_statements(dialect: str) -> list[str]:
    """The statements that create the triggers keeping ``cases.municipality_region`` and
    the three count tables (migration 0006 runs them with its tables' new names)."""
    return _sqlite_triggers() if dialect == "sqlite" else _pg_triggers()


def console_trigger_drops(dialect: str) -> list[str]:
    """The statements that drop what ``console_trigger_statements`` creates."""
    if dialect == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {name}" for name in _SQLITE_TRIGGER_NAMES]
    return [
        *(f"DROP TRIGGER IF EXISTS {name} ON {table}" for name, table in _PG_TRIGGERS),
        *(f"DROP FUNCTION IF EXISTS {function}" for function in _PG_FUNCTIONS),
    ]


def create_console_triggers() -> None:
    """The triggers that keep ``cases.municipality_region`` and the three count tables."""
    for statement in console_trigger_statements(op.get_bind().dialect.name):
        op.execute(statement)


def drop_console_triggers() -> None:
    for statement in console_trigger_drops(op.get_bind().dialect.name):
        op.execute(statement)


def _count_table(name: str, *key: sa.Column[Any]) -> None:
    op.create_table(
        name,
        _id(),
        *key,
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("tx", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
    )
    op.create_index(f"ix_{name}_{'_'.join(str(c.name) for c in key)}", name, [c.name for c in key])
    op.create_index(f"ix_{name}_tx", name, ["tx"])


def _console_counts_upgrade() -> None:
    name = sa.String(length=64)
    op.add_column("cases", sa.Column("municipality_region", name, nullable=True))
    _count_table(
        "case_counts",
        sa.Column("workflow", name, nullable=False),
        sa.Column("state", name, nullable=False),
        sa.Column("cohort", name, nullable=False),
        sa.Column("region", name, nullable=False),
    )
    op.create_table(
        "deadline_counts",
        _id(),
        _when("deadline_at"),
        sa.Column("workflow", name, nullable=False),
        sa.Column("definition_id", sa.Integer(), nullable=False),
        sa.Column("state", name, nullable=False),
        sa.Column("deadline_timer", name, nullable=False),
        sa.Column("cohort", name, nullable=False),
        sa.Column("region", name, nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("tx", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deadline_counts")),
    )
    op.create_index("ix_deadline_counts_tx", "deadline_counts", ["tx"])
    op.create_index(
        "ix_deadline_counts_deadline_at",
        "deadline_counts",
        ["deadline_at", "workflow", "definition_id", "state", "deadline_timer", "cohort", "region"],
    )
    _count_table("outbox_counts", sa.Column("status", sa.String(length=16), nullable=False))
    op.create_table(
        "count_folds",
        sa.Column("tx", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tx", name=op.f("pk_count_folds")),
    )
    # The existing rows, counted once; the triggers keep the counts from here on.
    false = "0" if op.get_bind().dialect.name == "sqlite" else "false"
    op.execute(
        "UPDATE cases SET municipality_region = "
        "(SELECT region FROM municipalities WHERE code = cases.municipality_code)"
    )
    op.execute(
        "INSERT INTO case_counts (workflow, state, cohort, region, n) "
        "SELECT workflow, state, coalesce(cohort, ''), coalesce(municipality_region, ''), "
        "count(*) FROM cases GROUP BY workflow, state, coalesce(cohort, ''), "
        "coalesce(municipality_region, '')"
    )
    op.execute(
        "INSERT INTO deadline_counts (workflow, definition_id, state, cohort, region, "
        "deadline_timer, deadline_at, n) "
        "SELECT workflow, definition_id, state, coalesce(cohort, ''), "
        "coalesce(municipality_region, ''), deadline_timer, deadline_at, count(*) FROM cases "
        f"WHERE {_has_deadline('cases', false)} "
        "GROUP BY workflow, definition_id, state, coalesce(cohort, ''), "
        "coalesce(municipality_region, ''), deadline_timer, deadline_at"
    )
    op.execute(
        "INSERT INTO outbox_counts (status, n) SELECT status, count(*) FROM outbox GROUP BY status"
    )
    create_console_triggers()
    # The cases table filtered by round and region, or region and state, read from the
    # index alone (late, since and deadline included): store/sql/console.py.
    covered = ["closed", "deadline_at", "deadline_timer", "definition_id", "entered_at"]
    op.create_index(
        "ix_cases_workflow_cohort_region",
        "cases",
        ["workflow", "cohort", "municipality_region", "state", *covered],
        postgresql_include=["id"],  # PostgreSQL reads the index alone (SQLite: the rowid)
    )
    op.create_index(
        "ix_cases_workflow_region_state",
        "cases",
        ["workflow", "municipality_region", "state", "cohort", *covered],
        postgresql_include=["id"],
    )
    # The cases table sorted by since, read in that order from the index alone.
    op.create_index(
        "ix_cases_workflow_entered_at_state",
        "cases",
        [
            "workflow",
            "entered_at",
            "id",
            "state",
            "cohort",
            "municipality_region",
            "closed",
            "deadline_at",
            "deadline_timer",
            "definition_id",
        ],
    )
    # The overview's first late cases, by deadline then id (store/sql/overview.py).
    op.create_index("ix_cases_deadline_at_id", "cases", ["deadline_at", "id"])


def _console_counts_downgrade() -> None:
    op.drop_index("ix_cases_workflow_entered_at_state", table_name="cases")
    op.drop_index("ix_cases_deadline_at_id", table_name="cases")
    op.drop_index("ix_cases_workflow_region_state", table_name="cases")
    op.drop_index("ix_cases_workflow_cohort_region", table_name="cases")
    drop_console_triggers()
    op.drop_table("count_folds")
    op.drop_table("outbox_counts")
    op.drop_table("deadline_counts")
    op.drop_table("case_counts")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("municipality_region")
