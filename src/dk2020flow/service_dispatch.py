"""Firing due timers: the daemon's work, through the same service code as the CLI.

One transaction per batch with a savepoint per case: a firing that fails is
recorded as failed and does not undo its neighbours; a case changed by another
daemon meanwhile is left pending for the next tick; a crash before commit
releases every claim.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dk2020flow.engine import decide
from dk2020flow.engine import timers as timing
from dk2020flow.engine.records import DueTimer, MailIntent, TimerStatus
from dk2020flow.errors import ConflictError, Dk2020flowError
from dk2020flow.store.port import CaseFilter, NewMail, Tx

if TYPE_CHECKING:
    from dk2020flow.service import Service


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


def fire_due(service: Service, now: dt.datetime, *, limit: int | None = None) -> DispatchResult:
    """Fire the timers due at ``now``: one transaction, a savepoint per case.

    A firing that fails is recorded as failed and does not undo the others;
    a crash before commit releases every claim (the rows stay pending).
    """
    limit = limit or service.settings.batch_size
    result = DispatchResult()
    with service.store.transaction() as tx:
        due = tx.claim_due_timers(now, limit)
        by_case: dict[int, list[DueTimer]] = {}
        for row in due:
            by_case.setdefault(row.case_id, []).append(row)
        for case_id, rows in by_case.items():
            try:
                with tx.savepoint():
                    _fire_case_timers(service, tx, case_id, rows, now, result)
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
        result.programme += _fire_programme(service, tx, now, limit)
    return result


def _fire_case_timers(
    service: Service,
    tx: Tx,
    case_id: int,
    rows: list[DueTimer],
    now: dt.datetime,
    result: DispatchResult,
) -> None:
    case = tx.load_case(case_id)
    wf = service.compiled(tx, case.definition_id)
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
                tx.finish_timer(row.id, TimerStatus.DISCARDED, now, "no such timer in the state")
            result.discarded += len(group)
            continue
        plan = timing.resolve_missed(
            [(row, row.due_at) for row in group],
            now=now,
            policy=spec.missed,
            burst_cap=service.settings.burst_cap,
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
            mails = service.mail.render_all(tx, wf, fired, now)
            # Retire the firing first: the decision may leave the state and discard
            # the case's other pending timers.
            tx.finish_timer(row.id, TimerStatus.FIRED, now)
            tx.apply(fired, mails, expected_version=version)
            case, version = fired.case, fired.case.version
            result.fired += 1


def _fire_programme(service: Service, tx: Tx, now: dt.datetime, limit: int) -> int:
    """Programme events: mail every case of the cohort (and region) in the named states."""
    count = 0
    for row in tx.claim_programme_timers(now, limit):
        with tx.savepoint():
            wf = service.compiled(tx, row.definition_id)
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
                    service.mail.render(
                        tx, wf, case, intent, now, reminder=row.kind == "event_reminder"
                    )
                )
            if mails:
                tx.queue_mail(mails)
            tx.finish_programme_timer(row.id, now, f"{len(invited)} case(s) invited")
            count += 1
    return count
