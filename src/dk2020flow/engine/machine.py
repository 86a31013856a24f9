"""One `transitions` machine per definition version, shared by all its cases.

A case is bound on demand: a small plain object carries its state while the
engine fires an event, so the number of machines never grows with the number
of cases (LIBRARIES.md: a machine per case costs ~50x more).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from transitions import Machine, MachineError

from dk2020flow.definition.calendar import BusinessCalendar
from dk2020flow.definition.model import Transition, Workflow
from dk2020flow.engine.guards import holds

MACHINES_BUILT = 0
"""How many machines this process has built (a test checks it does not grow with cases)."""
_lock = threading.Lock()


class BoundCase:
    """The plain object `transitions` moves; never a database row."""

    def __init__(self, state: str) -> None:
        self.state = state


@dataclass(frozen=True)
class CompiledWorkflow:
    """A loaded definition version, ready to run: workflow, clock rules and machine."""

    workflow: Workflow
    definition_id: int
    content_hash: str
    templates: dict[str, str] = field(default_factory=dict, compare=False)

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.workflow.timezone)

    @cached_property
    def calendar(self) -> BusinessCalendar:
        return BusinessCalendar(self.workflow.calendar)

    @cached_property
    def machine(self) -> Machine:
        global MACHINES_BUILT  # noqa: PLW0603 - a process-wide counter for one test
        wf = self.workflow
        machine = Machine(
            model=None,
            states=list(wf.states),
            initial=wf.initial_state,
            auto_transitions=False,
            send_event=True,
        )
        for transition in wf.transitions:
            for source in wf.sources(transition):
                machine.add_transition(
                    transition.trigger,
                    source,
                    transition.to,
                    conditions=[self._guard_for(transition)],
                )
        with _lock:
            MACHINES_BUILT += 1
        return machine

    def _guard_for(self, transition: Transition) -> Any:
        def guard(event: Any) -> bool:
            data = event.kwargs["data"]
            checklists = event.kwargs["checklists"]
            reason = holds(transition.when, self.workflow, data, checklists)
            event.kwargs["reasons"].append(reason)
            if reason is None:
                event.kwargs["chosen"].append(transition)
            return reason is None

        return guard

    def run(
        self, state: str, trigger: str, data: dict[str, Any], checklists: Any
    ) -> tuple[Transition | None, list[str]]:
        """Fire ``trigger`` from ``state``; return the transition taken or the guard reasons."""
        bound = BoundCase(state)
        chosen: list[Transition] = []
        reasons: list[str | None] = []
        try:
            self.machine.events[trigger].trigger(
                bound, data=data, checklists=checklists, chosen=chosen, reasons=reasons
            )
        except (MachineError, KeyError):
            return None, []
        if chosen:
            return chosen[0], []
        return None, [r for r in reasons if r]


_cache: dict[int, CompiledWorkflow] = {}


def compiled(
    workflow: Workflow, definition_id: int, content_hash: str, templates: dict[str, str]
) -> CompiledWorkflow:
    """The process-wide compiled form of a stored definition version (built once)."""
    with _lock:
        found = _cache.get(definition_id)
        if found is None or found.content_hash != content_hash:
            found = CompiledWorkflow(workflow, definition_id, content_hash, templates)
            _cache[definition_id] = found
        return found
