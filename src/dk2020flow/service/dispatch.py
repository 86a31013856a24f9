"""Firing due timers: the daemon's work, through the same service code as the CLI.

One transaction per batch; each case's firings all or nothing: the decisions of
the whole batch are computed first, then written with a few bulk statements (a
savepoint per case only when that fails). A firing that fails is recorded as
failed and does not undo its neighbours; a case changed by another daemon
meanwhile is left pending for the next tick; a crash before commit releases
every claim.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

from dk2020flow.definition.model import CalendarEvent
from dk2020flow.engine import decide
from dk2020flow.engine import timers as timing
from dk2020flow.engine.records import CaseSnapshot, DueTimer, MailIntent, TimerStatus
from dk2020flow.errors import Dk2020flowError, NotFoundError
from dk2020flow.localtime import to_local
from dk2020flow.service.parts import ServiceParts
from dk2020flow.store.port import (
    BatchItem,
    BatchOutcome,
    CaseFilter,
    Contact,
    DecisionStep,
    NewMail,
    Organisation,
    ProgrammeTimer,
    TimerFinish,
    Tx,
)

if TYPE_CHECKING:
    from dk2020flow.engine.machine import CompiledWorkflow


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


def fire_due(
    service: ServiceParts, now: dt.datetime, *, limit: int | None = None
) -> DispatchResult:
    """Fire the timers due at ``now``: one transaction, each case's firings all or nothing.

    The claimed cases are loaded in one query and their decisions computed and
    their mail rendered before anything is written; the store then writes the
    batch with a few bulk statements (``Tx.apply_batch``), falling back to a
    savepoint per case when the bulk write fails. A firing that fails is recorded
    as failed and does not undo the others; a case changed meanwhile keeps its
    rows pending for the next tick; a crash before commit releases every claim.
    """
    limit = limit or service.settings.batch_size
    result = DispatchResult()
    with service.store.transaction() as tx:
        due = tx.claim_due_timers(now, limit)
        by_case: dict[int, list[DueTimer]] = {}
        for row in due:
            by_case.setdefault(row.case_id, []).append(row)
        if by_case:
            _fire_batch(service, tx, by_case, now, result)
        sent, skipped = _fire_programme(service, tx, now, limit)
        result.programme += sent
        result.skipped += skipped
    return result


@dataclass(kw_only=True, slots=True)
class _Tally:
    """What one case's firings count for, once they are written."""

    fired: int = 0
    discarded: int = 0
    skipped: int = 0
    deferred: int = 0

    def add_to(self, result: DispatchResult) -> None:
        result.fired += self.fired
        result.discarded += self.discarded
        result.skipped += self.skipped
        result.deferred += self.deferred


class _BatchView:
    """The transaction, with ``contacts`` and the organisations the mail shows
    (``find_organisation`` by code) answered from one query each for the whole batch."""

    def __init__(
        self,
        tx: Tx,
        contacts: dict[str, list[Contact]],
        organisations: dict[str, Organisation],
    ) -> None:
        self._tx = tx
        self._contacts = contacts
        self._organisations = organisations

    def find_organisation(self, code_or_name: str) -> Organisation | None:
        found = self._organisations.get(code_or_name)
        return found if found is not None else self._tx.find_organisation(code_or_name)

    def contacts(self, organisation_code: str) -> list[Contact]:
        found = self._contacts.get(organisation_code)
        if found is None:
            return self._tx.contacts(organisation_code)
        return list(found)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)


def _fire_batch(
    service: ServiceParts,
    tx: Tx,
    by_case: dict[int, list[DueTimer]],
    now: dt.datetime,
    result: DispatchResult,
) -> None:
    cases = tx.load_cases(list(by_case))
    codes = sorted({case.organisation_code for case in cases.values()})
    view = cast(Tx, _BatchView(tx, tx.contacts_for(codes), tx.organisations_for(codes)))
    items: list[BatchItem] = []
    tallies: list[_Tally] = []
    failures: list[tuple[int, str]] = []
    for case_id, rows in by_case.items():
        case = cases.get(case_id)
        try:
            if case is None:
                raise NotFoundError(f"there is no case {case_id}")
            item, tally = _plan_case(service, view, case, rows, now)
        except Dk2020flowError as exc:
            failures.append((case_id, str(exc)))
            continue
        if item.steps:
            items.append(item)
            tallies.append(tally)
        else:  # nothing to write (every firing deferred by the burst cap)
            tally.add_to(result)
    outcome = tx.apply_batch(items) if items else BatchOutcome()
    for n, (item, tally) in enumerate(zip(items, tallies, strict=True)):
        if n in outcome.conflicts:
            # Another daemon or a command changed this case meanwhile: its rows stay
            # pending and fire on the next tick against the new version.
            result.deferred += len(by_case[item.case_id])
        elif n in outcome.failures:
            failures.append((item.case_id, outcome.failures[n]))
        else:
            tally.add_to(result)
    for case_id, message in failures:
        result.errors.append(f"case {case_id}: {message}")
        with tx.savepoint():
            for row in by_case[case_id]:
                tx.finish_timer(row.id, TimerStatus.FAILED, now, message[:500])
        result.failed += len(by_case[case_id])


def _plan_case(
    service: ServiceParts,
    tx: Tx,
    case: CaseSnapshot,
    rows: list[DueTimer],
    now: dt.datetime,
) -> tuple[BatchItem, _Tally]:
    """What firing ``rows`` does to ``case``, computed without writing anything.

    The steps are what was written one by one before: the same retirements and
    decisions, in the same order (``store/bulk.py`` writes them grouped).
    """
    tally = _Tally()
    steps: list[TimerFinish | DecisionStep] = []
    expected_version = case.version
    wf = service.compiled(tx, case.definition_id)
    stale = [r for r in rows if r.epoch != case.epoch]
    steps.extend(
        TimerFinish(timer_id=r.id, status=TimerStatus.DISCARDED, note="the case left the state")
        for r in stale
    )
    tally.discarded += len(stale)
    live = [r for r in rows if r.epoch == case.epoch]
    groups: dict[str, list[DueTimer]] = {}
    for row in live:
        groups.setdefault(row.timer, []).append(row)
    for name, group in sorted(groups.items(), key=lambda item: item[1][0].due_at):
        if group[0].epoch != case.epoch:  # an earlier firing left the state
            tally.discarded += len(group)
            continue
        spec = wf.workflow.states[case.state].timers.get(name)
        if spec is None:
            steps.extend(
                TimerFinish(
                    timer_id=r.id, status=TimerStatus.DISCARDED, note="no such timer in the state"
                )
                for r in group
            )
            tally.discarded += len(group)
            continue
        plan = timing.resolve_missed(
            [(row, row.due_at) for row in group],
            now=now,
            policy=spec.missed,
            burst_cap=service.settings.burst_cap,
        )
        tally.deferred += len(plan.defer)
        for row, reason in plan.skip:
            if row.epoch != case.epoch:  # discarded when an earlier firing left the state
                tally.discarded += 1
                continue
            decision = decide.skipped_firing(case, row, reason, now)
            steps.append(TimerFinish(timer_id=row.id, status=TimerStatus.SKIPPED, note=reason))
            steps.append(DecisionStep(decision=decision))
            case = decision.case
            tally.skipped += 1
        for row in plan.fire:
            if row.epoch != case.epoch:  # discarded when an earlier firing left the state
                tally.discarded += 1
                continue
            fired = decide.fire_timer(wf, case, row, now)
            if fired is None:
                steps.append(
                    TimerFinish(
                        timer_id=row.id,
                        status=TimerStatus.DISCARDED,
                        note="the case left the state",
                    )
                )
                tally.discarded += 1
                continue
            mails = service.mail.render_all(tx, wf, fired, now)
            # Retire the firing first: the decision may leave the state and discard
            # the case's other pending timers.
            steps.append(TimerFinish(timer_id=row.id, status=TimerStatus.FIRED))
            steps.append(DecisionStep(decision=fired, mails=tuple(mails)))
            case = fired.case
            tally.fired += 1
    item = BatchItem(
        case_id=rows[0].case_id, expected_version=expected_version, at=now, steps=tuple(steps)
    )
    return item, tally


def _fire_programme(service: ServiceParts, tx: Tx, now: dt.datetime, limit: int) -> tuple[int, int]:
    """Programme events: mail every case of the cohort (and region) in the named states.

    The missed-firing rule for programme events (docs/time.md, "Programme events"):
    never invite to the past. Of the firings of one event due at ``now``:

    - none is sent once the event has started (the scheduler did not run in time):
      each is written off as skipped, with the reason;
    - the invitation (or an update or a cancellation) is sent, however late;
    - a reminder due together with the invitation is superseded by it, and of
      several reminders due at once only the latest is sent.

    Returns (sent, skipped).
    """
    sent = skipped = 0
    claimed = tx.claim_programme_timers(now, limit)
    groups: dict[tuple[int, str, str], list[ProgrammeTimer]] = {}
    for row in claimed:
        groups.setdefault((row.definition_id, row.cohort, row.event), []).append(row)
    for rows in groups.values():
        first = rows[0]
        wf = service.compiled(tx, first.definition_id)
        cohort = wf.workflow.cohorts.get(first.cohort)
        event = cohort.events.get(first.event) if cohort else None
        if event is None:
            for row in rows:
                with tx.savepoint():
                    tx.finish_programme_timer(row.id, now, "the event is no longer in the workflow")
            continue
        starts, _ = timing.event_instants(event, wf.tz)
        for row, reason in _missed_programme_firings(rows, starts, now, wf.tz):
            with tx.savepoint():
                tx.finish_programme_timer(row.id, now, reason, status=TimerStatus.SKIPPED)
            skipped += 1
        for row in rows:
            if starts <= now or (
                row.kind == "event_reminder" and row is not _latest_reminder(rows)
            ):
                continue
            with tx.savepoint():
                _send_programme_firing(service, tx, wf, event, row, now)
            sent += 1
    return sent, skipped


def _latest_reminder(rows: list[ProgrammeTimer]) -> ProgrammeTimer | None:
    """The reminder of one event's due firings to send: the latest, unless an invitation goes."""
    if any(r.kind != "event_reminder" for r in rows):
        return None
    return max(rows, key=lambda r: (r.due_at, r.index))


def _missed_programme_firings(
    rows: list[ProgrammeTimer], starts: dt.datetime, now: dt.datetime, tz: ZoneInfo
) -> list[tuple[ProgrammeTimer, str]]:
    """The due firings of one event not to send, each with the reason written to its row."""
    if starts <= now:
        held = to_local(starts, tz).strftime("%Y-%m-%d %H:%M")
        return [
            (row, f"not sent: the event started at {held} (never invite to the past)")
            for row in rows
        ]
    latest = _latest_reminder(rows)
    superseded = (
        "superseded by the invitation sent at the same time"
        if latest is None
        else "superseded by a later reminder"
    )
    return [(r, superseded) for r in rows if r.kind == "event_reminder" and r is not latest]


def _send_programme_firing(
    service: ServiceParts,
    tx: Tx,
    wf: CompiledWorkflow,
    event: CalendarEvent,
    row: ProgrammeTimer,
    now: dt.datetime,
) -> None:
    cases = tx.cases(CaseFilter(workflow=wf.workflow.workflow, cohort=row.cohort, open_only=True))
    invited = [
        c
        for c in cases
        if c.state in event.states and (not event.regions or c.region in event.regions)
    ]
    # Every invited organisation's contacts in one query, not one per case.
    known = tx.contacts_for(sorted({c.organisation_code for c in invited}))
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
            # An event removed from a newer version: cancelled, one sequence up.
            cancelled=event.cancelled or row.kind == "event_cancel",
            sequence=row.index if row.kind == "event_cancel" else None,
        )
        contacts = service.mail.contacts(tx, wf, case, known=known[case.organisation_code])
        mails.extend(
            service.mail.render(
                tx,
                wf,
                case,
                intent,
                now,
                reminder=row.kind == "event_reminder",
                contacts=contacts,
            )
        )
    if mails:
        tx.queue_mail(mails)
    what = "cancellation sent to" if row.kind == "event_cancel" else "invited:"
    tx.finish_programme_timer(row.id, now, f"{what} {len(invited)} case(s)")
