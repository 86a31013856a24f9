"""Application operations: the engine's decisions, written by the store in one transaction.

The service is split by concern: this module (definitions and case operations),
``reads`` (the light queries ``Service`` inherits), ``mail`` (recipients and
rendering), ``dispatch`` (firing due timers), ``migrate`` (moving cases between
definition versions), ``verify`` (audit-log checks), ``participants`` (the CSV
import), ``health`` (the scheduler's health) and ``database`` (schema upgrade).

The CLI, the daemon and the simulation call these; none of them touches the
store or the engine directly for a change. Each operation:

1. loads what it needs in a write transaction,
2. asks the pure engine for a ``Decision`` (or a refusal),
3. renders the mail the decision queues (outbox, invariant 4),
4. hands decision and mail to the store, which writes all of it or nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dk2020flow.clock import Clock
from dk2020flow.definition.durations import Duration
from dk2020flow.definition.loader import current_defaults, load_workflow, load_workflow_text
from dk2020flow.definition.model import Workflow
from dk2020flow.engine import decide
from dk2020flow.engine import timers as timing
from dk2020flow.engine.decide import Actor
from dk2020flow.engine.machine import CompiledWorkflow, compiled
from dk2020flow.engine.records import (
    CaseSnapshot,
    Decision,
    EventKind,
    EventRecord,
    TimerStatus,
)
from dk2020flow.errors import (
    ConflictError,
    IdempotencyKeyReusedError,
    NotFoundError,
    PreconditionFailedError,
    RefusalReason,
    RefusedError,
    quoted,
)
from dk2020flow.service.mail import (
    MailComposer,
    Preview,
    all_templates,
    case_links_from,
    find_mail_spec,
    intent_from_json,
    roles_mailed,
)
from dk2020flow.service.reads import AmbiguousError, Reader
from dk2020flow.service.tokens import Answer, Idempotency
from dk2020flow.settings import Settings
from dk2020flow.store.db import require_current_schema
from dk2020flow.store.port import (
    CaseFilter,
    LateDeadline,
    Organisation,
    OutboxStatus,
    ProgrammeTimer,
    Store,
    StoredDefinition,
    StoredTimer,
    Tx,
)
from dk2020flow.store.repository import SqlStore

if TYPE_CHECKING:
    from dk2020flow.report.model import Report
    from dk2020flow.service.accounts import Accounts
    from dk2020flow.service.console import Console
    from dk2020flow.service.dispatch import DispatchResult
    from dk2020flow.service.documents import Documents
    from dk2020flow.service.migrate import MigrationItem, MigrationPlan
    from dk2020flow.service.overview import Overview
    from dk2020flow.service.participants import ParticipantsImported
    from dk2020flow.service.privacy import AccessLogBuffer
    from dk2020flow.service.tokens import Tokens
    from dk2020flow.service.verify import CaseCheck
    from dk2020flow.service.webhooks import Webhooks

__all__ = [
    "AmbiguousError",
    "Answer",
    "CaseCheck",
    "CaseDetails",
    "DispatchResult",
    "Idempotency",
    "MigrationItem",
    "MigrationPlan",
    "OpenedCases",
    "ParticipantsImported",
    "Preview",
    "Service",
    "open_service",
]

# Re-exported names whose modules a command imports only when it uses them (#15.18:
# `case show` needs neither the dispatcher, the migration, the CSV import nor the log check).
_LAZY = {
    "CaseCheck": "dk2020flow.service.verify",
    "DispatchResult": "dk2020flow.service.dispatch",
    "MigrationItem": "dk2020flow.service.migrate",
    "MigrationPlan": "dk2020flow.service.migrate",
    "ParticipantsImported": "dk2020flow.service.participants",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)


@dataclass(frozen=True, kw_only=True, slots=True)
class OpenedCases:
    """What ``open_cases`` did: the cases opened, and those that existed already (skipped)."""

    opened: list[CaseSnapshot]
    skipped: list[CaseSnapshot]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Opening:
    actor: str
    role: str | None
    cohort: str | None
    state: str | None
    reason: str


DecideOn = Callable[[Tx, CompiledWorkflow, CaseSnapshot, dt.datetime], Decision]
"""How one kind of change decides (``Service._change``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class _Plan:
    """One change to one case, not yet made: what the log calls it, who makes it, how
    the engine decides it."""

    action: str
    who: Actor
    decide_on: DecideOn


@dataclass(frozen=True, kw_only=True, slots=True)
class _Outcome:
    case: CaseSnapshot
    """The changed case (a replayed change: the case as it is now)."""
    answer: Answer | None = None
    """With an ``Idempotency``: the answer given (or remembered) for its key."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseDetails:
    case: CaseSnapshot
    definition_version: str
    timers: list[StoredTimer]
    outbox: list[Any]
    warnings: list[str]
    possible_triggers: list[str]


class Service(Reader):
    """The operations of dk2020flow over one store, with an injected clock: the one
    door the CLI, the console and the API go through (``Reader`` has the light queries)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        settings: Settings | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(store, on_close=on_close)
        self.clock = clock
        self.settings = settings or Settings()
        self.mail = MailComposer(
            sender=self.settings.sender_override(), links=case_links_from(self.settings)
        )
        self._definitions: dict[int, CompiledWorkflow] = {}
        self._access_log: AccessLogBuffer | None = None
        self._access_log_made = threading.Lock()

    @property
    def access_log(self) -> AccessLogBuffer:
        """Reads logged for the privacy log, written in batches (``service/privacy.py``)."""
        with self._access_log_made:
            if self._access_log is None:
                from dk2020flow.service.privacy import AccessLogBuffer

                self._access_log = AccessLogBuffer(self)
            return self._access_log

    def close(self) -> None:
        """Write the access log entries still waiting, then release the store."""
        if self._access_log is not None:
            self._access_log.close()
        super().close()

    @property
    def accounts(self) -> Accounts:
        """Staff accounts and sign-in (``service/accounts.py``)."""
        from dk2020flow.service.accounts import Accounts

        return Accounts(self)

    @property
    def tokens(self) -> Tokens:
        """REST API tokens (``service/tokens.py``)."""
        from dk2020flow.service.tokens import Tokens

        return Tokens(self)

    @property
    def console(self) -> Console:
        """The console's cases table, saved views and bulk runs (``service/console.py``)."""
        from dk2020flow.service.console import Console

        return Console(self)

    @property
    def documents(self) -> Documents:
        """Documents uploaded to cases: attach, list, read (``service/documents.py``)."""
        from dk2020flow.service.documents import Documents

        return Documents(self)

    @property
    def webhooks(self) -> Webhooks:
        """Webhook subscriptions and their deliveries (``service/webhooks.py``)."""
        from dk2020flow.service.webhooks import Webhooks

        return Webhooks(self)

    # ------------------------------------------------------------------ definitions

    def load_workflow(
        self, path: Path, *, now: dt.datetime | None = None
    ) -> tuple[StoredDefinition, bool]:
        """Store a workflow file as a definition version; unchanged content is a no-op.

        Its programme events are armed as of ``now`` (``workflow load --now``): an event
        that has started is not armed, reminders already past are dropped. The
        organisations of its data set (``organisations:``) that the database does not
        know are added.
        """
        loaded = load_workflow(path)
        now = now or self.clock.now()
        with self.store.transaction() as tx:
            previous = tx.latest_definition(loaded.workflow.workflow)
            stored, created = tx.save_definition(
                name=loaded.workflow.workflow,
                version_label=loaded.workflow.version,
                content_hash=loaded.content_hash,
                source_text=loaded.source_text,
                templates=dict(loaded.templates),
                source_path=str(path),
                now=now,
                implied_defaults=current_defaults(),
            )
            if created:
                wf = self._compiled(stored, loaded.workflow)
                rows = _programme_timers(wf, now)
                if previous is not None:
                    rows = self._carry_over_events(tx, self._compiled(previous), wf, rows, now)
                tx.arm_programme_timers(stored.id, rows)
            if loaded.organisations_file is not None:
                # The programme's data set: the organisations the database lacks, in the
                # same transaction (a bad row stores neither them nor the definition).
                from dk2020flow.service.participants import add_new_organisations

                add_new_organisations(tx, loaded.organisations_file)
        return stored, created

    def _carry_over_events(
        self,
        tx: Tx,
        old: CompiledWorkflow,
        new: CompiledWorkflow,
        rows: list[ProgrammeTimer],
        now: dt.datetime,
    ) -> list[ProgrammeTimer]:
        """Programme events move to the new version without being sent twice.

        An unchanged event keeps only the firings still pending in the old version.
        A changed one (new time, place, or ``cancelled``; raise its ``sequence``) whose
        invitation already went out gets an update now, with the same calendar UID; a
        removed one whose invitation went out (and that has not taken place) gets a
        cancellation now, rendered from the old version. The old version's pending
        programme firings are retired.
        """
        pending = {
            (p.cohort, p.event, p.kind, p.index) for p in tx.programme_timers(old.definition_id)
        }
        tx.discard_programme_timers(
            old.definition_id, now, f"moved to version {new.workflow.version}"
        )
        kept: list[ProgrammeTimer] = []
        updates: list[ProgrammeTimer] = []
        for row in rows:
            old_cohort = old.workflow.cohorts.get(row.cohort)
            before = old_cohort.events.get(row.event) if old_cohort else None
            after = new.workflow.cohorts[row.cohort].events[row.event]
            key = (row.cohort, row.event, row.kind, row.index)
            if before is None:
                kept.append(row)  # a new event
            elif before == after:
                if key in pending:
                    kept.append(row)
            elif row.kind == "event":
                if key in pending:
                    kept.append(row)  # not sent yet: it goes out as changed
                else:
                    updates.append(
                        replace(row, kind="event_update", index=after.sequence, due_at=now)
                    )
            elif key in pending or row.due_at > now:
                kept.append(row)  # reminders still to come, at the new time
        tx.arm_programme_timers(old.definition_id, _cancellations(old, new, pending, now))
        return kept + updates

    def compiled(self, tx: Tx, definition_id: int) -> CompiledWorkflow:
        """A stored definition version, parsed once per service (versions never change)."""
        found = self._definitions.get(definition_id)
        if found is None:
            found = self._compiled(tx.definition(definition_id))
        return found

    def latest(self, tx: Tx, workflow: str) -> CompiledWorkflow:
        stored = tx.latest_definition(workflow)
        if stored is None:
            names = ", ".join(sorted({d.name for d in tx.definitions()})) or "none loaded yet"
            raise NotFoundError(
                f"no workflow {workflow!r} in the database ({names}); "
                f"load it with `dk2020flow workflow load workflows/{workflow}.yaml`"
            )
        return self._compiled(stored)

    def _compiled(
        self, stored: StoredDefinition, workflow: Workflow | None = None
    ) -> CompiledWorkflow:
        """``stored`` compiled; ``workflow`` is its text parsed already (just loaded)."""
        found = self._definitions.get(stored.id)
        if found is None or found.content_hash != stored.content_hash:
            if workflow is None:
                # Stored versions passed every check when loaded; parse without re-rendering.
                workflow = load_workflow_text(
                    stored.source_text, stored.source_path, implied=stored.implied_defaults
                ).workflow
            found = compiled(workflow, stored.id, stored.content_hash, dict(stored.templates))
            self._definitions[stored.id] = found
        return found

    # ------------------------------------------------------------------ cases

    def open_case(
        self,
        workflow: str,
        organisation: str,
        *,
        actor: str,
        role: str | None,
        cohort: str | None = None,
        state: str | None = None,
        reason: str = "",
        data: Mapping[str, Any] | None = None,
        now: dt.datetime | None = None,
    ) -> CaseSnapshot:
        now = now or self.clock.now()
        with self.store.transaction() as tx:
            wf = self.latest(tx, workflow)
            found = tx.find_organisation(organisation)
            if found is None:
                raise NotFoundError(
                    f"no organisation {organisation!r}; give its name or code "
                    "(`dk2020flow orgs list` shows them)"
                )
            existing = tx.find_cases_by_ref(found.code, workflow)
            if existing:
                raise RefusedError(
                    RefusalReason.INVALID_STATE,
                    f"{found.name} already has case #{existing[0].id} in {workflow} "
                    f"(state {existing[0].state})",
                )
            opening = _Opening(actor=actor, role=role, cohort=cohort, state=state, reason=reason)
            return self._open_in(tx, wf, found, opening, data, now)

    def open_cases(
        self,
        workflow: str,
        entries: Sequence[tuple[str, str]] | None,
        *,
        actor: str,
        role: str | None,
        cohort: str | None = None,
        state: str | None = None,
        reason: str = "",
        data: Mapping[str, Any] | None = None,
        now: dt.datetime | None = None,
    ) -> OpenedCases:
        """Open a case for many organisations in one transaction: all of them or none.

        ``entries`` are ``(where, code or name)`` pairs (``where`` names the line of the
        file they came from, for messages); None means every organisation the database
        knows. An organisation that already has a case in the workflow is skipped and
        reported; an unknown or repeated entry refuses the whole batch, naming its line.
        """
        now = now or self.clock.now()
        with self.store.transaction() as tx:
            wf = self.latest(tx, workflow)
            wanted: list[tuple[str, Organisation]] = []
            if entries is None:
                wanted = [(m.code, m) for m in tx.organisations()]
            else:
                problems: list[str] = []
                seen: dict[str, str] = {}
                for where, ref in entries:
                    found = tx.find_organisation(ref)
                    if found is None:
                        problems.append(f"{where}: no organisation {quoted(ref)}")
                    elif found.code in seen:
                        problems.append(f"{where}: {found.name} is also on {seen[found.code]}")
                    else:
                        seen[found.code] = where
                        wanted.append((where, found))
                if problems:
                    raise NotFoundError(
                        "; ".join(problems) + " (give a name or code per line; nothing was opened)"
                    )
            has = {c.organisation_code: c for c in tx.cases(CaseFilter(workflow=workflow))}
            opening = _Opening(actor=actor, role=role, cohort=cohort, state=state, reason=reason)
            opened: list[CaseSnapshot] = []
            skipped: list[CaseSnapshot] = []
            for _, found in wanted:
                if found.code in has:
                    skipped.append(has[found.code])
                else:
                    opened.append(self._open_in(tx, wf, found, opening, data, now))
            return OpenedCases(opened=opened, skipped=skipped)

    def _open_in(
        self,
        tx: Tx,
        wf: CompiledWorkflow,
        found: Organisation,
        opening: _Opening,
        data: Mapping[str, Any] | None,
        now: dt.datetime,
    ) -> CaseSnapshot:
        """The engine's ``open_case`` for one organisation, written with its mail in ``tx``."""
        decision = decide.open_case(
            wf,
            organisation=decide.Organisation(
                code=found.code,
                name=found.name,
                region=found.region,
                country=found.country,
                subdivision=found.subdivision,
            ),
            actor=Actor(name=opening.actor, role=opening.role),
            now=now,
            cohort=opening.cohort,
            state=opening.state,
            reason=opening.reason,
            data=data,
        )
        case_id = tx.insert_case(decision, [])
        case = replace(decision.case, id=case_id)
        mails = self.mail.render_all(tx, wf, replace(decision, case=case), now)
        if mails:
            tx.queue_mail(mails)
        return case

    def _change(
        self,
        ref: str,
        workflow: str | None,
        now: dt.datetime | None,
        plan: _Plan,
        *,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> _Outcome:
        """One change to one case: load, decide, render, write — or refuse and change nothing.

        Acting without the role is security-relevant: such a refusal stays in the case's
        log (the case itself does not change).

        ``expected_version`` (``If-Match``): ``PreconditionFailedError`` unless the case is
        at that version. ``idempotency``: the key is claimed first thing in the transaction
        (a concurrent request with the same key waits for it: on the key's row on
        PostgreSQL, for the write lock on SQLite) and answered with the change, so one key
        makes one change. A key used already gets its answer back and changes nothing —
        or, sent with another request, ``IdempotencyKeyReusedError``. A refusal forgets
        the key.
        """
        now = now or self.clock.now()
        with self.store.transaction() as tx:
            claimed: int | None = None
            if idempotency is not None:
                claimed = tx.claim_idempotency_key(
                    token_id=idempotency.token_id,
                    key=idempotency.key,
                    fingerprint=idempotency.fingerprint,
                    now=now,
                )
                if claimed is None:
                    return _replayed(tx, idempotency)
            case = self.resolve(tx, ref, workflow)
            if expected_version is not None and case.version != expected_version:
                raise PreconditionFailedError(
                    f"case #{case.id} is at version {case.version}, not {expected_version}: "
                    "someone changed it since you read it; read it again and decide again "
                    "(nothing was changed)",
                    case_id=case.id or 0,
                    expected=expected_version,
                    current=case.version,
                )
            wf = self.compiled(tx, case.definition_id)
            try:
                decision = plan.decide_on(tx, wf, case, now)
            except RefusedError as refused:
                refusal = refused
                if claimed is not None:
                    tx.release_idempotency_key(claimed)
                if refused.reason is RefusalReason.ROLE:
                    event = _refusal_event(case, plan.action, plan.who, refused, now)
                    tx.append_event(case.id or 0, event)
            else:
                changed = self.apply(tx, wf, case, decision, now)
                if idempotency is None or claimed is None:
                    return _Outcome(case=changed)
                status_code, body = idempotency.respond(changed)
                remembered: dict[str, Any] = json.loads(json.dumps(body))
                tx.finish_idempotency_key(
                    claimed, case_id=changed.id or 0, status_code=status_code, response=remembered
                )
                answer = Answer(status_code=status_code, body=remembered, replayed=False)
                return _Outcome(case=changed, answer=answer)
        raise refusal

    @staticmethod
    def _answer(outcome: _Outcome) -> Answer:
        assert outcome.answer is not None, "an idempotent change always has an answer"
        return outcome.answer

    def fire(
        self,
        ref: str,
        trigger: str,
        *,
        actor: str,
        role: str | None,
        data: Mapping[str, Any] | None = None,
        comment: str = "",
        workflow: str | None = None,
        now: dt.datetime | None = None,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> CaseSnapshot:
        """Fire a named trigger on a case.

        ``expected_version``: only if the case is still at that version (else
        ``PreconditionFailedError``, nothing changed). ``idempotency``: as for
        ``fire_idempotent``; a replayed change returns the case as it is now."""
        plan = _firing(trigger, actor, role, data, comment)
        return self._change(
            ref, workflow, now, plan, expected_version=expected_version, idempotency=idempotency
        ).case

    def fire_idempotent(
        self,
        ref: str,
        trigger: str,
        *,
        idempotency: Idempotency,
        actor: str,
        role: str | None,
        data: Mapping[str, Any] | None = None,
        comment: str = "",
        workflow: str | None = None,
        now: dt.datetime | None = None,
        expected_version: int | None = None,
    ) -> Answer:
        """``fire`` with an Idempotency-Key: the answer ``idempotency.respond`` made of the
        changed case, or the one remembered for the key (``replayed``; nothing changed)."""
        plan = _firing(trigger, actor, role, data, comment)
        return self._answer(
            self._change(
                ref, workflow, now, plan, expected_version=expected_version, idempotency=idempotency
            )
        )

    def set_data(
        self,
        ref: str,
        values: Mapping[str, Any],
        *,
        actor: str,
        role: str | None,
        comment: str = "",
        workflow: str | None = None,
        now: dt.datetime | None = None,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> CaseSnapshot:
        """Correct or add case data outside a transition (``expected_version`` and
        ``idempotency`` as for ``fire``)."""
        plan = _setting(values, actor, role, comment)
        return self._change(
            ref, workflow, now, plan, expected_version=expected_version, idempotency=idempotency
        ).case

    def set_data_idempotent(
        self,
        ref: str,
        values: Mapping[str, Any],
        *,
        idempotency: Idempotency,
        actor: str,
        role: str | None,
        comment: str = "",
        workflow: str | None = None,
        now: dt.datetime | None = None,
        expected_version: int | None = None,
    ) -> Answer:
        """``set_data`` with an Idempotency-Key (as ``fire_idempotent``)."""
        plan = _setting(values, actor, role, comment)
        return self._answer(
            self._change(
                ref, workflow, now, plan, expected_version=expected_version, idempotency=idempotency
            )
        )

    def check(
        self,
        ref: str,
        checklist: str,
        items: Mapping[str, tuple[str, str]],
        *,
        actor: str,
        role: str | None,
        workflow: str | None = None,
        now: dt.datetime | None = None,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> CaseSnapshot:
        """Record checklist statuses (and comments) for one or many items
        (``expected_version`` and ``idempotency`` as for ``fire``)."""
        plan = _checking(checklist, items, actor, role)
        return self._change(
            ref, workflow, now, plan, expected_version=expected_version, idempotency=idempotency
        ).case

    def check_idempotent(
        self,
        ref: str,
        checklist: str,
        items: Mapping[str, tuple[str, str]],
        *,
        idempotency: Idempotency,
        actor: str,
        role: str | None,
        workflow: str | None = None,
        now: dt.datetime | None = None,
        expected_version: int | None = None,
    ) -> Answer:
        """``check`` with an Idempotency-Key (as ``fire_idempotent``)."""
        plan = _checking(checklist, items, actor, role)
        return self._answer(
            self._change(
                ref, workflow, now, plan, expected_version=expected_version, idempotency=idempotency
            )
        )

    def answer(
        self,
        ref: str,
        checklist: str,
        answers: Mapping[str, str],
        *,
        actor: str,
        role: str | None,
        workflow: str | None = None,
        now: dt.datetime | None = None,
        expected_version: int | None = None,
    ) -> CaseSnapshot:
        """Answer the comments of checklist items that need revision (item -> answer), in
        a role of the checklist's ``answered_by`` (``decide.answer_checklist``)."""
        who = Actor(name=actor, role=role)
        plan = _Plan(
            action=f"answer:{checklist}",
            who=who,
            decide_on=lambda _tx, wf, case, at: decide.answer_checklist(
                wf, case, checklist=checklist, answers=answers, actor=who, now=at
            ),
        )
        return self._change(ref, workflow, now, plan, expected_version=expected_version).case

    def extend(
        self,
        ref: str,
        timer: str,
        *,
        actor: str,
        role: str | None,
        reason: str,
        to: dt.datetime | None = None,
        by: Duration | None = None,
        workflow: str | None = None,
        now: dt.datetime | None = None,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> CaseSnapshot:
        """Move one pending deadline of one case (``expected_version`` and
        ``idempotency`` as for ``fire``)."""
        plan = _extending(timer, actor, role, reason, to, by)
        return self._change(
            ref, workflow, now, plan, expected_version=expected_version, idempotency=idempotency
        ).case

    def extend_idempotent(
        self,
        ref: str,
        timer: str,
        *,
        idempotency: Idempotency,
        actor: str,
        role: str | None,
        reason: str,
        to: dt.datetime | None = None,
        by: Duration | None = None,
        workflow: str | None = None,
        now: dt.datetime | None = None,
        expected_version: int | None = None,
    ) -> Answer:
        """``extend`` with an Idempotency-Key (as ``fire_idempotent``)."""
        plan = _extending(timer, actor, role, reason, to, by)
        return self._answer(
            self._change(
                ref, workflow, now, plan, expected_version=expected_version, idempotency=idempotency
            )
        )

    def apply(
        self,
        tx: Tx,
        wf: CompiledWorkflow,
        case: CaseSnapshot,
        decision: Decision,
        now: dt.datetime,
    ) -> CaseSnapshot:
        mails = self.mail.render_all(tx, wf, decision, now)
        tx.apply(decision, mails, expected_version=case.version)
        return decision.case

    # ------------------------------------------------------------------ reading

    def show(self, ref: str, *, workflow: str | None = None) -> CaseDetails:
        from dk2020flow.service.privacy import displayed_case

        with self.store.read() as tx:
            case = self.resolve(tx, ref, workflow)
            wf = self.compiled(tx, case.definition_id)
            timers = tx.timers_of(case.id or 0)
            outbox = tx.outbox(case_id=case.id, limit=50)
            return CaseDetails(
                case=displayed_case(case, tx.forgotten_digests()),  # privacy: forgotten names
                definition_version=wf.workflow.version,
                timers=timers,
                outbox=outbox,
                warnings=self._warnings(tx, wf, case),
                possible_triggers=decide.available_triggers(wf, case),
            )

    def _warnings(self, tx: Tx, wf: CompiledWorkflow, case: CaseSnapshot) -> list[str]:
        """Roles this case mails that have no recipient (their mail would be parked)."""
        contacts = self.mail.contacts(tx, wf, case)
        needed = sorted(roles_mailed(wf))
        return [
            f"no contact in role {role!r}: its mail will be parked "
            "(import contacts with `dk2020flow orgs import`)"
            for role in needed
            if not contacts.get(role)
        ]

    def verify(self, ref: str | None = None, *, workflow: str | None = None) -> list[CaseCheck]:
        """Check the audit log of one case (``ref``) or of every case (in ``workflow``):
        its hash chain, and that replaying it gives the stored case (``service/verify.py``)."""
        with self.store.read() as tx:
            if ref is not None:
                cases = [self.resolve(tx, ref, workflow)]
            else:
                cases = tx.cases(CaseFilter(workflow=workflow))

            def workflow_of(definition_id: int) -> Workflow:
                return self.compiled(tx, definition_id).workflow

            from dk2020flow.service.verify import check_case

            return [
                check_case(case, tx.history(case.id or 0), workflow_of)
                for case in sorted(cases, key=lambda c: c.id or 0)
            ]

    def cases(self, flt: CaseFilter) -> list[CaseSnapshot]:
        """Cases by ``flt``; with ``overdue_at``, the cases late then (``late_deadlines``)."""
        return self.list_cases(flt)

    def list_cases(self, flt: CaseFilter) -> list[CaseSnapshot]:
        """Cases by ``flt``; with ``overdue_at``, the cases late then (``late_deadlines``)."""
        with self.store.read() as tx:
            if flt.overdue_at is None:
                return tx.cases(flt)
            late = {d.case.id for d in self._late(tx, flt.overdue_at, flt.workflow)}
            return [c for c in tx.cases(flt) if c.id in late]

    def late_deadlines(self, at: dt.datetime, workflow: str | None = None) -> list[LateDeadline]:
        """Who is late at ``at``: every open case still in a state whose deadline passed
        (``engine.timers.is_late``; docs/simulation-and-reports.md, "Who is late").
        The CLI (``case list --overdue``), the report and the console ask this."""
        with self.store.read() as tx:
            return self._late(tx, at, workflow)

    def _late(self, tx: Tx, at: dt.datetime, workflow: str | None) -> list[LateDeadline]:
        # Only a case whose earliest countable deadline passed can be late (the kept
        # ``cases.deadline_at``, an index range); its arms say on which deadline.
        candidates = [c.case_id for c in tx.report_late_candidates(workflow, at)]
        arms = [a for a in tx.report_deadline_arms_of(candidates) if a.deadline_at < at]
        cases = tx.load_cases(sorted({a.case_id for a in arms}))
        late: list[LateDeadline] = []
        for arm in arms:
            case = cases.get(arm.case_id)
            if case is None or case.closed or case.epoch != arm.epoch:
                continue
            state = self.compiled(tx, case.definition_id).workflow.states[case.state]
            if timing.is_late(state, arm.timer, arm.deadline_at, at):
                late.append(
                    LateDeadline(
                        case=case,
                        timer=arm.timer,
                        deadline_at=arm.deadline_at,
                        fired=arm.status is not TimerStatus.PENDING,
                    )
                )
        return sorted(late, key=lambda d: (d.deadline_at, d.case.id or 0, d.timer))

    def overview(
        self, at: dt.datetime | None = None, *, days: int = 14, limit: int = 50
    ) -> Overview:
        """The programme at a glance as of ``at`` (the console's home page;
        ``service/overview.py``)."""
        from dk2020flow.service.overview import programme_overview

        return programme_overview(self, at=at or self.clock.now(), days=days, limit=limit)

    def report(
        self,
        workflow: str | None = None,
        at: dt.datetime | dt.date | None = None,
        *,
        now: dt.datetime | None = None,
    ) -> Report:
        """The programme's report of ``workflow`` (the only or the largest one) as of ``at``
        (a date: the end of that day in the workflow's time zone), replayed from the case
        logs; without ``at``, as it stands ``now`` (the service's clock by default), from
        what the store keeps of those logs: the same numbers without reading every case
        (``report/model.py``)."""
        with self.store.read() as tx:
            from dk2020flow.report.model import build_report

            if at is None:
                now = now or self.clock.now()
                return build_report(tx, workflow=workflow, at=now, replay=False)
            return build_report(tx, workflow=workflow, at=at)

    def purge_sent(self, before: dt.datetime) -> int:
        """Delete the sent messages sent before ``before``; how many. Nothing else is purged."""
        with self.store.transaction() as tx:
            return tx.purge_sent(before)

    def import_participants(self, path: Path) -> ParticipantsImported:
        """Import organisations or contacts from a CSV file: every row checked, all or
        nothing (``service/participants.py``)."""
        from dk2020flow.service.participants import import_participants

        with self.store.transaction() as tx:
            return import_participants(tx, path)

    def compiled_latest(self, workflow: str) -> CompiledWorkflow:
        with self.store.read() as tx:
            return self.latest(tx, workflow)

    # ------------------------------------------------------------------ migration and timers

    def migrate(
        self,
        workflow: str,
        *,
        state_map: Mapping[str, str],
        actor: str,
        dry_run: bool,
        now: dt.datetime | None = None,
        items_kept: int | None = None,
    ) -> MigrationPlan:
        """Move every open case of ``workflow`` to its newest version (dry run first);
        ``items_kept``: return only the plan's first items and its problems."""
        from dk2020flow.service.migrate import migrate as migrate_cases

        return migrate_cases(
            self,
            workflow,
            state_map=state_map,
            actor=actor,
            dry_run=dry_run,
            now=now,
            items_kept=items_kept,
        )

    def fire_due(self, now: dt.datetime, *, limit: int | None = None) -> DispatchResult:
        """Fire the timers due at ``now`` (``service/dispatch.py``)."""
        from dk2020flow.service.dispatch import fire_due

        return fire_due(self, now, limit=limit)

    def retry_message(self, message_id: int, now: dt.datetime | None = None) -> tuple[bool, str]:
        """Send a dead or parked message again; (done, why not).

        A parked message is rendered again first, with the case's current contacts;
        it stays parked (with the reason) while its role still has no recipient.
        """
        now = now or self.clock.now()
        with self.store.transaction() as tx:
            msg = tx.outbox_message(message_id)
            if msg is None:
                raise NotFoundError(
                    f"there is no message {message_id} in the outbox "
                    "(`dk2020flow outbox list` shows them)"
                )
            if msg.status is OutboxStatus.PARKED and msg.intent and msg.case_id is not None:
                case = tx.load_case(msg.case_id)
                wf = self.compiled(tx, case.definition_id)
                intent, reminder = intent_from_json(msg.intent)
                first, *others = self.mail.render(tx, wf, case, intent, now, reminder=reminder)
                if first.status is OutboxStatus.PARKED:
                    return False, first.reason
                tx.rewrite_parked(message_id, first)
                if others:
                    tx.queue_mail(others)
                return True, ""
            if tx.requeue(message_id, now):
                return True, ""
            return False, f"it is {msg.status.value}: only dead or parked messages can be retried"

    # ------------------------------------------------------------------ mail

    def preview(
        self, ref: str, template: str, *, language: str | None = None, workflow: str | None = None
    ) -> list[Preview]:
        """Exactly what a template would send for a case now (nothing is queued)."""
        now = self.clock.now()
        with self.store.read() as tx:
            case = self.resolve(tx, ref, workflow)
            wf = self.compiled(tx, case.definition_id)
            spec = find_mail_spec(wf, template)
            if spec is None:
                raise NotFoundError(
                    f"the workflow does not send a template {template!r}; "
                    f"templates: {', '.join(sorted(all_templates(wf)))}"
                )
            intent, kind_extra = spec
            pending = [t for t in tx.timers_of(case.id or 0) if t.epoch == case.epoch]
            if intent.kind == "timer" and pending:
                first = pending[0]
                intent = replace(intent, timer=first.timer, deadline_at=first.deadline_at)
            elif intent.kind == "timer":
                intent = replace(intent, timer=kind_extra, deadline_at=now + dt.timedelta(days=14))
            mails = self.mail.render(tx, wf, case, intent, now, language=language, sign=False)
            from dk2020flow.notify.render import RenderedMail

            return [
                Preview(
                    to=m.to,
                    cc=m.cc,
                    language=m.language,
                    mail=RenderedMail(subject=m.subject, text=m.text, html=m.html),
                )
                for m in mails
            ]


# ----------------------------------------------------------------------------- helpers


def _firing(
    trigger: str, actor: str, role: str | None, data: Mapping[str, Any] | None, comment: str
) -> _Plan:
    from dk2020flow.service.documents import handed_in

    who = Actor(name=actor, role=role)
    return _Plan(
        action=trigger,
        who=who,
        decide_on=lambda tx, wf, case, at: decide.fire_trigger(
            wf,
            case,
            trigger=trigger,
            actor=who,
            now=at,
            data=data,
            comment=comment,
            documents=handed_in(tx, wf, case, trigger),
        ),
    )


def _setting(values: Mapping[str, Any], actor: str, role: str | None, comment: str) -> _Plan:
    who = Actor(name=actor, role=role)
    return _Plan(
        action="set",
        who=who,
        decide_on=lambda _tx, wf, case, at: decide.set_data(
            wf, case, actor=who, values=values, now=at, comment=comment
        ),
    )


def _checking(
    checklist: str, items: Mapping[str, tuple[str, str]], actor: str, role: str | None
) -> _Plan:
    who = Actor(name=actor, role=role)
    return _Plan(
        action=f"check:{checklist}",
        who=who,
        decide_on=lambda _tx, wf, case, at: decide.record_checklist(
            wf, case, checklist=checklist, items=items, actor=who, now=at
        ),
    )


def _extending(
    timer: str,
    actor: str,
    role: str | None,
    reason: str,
    to: dt.datetime | None,
    by: Duration | None,
) -> _Plan:
    who = Actor(name=actor, role=role)

    def moved(tx: Tx, wf: CompiledWorkflow, case: CaseSnapshot, at: dt.datetime) -> Decision:
        pending = [
            t for t in tx.timers_of(case.id or 0) if t.timer == timer and t.epoch == case.epoch
        ]
        if not pending:
            raise RefusedError(
                RefusalReason.INVALID_DATA,
                f"case {case.id} has no pending deadline {timer!r} "
                "(it may have passed already; `dk2020flow case show` lists the deadlines)",
            )
        return decide.extend_deadline(
            wf,
            case,
            timer=timer,
            current_deadline=pending[0].deadline_at,
            new_deadline=to,
            by=by,
            actor=who,
            reason=reason,
            now=at,
        )

    return _Plan(action=f"extend:{timer}", who=who, decide_on=moved)


def _replayed(tx: Tx, idempotency: Idempotency) -> _Outcome:
    """The answer remembered for a key used already (``Service._change``)."""
    stored = tx.idempotency_key(idempotency.token_id, idempotency.key)
    if stored is None or stored.case_id is None:
        # The key was purged (or its token revoked) between the claim and this read.
        raise ConflictError(
            f"the Idempotency-Key {quoted(idempotency.key)} was in use by another request "
            "at the same time: send the request again"
        )
    if stored.fingerprint != idempotency.fingerprint:
        raise IdempotencyKeyReusedError(idempotency.key)
    answer = Answer(status_code=stored.status_code, body=dict(stored.response), replayed=True)
    return _Outcome(case=tx.load_case(stored.case_id), answer=answer)


def _refusal_event(
    case: CaseSnapshot, action: str, who: Actor, refused: RefusedError, now: dt.datetime
) -> EventRecord:
    return EventRecord(
        kind=EventKind.REFUSED,
        at=now,
        actor=who.name,
        role=who.role,
        trigger=action,
        from_state=case.state,
        to_state=case.state,
        comment=str(refused),
    )


def _cancellations(
    old: CompiledWorkflow,
    new: CompiledWorkflow,
    pending: set[tuple[str, str, str, int]],
    now: dt.datetime,
) -> list[ProgrammeTimer]:
    """Firings (of the old version, due now) that cancel the events the new version
    removed, where the invitation went out and the event is still to come."""
    rows: list[ProgrammeTimer] = []
    for cohort_name, cohort in old.workflow.cohorts.items():
        kept = new.workflow.cohorts.get(cohort_name)
        for event_name, event in cohort.events.items():
            if kept is not None and event_name in kept.events:
                continue
            invited = (cohort_name, event_name, "event", 0) not in pending
            starts, _ = timing.event_instants(event, old.tz)
            if invited and not event.cancelled and starts > now:
                row = _programme_row(old, cohort_name, event_name, "event_cancel", now)
                rows.append(replace(row, index=event.sequence + 1))
    return rows


def _programme_timers(wf: CompiledWorkflow, now: dt.datetime) -> list[ProgrammeTimer]:
    """Rows for every programme event still to come and its reminders (past reminders
    dropped): never invite to the past (docs/time.md, "Programme events")."""
    rows: list[ProgrammeTimer] = []
    for cohort_name, cohort in wf.workflow.cohorts.items():
        for event_name, event in cohort.events.items():
            starts, _ = timing.event_instants(event, wf.tz)
            if starts <= now:
                continue  # held already (or under way): nothing to invite to
            invite_at = timing.add_duration(starts, event.invite_before, wf.tz, times=-1)
            rows.append(_programme_row(wf, cohort_name, event_name, "event", invite_at))
            rows.extend(
                replace(
                    _programme_row(wf, cohort_name, event_name, "event_reminder", f.due_at),
                    index=f.index,
                )
                for f in timing.drop_past_reminders(timing.event_reminders(event, wf.tz), now)
            )
    return rows


def _programme_row(
    wf: CompiledWorkflow, cohort: str, event: str, kind: str, due_at: dt.datetime
) -> ProgrammeTimer:
    return ProgrammeTimer(
        id=0,
        definition_id=wf.definition_id,
        cohort=cohort,
        event=event,
        kind=kind,
        index=0,
        due_at=due_at,
    )


def open_service(
    database_url: str, *, clock: Clock, settings: Settings, pool_size: int | None = None
) -> Service:
    """A service over the database at ``database_url``, whose schema must be current
    (``SchemaBehindError`` otherwise: run ``dk2020flow db upgrade``). Close it (or use it
    as a context manager) to release the connections. ``pool_size``: see ``make_engine``."""
    store = SqlStore(database_url, pool_size=pool_size)
    try:
        require_current_schema(store.engine)
    except BaseException:
        store.close()
        raise
    return Service(store, clock=clock, settings=settings, on_close=store.close)
