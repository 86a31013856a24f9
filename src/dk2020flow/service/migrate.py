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

The cost is per chunk, not per case, where it can be: the plan and each chunk of the
migration read the chunk's cases and their timers in one query each
(``Tx.load_cases``, ``Tx.epoch_timers_of``), and a chunk's decisions are written
together through the store's batch path (``Tx.apply_batch``, as ``fire_due`` writes
its firings), which refreshes the chunk's deadline columns once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from dk2020flow.engine import decide
from dk2020flow.engine.decide import Actor
from dk2020flow.engine.machine import CompiledWorkflow
from dk2020flow.engine.records import CaseSnapshot, Decision, TimerArm, TimerKind, TimerStatus
from dk2020flow.errors import ConflictError, Dk2020flowError, RefusalReason, RefusedError
from dk2020flow.service.parts import ServiceParts
from dk2020flow.store.errors import StoreError
from dk2020flow.store.port import (
    BatchItem,
    BatchOutcome,
    CaseFilter,
    DecisionStep,
    StoredTimer,
    Tx,
)

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
    """The plan's cases, in case order: every one, or (``migrate(items_kept=N)``) the
    first N and every one with a problem."""
    applied: bool
    moved: int = 0
    """How many cases the migration moved."""
    cases: int = 0
    """How many cases the plan covers (``items`` may hold fewer)."""
    moves: list[tuple[str, str, int]] = field(default_factory=list)
    """How many of them go from each state to which: ``(from, to, cases)``, the most
    first (a case with a problem goes to ``"?"``)."""

    @property
    def problems(self) -> list[MigrationItem]:
        """The cases that cannot move as the plan stands (each says why)."""
        return [item for item in self.items if item.problem]


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
    items_kept: int | None = None,
) -> MigrationPlan:
    """Move every open case of ``workflow`` to its newest version (dry run first).

    The plan is made in one read transaction, ``chunk_size`` cases at a time; unless it
    is a dry run or has a problem, it is then applied ``chunk_size`` cases per
    transaction (``_apply``). ``items_kept``: how many of the plan's items to return
    (the first ones, and every one with a problem besides; None: all) — what the plan
    holds then grows with the cases by their ids alone (``cases`` and ``moves`` count
    every case).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
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
        planned: list[int] = []  # the cases to move, in order
        found_on: list[int] = []  # the definition the plan found each on
        counts: dict[tuple[str, str], int] = {}
        problems = 0
        ids = tx.case_ids(CaseFilter(workflow=workflow, open_only=True))
        for chunk in _slices(ids, chunk_size):
            loaded = tx.load_cases(chunk)
            cases = [
                case
                for case in (loaded.get(case_id) for case_id in chunk)
                if case is not None and not case.closed and case.definition_id != new.definition_id
            ]
            for case, item, _ in _decide_all(
                service, tx, new, cases, state_map=state_map, actor=who, now=now
            ):
                from_versions.add(service.compiled(tx, case.definition_id).workflow.version)
                key = (item.from_state, item.to_state)
                counts[key] = counts.get(key, 0) + 1
                problems += bool(item.problem)
                if items_kept is None or len(planned) < items_kept or item.problem:
                    items.append(item)
                planned.append(item.case_id)
                found_on.append(case.definition_id)
    apply = not dry_run and not problems
    moved = 0
    if apply:
        items, moved = _apply(
            service,
            new,
            planned,
            found_on,
            items,
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
        cases=len(planned),
        moves=sorted(
            ((src, dst, n) for (src, dst), n in counts.items()), key=lambda m: (-m[2], m[:2])
        ),
    )


def _slices(ids: Sequence[int], size: int) -> list[Sequence[int]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def _apply(
    service: ServiceParts,
    new: CompiledWorkflow,
    planned: Sequence[int],
    found_on: Sequence[int],
    kept: Sequence[MigrationItem],
    *,
    state_map: Mapping[str, str],
    actor: Actor,
    now: dt.datetime,
    chunk_size: int,
) -> tuple[list[MigrationItem], int]:
    """The ``planned`` cases moved to ``new``, ``chunk_size`` per write transaction.

    Each chunk loads its cases again and decides again for each, as the case may have
    changed since the plan was made. A case closed since, or no longer on the version
    the plan found it on (``found_on``, by position: moved by another migration), is
    left as it is. The chunk's decisions are written together (``Tx.apply_batch``); a
    case changed meanwhile, or a write that fails, rolls the whole chunk back.
    Returns the ``kept`` items as applied (and any refused now) and how many cases moved.
    """
    applied = {item.case_id: item for item in kept}
    moved = 0
    for start in range(0, len(planned), chunk_size):
        chunk = planned[start : start + chunk_size]
        on = dict(zip(chunk, found_on[start : start + chunk_size], strict=True))
        outcome: list[MigrationItem] = []
        try:
            with service.store.transaction() as tx:
                loaded = tx.load_cases(chunk)
                cases = [
                    case
                    for case in (loaded.get(case_id) for case_id in chunk)
                    if case is not None
                    and not case.closed
                    and case.definition_id == on[case.id or 0]
                ]
                batch: list[BatchItem] = []
                for case, item, decision in _decide_all(
                    service, tx, new, cases, state_map=state_map, actor=actor, now=now
                ):
                    if decision is None:
                        outcome.append(item)
                        continue
                    # What ``Service.apply`` writes, in one batch for the chunk.
                    mails = service.mail.render_all(tx, new, decision, now)
                    step = DecisionStep(decision=decision, mails=tuple(mails))
                    batch.append(
                        BatchItem(
                            case_id=item.case_id,
                            expected_version=case.version,
                            at=now,
                            steps=(step,),
                        )
                    )
                    outcome.append(replace(item, moved=True))
                if batch:
                    _written(batch, tx.apply_batch(batch))
        except Dk2020flowError as error:
            raise MigrationInterruptedError(
                error, moved=moved, remaining=len(planned) - start
            ) from error
        # Committed: only now does the chunk count as done. A case refused now (changed
        # since the plan) is not moved: its item says why, kept or not.
        applied.update(
            (item.case_id, item) for item in outcome if item.case_id in applied or item.problem
        )
        moved += sum(item.moved for item in outcome)
    return sorted(applied.values(), key=lambda item: item.case_id), moved


def _written(batch: Sequence[BatchItem], outcome: BatchOutcome) -> None:
    """Raise (so that the chunk's transaction rolls back) if a case of ``batch`` was not
    written: a chunk moves whole or not at all."""
    if outcome.conflicts:
        case_id = batch[min(outcome.conflicts)].case_id
        raise ConflictError(f"case {case_id} was changed by someone else while the migration ran")
    if outcome.failures:
        n = min(outcome.failures)
        raise StoreError(f"case {batch[n].case_id}: {outcome.failures[n]}")


def _decide_all(
    service: ServiceParts,
    tx: Tx,
    new: CompiledWorkflow,
    cases: Sequence[CaseSnapshot],
    *,
    state_map: Mapping[str, str],
    actor: Actor,
    now: dt.datetime,
) -> list[tuple[CaseSnapshot, MigrationItem, Decision | None]]:
    """``_decide`` for each of ``cases``, their timers read in one query."""
    timers = tx.epoch_timers_of([case.id or 0 for case in cases])
    decided = []
    for case in cases:
        old = service.compiled(tx, case.definition_id)
        rows = timers.get(case.id or 0, [])
        item, decision = _decide(old, new, case, rows, state_map=state_map, actor=actor, now=now)
        decided.append((case, item, decision))
    return decided


def _decide(
    old: CompiledWorkflow,
    new: CompiledWorkflow,
    case: CaseSnapshot,
    rows: Sequence[StoredTimer],
    *,
    state_map: Mapping[str, str],
    actor: Actor,
    now: dt.datetime,
) -> tuple[MigrationItem, Decision | None]:
    """What migrating ``case`` from ``old`` to ``new`` does: its plan item, and the
    decision to apply (``None`` when it is refused: the item says why). ``rows``: the
    case's timers (``Tx.epoch_timers_of``)."""
    stays = state_map.get(case.state, case.state) == case.state
    kept, done = _carried_timers(rows, old, case) if stays else ({}, [])
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
    timers: Sequence[StoredTimer], old: CompiledWorkflow, case: CaseSnapshot
) -> tuple[dict[str, dt.datetime], list[StoredTimer]]:
    """What a case staying in its state carries over: (moved deadlines, done firings).

    For each timer of the state, its current arming is the deadline of its most
    recently armed row in the case's epoch. That deadline is kept when it is not
    the one the old version computes for the case (it was moved for this case).
    The done firings are the rows of that arming that fired or were skipped;
    firings of a deadline that was moved away from are not counted (a reminder
    of the moved deadline is a new reminder).
    """
    rows = [r for r in timers if r.epoch == case.epoch]
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
