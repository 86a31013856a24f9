"""Moving running cases to a newer definition version: a dry run, then the migration.

A case that stays in its state keeps what happened to its timers there
(docs/time.md, "Migrating running cases"): a deadline moved for the case
(``case extend``) stays moved, and a firing that already fired (or was skipped
by the missed-firing policy) is not armed again, so nothing is sent twice.
The dry run lists both.

The plan is made and checked whole first (a plan with a problem moves nothing);
applying it then commits in chunks of ``CHUNK_SIZE`` cases, each its own write
transaction, so that a crash loses at most the chunk it was in (issue #17): running
the migration again moves the rest, as cases already moved are no longer open on an
old version.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from dk2020flow.engine import decide
from dk2020flow.engine.decide import Actor
from dk2020flow.engine.machine import CompiledWorkflow
from dk2020flow.engine.records import CaseSnapshot, Decision, TimerArm, TimerKind, TimerStatus
from dk2020flow.errors import Dk2020flowError, RefusalReason, RefusedError
from dk2020flow.service.parts import ServiceParts
from dk2020flow.store.port import CaseFilter, StoredTimer, Tx

CHUNK_SIZE = 500
"""Cases moved per write transaction: small enough that a transaction stays short and
a crash loses little, large enough that the commits cost little beside the work."""


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
    moved: bool = False
    """Whether the migration moved the case (never in a dry run; not when the case was
    closed or moved by someone else after the plan was made)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class MigrationPlan:
    workflow: str
    from_versions: list[str]
    to_version: str
    items: list[MigrationItem]
    applied: bool
    moved: int = 0
    """How many cases the migration moved."""


class MigrationInterruptedError(Dk2020flowError):
    """Applying a migration failed in one chunk: that chunk was rolled back, the chunks
    before it stay committed. Running the migration again moves the rest."""

    def __init__(self, cause: Dk2020flowError, *, moved: int, remaining: int) -> None:
        super().__init__(
            f"the migration stopped: {cause} — the {moved} case(s) moved before stay "
            f"moved; {remaining} case(s) are not moved yet: run the migration again "
            "to move them"
        )
        self.exit_code = cause.exit_code
        self.moved = moved
        self.remaining = remaining


def migrate(
    service: ServiceParts,
    workflow: str,
    *,
    state_map: Mapping[str, str],
    actor: str,
    dry_run: bool,
    now: dt.datetime | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> MigrationPlan:
    """Move every open case of ``workflow`` to its newest version (dry run first).

    The plan is made in one read; unless it is a dry run or has a problem, it is
    then applied ``chunk_size`` cases per transaction (``_apply``).
    """
    now = now or service.clock.now()
    who = Actor(name=actor, role=None)
    with service.store.read() as tx:
        new = service.latest(tx, workflow)
        unknown = sorted(v for v in state_map.values() if v not in new.workflow.states)
        if unknown:
            raise RefusedError(
                RefusalReason.INVALID_STATE,
                f"--map names states that version {new.workflow.version} does not have: "
                f"{', '.join(unknown)}",
            )
        items: list[MigrationItem] = []
        from_versions: set[str] = set()
        found_on: dict[int, int] = {}  # case id -> the definition the plan found it on
        for case in tx.cases(CaseFilter(workflow=workflow, open_only=True)):
            if case.definition_id == new.definition_id:
                continue
            old = service.compiled(tx, case.definition_id)
            from_versions.add(old.workflow.version)
            found_on[case.id or 0] = case.definition_id
            item, _ = _decide(tx, old, new, case, state_map=state_map, actor=who, now=now)
            items.append(item)
    apply = not dry_run and not any(i.problem for i in items)
    moved = 0
    if apply:
        items, moved = _apply(
            service,
            new,
            items,
            found_on,
            state_map=state_map,
            actor=who,
            now=now,
            chunk_size=chunk_size,
        )
    return MigrationPlan(
        workflow=workflow,
        from_versions=sorted(from_versions),
        to_version=new.workflow.version,
        items=items,
        applied=apply,
        moved=moved,
    )


def _apply(
    service: ServiceParts,
    new: CompiledWorkflow,
    planned: Sequence[MigrationItem],
    found_on: Mapping[int, int],
    *,
    state_map: Mapping[str, str],
    actor: Actor,
    now: dt.datetime,
    chunk_size: int,
) -> tuple[list[MigrationItem], int]:
    """The planned cases moved to ``new``, ``chunk_size`` per write transaction.

    Each chunk loads its cases again and decides again for each, as the case may have
    changed since the plan was made. A case closed since, or no longer on the version
    the plan found it on (``found_on``: moved by another migration), is left as it is.
    Returns the items as applied and how many cases moved.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
    applied = {item.case_id: item for item in planned}
    ids = list(applied)
    moved = 0
    for start in range(0, len(ids), chunk_size):
        chunk = ids[start : start + chunk_size]
        outcome: list[MigrationItem] = []
        try:
            with service.store.transaction() as tx:
                cases = tx.load_cases(chunk)
                for case_id in chunk:
                    case = cases.get(case_id)
                    if case is None or case.closed or case.definition_id != found_on[case_id]:
                        continue
                    old = service.compiled(tx, case.definition_id)
                    item, decision = _decide(
                        tx, old, new, case, state_map=state_map, actor=actor, now=now
                    )
                    if decision is not None:
                        service.apply(tx, new, case, decision, now)
                        item = replace(item, moved=True)
                    outcome.append(item)
        except Dk2020flowError as error:
            raise MigrationInterruptedError(
                error, moved=moved, remaining=len(ids) - start
            ) from error
        # Committed: only now does the chunk count as done.
        applied.update((item.case_id, item) for item in outcome)
        moved += sum(item.moved for item in outcome)
    return list(applied.values()), moved


def _decide(
    tx: Tx,
    old: CompiledWorkflow,
    new: CompiledWorkflow,
    case: CaseSnapshot,
    *,
    state_map: Mapping[str, str],
    actor: Actor,
    now: dt.datetime,
) -> tuple[MigrationItem, Decision | None]:
    """What migrating ``case`` from ``old`` to ``new`` does: its plan item, and the
    decision to apply (``None`` when it is refused: the item says why)."""
    stays = state_map.get(case.state, case.state) == case.state
    kept, done = _carried_timers(tx, old, case) if stays else ({}, [])
    try:
        decision = decide.migrate_case(
            old,
            new,
            case,
            state_map=state_map,
            actor=actor,
            now=now,
            kept_deadlines=kept,
            done_firings=_keys_by_timer(done),
        )
    except RefusedError as refused:
        return MigrationItem(
            case_id=case.id or 0,
            organisation=case.organisation_name,
            from_state=case.state,
            to_state="?",
            timers=[],
            problem=str(refused),
        ), None
    decision = replace(decision, arm=decision.arm + _carried_arms(new, old, decision, kept, done))
    timers = new.workflow.states[decision.case.state].timers
    item = MigrationItem(
        case_id=case.id or 0,
        organisation=case.organisation_name,
        from_state=case.state,
        to_state=decision.case.state,
        timers=[
            (a.timer, a.kind.value, a.due_at)
            for a in decision.arm
            if a.status is TimerStatus.PENDING
        ],
        kept_deadlines=sorted((n, d) for n, d in kept.items() if n in timers),
        not_rearmed=[
            (r.timer, f"{r.kind}.{r.index}", r.fired_at or r.due_at)
            for r in done
            if r.timer in timers
        ],
    )
    return item, decision


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
