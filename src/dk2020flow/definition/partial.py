"""Checking what can be checked in a file with shape errors.

A shape error (DF010–DF013) used to hide every other diagnostic: fix one, meet
seven more. ``salvage`` removes the nodes the schema refuses (an unknown key,
a value of the wrong type, an entry that breaks a rule) from a copy of the
document until the rest is a ``Workflow``, so the validator can report the
problems that do not depend on them. ``Damage`` records what was removed, so
that no diagnostic is reported that only the removal caused: a reference to a
state whose entry had an error is not "unknown", and the graph checks (which
read every state and transition) are skipped when a state or transition was cut.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from dk2020flow.definition.model import Workflow
from dk2020flow.definition.source import Locator, NodePath

MAX_ROUNDS = 8
"""Removing a node lets the validators of its parents run; each round goes one level up."""

NAMED = {
    "states": "state",
    "roles": "role",
    "fields": "field",
    "cohorts": "cohort",
    "checklists": "checklist",
    "documents": "document",
}
"""Top-level mappings whose entries other parts of the file refer to by name."""

PLACEHOLDERS = {"workflow": "unnamed", "version": "?", "title": "?"}
"""Required top-level values that no check reads, filled in when they are wrong or missing."""


@dataclass
class Damage:
    """What ``salvage`` cut out of the document, to keep dependent diagnostics quiet."""

    names: dict[str, set[str]] = field(default_factory=dict)
    """Per kind (``state``, ``role``, ``field``, ``cohort``, ``checklist``, ``document``,
    ``trigger``): the names of entries that had a shape error."""
    whole: set[str] = field(default_factory=set)
    """Kinds whose whole top-level mapping was cut (every name counts as damaged)."""
    top: set[str] = field(default_factory=set)
    """Top-level keys under which something was cut or filled in."""

    def has(self, kind: str, name: object) -> bool:
        return kind in self.whole or name in self.names.get(kind, set())

    @property
    def graph(self) -> bool:
        """True when a state or transition was cut: the state graph is not the file's."""
        return bool({"states", "transitions"} & self.top)

    @property
    def templates(self) -> bool:
        """True when the template checks cannot be trusted (the name or languages were cut)."""
        return bool({"workflow", "languages"} & self.top)

    def note(self, path: NodePath, data: dict[str, Any]) -> None:
        top = path[0]
        self.top.add(str(top))
        kind = NAMED.get(str(top))
        if kind is not None:
            if len(path) == 1:
                self.whole.add(kind)
            else:
                self.names.setdefault(kind, set()).add(str(path[1]))
        elif top == "transitions":
            if len(path) == 1:
                self.whole.add("trigger")
                return
            item = _get(data, path[:2])
            trigger = item.get("trigger") if isinstance(item, dict) else None
            if isinstance(trigger, str):
                self.names.setdefault("trigger", set()).add(trigger)
            else:
                self.whole.add("trigger")


def salvage(
    data: dict[str, Any], locator: Locator, exc: ValidationError
) -> tuple[Workflow, Locator, Damage] | None:
    """The workflow without the nodes the schema refused, its positions, and what was cut.

    None when no such workflow exists (``states`` or ``roles`` themselves are broken).
    """
    data = copy.deepcopy(data)
    damage = Damage()
    errors = exc.errors(include_url=False)
    for _ in range(MAX_ROUNDS):
        removed: set[NodePath] = set()
        for error in errors:
            path = _prune_path(error, locator)
            if path is None:
                return None
            if len(path) == 1 and path[0] in PLACEHOLDERS:
                data[path[0]] = PLACEHOLDERS[path[0]]
                damage.top.add(path[0])
                continue
            if len(path) == 1 and path[0] in {"states", "roles"}:
                return None
            if error["type"] != "extra_forbidden":
                damage.note(path, data)
            removed.add(path)
        removed = {p for p in removed if not any(p[:n] in removed for n in range(1, len(p)))}
        lists = {p[:-1] for p in removed if isinstance(_get(data, p[:-1]), list)}
        locator = locator.pruned(removed, lists)
        for path in sorted(removed, key=_deletion_order):
            parent = _get(data, path[:-1])
            if isinstance(parent, dict | list):
                del parent[path[-1]]
        try:
            return Workflow.model_validate(data), locator, damage
        except ValidationError as again:
            errors = again.errors(include_url=False)
    return None


def _prune_path(error: ErrorDetails, locator: Locator) -> NodePath | None:
    """The node to cut for one error: the value, the entry whose key is wrong, or the
    mapping that lacks a required key. None when that would be the whole document."""
    loc = tuple(error["loc"])
    if loc[-1:] == ("[key]",):
        loc = loc[:-1]
    elif error["type"] == "missing":
        if len(loc) == 1 and loc[0] in PLACEHOLDERS:
            return loc
        loc = loc[:-1]
    path = locator.real_path(loc)
    return path or None


def _get(data: Any, path: NodePath) -> Any:
    node = data
    for step in path:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _deletion_order(path: NodePath) -> tuple[int, list[tuple[int, str]]]:
    """Deepest first, and later list items before earlier ones (indexes stay valid)."""
    steps = [(-step, "") if isinstance(step, int) else (0, str(step)) for step in path]
    return -len(path), steps
