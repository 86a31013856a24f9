"""Rebuilding a case from its event log (DESIGN.md invariant 2).

The log is complete: folding a case's events in order gives its state, epoch,
cohort, data and checklists. Tests use this to prove that nothing changes a
case without a trace; operators can use it to audit a case.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from dk2020flow.definition.model import Transition, Workflow
from dk2020flow.engine.records import ChecklistItem, EventKind, EventRecord, JsonValue


@dataclass(kw_only=True)
class Replayed:
    state: str = ""
    epoch: int = 0
    cohort: str | None = None
    data: dict[str, JsonValue] = field(default_factory=dict)
    checklists: dict[str, dict[str, ChecklistItem]] = field(default_factory=dict)


def replay(
    workflow: Workflow,
    events: Iterable[EventRecord],
    *,
    definitions: Mapping[int, Workflow] | None = None,
) -> Replayed:
    """Fold the events of one case, oldest first.

    With ``definitions`` (by definition id), the case's definition version is followed
    through the log — the one it was opened in, then the one each migration moved it to —
    so the transitions recorded by their index are read in the version they were taken in.
    """
    case = Replayed()
    for event in events:
        if definitions is not None and event.kind in _SWITCHES:
            key = "definition_id" if event.kind is EventKind.OPENED else "to_definition"
            ref = event.data.get(key)
            found = definitions.get(ref) if isinstance(ref, int) else None
            if found is not None:
                workflow = found
        if event.kind is EventKind.OPENED:
            case.state = event.to_state or workflow.initial_state
            case.epoch = 1
            case.data = {
                k: v for k, v in event.data.items() if k in workflow.fields and v is not None
            }
            cohort = event.data.get("cohort")
            case.cohort = cohort if isinstance(cohort, str) else None
        elif event.kind is EventKind.TRANSITION:
            transition = _taken(workflow, case.state, event)
            case.data.update(event.data)
            case.data.update(transition.sets)
            if event.to_state != case.state:
                case.epoch += 1
            case.state = event.to_state or case.state
        elif event.kind is EventKind.DATA_SET:
            case.data.update(event.data)
        elif event.kind is EventKind.CHECKLIST:
            checklist = str(event.data["checklist"])
            items = case.checklists.setdefault(checklist, {})
            for item_id, item in dict(event.data["items"]).items():
                items[item_id] = ChecklistItem(status=item["status"], comment=item["comment"])
        elif event.kind is EventKind.CHECKLIST_ANSWER:
            items = case.checklists.setdefault(str(event.data["checklist"]), {})
            for item_id, answer in dict(event.data["answers"]).items():
                items[item_id] = replace(items[item_id], answer=str(answer))
        elif event.kind is EventKind.MIGRATED:
            case.epoch += 1
            case.state = event.to_state or case.state
        cohort = case.data.get("cohort")
        if isinstance(cohort, str):
            case.cohort = cohort
    return case


_SWITCHES = (EventKind.OPENED, EventKind.MIGRATED)


def _taken(workflow: Workflow, state: str, event: EventRecord) -> Transition:
    """The transition an event took: the one it records, else (events logged before the
    index was recorded) the first of its trigger from ``state`` to its target state."""
    index = event.transition
    if index is not None and 0 <= index < len(workflow.transitions):
        recorded = workflow.transitions[index]
        if recorded.trigger == event.trigger:
            return recorded
    candidates = [
        t for t in workflow.transitions_named(event.trigger or "") if state in workflow.sources(t)
    ]
    return next((t for t in candidates if t.to == event.to_state), candidates[0])
