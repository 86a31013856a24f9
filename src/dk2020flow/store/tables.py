"""The database schema, as SQLModel tables.

These classes are the schema (alembic compares migrations against
``SQLModel.metadata``) and nothing more: the engine never sees a row. The
store's queries use the ``Table`` objects at the bottom of this module and
convert rows to and from the port's frozen records (``store/port.py``).
See docs/data-model.md for what every column means.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

from dk2020flow.store.types import JsonType, UtcDateTime

# Set before any table is defined, so that every constraint and index gets a
# stable, predictable name (alembic needs them to alter constraints, above
# all on SQLite where batch mode recreates tables).
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

NAME = 64  # identifiers from workflow files (states, timers, roles, triggers …)
CODE = 32  # an organisation's code (a municipality number, a LAU or company code …)


def _col(type_: Any, *args: Any, nullable: bool = False, **kwargs: Any) -> Any:
    """A column for ``Field(sa_column=…)``: NOT NULL unless asked otherwise."""
    return Field(sa_column=Column(type_, *args, nullable=nullable, **kwargs))


class DefinitionRow(SQLModel, table=True):
    """A workflow definition exactly as loaded; immutable, versioned by content."""

    __tablename__ = "definitions"
    __table_args__ = (UniqueConstraint("name", "content_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = _col(String(NAME))
    version_label: str = _col(String(100))
    content_hash: str = _col(String(128))
    source_text: str = _col(Text)
    templates: dict[str, str] = _col(JsonType)
    source_path: str = _col(Text)
    loaded_at: Any = _col(UtcDateTime)
    implied_defaults: dict[str, Any] = _col(JsonType, server_default=text("'{}'"))
    """What the text means by the keys it leaves unsaid (``timezone``, ``calendar_country``):
    the defaults of the code that loaded it ({}: this code's; migration 0007)."""


class OrganisationRow(SQLModel, table=True):
    __tablename__ = "organisations"
    __table_args__ = (
        # The console's cases table sorted by region (migration 0003).
        Index("ix_organisations_region_name", "region", "name"),
    )

    code: str = Field(sa_column=Column(String(CODE), primary_key=True))
    name: str = _col(String(200), unique=True)
    kind: str = _col(String(NAME))
    """What the organisation is (``municipality``, ``city``, ``company`` …); '' if not said."""
    country: str = _col(String(2))
    """ISO 3166-1 alpha-2 (upper case) or ''; its calendar is the ``holidays`` package's."""
    subdivision: str = _col(String(8))
    """The country's subdivision for its calendar (``holidays``' code, e.g. ``BY``) or ''."""
    region: str = _col(String(NAME))
    group: str = _col(String(NAME))
    language: str = _col(String(8))
    """The organisation's language (ISO 639-1) or '': its contacts' default."""
    titles: dict[str, str] = _col(JsonType)
    """The formal name by language (``{"da": "Aarhus Kommune"}``); the name where absent."""


class ContactRow(SQLModel, table=True):
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("organisation_code", "role", "email"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_code: str = _col(String(CODE), ForeignKey("organisations.code"))
    role: str = _col(String(NAME))
    name: str = _col(String(200))
    email: str = _col(String(320))
    language: str = _col(String(8))


_CONSOLE_COVERED = ("closed", "deadline_at", "deadline_timer", "definition_id", "entered_at")
"""What the console's cases table reads of a case besides its filter (late, since). On
PostgreSQL the index also carries the id (``INCLUDE``: it reads an index alone only when
it holds every column; SQLite's index entries end with the row's id anyway)."""


class CaseRow(SQLModel, table=True):
    """One participant's case in one workflow; ``version`` is the optimistic lock."""

    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("workflow", "organisation_code"),
        Index("ix_cases_workflow_state", "workflow", "state"),
        # The console's cases table: filtered by round, sorted by since (migration 0003).
        Index("ix_cases_workflow_cohort", "workflow", "cohort"),
        Index("ix_cases_workflow_entered_at", "workflow", "entered_at"),
        # The cases table's deadlines and lateness, the overview's late cases and its
        # counts: covering, so none reads the (wide) case rows (migration 0003).
        Index(
            "ix_cases_workflow_deadline_at",
            "workflow",
            "deadline_at",
            "closed",
            "definition_id",
            "state",
            "deadline_timer",
        ),
        Index(
            "ix_cases_deadline_at",
            "deadline_at",
            "closed",
            "definition_id",
            "state",
            "deadline_timer",
        ),
        Index("ix_cases_workflow_state_cohort", "workflow", "state", "cohort", "organisation_code"),
        # console-perf (migration 0004): the cases table filtered by round and region, or
        # by region and state, read from the index alone (store/sql/console.py).
        Index(
            "ix_cases_workflow_cohort_region",
            "workflow",
            "cohort",
            "organisation_region",
            "state",
            *_CONSOLE_COVERED,
            postgresql_include=["id"],
        ),
        Index(
            "ix_cases_workflow_region_state",
            "workflow",
            "organisation_region",
            "state",
            "cohort",
            *_CONSOLE_COVERED,
            postgresql_include=["id"],
        ),
        # console-perf (migration 0004): the cases table sorted by since, read in that order
        # from the index alone whatever the filter (state, round, region, late).
        Index(
            "ix_cases_workflow_entered_at_state",
            "workflow",
            "entered_at",
            "id",  # the order's tiebreak, before the rest: the index gives the page's order
            "state",
            "cohort",
            "organisation_region",
            "closed",
            "deadline_at",
            "deadline_timer",
            "definition_id",
        ),
        # console-perf (migration 0004): the overview's first late cases, by deadline then
        # id, read in that order (however many cases share a deadline).
        Index("ix_cases_deadline_at_id", "deadline_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workflow: str = _col(String(NAME))
    definition_id: int = _col(Integer, ForeignKey("definitions.id"))
    organisation_code: str = _col(String(CODE), ForeignKey("organisations.code"))
    state: str = _col(String(NAME))
    epoch: int = _col(Integer)
    cohort: str | None = _col(String(NAME), nullable=True)
    data: dict[str, Any] = _col(JsonType)
    checklists: dict[str, Any] = _col(JsonType)
    entered_at: Any = _col(UtcDateTime)
    opened_at: Any = _col(UtcDateTime)
    closed: bool = _col(Boolean)
    version: int = _col(Integer)
    # The earliest deadline the case can be late on among its current arms, and its timer
    # (None: it waits on none); kept by the store's writes (sql/timers.py
    # ``refresh_deadline_columns``), read by the console (migration 0003).
    deadline_at: Any = _col(UtcDateTime, nullable=True)
    deadline_timer: str | None = _col(String(NAME), nullable=True)
    # console-perf (migration 0004): the region of the case's organisation, kept by the
    # database's triggers (never written by the store; see ``CaseCountRow``).
    organisation_region: str | None = _col(String(NAME), nullable=True)


class EventRow(SQLModel, table=True):
    """The append-only log: one row per change of a case, numbered by ``seq``.

    Triggers created by migration 0002 refuse UPDATE and DELETE (and TRUNCATE on
    PostgreSQL) of its rows; ``hash`` chains each case's events."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("case_id", "seq"),
        # The screenings, for the report as it stands (migration 0008): the other events
        # are not in it, so it costs their writes nothing.
        Index(
            "ix_events_checklist",
            "case_id",
            "id",
            sqlite_where=text("kind = 'checklist'"),
            postgresql_where=text("kind = 'checklist'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = _col(Integer, ForeignKey("cases.id"))
    seq: int = _col(Integer)
    at: Any = _col(UtcDateTime)
    kind: str = _col(String(32))
    actor: str = _col(String(200))
    role: str | None = _col(String(NAME), nullable=True)
    trigger: str | None = _col(String(NAME), nullable=True)
    from_state: str | None = _col(String(NAME), nullable=True)
    to_state: str | None = _col(String(NAME), nullable=True)
    comment: str = _col(Text)
    data: dict[str, Any] = _col(JsonType)
    epoch: int = _col(Integer)
    transition: int | None = _col(Integer, nullable=True)
    """The index of the transition taken in the definition's list (transition events)."""
    hash: str | None = _col(String(64), nullable=True)
    """SHA-256 over the event and the case's previous event's hash (``store/chain.py``)."""


class TimerRow(SQLModel, table=True):
    """One firing of a case timer; claimed by (status, due_at)."""

    __tablename__ = "timers"
    __table_args__ = (
        Index("ix_timers_status_due_at", "status", "due_at"),
        Index("ix_timers_case_id_status", "case_id", "status"),
        # A case's current deadline arms, read from the index alone (the console's
        # late filter and deadline column, store/sql/console.py; migration 0003).
        Index(
            "ix_timers_case_id_epoch_kind",
            "case_id",
            "epoch",
            "kind",
            "timer",
            "status",
            "deadline_at",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = _col(Integer, ForeignKey("cases.id"))
    timer: str = _col(String(NAME))
    kind: str = _col(String(32))
    idx: int = _col(Integer)
    due_at: Any = _col(UtcDateTime)
    deadline_at: Any = _col(UtcDateTime)
    epoch: int = _col(Integer)
    status: str = _col(String(16))
    fired_at: Any = _col(UtcDateTime, nullable=True)
    note: str = _col(Text)
    claimed_by: str | None = _col(String(200), nullable=True)


class ProgrammeTimerRow(SQLModel, table=True):
    """A dated programme event of a cohort (or its reminder), armed once per definition."""

    __tablename__ = "programme_timers"
    __table_args__ = (
        UniqueConstraint("definition_id", "cohort", "event", "kind", "idx"),
        Index("ix_programme_timers_status_due_at", "status", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    definition_id: int = _col(Integer, ForeignKey("definitions.id"))
    cohort: str = _col(String(NAME))
    event: str = _col(String(NAME))
    kind: str = _col(String(32))
    idx: int = _col(Integer)
    due_at: Any = _col(UtcDateTime)
    status: str = _col(String(16))
    fired_at: Any = _col(UtcDateTime, nullable=True)
    note: str = _col(Text)


class OutboxRow(SQLModel, table=True):
    """A rendered message waiting for, in, or done with delivery."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_outbox_case_id", "case_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int | None = _col(Integer, ForeignKey("cases.id"), nullable=True)
    template: str = _col(String(NAME))
    language: str = _col(String(8))
    to_addresses: list[list[str]] = _col(JsonType)
    cc_addresses: list[list[str]] = _col(JsonType)
    subject: str = _col(Text)
    text: str = _col(Text)
    html: str = _col(Text)
    ics: str | None = _col(Text, nullable=True)
    status: str = _col(String(16))
    attempts: int = _col(Integer)
    not_before: Any = _col(UtcDateTime)
    next_attempt_at: Any = _col(UtcDateTime)
    lease_until: Any = _col(UtcDateTime, nullable=True)
    last_error: str = _col(Text)
    created_at: Any = _col(UtcDateTime)
    sent_at: Any = _col(UtcDateTime, nullable=True)
    dead_at: Any = _col(UtcDateTime, nullable=True)
    urgent: bool = _col(Boolean)
    reason: str = _col(Text)
    message_id: str | None = _col(String(255), nullable=True, unique=True)
    intent: dict[str, Any] | None = _col(JsonType, nullable=True)
    """What caused the mail (template, roles, deadline …): parked mail is rendered again from it."""


class DaemonRow(SQLModel, table=True):
    """A scheduler daemon's heartbeat."""

    __tablename__ = "daemons"

    id: str = Field(sa_column=Column(String(200), primary_key=True))
    host: str = _col(String(255))
    pid: int = _col(Integer)
    started_at: Any = _col(UtcDateTime)
    last_tick_at: Any = _col(UtcDateTime, nullable=True)
    last_seen_at: Any = _col(UtcDateTime)
    stopped_at: Any = _col(UtcDateTime, nullable=True)
    stats: dict[str, Any] = _col(JsonType)


# ------------------------------------------------------------------ web application (migration 0003)


class UserRow(SQLModel, table=True):
    """A person who signs in to the web application (docs/web.md).

    Staff accounts carry the workflow's roles (plus ``admin`` and ``read_only``);
    ``kind`` leaves room for the participants' portal, whose accounts are tied to a
    organisation, and ``oidc_subject`` for a sign-in by OpenID Connect."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    email: str = _col(String(320), unique=True)
    """Lower-cased; the address the sign-in link goes to."""
    name: str = _col(String(200))
    kind: str = _col(String(16))
    roles: list[str] = _col(JsonType)
    organisation_code: str | None = _col(
        String(CODE), ForeignKey("organisations.code"), nullable=True
    )
    language: str = _col(String(8))
    active: bool = _col(Boolean)
    created_at: Any = _col(UtcDateTime)
    disabled_at: Any = _col(UtcDateTime, nullable=True)
    oidc_subject: str | None = _col(String(255), nullable=True, unique=True)


class SignInTokenRow(SQLModel, table=True):
    """A one-time sign-in link (and its short code), stored only as hashes."""

    __tablename__ = "sign_in_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = _col(Integer, ForeignKey("users.id"))
    token_hash: str = _col(String(64), unique=True)
    code_hash: str = _col(String(64))
    created_at: Any = _col(UtcDateTime)
    expires_at: Any = _col(UtcDateTime)
    used_at: Any = _col(UtcDateTime, nullable=True)
    code_attempts: int = _col(Integer)
    """Wrong codes entered for it: a token is void after a few."""


class WebSessionRow(SQLModel, table=True):
    """A signed-in browser: the cookie holds a random token, this row only its hash."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_user_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = _col(Integer, ForeignKey("users.id"))
    token_hash: str = _col(String(64), unique=True)
    created_at: Any = _col(UtcDateTime)
    last_seen_at: Any = _col(UtcDateTime)
    expires_at: Any = _col(UtcDateTime)
    revoked_at: Any = _col(UtcDateTime, nullable=True)
    user_agent: str = _col(String(300))
    client: str = _col(String(64))
    method: str = _col(String(16))
    """How the session was opened: ``link``, ``code`` (later ``oidc``)."""


class SignInAttemptRow(SQLModel, table=True):
    """One sign-in request or code guess, counted per key for rate limiting.

    ``key`` is ``email:<sha256>`` or ``client:<sha256>``: the table never holds an
    address in clear. Several web workers share the limit through it."""

    __tablename__ = "sign_in_attempts"
    __table_args__ = (Index("ix_sign_in_attempts_key_at", "key", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = _col(String(80))
    at: Any = _col(UtcDateTime)


class LinkKeyRow(SQLModel, table=True):
    """A key that signs the case links in milestone mail (migration 0005, docs/portal.md
    "Links in mail"). The newest row signs and checks; a new row (rotation) voids every
    link signed before. Made on first need; shared by daemons and web workers."""

    __tablename__ = "link_keys"

    id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    secret: str = _col(String(64))
    """32 random bytes, hex."""
    created_at: Any = _col(UtcDateTime)


class SavedViewRow(SQLModel, table=True):
    """A named filter of the cases table, for one user or for everyone with a role."""

    __tablename__ = "saved_views"
    __table_args__ = (Index("ix_saved_views_owner_id", "owner_id"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = _col(String(100))
    owner_id: int = _col(Integer, ForeignKey("users.id"))
    shared_role: str | None = _col(String(NAME), nullable=True)
    """None: only the owner sees it; a role: every user with that role sees it."""
    query: str = _col(Text)
    """The cases page's URL query string (the filter, sort and columns)."""
    created_at: Any = _col(UtcDateTime)


class BulkRunRow(SQLModel, table=True):
    """One trigger fired on many cases, each in its own transaction."""

    __tablename__ = "bulk_runs"

    id: int | None = Field(default=None, primary_key=True)
    actor: str = _col(String(200))
    role: str | None = _col(String(NAME), nullable=True)
    trigger: str = _col(String(NAME))
    comment: str = _col(Text)
    data: dict[str, Any] = _col(JsonType)
    query: str = _col(Text)
    """The filter the cases were chosen by (empty when picked one by one)."""
    created_at: Any = _col(UtcDateTime)
    finished_at: Any = _col(UtcDateTime, nullable=True)
    total: int = _col(Integer)


class BulkItemRow(SQLModel, table=True):
    """One case of a bulk run and what happened to it."""

    __tablename__ = "bulk_items"
    __table_args__ = (UniqueConstraint("run_id", "case_id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = _col(Integer, ForeignKey("bulk_runs.id"))
    case_id: int = _col(Integer, ForeignKey("cases.id"))
    status: str = _col(String(16))
    """``pending``, ``done``, ``refused`` or ``failed``."""
    message: str = _col(Text)
    at: Any = _col(UtcDateTime, nullable=True)


class ApiTokenRow(SQLModel, table=True):
    """A token for the REST API (``dk2020flow tokens create``), stored only as a hash.

    It acts with its own roles only; changes made with it are in the history as
    ``token:<name>``."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    name: str = _col(String(100), unique=True)
    roles: list[str] = _col(JsonType)
    secret_hash: str = _col(String(64), unique=True)
    hint: str = _col(String(16))
    """The secret's first characters, so that a listed token can be recognised."""
    created_by: str = _col(String(200))
    created_at: Any = _col(UtcDateTime)
    expires_at: Any = _col(UtcDateTime, nullable=True)
    revoked_at: Any = _col(UtcDateTime, nullable=True)
    last_used_at: Any = _col(UtcDateTime, nullable=True)


class IdempotencyKeyRow(SQLModel, table=True):
    """An ``Idempotency-Key`` a token sent with a change, and the answer it got.

    Written in the transaction of the change itself, so that a change and its key are
    recorded together or not at all."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("token_id", "key"),
        Index("ix_idempotency_keys_created_at", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    token_id: int = _col(Integer, ForeignKey("api_tokens.id"))
    key: str = _col(String(255))
    fingerprint: str = _col(String(64))
    """A hash of the request (method, path, body): the same key with another request
    is refused."""
    case_id: int | None = _col(Integer, ForeignKey("cases.id"), nullable=True)
    status_code: int = _col(Integer)
    response: dict[str, Any] = _col(JsonType)
    created_at: Any = _col(UtcDateTime)


class WebhookSubscriptionRow(SQLModel, table=True):
    """Where to POST notices of changes (``dk2020flow webhooks add``)."""

    __tablename__ = "webhook_subscriptions"

    id: int | None = Field(default=None, primary_key=True)
    url: str = _col(Text)
    events: list[str] = _col(JsonType)
    """Event types, e.g. ``case.state_changed``."""
    secret: str = _col(String(100))
    """Signs every delivery's body (HMAC-SHA256); kept in clear because signing needs it."""
    description: str = _col(String(200))
    active: bool = _col(Boolean)
    created_by: str = _col(String(200))
    created_at: Any = _col(UtcDateTime)
    disabled_at: Any = _col(UtcDateTime, nullable=True)


class WebhookDeliveryRow(SQLModel, table=True):
    """One notice to one subscription: the webhooks' outbox, written in the transaction
    of the change it tells of and delivered at least once by the daemon."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_subscription_id", "subscription_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: int = _col(Integer, ForeignKey("webhook_subscriptions.id"))
    delivery_id: str = _col(String(64), unique=True)
    """Stable across retries: the receiver de-duplicates on it."""
    event_type: str = _col(String(64))
    case_id: int | None = _col(Integer, ForeignKey("cases.id"), nullable=True)
    event_id: int | None = _col(Integer, nullable=True)
    body: str = _col(Text)
    """The exact JSON sent (and signed) on every attempt."""
    status: str = _col(String(16))
    """``pending``, ``sent`` or ``dead``."""
    attempts: int = _col(Integer)
    next_attempt_at: Any = _col(UtcDateTime)
    lease_until: Any = _col(UtcDateTime, nullable=True)
    last_error: str = _col(Text)
    last_status: int | None = _col(Integer, nullable=True)
    created_at: Any = _col(UtcDateTime)
    sent_at: Any = _col(UtcDateTime, nullable=True)
    dead_at: Any = _col(UtcDateTime, nullable=True)


class DocumentRow(SQLModel, table=True):
    """A document uploaded to a case (the participants' portal, the API).

    The bytes live in ``document_contents`` (the default), a directory or an
    S3-compatible store, by ``storage`` and ``storage_key``."""

    __tablename__ = "documents"
    __table_args__ = (Index("ix_documents_case_id", "case_id"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = _col(Integer, ForeignKey("cases.id"))
    slot: str = _col(String(NAME))
    """The document the workflow declares (e.g. ``draft_plan``)."""
    filename: str = _col(String(255))
    content_type: str = _col(String(100))
    size: int = _col(Integer)
    sha256: str = _col(String(64))
    storage: str = _col(String(16))
    """``database``, ``directory`` or ``s3``."""
    storage_key: str = _col(Text)
    uploaded_by: str = _col(String(200))
    uploaded_role: str | None = _col(String(NAME), nullable=True)
    uploaded_at: Any = _col(UtcDateTime)


class DocumentContentRow(SQLModel, table=True):
    """A document's bytes, when they are kept in the database."""

    __tablename__ = "document_contents"

    document_id: int = Field(
        sa_column=Column(Integer, ForeignKey("documents.id"), primary_key=True)
    )
    content: bytes = _col(LargeBinary)


# ----------------------------------------------------------------------------- console counts
# console-perf (migration 0004): what the console's overview and cases table count, kept
# by triggers on cases, organisations and outbox in every writing transaction (the
# migration's ``create_console_triggers``), whoever writes. A count is the SUM of ``n``
# over its key's rows (a key may have a few: concurrent writers each add to a row of
# their own, so none waits for another); a cohort of none is ``''``. Read by
# store/sql/overview.py and store/sql/console.py; never written by the store's code.


class CaseCountRow(SQLModel, table=True):
    """Cases per (workflow, state, cohort, region)."""

    __tablename__ = "case_counts"
    __table_args__ = (
        Index(
            "ix_case_counts_workflow_state_cohort_region", "workflow", "state", "cohort", "region"
        ),
        Index("ix_case_counts_tx", "tx"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workflow: str = _col(String(NAME))
    state: str = _col(String(NAME))
    cohort: str = _col(String(NAME))
    region: str = _col(String(NAME))
    n: int = _col(Integer)
    tx: int | None = _col(BigInteger, nullable=True)
    """PostgreSQL: the transaction whose change this row is, until it commits (``CountFoldRow``)."""


class DeadlineCountRow(SQLModel, table=True):
    """Open cases with a current deadline (``cases.deadline_at``), per its key."""

    __tablename__ = "deadline_counts"
    __table_args__ = (
        Index(
            "ix_deadline_counts_deadline_at",
            "deadline_at",
            "workflow",
            "definition_id",
            "state",
            "deadline_timer",
            "cohort",
            "region",
        ),
        Index("ix_deadline_counts_tx", "tx"),
    )

    id: int | None = Field(default=None, primary_key=True)
    deadline_at: Any = _col(UtcDateTime)
    workflow: str = _col(String(NAME))
    definition_id: int = _col(Integer)
    state: str = _col(String(NAME))
    deadline_timer: str = _col(String(NAME))
    cohort: str = _col(String(NAME))
    region: str = _col(String(NAME))
    n: int = _col(Integer)
    tx: int | None = _col(BigInteger, nullable=True)


class OutboxCountRow(SQLModel, table=True):
    """Messages per status."""

    __tablename__ = "outbox_counts"
    __table_args__ = (
        Index("ix_outbox_counts_status", "status"),
        Index("ix_outbox_counts_tx", "tx"),
    )

    id: int | None = Field(default=None, primary_key=True)
    status: str = _col(String(16))
    n: int = _col(Integer)
    tx: int | None = _col(BigInteger, nullable=True)


class CountFoldRow(SQLModel, table=True):
    """PostgreSQL: a transaction that changed counts; as it commits, a deferred trigger
    sums its rows (``tx``) into one update per key and deletes them, so no count row is
    updated more than once per transaction. Empty otherwise (and on SQLite, where one
    writer at a time updates the count rows in place)."""

    __tablename__ = "count_folds"

    tx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))


# ---------------------------------------------------------------- privacy (migration 0005)


class AccessLogRow(SQLModel, table=True):
    """Who looked at a person's data, and when (docs/portal.md "Your data (GDPR)").

    One row per read of a case page (console, portal, API), of contact data, or of a
    person's own export; changes are in the case history (events) instead."""

    __tablename__ = "access_log"
    __table_args__ = (
        Index("ix_access_log_case_id_at", "case_id", "at"),
        Index("ix_access_log_subject", "subject"),
        Index("ix_access_log_at", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: Any = _col(UtcDateTime)
    actor: str = _col(String(200))
    actor_kind: str = _col(String(16))
    """``staff``, ``participant``, ``token`` or ``cli``."""
    action: str = _col(String(16))
    """``read`` or ``export``."""
    what: str = _col(String(32))
    """``case``, ``contacts`` or ``my_data``."""
    case_id: int | None = _col(Integer, nullable=True)
    subject: str | None = _col(String(320), nullable=True)
    """The address of the person the entry is about (None: the case's contacts)."""
    via: str = _col(String(16))
    """``console``, ``portal``, ``api`` or ``cli``."""


class ForgottenPersonRow(SQLModel, table=True):
    """A person removed by ``participants forget``: only SHA-256 digests of their address
    and names, so the case history's display can replace them."""

    __tablename__ = "forgotten_people"

    id: int | None = Field(default=None, primary_key=True)
    forgotten_at: Any = _col(UtcDateTime)
    digests: list[str] = _col(JsonType)
    summary: dict[str, Any] = _col(JsonType)
    """What was removed (counts per table)."""


def _table(model: type[SQLModel]) -> Table:
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


definitions = _table(DefinitionRow)
organisations = _table(OrganisationRow)
contacts = _table(ContactRow)
cases = _table(CaseRow)
events = _table(EventRow)
timers = _table(TimerRow)
programme_timers = _table(ProgrammeTimerRow)
outbox = _table(OutboxRow)
daemons = _table(DaemonRow)
users = _table(UserRow)
sign_in_tokens = _table(SignInTokenRow)
web_sessions = _table(WebSessionRow)
sign_in_attempts = _table(SignInAttemptRow)
link_keys = _table(LinkKeyRow)  # mail links
saved_views = _table(SavedViewRow)
bulk_runs = _table(BulkRunRow)
bulk_items = _table(BulkItemRow)
api_tokens = _table(ApiTokenRow)
idempotency_keys = _table(IdempotencyKeyRow)
webhook_subscriptions = _table(WebhookSubscriptionRow)
webhook_deliveries = _table(WebhookDeliveryRow)
documents = _table(DocumentRow)
document_contents = _table(DocumentContentRow)
case_counts = _table(CaseCountRow)
deadline_counts = _table(DeadlineCountRow)
outbox_counts = _table(OutboxCountRow)
count_folds = _table(CountFoldRow)
access_log = _table(AccessLogRow)  # privacy
forgotten_people = _table(ForgottenPersonRow)  # privacy

metadata = SQLModel.metadata
