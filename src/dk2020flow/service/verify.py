"""Checking a case's audit log: its hash chain, and that replaying it gives the case.

``dk2020flow case verify`` (``Service.verify``) reads each case's events and

1. checks they are numbered 1, 2, 3 … with no gap;
2. recomputes each event's hash from its content and the previous event's stored hash
   (``store/chain.py``): an event changed after it was written does not match, and an
   event removed from the middle breaks the link of the one after it;
3. replays the log (``engine/replay.py``, following the definition versions the case
   went through) and compares the result with the stored case row: state, epoch,
   cohort, data and checklists.

Any difference is a problem, described in one line naming the event or the value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dk2020flow.definition.model import Workflow
from dk2020flow.engine.records import CaseSnapshot, EventKind
from dk2020flow.engine.replay import replay
from dk2020flow.store.chain import GENESIS, row_hash
from dk2020flow.store.port import StoredEvent

VERIFY_FAILED_EXIT = 7
"""The exit code of `case verify` when a case's log does not check out."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseCheck:
    """What `case verify` found for one case (``problems`` empty: all is well)."""

    case_id: int
    workflow: str
    organisation: str
    events: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_case(
    case: CaseSnapshot,
    events: Sequence[StoredEvent],
    workflow_of: Callable[[int], Workflow],
) -> CaseCheck:
    """The chain and the replay of one case's log, against the stored case."""
    problems = chain_problems(events)
    problems += replay_problems(case, events, workflow_of)
    return CaseCheck(
        case_id=case.id or 0,
        workflow=case.workflow,
        organisation=case.organisation_name,
        events=len(events),
        problems=tuple(problems),
    )


def chain_problems(events: Sequence[StoredEvent]) -> list[str]:
    problems: list[str] = []
    prev = GENESIS
    last = 0
    for event in events:
        if event.seq != last + 1:
            problems.append(
                f"event #{event.seq} follows #{last}: "
                f"{event.seq - last - 1} event(s) missing from the log"
                if event.seq > last
                else f"event #{event.seq} is out of order (after #{last})"
            )
        last = event.seq
        record = event.record
        recomputed = row_hash(
            {
                "case_id": event.case_id,
                "at": record.at,
                "kind": record.kind.value,
                "actor": record.actor,
                "role": record.role,
                "trigger": record.trigger,
                "from_state": record.from_state,
                "to_state": record.to_state,
                "comment": record.comment,
                "data": dict(record.data),
                "epoch": event.epoch,
                "transition": record.transition,
            },
            prev,
        )
        what = f"event #{event.seq} ({record.kind.value}, {record.at.isoformat()})"
        if event.hash is None:
            problems.append(f"{what} has no hash: it was not written by dk2020flow")
        elif event.hash != recomputed:
            problems.append(
                f"{what}: its hash does not match its content and the event before it "
                "(the event was changed, or one before it removed, after it was written)"
            )
        prev = event.hash or recomputed
    return problems


def replay_problems(
    case: CaseSnapshot,
    events: Sequence[StoredEvent],
    workflow_of: Callable[[int], Workflow],
) -> list[str]:
    records = [e.record for e in events]
    if not records or records[0].kind is not EventKind.OPENED:
        return ["the log does not begin with the case's opening"]
    ids = {case.definition_id}
    for record in records:
        for key in ("definition_id", "to_definition"):
            ref = record.data.get(key) if record.kind in _SWITCHES else None
            if isinstance(ref, int):
                ids.add(ref)
    definitions = {i: workflow_of(i) for i in sorted(ids)}
    first = records[0].data.get("definition_id")
    start = definitions[first] if isinstance(first, int) else definitions[case.definition_id]
    try:
        rebuilt = replay(start, records, definitions=definitions)
    except (KeyError, StopIteration, IndexError, TypeError, ValueError) as error:
        return [f"the log cannot be replayed: {type(error).__name__}: {error}"]
    problems: list[str] = []
    checklists = {k: dict(v) for k, v in case.checklists.items()}
    compared: list[tuple[str, Any, Any]] = [
        ("state", rebuilt.state, case.state),
        ("epoch", rebuilt.epoch, case.epoch),
        ("cohort", rebuilt.cohort, case.cohort),
    ]
    for name, logged, stored in compared:
        if logged != stored:
            problems.append(f"{name}: the log gives {logged!r}, the case row says {stored!r}")
    data = dict(case.data)
    for field in sorted(set(rebuilt.data) | set(data)):
        if rebuilt.data.get(field) != data.get(field):
            problems.append(
                f"data {field}: the log gives {rebuilt.data.get(field)!r}, "
                f"the case row says {data.get(field)!r}"
            )
    if rebuilt.checklists != checklists:
        names = sorted(
            n
            for n in set(rebuilt.checklists) | set(checklists)
            if rebuilt.checklists.get(n, {}) != checklists.get(n, {})
        )
        if names:
            problems.append(f"checklists {', '.join(names)}: the log and the case row differ")
    return problems


_SWITCHES = (EventKind.OPENED, EventKind.MIGRATED)
