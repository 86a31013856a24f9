"""The narrow port between the application and the database.

Everything above the store (service, daemon, reports) talks to these
protocols; SQLModel and SQL stay below them. ``Store.transaction()`` gives a
``Tx`` whose writes commit together or not at all; ``Store.read()`` one that
only reads.

``Tx`` is the union of one small protocol per concern — ``DefinitionsTx``,
``ParticipantsTx``, ``CasesTx``, ``TimersTx``, ``OutboxTx``, ``DaemonsTx``,
``ReportsTx`` — each implemented beside its SQL in ``store/sql/<concern>.py``.
A function that needs one concern takes that protocol, not the whole ``Tx``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from dk2020flow.engine.records import CaseSnapshot, Decision, DueTimer, EventRecord, TimerStatus


class OutboxStatus(StrEnum):
    PENDING = "pending"  # waiting for not_before / next_attempt_at
    SENDING = "sending"  # leased by a daemon until lease_until
    SENT = "sent"
    DEAD = "dead"  # permanent failure or too many tries: shown to operators
    PARKED = "parked"  # could not be addressed (no contact for a role); kept with the reason


ONE_TIME_SECRET_TEMPLATES = frozenset({"sign_in"})
"""Mail whose body carries a one-time secret (the sign-in link and code): once it is sent,
the outbox keeps only a note in place of its text and HTML, so the database never holds a
usable link longer than the message waits to go out."""
BODY_REMOVED_NOTE = "(The one-time sign-in link and code were removed once the message was sent.)"


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredDefinition:
    id: int
    name: str
    version_label: str
    content_hash: str
    source_text: str
    templates: Mapping[str, str]
    source_path: str
    loaded_at: dt.datetime
    implied_defaults: Mapping[str, str | None] = field(default_factory=dict)
    """What the text means by the keys it leaves unsaid, as the code that loaded it
    defaulted them (``definition.loader.ImpliedDefaults``; {}: this code's defaults)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Organisation:
    """A participant of the programme: a municipality, a city, a company, a region …

    Text attributes are '' when the data set does not give them; ``country`` (ISO
    3166-1 alpha-2) and ``subdivision`` choose the calendar of the deadlines that are
    the organisation's (docs/workflow-format.md#calendars)."""

    code: str
    name: str
    region: str = ""
    group: str = ""
    kind: str = ""
    country: str = ""
    subdivision: str = ""
    language: str = ""
    titles: Mapping[str, str] = field(default_factory=dict)

    def title(self, language: str) -> str:
        """The formal name in ``language`` ("Aarhus Kommune"), else the name."""
        return self.titles.get(language) or self.name


@dataclass(frozen=True, kw_only=True, slots=True)
class Contact:
    organisation_code: str
    role: str
    name: str
    email: str
    language: str = "da"


@dataclass(frozen=True, kw_only=True, slots=True)
class NewMail:
    """A rendered message to queue in the outbox."""

    case_id: int | None
    template: str
    language: str
    to: tuple[tuple[str, str], ...]  # (name, address)
    cc: tuple[tuple[str, str], ...]
    subject: str
    text: str
    html: str
    ics: str | None
    not_before: dt.datetime
    created_at: dt.datetime
    urgent: bool = False
    status: OutboxStatus = OutboxStatus.PENDING
    reason: str = ""  # why a message is parked
    intent: Mapping[str, Any] | None = None
    """What caused the mail, so a parked one can be rendered again once it has recipients."""


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboxMessage:
    id: int
    case_id: int | None
    template: str
    language: str
    to: tuple[tuple[str, str], ...]
    cc: tuple[tuple[str, str], ...]
    subject: str
    text: str
    html: str
    ics: str | None
    status: OutboxStatus
    attempts: int
    not_before: dt.datetime
    next_attempt_at: dt.datetime
    lease_until: dt.datetime | None
    last_error: str
    created_at: dt.datetime
    sent_at: dt.datetime | None
    message_id: str
    reason: str = ""
    intent: Mapping[str, Any] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredEvent:
    id: int
    case_id: int
    seq: int
    record: EventRecord
    epoch: int = 0
    """The case's epoch after the change the event belongs to."""
    hash: str | None = None
    """The event's link in the case's hash chain (``store/chain.py``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredTimer:
    id: int
    case_id: int | None
    timer: str
    kind: str
    index: int
    due_at: dt.datetime
    deadline_at: dt.datetime
    epoch: int
    status: TimerStatus
    fired_at: dt.datetime | None
    note: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseFilter:
    workflow: str | None = None
    state: str | None = None
    cohort: str | None = None
    region: str | None = None
    overdue_at: dt.datetime | None = None
    """Only cases with a pending deadline due before this instant."""
    open_only: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadlineArm:
    """The deadline a case currently waits on in one state entry (``sql.timers.latest_deadline_arms``)."""

    case_id: int
    timer: str
    epoch: int
    deadline_at: dt.datetime
    status: TimerStatus
    """Of the deadline's own firing: pending, or fired (skipped, failed) already."""


@dataclass(frozen=True, kw_only=True, slots=True)
class LateDeadline:
    """A case late on a deadline (``Service.late_deadlines``; ``engine.timers.is_late``)."""

    case: CaseSnapshot
    timer: str
    deadline_at: dt.datetime
    fired: bool
    """Whether the deadline's own firing (its mail, then its escalation) went out already."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ProgrammeTimer:
    """A dated programme event (or its reminder) of a cohort, fanned out to cases."""

    id: int
    definition_id: int
    cohort: str
    event: str
    kind: str  # "event" | "event_reminder" | "event_update" | "event_cancel"
    index: int
    due_at: dt.datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class DaemonInfo:
    id: str
    host: str
    pid: int
    started_at: dt.datetime
    last_tick_at: dt.datetime | None
    last_seen_at: dt.datetime
    stopped_at: dt.datetime | None
    stats: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class TimerFinish:
    """Retire one claimed timer row (``finish_timer``) as one step of a batch item."""

    timer_id: int
    status: TimerStatus
    note: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class DecisionStep:
    """Apply one decision (``apply``) as one step of a batch item."""

    decision: Decision
    mails: tuple[NewMail, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchItem:
    """Everything the firing of one case's claimed timers writes, all or nothing.

    ``steps`` run in order, exactly as ``finish_timer`` / ``apply`` one after the
    other would: the first decision expects ``expected_version`` and each bumps it.
    """

    case_id: int
    expected_version: int
    at: dt.datetime
    steps: tuple[TimerFinish | DecisionStep, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchOutcome:
    """What ``Tx.apply_batch`` could not write, by index into its items."""

    conflicts: frozenset[int] = frozenset()
    """Items whose case (or timer) was changed meanwhile: nothing of them was written."""
    failures: Mapping[int, str] = field(default_factory=dict)
    """Items that failed (the error message): nothing of them was written."""


@dataclass(frozen=True, kw_only=True, slots=True)
class EventLine:
    """One event of a case's log, with the case's organisation (``ReportsTx.report_events``)."""

    id: int
    case_id: int
    seq: int
    at: dt.datetime
    kind: str
    actor: str
    role: str | None
    trigger: str | None
    from_state: str | None
    to_state: str | None
    comment: str
    data: dict[str, Any]
    epoch: int
    organisation_code: str
    organisation_name: str


@dataclass(frozen=True, kw_only=True, slots=True)
class LateCandidate:
    """An open case whose earliest countable deadline has passed (``ReportsTx.report_late_candidates``)."""

    case_id: int
    state: str
    epoch: int
    organisation_name: str
    region: str


@dataclass(frozen=True, kw_only=True, slots=True)
class TimerLine:
    """A case timer row with its case's state and epoch (``ReportsTx.report_timers``)."""

    id: int
    case_id: int
    timer: str
    kind: str
    index: int
    due_at: dt.datetime
    deadline_at: dt.datetime
    epoch: int
    status: str
    note: str
    case_epoch: int
    case_state: str
    organisation_name: str
    country: str = ""
    """The organisation's country and subdivision ('' when not known): the calendar of a
    timer marked ``calendar: organisation`` (``CompiledWorkflow.timer_calendar``)."""
    subdivision: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboxLine:
    """An outbox row without its bodies (``ReportsTx.report_outbox_lines``)."""

    id: int
    case_id: int | None
    template: str
    status: str
    has_recipient: bool
    reason: str
    last_error: str
    created_at: dt.datetime
    organisation_name: str


@dataclass(frozen=True, kw_only=True, slots=True)
class TimerStats:
    """Pending case and programme timers as of an instant (``ReportsTx.timer_stats``)."""

    due_now: int
    """Pending timers due at or before ``now``."""
    overdue: int
    """Pending timers due before ``overdue_before`` (late by more than the probe's grace)."""
    oldest_unfired: dt.datetime | None
    """The due time of the oldest pending timer that is due (None when nothing is due)."""
    next_due: dt.datetime | None
    """The earliest pending timer due after ``now``."""


# ------------------------------------------------------------------ the protocols
#
# One small protocol per concern, each implemented beside its SQL in
# ``store/sql/<concern>.py`` (``SqlCasesTx`` …); ``Tx`` is their union, which
# ``SqlTx`` (``store/repository.py``) implements by composing them.


class DefinitionsTx(Protocol):
    """Workflow definitions (``store/sql/definitions.py``)."""

    def save_definition(
        self,
        *,
        name: str,
        version_label: str,
        content_hash: str,
        source_text: str,
        templates: Mapping[str, str],
        source_path: str,
        now: dt.datetime,
        implied_defaults: Mapping[str, str | None] | None = None,
    ) -> tuple[StoredDefinition, bool]: ...
    def definition(self, definition_id: int) -> StoredDefinition: ...
    def latest_definition(self, name: str) -> StoredDefinition | None: ...
    def definitions(self) -> list[StoredDefinition]: ...


class ParticipantsTx(Protocol):
    """Organisations and their contacts (``store/sql/participants.py``)."""

    def organisations(self) -> list[Organisation]: ...
    def find_organisation(self, code_or_name: str) -> Organisation | None: ...
    def organisations_for(self, codes: Sequence[str]) -> dict[str, Organisation]: ...
    def contacts(self, organisation_code: str) -> list[Contact]: ...
    def contacts_for(self, organisation_codes: Sequence[str]) -> dict[str, list[Contact]]: ...
    def all_contacts(self) -> list[Contact]: ...
    def replace_participants(
        self,
        organisations: Sequence[Organisation],
        contacts: Sequence[Contact],
        *,
        attributes: Collection[str] | None = None,
    ) -> None: ...


class CasesTx(Protocol):
    """Cases and their event logs (``store/sql/cases.py``)."""

    def insert_case(self, decision: Decision, mails: Sequence[NewMail]) -> int: ...
    def apply(
        self, decision: Decision, mails: Sequence[NewMail], *, expected_version: int
    ) -> None: ...
    def load_case(self, case_id: int) -> CaseSnapshot: ...
    def load_cases(self, case_ids: Sequence[int]) -> dict[int, CaseSnapshot]: ...
    def case_ids(self, flt: CaseFilter) -> list[int]: ...
    def cases(self, flt: CaseFilter) -> list[CaseSnapshot]: ...
    def find_cases_by_ref(self, ref: str, workflow: str | None) -> list[CaseSnapshot]: ...
    def history(self, case_id: int) -> list[StoredEvent]: ...
    def append_event(self, case_id: int, record: EventRecord) -> None: ...


class TimersTx(Protocol):
    """Case timers and programme timers, and the dispatch batch (``store/sql/timers.py``)."""

    def timers_of(self, case_id: int, *, pending_only: bool = True) -> list[StoredTimer]: ...
    def claim_due_timers(self, now: dt.datetime, limit: int) -> list[DueTimer]: ...
    def finish_timer(
        self, timer_id: int, status: TimerStatus, at: dt.datetime, note: str = ""
    ) -> None: ...
    def apply_batch(self, items: Sequence[BatchItem]) -> BatchOutcome:
        """Write the items with a few bulk statements; each item is all or nothing.

        If the bulk write fails (a version moved, a timer was retired elsewhere, a
        row is refused), it is undone and the items are written one by one, each
        in its own savepoint: only the failing ones are left out and reported.
        """
        ...

    def next_due_at(self) -> dt.datetime | None: ...
    def arm_programme_timers(self, definition_id: int, rows: Sequence[ProgrammeTimer]) -> None: ...
    def claim_programme_timers(self, now: dt.datetime, limit: int) -> list[ProgrammeTimer]: ...
    def finish_programme_timer(
        self,
        timer_id: int,
        at: dt.datetime,
        note: str = "",
        status: TimerStatus = TimerStatus.FIRED,
    ) -> None:
        """Retire a claimed programme timer: fired, or skipped (the note says why)."""
        ...

    def programme_timers(self, definition_id: int | None = None) -> list[ProgrammeTimer]:
        """Pending programme timers (of one definition), earliest first."""
        ...

    def discard_programme_timers(self, definition_id: int, at: dt.datetime, note: str) -> int:
        """Retire the pending programme timers of a definition version; how many."""
        ...

    def epoch_timers_of(self, case_ids: Sequence[int]) -> dict[int, list[StoredTimer]]:
        """The timers of these cases armed at each one's current epoch, whatever their
        status, by case id (a case without any is left out), each case's by due time:
        one query for many cases (a migration's chunk)."""
        ...


class OutboxTx(Protocol):
    """The outbox (``store/sql/outbox.py``)."""

    def queue_mail(self, mails: Sequence[NewMail]) -> list[int]: ...
    def claim_outbox(
        self, now: dt.datetime, limit: int, lease_until: dt.datetime
    ) -> list[OutboxMessage]: ...
    def claim_message(
        self, message_id: int, now: dt.datetime, lease_until: dt.datetime
    ) -> OutboxMessage | None:
        """Claim one given message as ``claim_outbox`` would (None if it is not due now)."""
        ...

    def mark_sent(self, message_id: int, at: dt.datetime, note: str = "") -> None:
        """Sent; ``note`` (e.g. recipients the server refused) is kept in ``last_error``."""
        ...

    def mark_sent_many(self, sent: Sequence[tuple[int, str]], at: dt.datetime) -> None:
        """``mark_sent`` for each ``(message id, note)`` of a batch, in one statement or two."""
        ...

    def mark_retry(self, message_id: int, next_attempt_at: dt.datetime, error: str) -> None: ...
    def mark_dead(self, message_id: int, error: str, at: dt.datetime) -> None: ...
    def outbox(
        self, *, status: OutboxStatus | None = None, case_id: int | None = None, limit: int = 100
    ) -> list[OutboxMessage]: ...
    def outbox_message(self, message_id: int) -> OutboxMessage | None: ...
    def requeue(self, message_id: int, now: dt.datetime) -> bool: ...
    def rewrite_parked(self, message_id: int, mail: NewMail) -> None:
        """Replace a parked message's content with a new rendering (same row, same Message-ID)."""
        ...

    def purge_sent(self, before: dt.datetime) -> int: ...
    def outbox_counts(self) -> dict[OutboxStatus, int]:
        """How many messages are in each status (every status present, zero or more)."""
        ...


class DaemonsTx(Protocol):
    """The daemons' heartbeats (``store/sql/daemons.py``)."""

    def heartbeat(self, info: DaemonInfo) -> None: ...
    def daemons(self) -> list[DaemonInfo]: ...


class ReportsTx(Protocol):
    """The whole programme at once, for reports, the simulator and the scheduler probe
    (``store/sql/reports.py``); read-only."""

    def report_events(self, workflow: str | None = None, after_id: int = 0) -> list[EventLine]:
        """Every event (of ``workflow``'s cases) with an id above ``after_id``, in id order."""
        ...

    def last_event_id(self) -> int:
        """The highest event id (0 when there is none)."""
        ...

    def report_timers(
        self, workflow: str | None = None, statuses: Sequence[str] = ()
    ) -> list[TimerLine]:
        """Case timer rows (all, or of the given statuses), earliest due first."""
        ...

    def report_outbox_lines(self, workflow: str | None = None) -> list[OutboxLine]:
        """Every outbox row (without bodies), with its case's organisation when it has one."""
        ...

    def report_outbox_counts(self, workflow: str | None = None) -> dict[str, int]:
        """Messages per outbox status (only the statuses present)."""
        ...

    def next_work(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """(earliest pending case or programme timer, earliest moment a pending message
        may go out: the later of its ``not_before`` and ``next_attempt_at``)."""
        ...

    def pending_deadlines(self, workflow: str | None = None) -> list[TimerLine]:
        """Pending deadline firings at their case's current epoch."""
        ...

    def timer_stats(
        self, now: dt.datetime, *, overdue_before: dt.datetime | None = None
    ) -> TimerStats:
        """Counts and instants of pending timers (case and programme timers) as of ``now``."""
        ...

    # The programme as it stands (the report without ``--at``): none reads every case.

    def report_changed_after(self, workflow: str, at: dt.datetime) -> bool:
        """Whether anything was written later than ``at`` (then only a replay shows ``at``)."""
        ...

    def report_case_totals(self) -> dict[str, int]:
        """Cases per workflow (those with any): the kept counts."""
        ...

    def report_state_counts(self, workflow: str) -> list[StateCount]:
        """The workflow's cases per (state, cohort, region): the kept counts."""
        ...

    def report_screenings(self, workflow: str) -> tuple[list[EventLine], dict[int, str]]:
        """The workflow's checklist events in id order, and each of their cases' state."""
        ...

    def report_late_candidates(self, workflow: str | None, at: dt.datetime) -> list[LateCandidate]:
        """Open cases (of ``workflow``, or all) whose earliest deadline they can be late on
        passed before ``at``."""
        ...

    def report_deadline_arms_of(self, case_ids: Sequence[int]) -> list[DeadlineArm]:
        """The deadline each of these cases currently waits on, per state entry
        (``sql.timers.latest_deadline_arms``)."""
        ...

    def report_first_move(self, workflow: str) -> dt.datetime | None:
        """The earliest move of the workflow's cases between states (a case opened)."""
        ...

    def report_moves(
        self, workflow: str, instants: Sequence[dt.datetime]
    ) -> dict[tuple[int, str | None, str], int]:
        """The workflow's moves between states, ``(period, from or None, to)`` → cases;
        period ``i`` ends at ``instants[i]`` (included), the last after ``instants[-1]``."""
        ...

    def report_mail_counts(
        self, workflow: str, *, created_by: dt.datetime | None = None
    ) -> dict[str, int]:
        """Messages of the workflow's cases per status (only the statuses present); with
        ``created_by``, only those queued by then."""
        ...

    # A replay (the report ``--at`` a day) a chunk of cases at a time.

    def report_case_regions(
        self, workflow: str, *, after_id: int, limit: int
    ) -> list[tuple[int, str]]:
        """(id, region) of the workflow's next ``limit`` cases by id after ``after_id``."""
        ...

    def report_events_of(self, case_ids: Sequence[int]) -> list[EventLine]:
        """Every event of these cases, in id order."""
        ...


# ------------------------------------------------------------------ web application


@dataclass(frozen=True, kw_only=True, slots=True)
class UserInfo:
    """A web application account (``users``)."""

    id: int
    email: str
    name: str
    roles: tuple[str, ...]
    language: str
    active: bool
    created_at: dt.datetime
    disabled_at: dt.datetime | None
    kind: str = "staff"


@dataclass(frozen=True, kw_only=True, slots=True)
class SignInToken:
    """A one-time sign-in link and its short code (both only as SHA-256 hashes)."""

    id: int
    user_id: int
    code_hash: str
    created_at: dt.datetime
    expires_at: dt.datetime
    used_at: dt.datetime | None
    code_attempts: int


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionUser:
    """Who a valid session cookie belongs to: the roles come from the account."""

    user_id: int
    session_id: int
    email: str
    name: str
    roles: tuple[str, ...]
    language: str
    kind: str = "staff"
    """``staff`` or ``participant`` (whose roles are their contact rows, per case)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionInfo:
    """One signed-in browser of a user, as the account page lists it."""

    id: int
    user_id: int
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime
    user_agent: str
    client: str
    method: str


class AccountsTx(Protocol):
    """The web application's users, one-time sign-in links, sessions and sign-in rate
    limits (``store/sql/accounts.py``). Tokens arrive here already hashed."""

    def find_user(self, email: str) -> UserInfo | None: ...
    def user(self, user_id: int) -> UserInfo | None: ...
    def users(self, kind: str = "staff") -> list[UserInfo]: ...
    def insert_user(
        self,
        *,
        email: str,
        name: str,
        kind: str,
        roles: Sequence[str],
        language: str,
        now: dt.datetime,
    ) -> UserInfo: ...
    def enable_user(
        self, user_id: int, *, name: str, roles: Sequence[str], language: str
    ) -> UserInfo:
        """Make a disabled account active again, with new name, roles and language."""
        ...

    def disable_user(self, user_id: int, at: dt.datetime) -> UserInfo:
        """Disable the account, revoke its sessions and void its unused sign-in links."""
        ...

    def oidc_subject(self, user_id: int) -> str | None:
        """The OpenID Connect subject bound to the account (None: none yet)."""
        ...

    def bind_oidc_subject(self, user_id: int, subject: str) -> bool:
        """Bind the provider's subject to the account; False if another account has it,
        ``ConflictError`` if another transaction bound it at the same time."""
        ...

    def insert_sign_in_token(
        self,
        *,
        user_id: int,
        token_hash: str,
        code_hash: str,
        now: dt.datetime,
        expires_at: dt.datetime,
    ) -> int: ...
    def sign_in_token(self, token_hash: str) -> SignInToken | None: ...
    def open_sign_in_tokens(self, user_id: int, now: dt.datetime) -> list[SignInToken]:
        """The user's links neither used nor expired, newest first."""
        ...

    def use_sign_in_token(self, token_id: int, at: dt.datetime) -> bool:
        """Mark the link used; False if it was used already (by a concurrent request)."""
        ...

    def count_code_attempt(self, token_id: int) -> int:
        """One more wrong code for the link; how many it has now."""
        ...

    def insert_session(
        self,
        *,
        user_id: int,
        token_hash: str,
        now: dt.datetime,
        expires_at: dt.datetime,
        user_agent: str,
        client: str,
        method: str,
    ) -> int: ...
    def session_user(
        self, token_hash: str, now: dt.datetime
    ) -> tuple[SessionUser, dt.datetime] | None:
        """The active user of a session neither revoked nor expired, with its last_seen_at."""
        ...

    def touch_session(self, session_id: int, at: dt.datetime) -> None: ...
    def sessions_of(self, user_id: int, now: dt.datetime) -> list[SessionInfo]:
        """The user's sessions neither revoked nor expired, newest first."""
        ...

    def revoke_session(self, user_id: int, session_id: int, at: dt.datetime) -> bool:
        """Revoke one of the user's sessions; False if it is not theirs or not active."""
        ...

    def revoke_session_token(self, token_hash: str, at: dt.datetime) -> None: ...
    def count_sign_in_attempts(self, key: str, since: dt.datetime) -> int: ...
    def record_sign_in_attempt(self, keys: Sequence[str], at: dt.datetime) -> None:
        """Count one attempt for each key, and forget the key's attempts older than a day."""
        ...


class CaseSort(StrEnum):
    """The columns the console's cases table sorts by."""

    ORGANISATION = "organisation"
    REGION = "region"
    ROUND = "round"
    STATE = "state"
    SINCE = "since"
    """When the case entered its state (``entered_at``)."""
    DEADLINE = "deadline"
    """The deadline the case waits on (``ConsoleTx`` documents which)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseTableQuery:
    """One page (or all rows) of the console's cases table: filter, sort, page.

    ``deadline_timers`` says which timers count for lateness: the ``(definition id,
    state, timer)`` of every non-terminal state's deadline timer (``engine.timers
    .is_late``; the service computes it from the definitions), so the SQL agrees with
    ``Service.late_deadlines``.
    """

    workflow: str
    now: dt.datetime
    deadline_timers: tuple[tuple[int, str, str], ...] = ()
    state: str | None = None
    cohort: str | None = None
    region: str | None = None
    late: bool | None = None
    """True: only late cases; False: only cases not late; None: both."""
    search: str = ""
    """Part of the organisation's name, any case (æøå included)."""
    sort: CaseSort = CaseSort.ORGANISATION
    descending: bool = False
    limit: int | None = 25
    """None: every matching row (the CSV export, a bulk run over the filter)."""
    offset: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseTableRow:
    case: CaseSnapshot
    deadline_at: dt.datetime | None
    """The earliest deadline the case waits on in its current state entry (passed or not)."""
    late: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseTablePage:
    rows: list[CaseTableRow]
    total: int
    """Every case that matches the filter (all pages)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SavedView:
    id: int
    name: str
    owner_id: int
    owner_name: str
    shared_role: str | None
    query: str
    created_at: dt.datetime


class BulkItemStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    REFUSED = "refused"
    FAILED = "failed"


@dataclass(frozen=True, kw_only=True, slots=True)
class BulkRun:
    id: int
    actor: str
    role: str | None
    trigger: str
    comment: str
    data: Mapping[str, Any]
    query: str
    created_at: dt.datetime
    finished_at: dt.datetime | None
    total: int
    counts: Mapping[BulkItemStatus, int]
    """How many items are in each status (every status present, zero or more)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BulkItem:
    run_id: int
    case_id: int
    organisation_name: str
    status: BulkItemStatus
    message: str
    at: dt.datetime | None


class ConsoleTx(Protocol):
    """What the web console reads and keeps beyond the cases themselves: a page of the
    cases table (filtered, sorted, counted in SQL), saved views, bulk runs
    (``store/sql/console.py``)."""

    def case_table(self, query: CaseTableQuery) -> CaseTablePage:
        """The rows of one page (or all, ``limit=None``) and the count of all that match."""
        ...

    def case_table_ids(self, query: CaseTableQuery) -> list[int]:
        """The ids of the page's cases (every matching one with ``limit=None``), in order."""
        ...

    def definition_names(self) -> list[tuple[int, str]]:
        """``(id, workflow name)`` of every stored definition version, oldest first: what
        ``DefinitionsTx.definitions`` says of them without reading their text."""
        ...

    def regions(self) -> list[str]:
        """The organisations' regions, sorted (each once)."""
        ...

    def save_view(
        self, *, name: str, owner_id: int, shared_role: str | None, query: str, now: dt.datetime
    ) -> SavedView: ...
    def views_for(self, user_id: int, roles: Sequence[str]) -> list[SavedView]:
        """The user's own views and those shared with one of ``roles``, by name."""
        ...

    def saved_view(self, view_id: int) -> SavedView | None: ...
    def delete_view(self, view_id: int, owner_id: int) -> bool:
        """Delete a view of ``owner_id``'s; False when there is none (or not theirs)."""
        ...

    def create_bulk_run(
        self,
        *,
        actor: str,
        role: str | None,
        trigger: str,
        comment: str,
        data: Mapping[str, Any],
        query: str,
        case_ids: Sequence[int],
        now: dt.datetime,
    ) -> int:
        """A run with a pending item per case; its id."""
        ...

    def bulk_run(self, run_id: int) -> BulkRun | None: ...
    def bulk_items(self, run_id: int) -> list[BulkItem]:
        """The run's items in the order they run (by item id)."""
        ...

    def finish_bulk_item(
        self, run_id: int, case_id: int, status: BulkItemStatus, message: str, at: dt.datetime
    ) -> bool:
        """Record what happened to a pending item; False when it was not pending any more."""
        ...

    def finish_bulk_run(self, run_id: int, at: dt.datetime) -> None: ...


# ------------------------------------------------------------------ programme overview


@dataclass(frozen=True, kw_only=True, slots=True)
class StateCount:
    """How many cases of a workflow are in a state, per round (cohort) and region."""

    workflow: str
    state: str
    cohort: str | None
    region: str
    count: int


@dataclass(frozen=True, kw_only=True, slots=True)
class LateGroup:
    """Cases waiting on a deadline already passed, per (definition, state, timer)."""

    definition_id: int
    state: str
    timer: str
    count: int


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadlineLine:
    """A deadline an open case waits on in its current state entry, with its case."""

    case_id: int
    workflow: str
    definition_id: int
    organisation: str
    region: str
    cohort: str | None
    state: str
    timer: str
    deadline_at: dt.datetime
    fired: bool


class OverviewTx(Protocol):
    """The console's programme overview, grouped and limited in SQL
    (``store/sql/overview.py``); read-only."""

    def state_counts(self) -> list[StateCount]:
        """Cases per (workflow, state, cohort, region)."""
        ...

    def passed_deadline_groups(self, at: dt.datetime) -> list[LateGroup]:
        """The current deadlines of open cases that passed before ``at``, counted per
        (definition, state, timer): late where ``engine.timers.is_late`` says so."""
        ...

    def outbox_status_counts(self) -> dict[OutboxStatus, int]:
        """Messages per status (every status, zero or more), from the counts the database
        keeps (``outbox_counts``): the same as ``OutboxTx.outbox_counts``, without a scan."""
        ...

    def passed_deadlines(
        self, at: dt.datetime, groups: Sequence[LateGroup], limit: int
    ) -> list[DeadlineLine]:
        """The first ``limit`` of those deadlines in ``groups``, earliest first."""
        ...

    def pending_deadlines_between(
        self, start: dt.datetime, end: dt.datetime, limit: int
    ) -> tuple[int, list[DeadlineLine]]:
        """(how many, the first ``limit``) pending current deadlines in [start, end]."""
        ...


# ------------------------------------------------------------------ documents


@dataclass(frozen=True, kw_only=True, slots=True)
class NewDocument:
    """A document uploaded to a case, checked already, to record (``DocumentsTx``)."""

    case_id: int
    slot: str
    """The document the workflow declares (``draft_plan``)."""
    filename: str
    content_type: str
    size: int
    sha256: str
    storage: str
    """``database``, ``directory`` or ``s3``."""
    storage_key: str
    """Where the bytes are in that storage (empty for the database: by document id)."""
    uploaded_by: str
    uploaded_role: str | None
    uploaded_at: dt.datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredDocument(NewDocument):
    id: int


class DocumentsTx(Protocol):
    """Documents uploaded to cases (``store/sql/documents.py``); the bytes are in the
    database (``document_contents``) or in a directory or S3 store the service writes."""

    def insert_document(
        self, document: NewDocument, content: bytes | None = None
    ) -> StoredDocument:
        """Record a document (with its bytes, when they are kept in the database)."""
        ...

    def documents_of(self, case_id: int) -> list[StoredDocument]:
        """A case's documents, newest first."""
        ...

    def document(self, document_id: int) -> StoredDocument | None: ...
    def document_content(self, document_id: int) -> bytes | None:
        """The bytes of a document kept in the database (None: none are)."""
        ...

    def documents_in_state(self, case_id: int) -> dict[str, int]:
        """The documents (name -> id of the newest upload) a case was handed since it last
        entered a state, by the order of its log: what its triggers' ``needs_documents``
        may count."""
        ...


# ------------------------------------------------------------------ REST API reads


KeyValue = str | int | dt.datetime | None
"""One value of a keyset sort key."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseKeysetQuery:
    """One page of cases for the REST API (``/api/v1/cases``): the console's filter and
    sorts, paged by keyset: ``after`` is the sort key of the last case of the page before
    (``CaseKeysetPage.last_key``), never an offset, so a page costs the same wherever it
    is and a walk over the pages sees every case once. ``workflow=None``: every workflow.

    ``deadline_timers`` says which timers count for lateness, as in ``CaseTableQuery``.
    """

    workflow: str | None = None
    now: dt.datetime
    deadline_timers: tuple[tuple[int, str, str], ...] = ()
    state: str | None = None
    cohort: str | None = None
    region: str | None = None
    late: bool | None = None
    search: str = ""
    sort: CaseSort = CaseSort.ORGANISATION
    descending: bool = False
    limit: int = 50
    after: tuple[KeyValue, ...] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseKeysetPage:
    rows: list[CaseTableRow]
    last_key: tuple[KeyValue, ...] | None
    """The sort key of the page's last case when more cases follow (None: the last page)."""


class KeysetMismatchError(ValueError):
    """An ``after`` key that does not fit the query's sort (a forged or stale cursor)."""


class ApiReadsTx(Protocol):
    """What the REST API reads beyond the console's queries: cases and the outbox by
    keyset (``store/sql/api_reads.py``); read-only."""

    def case_keyset_page(self, query: CaseKeysetQuery) -> CaseKeysetPage:
        """The cases after ``query.after`` in the sort's order (``KeysetMismatchError``
        when ``after`` does not fit the sort)."""
        ...

    def outbox_page(
        self,
        *,
        status: OutboxStatus | None = None,
        case_id: int | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[OutboxMessage]:
        """Messages with an id below ``before_id`` (None: from the newest), newest first."""
        ...


# ------------------------------------------------------------------ REST API tokens and idempotency keys


@dataclass(frozen=True, kw_only=True, slots=True)
class ApiToken:
    """A REST API token as listed (``dk2020flow tokens list``): never its secret, which
    the database keeps only as a SHA-256 hash; ``hint`` is its first characters."""

    id: int
    name: str
    roles: tuple[str, ...]
    hint: str
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredIdempotencyKey:
    """An ``Idempotency-Key`` a token sent with a change, and the answer it got."""

    id: int
    token_id: int
    key: str
    fingerprint: str
    case_id: int | None
    status_code: int
    response: Mapping[str, Any]
    created_at: dt.datetime


class ApiTx(Protocol):
    """REST API tokens and the idempotency keys of their changes (``store/sql/api.py``).
    Secrets arrive hashed (``service/tokens.py``)."""

    def insert_api_token(
        self,
        *,
        name: str,
        roles: Sequence[str],
        secret_hash: str,
        hint: str,
        created_by: str,
        now: dt.datetime,
        expires_at: dt.datetime | None,
    ) -> ApiToken | None:
        """The new token, or None when a token (revoked or not) has the name already."""
        ...

    def api_tokens(self) -> list[ApiToken]:
        """Every token (revoked and expired ones too), by name."""
        ...

    def find_api_token(self, name: str) -> ApiToken | None: ...
    def api_token_by_hash(self, secret_hash: str) -> ApiToken | None:
        """The token whose secret hashes to ``secret_hash`` (revoked or not)."""
        ...

    def revoke_api_token(self, token_id: int, at: dt.datetime) -> ApiToken:
        """Revoke the token (a revoked one keeps its first revocation time)."""
        ...

    def touch_api_token(self, token_id: int, at: dt.datetime) -> None:
        """Set the token's ``last_used_at``."""
        ...

    def claim_idempotency_key(
        self, *, token_id: int, key: str, fingerprint: str, now: dt.datetime
    ) -> int | None:
        """Insert the key's row (its answer still empty) unless the token has used the
        key already: its id, or None. On PostgreSQL a concurrent claim of the same key
        waits here until the first one's transaction ends (then None, or the row if that
        transaction was rolled back), so one key is one change."""
        ...

    def idempotency_key(self, token_id: int, key: str) -> StoredIdempotencyKey | None: ...
    def finish_idempotency_key(
        self, key_id: int, *, case_id: int, status_code: int, response: Mapping[str, Any]
    ) -> None:
        """Record the answer of the change the claimed key belongs to."""
        ...

    def release_idempotency_key(self, key_id: int) -> None:
        """Forget a claimed key (its request was refused: refusals are not remembered)."""
        ...

    def purge_idempotency_keys(
        self, before: dt.datetime | None, *, token_id: int | None = None
    ) -> int:
        """Delete the keys (of one token) created before ``before`` (None: all); how many."""
        ...


# ------------------------------------------------------------------ end of REST API tokens


# ------------------------------------------------------------------ webhooks (helper "webhooks")


class WebhookStatus(StrEnum):
    """A webhook delivery's status. A ``pending`` one whose ``lease_until`` is still ahead is
    being sent by a daemon (its ``next_attempt_at`` is the lease's end: a daemon that dies
    leaves it due again then)."""

    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"  # too many failed attempts, or its subscription was removed


WEBHOOK_EVENT_TYPES = (
    "case.opened",
    "case.state_changed",
    "case.closed",
    "case.deadline_extended",
    "case.checklist_updated",
    "case.data_changed",
)
"""The event types a subscription may ask for (docs/webhooks.md)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookSubscription:
    """Where to POST notices of which event types; ``secret`` (``whsec_…``) signs them."""

    id: int
    url: str
    events: tuple[str, ...]
    secret: str
    description: str
    active: bool
    created_by: str
    created_at: dt.datetime
    disabled_at: dt.datetime | None


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookDelivery:
    """One notice to one subscription: ``body`` is the exact JSON sent and signed on every
    attempt; ``delivery_id`` (the ``webhook-id`` header) is what receivers de-duplicate on."""

    id: int
    delivery_id: str
    subscription_id: int
    event_type: str
    case_id: int | None
    event_id: int | None
    body: str
    status: WebhookStatus
    attempts: int
    next_attempt_at: dt.datetime
    lease_until: dt.datetime | None
    last_error: str
    last_status: int | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    dead_at: dt.datetime | None


@dataclass(frozen=True, kw_only=True, slots=True)
class ClaimedWebhook:
    """A delivery a daemon holds (until its ``lease_until``), with where to send it."""

    delivery: WebhookDelivery
    url: str
    secret: str


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookOutcome:
    """What became of a claimed delivery, to write (``WebhooksTx.finish_webhooks``).

    ``status``: SENT, PENDING (``next_attempt_at`` is the retry; or, with ``released``,
    the delivery was not attempted and goes back as it was) or DEAD."""

    id: int
    attempts: int
    """The attempts the claim counted: a row claimed again since (its lease ran out, or
    it was retried) has another count, and this outcome is not written."""
    status: WebhookStatus
    at: dt.datetime
    next_attempt_at: dt.datetime | None = None
    http_status: int | None = None
    error: str = ""
    released: bool = False


class WebhooksTx(Protocol):
    """Webhook subscriptions and their deliveries, the webhooks' outbox
    (``store/sql/webhooks.py``). Deliveries are queued by ``CasesTx.insert_case`` /
    ``apply`` and ``TimersTx.apply_batch``, in the transaction of the events they tell of."""

    def add_webhook(
        self,
        *,
        url: str,
        events: Sequence[str],
        secret: str,
        description: str,
        created_by: str,
        now: dt.datetime,
    ) -> WebhookSubscription: ...
    def webhooks(self, *, include_removed: bool = False) -> list[WebhookSubscription]:
        """The subscriptions (active ones only unless ``include_removed``), by id."""
        ...

    def webhook(self, subscription_id: int) -> WebhookSubscription | None: ...
    def remove_webhook(self, subscription_id: int, now: dt.datetime) -> tuple[bool, int]:
        """Deactivate a subscription; its pending deliveries become dead. Returns (whether
        it was active, how many deliveries were given up); ``NotFoundError`` if unknown."""
        ...

    def claim_webhooks(
        self, now: dt.datetime, limit: int, lease_until: dt.datetime
    ) -> list[ClaimedWebhook]:
        """Up to ``limit`` due deliveries (oldest due first), each leased until
        ``lease_until`` with one attempt more; on PostgreSQL ``SKIP LOCKED``, so two
        daemons never hold one delivery at the same time."""
        ...

    def finish_webhooks(self, outcomes: Sequence[WebhookOutcome]) -> int:
        """Write the outcomes of claimed deliveries; how many were written (one whose
        claim is not current any more is left alone)."""
        ...

    def retry_webhook(self, delivery: str | int, now: dt.datetime) -> WebhookDelivery:
        """Send a dead delivery again (attempts start over) — by ``delivery_id`` or row id.
        ``NotFoundError`` if unknown, ``ConflictError`` if it is not dead or its
        subscription was removed."""
        ...

    def webhook_deliveries(
        self,
        *,
        status: WebhookStatus | None = None,
        subscription_id: int | None = None,
        limit: int = 100,
    ) -> list[WebhookDelivery]:
        """Deliveries, newest first."""
        ...

    def webhook_delivery(self, delivery: str | int) -> WebhookDelivery | None:
        """A delivery by ``delivery_id`` (``msg_…``) or row id."""
        ...

    def webhook_counts(self) -> dict[WebhookStatus, int]:
        """How many deliveries are in each status (every status present)."""
        ...

    def next_webhook_at(self) -> dt.datetime | None:
        """When the earliest pending delivery is due (or its lease ends); None: none pending."""
        ...


# ------------------------------------------------------------------ end of webhooks


# ------------------------------------------------------------------ participants' portal (helper "portal")


class PortalTx(Protocol):
    """What the participants' portal looks up (``store/sql/accounts.py``)."""

    def contacts_with_email(self, email: str) -> list[Contact]:
        """Every contact row for ``email`` (lower-cased), by organisation and role."""
        ...


# ------------------------------------------------------------------ end of participants' portal


class LinksTx(Protocol):
    """The keys that sign case links in mail (``store/sql/links.py``, ``service/links.py``)."""

    def link_key(self) -> tuple[int, str] | None:
        """(id, hex secret) of the key in force, or None while there is none."""
        ...

    def ensure_link_key(self, secret: str, now: dt.datetime) -> tuple[int, str]:
        """The key in force; ``secret`` becomes the first key when there is none yet."""
        ...

    def add_link_key(self, secret: str, now: dt.datetime) -> int:
        """A new key in force (rotation): links signed by the older ones stop working."""
        ...


# ------------------------------------------------------------------ privacy (helper "privacy")


@dataclass(frozen=True, kw_only=True, slots=True)
class AccessEntry:
    """One line of the access log: who read which person's data, when, and how."""

    at: dt.datetime
    actor: str
    actor_kind: str
    """``staff``, ``participant``, ``token`` or ``cli``."""
    action: str
    """``read`` or ``export``."""
    what: str
    """``case``, ``contacts`` or ``my_data``."""
    via: str
    """``console``, ``portal``, ``api`` or ``cli``."""
    case_id: int | None = None
    subject: str | None = None
    """The address of the one person it is about (None: a case, i.e. its contacts)."""
    id: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class ForgetCounts:
    """What ``forget_person`` removed or redacted (or would, in a dry run), per table."""

    contacts: int = 0
    users: int = 0
    sessions: int = 0
    sign_in_tokens: int = 0
    sign_in_attempts: int = 0
    outbox: int = 0
    outbox_unsent: int = 0
    """Of ``outbox``: mail not yet sent, now dead (never sent to a forgotten address)."""
    documents: int = 0
    access_log: int = 0
    webhook_deliveries: int = 0
    staff_account: bool = False
    """The address also has a staff account: it is kept (``users disable``)."""


def person_digest(value: str) -> str:
    """The digest ``forgotten_people`` keeps of an address or a name: SHA-256, in hex, of
    the value stripped and case-folded."""
    import hashlib

    return hashlib.sha256(value.strip().casefold().encode("utf-8")).hexdigest()


class PrivacyTx(Protocol):
    """The access log and forgetting a person (``store/sql/privacy.py``, ``service/privacy.py``)."""

    def record_access(self, entries: Sequence[AccessEntry]) -> None:
        """Append entries to the access log (one INSERT)."""
        ...

    def access_entries(self, subject: str, case_ids: Sequence[int]) -> list[AccessEntry]:
        """Entries about ``subject`` or about one of ``case_ids``, oldest first."""
        ...

    def purge_access_log(self, before: dt.datetime) -> int:
        """Delete entries older than ``before``; how many."""
        ...

    def outbox_to(self, email: str) -> list[OutboxMessage]:
        """Every message addressed (to or cc) to ``email``, oldest first."""
        ...

    def events_by(self, actor: str) -> list[StoredEvent]:
        """Every event whose actor is ``actor`` (case-insensitively), by case and seq."""
        ...

    def forgotten_digests(self) -> frozenset[str]:
        """The digests of every forgotten address and name."""
        ...

    def is_forgotten(self, value: str) -> bool:
        """Whether ``value`` is a forgotten address or name (``person_digest``; the
        digests are read once per transaction)."""
        ...

    def forget_person(
        self,
        email: str,
        names: Sequence[str],
        digests: Sequence[str],
        placeholder: str,
        now: dt.datetime,
        *,
        apply: bool,
    ) -> ForgetCounts:
        """Remove ``email``'s contact rows, participant account, sessions and sign-in
        tokens; redact the mail to it and its name elsewhere (``apply``), or only count."""
        ...


# ------------------------------------------------------------------ end of privacy


class Tx(
    DefinitionsTx,
    ParticipantsTx,
    CasesTx,
    TimersTx,
    OutboxTx,
    DaemonsTx,
    ReportsTx,
    AccountsTx,
    ConsoleTx,
    OverviewTx,
    DocumentsTx,
    ApiReadsTx,
    ApiTx,
    WebhooksTx,
    PortalTx,
    LinksTx,
    PrivacyTx,
    Protocol,
):
    """One transaction: every concern's protocol together."""

    def savepoint(self) -> AbstractContextManager[None]:
        """A nested all-or-nothing unit inside the transaction (one firing of a batch)."""
        ...


class Store(Protocol):
    url: str

    def transaction(self) -> AbstractContextManager[Tx]: ...
    def read(self) -> AbstractContextManager[Tx]: ...
