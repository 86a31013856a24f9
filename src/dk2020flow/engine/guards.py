"""Evaluating `when:` guards over case data and checklists (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dk2020flow.definition.model import Condition, Workflow
from dk2020flow.engine.records import ChecklistItem, JsonValue


def holds(
    conditions: Sequence[Condition],
    workflow: Workflow,
    data: Mapping[str, JsonValue],
    checklists: Mapping[str, Mapping[str, ChecklistItem]],
) -> str | None:
    """None when every condition holds, else why the first one does not."""
    for condition in conditions:
        reason = _why_not(condition, workflow, data, checklists)
        if reason is not None:
            return reason
    return None


def _why_not(
    c: Condition,
    workflow: Workflow,
    data: Mapping[str, JsonValue],
    checklists: Mapping[str, Mapping[str, ChecklistItem]],
) -> str | None:
    if c.field is not None:
        value = data.get(c.field)
        if c.present is not None:
            present = value is not None and value != ""
            if present != c.present:
                return f"{c.field} is {'missing' if c.present else 'already set'}"
            return None
        if c.equals is not None:
            return None if value == c.equals else f"{c.field} is {value!r}, needs {c.equals!r}"
        assert c.in_ is not None
        return None if value in c.in_ else f"{c.field} is {value!r}, needs one of {list(c.in_)}"
    if c.all_true is not None:
        missing = [name for name in c.all_true if data.get(name) is not True]
        return None if not missing else f"not yet true: {', '.join(missing)}"
    if c.checklist is not None:
        assert c.all_in is not None
        items = checklists.get(c.checklist, {})
        allowed = {s.value for s in c.all_in}
        pending = [
            item_id
            for item_id in workflow.checklists[c.checklist].items
            if (item := items.get(item_id)) is None or item.status not in allowed
        ]
        if pending:
            shown = ", ".join(pending[:6]) + (" …" if len(pending) > 6 else "")
            return (
                f"checklist {c.checklist}: {len(pending)} item(s) not {'/'.join(allowed)}: {shown}"
            )
        return None
    assert c.any is not None
    reasons = [_why_not(sub, workflow, data, checklists) for sub in c.any]
    if any(r is None for r in reasons):
        return None
    return "none of: " + "; ".join(r for r in reasons if r)
