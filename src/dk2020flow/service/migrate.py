"""Moving running cases to a newer definition version: a dry run, then the migration.

A case that stays in its state keeps what happened to its timers there
(docs/time.md, "Migrating running cases"): a deadline moved for the case
(``case extend``) stays moved, and a firing that already fired (or was skipped
by the missed-firing policy) is not armed again, so nothing is sent twice.
The dry run lists both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from dk2020flow.engine import decide
from dk2020flow.engine.decide import Actor
from dk2020flow.engine.machine import CompiledWorkflow
from dk2020flow.engine.records import CaseSnapshot, Decision, TimerArm, TimerKind, TimerStatus
from dk2020flow.errors import RefusalReason, RefusedError
from dk2020flow.service.parts import ServiceParts
from dk2020flow.store.port import CaseFilter, StoredTimer, Tx


@dataclass(frozen=True, kw_only=True, slots=True)
class MigrationItem:
    case_id: int
    organisation: str
    from_state: str
    to_state: str
    timers: list[tuple[str, str, dt.datetime]]
    """The firings armed in the new version: (timer, kind, due at)."""
    problem: str = ""
    kept_deadlines: list[tuple[str, dt.datetime]] = field(default_factory=list)
    """Deadlines moved for this case that the migration keeps: (timer, deadline)."""
    not_rearmed: list[tuple[str, str, dt.datetime]] = field(default_factory=list)
    """Firings already done in the state, not armed again: (timer, firing, fired at)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class MigrationPlan:
    workflow: str
    from_versions: list[str]
    to_version: str
    items: list[MigrationItem]
    applied: bool


def migrate(
    service: ServiceParts,
    workflow: str,
    *,
    state_map: Mapping[str, str],
    actor: str,
    dry_run: bool,
    now: dt.datetime | None = None,
) -> MigrationPlan:
    """Move every open case of ``workflow`` to its newest version (dry run first)."""
    now = now or service.clock.now()
    with service.store.transaction() as tx:
        new = service.latest(tx, workflow)
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
            old = service.compiled(tx, case.definition_id)
            from_versions.add(old.workflow.version)
            stays = state_map.get(case.state, case.state) == case.state
            kept, done = _carried_timers(tx, old, case) if stays else ({}, [])
            try:
                decision = decide.migrate_case(
                    old,
                    new,
                    case,
                    state_map=state_map,
                    actor=Actor(name=actor, role=None),
                    now=now,
                    kept_deadlines=kept,
                    done_firings=_keys_by_timer(done),
                )
            except RefusedError as refused:
                items.append(
                    MigrationItem(
                        case_id=case.id or 0,
                        organisation=case.organisation_name,
                        from_state=case.state,
                        to_state="?",
                        timers=[],
                        problem=str(refused),
                    )
                )
                continue
            decision = replace(
                decision, arm=decision.arm + _carried_arms(new, old, decision, kept, done)
            )
            decisions.append((new, case, decision))
            items.append(
                MigrationItem(
                    case_id=case.id or 0,
                    organisation=case.organisation_name,
                    from_state=case.state,
                    to_state=decision.case.state,
                    timers=[
                        (a.timer, a.kind.value, a.due_at)
                        for a in decision.arm
                        if a.status is TimerStatus.PENDING
                    ],
                    kept_deadlines=sorted(
                        (n, d)
                        for n, d in kept.items()
                        if n in new.workflow.states[case.state].timers
                    ),
                    not_rearmed=[
                        (r.timer, f"{r.kind}.{r.index}", r.fired_at or r.due_at)
                        for r in done
                        if r.timer in new.workflow.states[case.state].timers
                    ],
                )
            )
        problems = [i for i in items if i.problem]
        apply = not dry_run and not problems
        if apply:
            for wf, case, decision in decisions:
                service.apply(tx, wf, case, decision, now)
        return MigrationPlan(
            workflow=workflow,
            from_versions=sorted(from_versions),
            to_version=new.workflow.version,
            items=items,
            applied=apply,
        )


_DONE = frozenset({TimerStatus.FIRED, TimerStatus.SKIPPED})


def _carried_timers(
    tx: Tx, old: CompiledWorkflow, case: CaseSnapshot
) -> tuple[dict[str, dt.datetime], list[StoredTimer]]:
    """What a case staying in its state carries over: (moved deadlines, done firings).

    For each timer of the state, its current arming is the deadline of its most
    recently armed row in the case's epoch. That deadline is kept when it is not
    the one the old version computes for the case (it was moved for this case).
    The done firings are the rows of that arming that fired or were skipped;
    firings of a deadline that was moved away from are not counted (a reminder
    of the moved deadline is a new reminder).
    """
    rows = [r for r in tx.timers_of(case.id or 0, pending_only=False) if r.epoch == case.epoch]
    kept: dict[str, dt.datetime] = {}
    done: list[StoredTimer] = []
    for name, spec in old.workflow.states[case.state].timers.items():
        armed = [r for r in rows if r.timer == name]
        if not armed:
            continue
        deadline = max(armed, key=lambda r: r.id).deadline_at
        if deadline != decide.deadline_of(old, case, spec):
            kept[name] = deadline
        done.extend(r for r in armed if r.deadline_at == deadline and r.status in _DONE)
    return kept, sorted(done, key=lambda r: (r.fired_at or r.due_at, r.id))


def _carried_arms(
    new: CompiledWorkflow,
    old: CompiledWorkflow,
    decision: Decision,
    kept: Mapping[str, dt.datetime],
    done: list[StoredTimer],
) -> tuple[TimerArm, ...]:
    """The done firings, written again in the new epoch as done (fired or skipped).

    The new state entry then holds the whole arming of each deadline — what is still to
    fire and what fired already — under the deadline now in force: the case stays late on
    it (``engine.timers.is_late``) and a later migration again finds what was sent.
    """
    moved = decision.case
    timers = new.workflow.states[moved.state].timers
    note = f"fired before the migration from version {old.workflow.version}"
    arms: list[TimerArm] = []
    for row in done:
        spec = timers.get(row.timer)
        if spec is None:
            continue
        deadline = kept.get(row.timer) or decide.deadline_of(new, moved, spec)
        if deadline is None:
            continue
        arms.append(
            TimerArm(
                timer=row.timer,
                kind=TimerKind(row.kind),
                index=row.index,
                due_at=row.due_at,
                deadline_at=deadline,
                epoch=moved.epoch,
                status=row.status,
                fired_at=row.fired_at,
                note=f"{note} ({row.note})" if row.note else note,
            )
        )
    return tuple(arms)


def _keys_by_timer(done: list[StoredTimer]) -> dict[str, frozenset[str]]:
    keys: dict[str, set[str]] = {}
    for row in done:
        keys.setdefault(row.timer, set()).add(f"{row.kind}.{row.index}")
    return {name: frozenset(found) for name, found in keys.items()}
