"""Application operations: the engine's decisions, written by the store in one transaction.

The CLI, the daemon and the simulation call these; none of them touches the
store or the engine directly for a change. Each operation:

1. loads what it needs in a write transaction,
2. asks the pure engine for a ``Decision`` (or a refusal),
3. renders the mail the decision queues (outbox, invariant 4),
4. hands decision and mail to the store, which writes all of it or nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dk2020flow.clock import Clock
from dk2020flow.definition.durations import Duration
from dk2020flow.definition.loader import load_workflow, load_workflow_text
from dk2020flow.definition.model import text_in
from dk2020flow.engine import decide
from dk2020flow.engine import timers as timing
from dk2020flow.engine.decide import Actor
from dk2020flow.engine.machine import CompiledWorkflow, compiled
from dk2020flow.engine.records import (
    CaseSnapshot,
    Decision,
    DueTimer,
    EventKind,
    EventRecord,
    MailIntent,
    TimerStatus,
)
from dk2020flow.errors import (
    ConflictError,
    Dk2020flowError,
    NotFoundError,
    RefusalReason,
    RefusedError,
)
from dk2020flow.notify.context import (
    CaseView,
    ChecklistEntry,
    ChecklistView,
    DeadlineView,
    EventView,
    MunicipalityView,
    RecipientView,
    TransitionView,
    build_context,
)
from dk2020flow.notify.ics import deadline_ics, event_ics
from dk2020flow.notify.render import RenderedMail, Renderer
from dk2020flow.settings import Settings
from dk2020flow.store.port import (
    CaseFilter,
    Contact,
    NewMail,
    OutboxStatus,
    ProgrammeTimer,
    Store,
    StoredDefinition,
    StoredEvent,
    StoredTimer,
    Tx,
)


class AmbiguousError(Dk2020flowError):
    """A reference matches more than one case: name the workflow or use the case id."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseDetails:
    case: CaseSnapshot
    definition_version: str
    timers: list[StoredTimer]
    outbox: list[Any]
    warnings: list[str]
    possible_triggers: list[str]


@dataclass(frozen=True, kw_only=True, slots=True)
class MigrationItem:
    case_id: int
    municipality: str
    from_state: str
    to_state: str
    timers: list[tuple[str, str, dt.datetime]]
    problem: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class MigrationPlan:
    workflow: str
    from_versions: list[str]
    to_version: str
    items: list[MigrationItem]
    applied: bool


@dataclass(kw_only=True, slots=True)
class DispatchResult:
    fired: int = 0
    discarded: int = 0
    skipped: int = 0
    failed: int = 0
    deferred: int = 0
    programme: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.fired + self.discarded + self.skipped + self.failed + self.programme


@dataclass(frozen=True, kw_only=True, slots=True)
class Preview:
    to: tuple[tuple[str, str], ...]
    cc: tuple[tuple[str, str], ...]
    language: str
    mail: RenderedMail


class Service:
    """The operations of dk2020flow over one store, with an injected clock."""

    def __init__(self, store: Store, *, clock: Clock, settings: Settings | None = None) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings or Settings()
        self._renderers: dict[int, Renderer] = {}
        self._definitions: dict[int, CompiledWorkflow] = {}

    # ------------------------------------------------------------------ definitions

    def load_workflow(self, path: Path) -> tuple[StoredDefinition, bool]:
        """Store a workflow file as a definition version; unchanged content is a no-op."""
        loaded = load_workflow(path)
        now = self.clock.now()
        with self.store.transaction() as tx:
            stored, created = tx.save_definition(
                name=loaded.workflow.workflow,
                version_label=loaded.workflow.version,
                content_hash=loaded.content_hash,
                source_text=loaded.source_text,
                templates=dict(loaded.templates),
                source_path=str(path),
                now=now,
            )
            if created:
                wf = self._compiled(stored)
                tx.arm_programme_timers(stored.id, _programme_timers(wf, now))
        return stored, created

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

    def _compiled(self, stored: StoredDefinition) -> CompiledWorkflow:
        found = self._definitions.get(stored.id)
        if found is None or found.content_hash != stored.content_hash:
            # Stored versions passed every check when loaded; parse without re-rendering.
            loaded = load_workflow_text(stored.source_text, stored.source_path)
            found = compiled(
                loaded.workflow, stored.id, stored.content_hash, dict(stored.templates)
            )
            self._definitions[stored.id] = found
        return found

    def renderer(self, wf: CompiledWorkflow) -> Renderer:
        found = self._renderers.get(wf.definition_id)
        if found is None:
            found = Renderer(wf.templates, timezone=wf.workflow.timezone)
            self._renderers[wf.definition_id] = found
        return found

    # ------------------------------------------------------------------ cases

    def open_case(
        self,
        workflow: str,
        municipality: str,
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
            found = tx.find_municipality(municipality)
            if found is None:
                raise NotFoundError(
                    f"no municipality {municipality!r}; give its name or three-digit code "
                    "(`dk2020flow participants list` shows them)"
                )
            existing = tx.find_cases_by_ref(found.code, workflow)
            if existing:
                raise RefusedError(
                    RefusalReason.INVALID_STATE,
                    f"{found.name} already has case {existing[0].id} in {workflow} "
                    f"(state {existing[0].state})",
                )
            decision = decide.open_case(
                wf,
                municipality=decide.Municipality(
                    code=found.code, name=found.name, region=found.region
                ),
                actor=Actor(name=actor, role=role),
                now=now,
                cohort=cohort,
                state=state,
                reason=reason,
                data=data,
            )
            case_id = tx.insert_case(decision, [])
            case = replace(decision.case, id=case_id)
            mails = self._render_all(tx, wf, replace(decision, case=case), now)
            if mails:
                tx.queue_mail(mails)
            return case

    def resolve(self, tx: Tx, ref: str, workflow: str | None = None) -> CaseSnapshot:
        """A case by id, or by municipality code or name within a workflow."""
        found = tx.find_cases_by_ref(ref, workflow)
        if not found:
            where = f" in {workflow}" if workflow else ""
            raise NotFoundError(f"no case {ref!r}{where}; `dk2020flow case list` shows the cases")
        if len(found) > 1:
            names = ", ".join(sorted({c.workflow for c in found}))
            raise AmbiguousError(
                f"{ref!r} has a case in several workflows ({names}): add --workflow NAME"
            )
        return found[0]

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
    ) -> CaseSnapshot:
        now = now or self.clock.now()
        with self.store.transaction() as tx:
            case = self.resolve(tx, ref, workflow)
            wf = self.compiled(tx, case.definition_id)
            try:
                decision = decide.fire_trigger(
                    wf,
                    case,
                    trigger=trigger,
                    actor=Actor(name=actor, role=role),
                    now=now,
                    data=data,
                    comment=comment,
                )
            except RefusedError as refused:
                refusal = refused
                if refused.reason is RefusalReason.ROLE:
                    # Acting without the role is security-relevant: it stays in the case's
                    # log (the case itself does not change).
                    tx.append_event(
                        case.id or 0, _refusal_event(case, trigger, actor, role, refused, now)
                    )
            else:
                return self._apply(tx, wf, case, decision, now)
        raise refusal

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
    ) -> CaseSnapshot:
        now = now or self.clock.now()
        with self.store.transaction() as tx:
            case = self.resolve(tx, ref, workflow)
            wf = self.compiled(tx, case.definition_id)
            decision = decide.set_data(
                wf,
                case,
                actor=Actor(name=actor, role=role),
                values=values,
                now=now,
                comment=comment,
            )
            return self._apply(tx, wf, case, decision, now)

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
    ) -> CaseSnapshot:
        now = now or self.clock.now()
        with self.store.transaction() as tx:
            case = self.resolve(tx, ref, workflow)
            wf = self.compiled(tx, case.definition_id)
            decision = decide.record_checklist(
                wf,
                case,
                checklist=checklist,
                items=items,
                actor=Actor(name=actor, role=role),
                now=now,
            )
            return self._apply(tx, wf, case, decision, now)

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
    ) -> CaseSnapshot:
        now = now or self.clock.now()
        with self.store.transaction() as tx:
            case = self.resolve(tx, ref, workflow)
            wf = self.compiled(tx, case.definition_id)
            pending = [
                t for t in tx.timers_of(case.id or 0) if t.timer == timer and t.epoch == case.epoch
            ]
            if not pending:
                raise RefusedError(
                    RefusalReason.INVALID_DATA,
                    f"case {case.id} has no pending deadline {timer!r} "
                    "(it may have passed already; `dk2020flow case show` lists the deadlines)",
                )
            current = _deadline_of(pending)
            decision = decide.extend_deadline(
                wf,
                case,
                timer=timer,
                current_deadline=current,
                new_deadline=to,
                by=by,
                actor=Actor(name=actor, role=role),
                reason=reason,
                now=now,
            )
            return self._apply(tx, wf, case, decision, now)

    def _apply(
        self,
        tx: Tx,
        wf: CompiledWorkflow,
        case: CaseSnapshot,
        decision: Decision,
        now: dt.datetime,
    ) -> CaseSnapshot:
        mails = self._render_all(tx, wf, decision, now)
        tx.apply(decision, mails, expected_version=case.version)
        return decision.case

    # ------------------------------------------------------------------ reading

    def show(self, ref: str, *, workflow: str | None = None) -> CaseDetails:
        with self.store.read() as tx:
            case = self.resolve(tx, ref, workflow)
            wf = self.compiled(tx, case.definition_id)
            timers = tx.timers_of(case.id or 0)
            outbox = tx.outbox(case_id=case.id, limit=50)
            return CaseDetails(
                case=case,
                definition_version=wf.workflow.version,
                timers=timers,
                outbox=outbox,
                warnings=self._warnings(tx, wf, case),
                possible_triggers=decide.available_triggers(wf, case),
            )

    def _warnings(self, tx: Tx, wf: CompiledWorkflow, case: CaseSnapshot) -> list[str]:
        """Roles this case mails that have no recipient (their mail would be parked)."""
        contacts = self._contacts(tx, wf, case)
        needed = sorted(_roles_mailed(wf))
        return [
            f"no contact in role {role!r}: its mail will be parked "
            "(import contacts with `dk2020flow participants import`)"
            for role in needed
            if not contacts.get(role)
        ]

    def history(
        self, ref: str, *, workflow: str | None = None
    ) -> tuple[CaseSnapshot, list[StoredEvent]]:
        with self.store.read() as tx:
            case = self.resolve(tx, ref, workflow)
            return case, tx.history(case.id or 0)

    def list_cases(self, flt: CaseFilter) -> list[CaseSnapshot]:
        with self.store.read() as tx:
            return tx.cases(flt)

    def definitions(self) -> list[StoredDefinition]:
        with self.store.read() as tx:
            return tx.definitions()

    def compiled_latest(self, workflow: str) -> CompiledWorkflow:
        with self.store.read() as tx:
            return self.latest(tx, workflow)

    # ------------------------------------------------------------------ migration

    def migrate(
        self,
        workflow: str,
        *,
        state_map: Mapping[str, str],
        actor: str,
        dry_run: bool,
        now: dt.datetime | None = None,
    ) -> MigrationPlan:
        """Move every open case of ``workflow`` to its newest version (dry run first)."""
        now = now or self.clock.now()
        with self.store.transaction() as tx:
            new = self.latest(tx, workflow)
            unknown = sorted(v for v in state_map.values() if v not in new.workflow.states)
            if unknown:
                raise RefusedError(
                    RefusalReason.INVALID_STATE,
                    f"--map names states that version {new.workflow.version} does not have: "
                    f"{', '.join(unknown)}",
                )
            cases = [
                c
                for c in tx.cases(CaseFilter(workflow=workflow, open_only=True))
                if c.definition_id != new.definition_id
            ]
            items: list[MigrationItem] = []
            from_versions: set[str] = set()
            decisions: list[tuple[CompiledWorkflow, CaseSnapshot, Decision]] = []
            for case in cases:
                old = self.compiled(tx, case.definition_id)
                from_versions.add(old.workflow.version)
                try:
                    decision = decide.migrate_case(
                        old,
                        new,
                        case,
                        state_map=state_map,
                        actor=Actor(name=actor, role=None),
                        now=now,
                    )
                except RefusedError as refused:
                    items.append(
                        MigrationItem(
                            case_id=case.id or 0,
                            municipality=case.municipality_name,
                            from_state=case.state,
                            to_state="?",
                            timers=[],
                            problem=str(refused),
                        )
                    )
                    continue
                decisions.append((new, case, decision))
                items.append(
                    MigrationItem(
                        case_id=case.id or 0,
                        municipality=case.municipality_name,
                        from_state=case.state,
                        to_state=decision.case.state,
                        timers=[(a.timer, a.kind.value, a.due_at) for a in decision.arm],
                    )
                )
            problems = [i for i in items if i.problem]
            apply = not dry_run and not problems
            if apply:
                for wf, case, decision in decisions:
                    self._apply(tx, wf, case, decision, now)
            return MigrationPlan(
                workflow=workflow,
                from_versions=sorted(from_versions),
                to_version=new.workflow.version,
                items=items,
                applied=apply,
            )

    # ------------------------------------------------------------------ timers (the daemon's work)

    def fire_due(self, now: dt.datetime, *, limit: int | None = None) -> DispatchResult:
        """Fire the timers due at ``now``: one transaction, a savepoint per case.

        A firing that fails is recorded as failed and does not undo the others;
        a crash before commit releases every claim (the rows stay pending).
        """
        limit = limit or self.settings.batch_size
        result = DispatchResult()
        with self.store.transaction() as tx:
            due = tx.claim_due_timers(now, limit)
            by_case: dict[int, list[DueTimer]] = {}
            for row in due:
                by_case.setdefault(row.case_id, []).append(row)
            for case_id, rows in by_case.items():
                try:
                    with tx.savepoint():
                        self._fire_case_timers(tx, case_id, rows, now, result)
                except ConflictError:
                    # Another daemon changed this case meanwhile: its rows stay pending
                    # and are fired on the next tick against the new version.
                    result.deferred += len(rows)
                except Dk2020flowError as exc:
                    result.errors.append(f"case {case_id}: {exc}")
                    with tx.savepoint():
                        for row in rows:
                            tx.finish_timer(row.id, TimerStatus.FAILED, now, str(exc)[:500])
                    result.failed += len(rows)
            result.programme += self._fire_programme(tx, now, limit)
        return result

    def _fire_case_timers(
        self, tx: Tx, case_id: int, rows: list[DueTimer], now: dt.datetime, result: DispatchResult
    ) -> None:
        case = tx.load_case(case_id)
        wf = self.compiled(tx, case.definition_id)
        version = case.version
        stale = [r for r in rows if r.epoch != case.epoch]
        for row in stale:
            tx.finish_timer(row.id, TimerStatus.DISCARDED, now, "the case left the state")
        result.discarded += len(stale)
        live = [r for r in rows if r.epoch == case.epoch]
        groups: dict[str, list[DueTimer]] = {}
        for row in live:
            groups.setdefault(row.timer, []).append(row)
        for name, group in sorted(groups.items(), key=lambda item: item[1][0].due_at):
            if group[0].epoch != case.epoch:  # an earlier firing left the state
                result.discarded += len(group)
                continue
            spec = wf.workflow.states[case.state].timers.get(name)
            if spec is None:
                for row in group:
                    tx.finish_timer(
                        row.id, TimerStatus.DISCARDED, now, "no such timer in the state"
                    )
                result.discarded += len(group)
                continue
            plan = timing.resolve_missed(
                [(row, row.due_at) for row in group],
                now=now,
                policy=spec.missed,
                burst_cap=self.settings.burst_cap,
            )
            result.deferred += len(plan.defer)
            for row, reason in plan.skip:
                if row.epoch != case.epoch:  # discarded when an earlier firing left the state
                    result.discarded += 1
                    continue
                decision = decide.skipped_firing(case, row, reason, now)
                tx.finish_timer(row.id, TimerStatus.SKIPPED, now, reason)
                tx.apply(decision, [], expected_version=version)
                case, version = decision.case, decision.case.version
                result.skipped += 1
            for row in plan.fire:
                if row.epoch != case.epoch:  # discarded when an earlier firing left the state
                    result.discarded += 1
                    continue
                fired = decide.fire_timer(wf, case, row, now)
                if fired is None:
                    tx.finish_timer(row.id, TimerStatus.DISCARDED, now, "the case left the state")
                    result.discarded += 1
                    continue
                mails = self._render_all(tx, wf, fired, now)
                # Retire the firing first: the decision may leave the state and discard
                # the case's other pending timers.
                tx.finish_timer(row.id, TimerStatus.FIRED, now)
                tx.apply(fired, mails, expected_version=version)
                case, version = fired.case, fired.case.version
                result.fired += 1

    def _fire_programme(self, tx: Tx, now: dt.datetime, limit: int) -> int:
        """Programme events: mail every case of the cohort (and region) in the named states."""
        count = 0
        for row in tx.claim_programme_timers(now, limit):
            with tx.savepoint():
                wf = self.compiled(tx, row.definition_id)
                cohort = wf.workflow.cohorts.get(row.cohort)
                event = cohort.events.get(row.event) if cohort else None
                if event is None:
                    tx.finish_programme_timer(row.id, now, "the event is no longer in the workflow")
                    continue
                cases = tx.cases(
                    CaseFilter(workflow=wf.workflow.workflow, cohort=row.cohort, open_only=True)
                )
                invited = [
                    c
                    for c in cases
                    if c.state in event.states and (not event.regions or c.region in event.regions)
                ]
                mails: list[NewMail] = []
                for case in invited:
                    intent = MailIntent(
                        template=event.mail.template,
                        to=event.mail.to,
                        cc=event.mail.cc,
                        urgent=event.mail.urgent,
                        kind="event",
                        event=f"{row.cohort}.{row.event}",
                        ics=True,
                        cancelled=event.cancelled,
                    )
                    mails.extend(
                        self._render(
                            tx, wf, case, intent, now, reminder=row.kind == "event_reminder"
                        )
                    )
                if mails:
                    tx.queue_mail(mails)
                tx.finish_programme_timer(row.id, now, f"{len(invited)} case(s) invited")
                count += 1
        return count

    def next_due_at(self) -> dt.datetime | None:
        with self.store.read() as tx:
            return tx.next_due_at()

    # ------------------------------------------------------------------ mail

    def preview(
        self, ref: str, template: str, *, language: str | None = None, workflow: str | None = None
    ) -> list[Preview]:
        """Exactly what a template would send for a case now (nothing is queued)."""
        now = self.clock.now()
        with self.store.read() as tx:
            case = self.resolve(tx, ref, workflow)
            wf = self.compiled(tx, case.definition_id)
            spec = _find_mail_spec(wf, template)
            if spec is None:
                raise NotFoundError(
                    f"the workflow does not send a template {template!r}; "
                    f"templates: {', '.join(sorted(_all_templates(wf)))}"
                )
            intent, kind_extra = spec
            pending = [t for t in tx.timers_of(case.id or 0) if t.epoch == case.epoch]
            if intent.kind == "timer" and pending:
                first = pending[0]
                intent = replace(intent, timer=first.timer, deadline_at=_deadline_of([first]))
            elif intent.kind == "timer":
                intent = replace(intent, timer=kind_extra, deadline_at=now + dt.timedelta(days=14))
            mails = self._render(tx, wf, case, intent, now, language=language)
            return [
                Preview(
                    to=m.to,
                    cc=m.cc,
                    language=m.language,
                    mail=RenderedMail(subject=m.subject, text=m.text, html=m.html),
                )
                for m in mails
            ]

    def _render_all(
        self, tx: Tx, wf: CompiledWorkflow, decision: Decision, now: dt.datetime
    ) -> list[NewMail]:
        mails: list[NewMail] = []
        for intent in decision.mails:
            mails.extend(self._render(tx, wf, decision.case, intent, now))
        return mails

    def _contacts(
        self, tx: Tx, wf: CompiledWorkflow, case: CaseSnapshot
    ) -> dict[str, list[Contact]]:
        """Recipients by role: the municipality's contacts, the case's own `<role>_email`
        fields, then the role's shared mailbox from the workflow file."""
        by_role: dict[str, list[Contact]] = {}
        for contact in tx.contacts(case.municipality_code):
            by_role.setdefault(contact.role, []).append(contact)
        for role_name, role in wf.workflow.roles.items():
            email = case.data.get(f"{role_name}_email")
            if isinstance(email, str) and email:
                name = case.data.get(f"{role_name}_name")
                own = Contact(
                    municipality_code=case.municipality_code,
                    role=role_name,
                    name=name if isinstance(name, str) else "",
                    email=email,
                    language=wf.workflow.default_language,
                )
                if all(c.email != email for c in by_role.get(role_name, [])):
                    by_role.setdefault(role_name, []).insert(0, own)
            if not by_role.get(role_name) and role.email:
                by_role[role_name] = [
                    Contact(
                        municipality_code=case.municipality_code,
                        role=role_name,
                        name=role.name or text_in(role.title, wf.workflow.default_language),
                        email=role.email,
                        language=wf.workflow.default_language,
                    )
                ]
        return by_role

    def _render(
        self,
        tx: Tx,
        wf: CompiledWorkflow,
        case: CaseSnapshot,
        intent: MailIntent,
        now: dt.datetime,
        *,
        language: str | None = None,
        reminder: bool = False,
    ) -> list[NewMail]:
        """Render one mail intent: one message per language of its To recipients."""
        definition = wf.workflow
        contacts = self._contacts(tx, wf, case)
        to = [c for role in intent.to for c in contacts.get(role, [])]
        cc = [c for role in intent.cc for c in contacts.get(role, [])]
        not_before = (
            now
            if intent.urgent
            else timing.next_office_opening(now, definition.office_hours, wf.calendar, wf.tz)
        )

        def lang_of(contact: Contact) -> str:
            if language:
                return language
            return (
                contact.language
                if contact.language in definition.languages
                else definition.default_language
            )

        if not to:
            missing = ", ".join(intent.to)
            recipient = Contact(
                municipality_code=case.municipality_code,
                role=intent.to[0],
                name="",
                email="",
                language=definition.default_language,
            )
            rendered = self._render_one(
                wf, case, intent, recipient, lang_of(recipient), now, reminder
            )
            return [
                NewMail(
                    case_id=case.id,
                    template=intent.template,
                    language=lang_of(recipient),
                    to=(),
                    cc=tuple((c.name, c.email) for c in cc),
                    subject=rendered.subject,
                    text=rendered.text,
                    html=rendered.html,
                    ics=None,
                    not_before=not_before,
                    created_at=now,
                    urgent=intent.urgent,
                    status=OutboxStatus.PARKED,
                    reason=f"no recipient in role {missing} for {case.municipality_name}: "
                    "add a contact (`dk2020flow participants import`), then `outbox retry`",
                )
            ]
        languages = list(dict.fromkeys(lang_of(c) for c in to))
        mails: list[NewMail] = []
        for lang in languages:
            group = [c for c in to if lang_of(c) == lang]
            group_cc = [c for c in cc if lang_of(c) == lang or lang == languages[0]]
            group_cc = [c for c in group_cc if all(c.email != t.email for t in group)]
            rendered = self._render_one(wf, case, intent, group[0], lang, now, reminder)
            mails.append(
                NewMail(
                    case_id=case.id,
                    template=intent.template,
                    language=lang,
                    to=tuple((c.name, c.email) for c in group),
                    cc=tuple(dict.fromkeys((c.name, c.email) for c in group_cc)),
                    subject=rendered.subject,
                    text=rendered.text,
                    html=rendered.html,
                    ics=self._ics(wf, case, intent, now),
                    not_before=not_before,
                    created_at=now,
                    urgent=intent.urgent,
                )
            )
        return mails

    def _render_one(
        self,
        wf: CompiledWorkflow,
        case: CaseSnapshot,
        intent: MailIntent,
        recipient: Contact,
        language: str,
        now: dt.datetime,
        reminder: bool,
    ) -> RenderedMail:
        definition = wf.workflow
        deadline: DeadlineView | None = None
        if intent.deadline_at is not None and intent.timer:
            deadline = DeadlineView(
                name=intent.timer, due_at=intent.deadline_at, extended=intent.extended
            )
        event: EventView | None = None
        if intent.event:
            cohort_name, event_name = intent.event.split(".", 1)
            spec = definition.cohorts[cohort_name].events[event_name]
            starts, ends = timing.event_instants(spec, wf.tz)
            event = EventView(
                name=event_name,
                title=text_in(spec.title, language, event_name),
                starts_at=starts,
                ends_at=ends,
                location=spec.location,
                cancelled=spec.cancelled,
                reminder=reminder,
            )
        transition = (
            TransitionView(trigger=intent.trigger, comment=intent.comment, actor=intent.actor)
            if intent.trigger
            else None
        )
        checklist = None
        if definition.checklists:
            name = next(iter(definition.checklists))
            entries = case.checklists.get(name, {})
            checklist = ChecklistView(
                name=name,
                entries={
                    k: ChecklistEntry(status=v.status, comment=v.comment)
                    for k, v in entries.items()
                },
            )
        context = build_context(
            definition,
            language,
            now=now,
            case=CaseView(
                id=case.id or 0,
                reference=f"{definition.workflow}-{case.municipality_code}",
                state=case.state,
                cohort=case.cohort,
                data=dict(case.data),
                opened_at=case.opened_at,
            ),
            municipality=MunicipalityView(
                code=case.municipality_code, name=case.municipality_name, region=case.region
            ),
            recipient=RecipientView(
                name=recipient.name, email=recipient.email, role=recipient.role
            ),
            deadline=deadline,
            event=event,
            transition=transition,
            checklist=checklist,
        )
        return self.renderer(wf).render(intent.template, language, context)

    def _ics(
        self, wf: CompiledWorkflow, case: CaseSnapshot, intent: MailIntent, now: dt.datetime
    ) -> str | None:
        if not intent.event and not (intent.ics and intent.deadline_at and intent.timer):
            return None
        definition = wf.workflow
        if intent.event:
            cohort_name, event_name = intent.event.split(".", 1)
            spec = definition.cohorts[cohort_name].events[event_name]
            return event_ics(
                spec,
                uid=f"event-{definition.workflow}-{cohort_name}-{event_name}@dk2020flow",
                timezone=definition.timezone,
                language=definition.default_language,
                stamp=now,
                organizer=(definition.links.help_name, definition.links.help_email)
                if definition.links.help_email
                else None,
            )
        if intent.ics and intent.deadline_at is not None and intent.timer:
            return deadline_ics(
                title=f"{text_in(definition.title, definition.default_language)}: {intent.timer}",
                due_at=intent.deadline_at,
                uid=f"deadline-{definition.workflow}-{case.municipality_code}-{intent.timer}@dk2020flow",
                timezone=definition.timezone,
                sequence=1 if intent.extended else 0,
            )
        return None


# ----------------------------------------------------------------------------- helpers


def _refusal_event(
    case: CaseSnapshot,
    trigger: str,
    actor: str,
    role: str | None,
    refused: RefusedError,
    now: dt.datetime,
) -> EventRecord:
    return EventRecord(
        kind=EventKind.REFUSED,
        at=now,
        actor=actor,
        role=role,
        trigger=trigger,
        from_state=case.state,
        to_state=case.state,
        comment=str(refused),
    )


def _deadline_of(rows: Sequence[StoredTimer]) -> dt.datetime:
    """The deadline instant of a timer from its pending rows."""
    return rows[0].deadline_at


def _programme_timers(wf: CompiledWorkflow, now: dt.datetime) -> list[ProgrammeTimer]:
    """Rows for every dated programme event and its reminders (past reminders dropped)."""
    rows: list[ProgrammeTimer] = []
    for cohort_name, cohort in wf.workflow.cohorts.items():
        for event_name, event in cohort.events.items():
            starts, _ = timing.event_instants(event, wf.tz)
            firings = timing.drop_past_reminders(timing.event_reminders(event, wf.tz), now)
            rows.append(
                ProgrammeTimer(
                    id=0,
                    definition_id=wf.definition_id,
                    cohort=cohort_name,
                    event=event_name,
                    kind="event",
                    index=0,
                    due_at=timing.add_duration(starts, event.invite_before, wf.tz, times=-1),
                )
            )
            rows.extend(
                ProgrammeTimer(
                    id=0,
                    definition_id=wf.definition_id,
                    cohort=cohort_name,
                    event=event_name,
                    kind="event_reminder",
                    index=f.index,
                    due_at=f.due_at,
                )
                for f in firings
            )
    return rows


def _roles_mailed(wf: CompiledWorkflow) -> set[str]:
    roles: set[str] = set()
    definition = wf.workflow
    for state in definition.states.values():
        for spec in state.on_entry.mail:
            roles.update(spec.to)
        for timer in state.timers.values():
            for spec in timer.on_due.mail:
                roles.update(spec.to)
    for transition in definition.transitions:
        for spec in transition.mail:
            roles.update(spec.to)
    return roles


def _all_templates(wf: CompiledWorkflow) -> set[str]:
    return {name.split(".", 1)[0] for name in wf.templates if not name.startswith("_")}


def _find_mail_spec(wf: CompiledWorkflow, template: str) -> tuple[MailIntent, str] | None:
    """The first place in the workflow that sends ``template``, as an intent to preview."""
    definition = wf.workflow
    for state in definition.states.values():
        for spec in state.on_entry.mail:
            if spec.template == template:
                return MailIntent(template=template, to=spec.to, cc=spec.cc, kind="state_entry"), ""
        for name, timer in state.timers.items():
            specs = [*timer.on_due.mail]
            if timer.reminders:
                specs.append(timer.reminders.mail)
            if timer.repeat:
                specs.append(timer.repeat.mail)
            if timer.escalate:
                specs.append(timer.escalate.mail)
            for spec in specs:
                if spec.template == template:
                    return MailIntent(
                        template=template, to=spec.to, cc=spec.cc, kind="timer", timer=name
                    ), name
    for transition in definition.transitions:
        for spec in transition.mail:
            if spec.template == template:
                return MailIntent(
                    template=template,
                    to=spec.to,
                    cc=spec.cc,
                    kind="transition",
                    trigger=transition.trigger,
                ), ""
    for cohort_name, cohort in definition.cohorts.items():
        for event_name, event in cohort.events.items():
            if event.mail.template == template:
                return MailIntent(
                    template=template,
                    to=event.mail.to,
                    cc=event.mail.cc,
                    kind="event",
                    event=f"{cohort_name}.{event_name}",
                ), ""
    return None
