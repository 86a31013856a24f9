"""One `transitions` machine per definition version, shared by all its cases.

A case is bound on demand: a small plain object carries its state while the
engine fires an event, so the number of machines never grows with the number
of cases (LIBRARIES.md: a machine per case costs ~50x more).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from transitions import Machine, MachineError

from dk2020flow.definition.calendar import BusinessCalendar, organisation_calendar
from dk2020flow.definition.model import Timer, Transition, Workflow
from dk2020flow.engine.guards import holds
from dk2020flow.engine.records import CaseSnapshot

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
        """The programme's calendar: the workflow's ``calendar``."""
        return BusinessCalendar(self.workflow.calendar)

    def calendar_for(self, timer: Timer, case: CaseSnapshot) -> BusinessCalendar:
        """The calendar ``timer`` counts its business days on for ``case``: the public
        holidays of the case's organisation's country and subdivision for a timer marked
        ``calendar: organisation`` (shared per country and subdivision), else — and for an
        organisation with no country — the programme's."""
        return self.timer_calendar(timer, case.country, case.subdivision)

    def timer_calendar(self, timer: Timer, country: str, subdivision: str) -> BusinessCalendar:
        """:meth:`calendar_for` for an organisation in ``country`` and ``subdivision``
        ('' when not known), without its case (a report over timer rows)."""
        if timer.calendar == "organisation":
            own = organisation_calendar(country, subdivision)
            if own is not None:
                return own
        return self.calendar

    @cached_property
    def machine(self) -> Machine:
        """The definition's transitions, in file order, each with two conditions:
        the actor's role may fire it, and its ``when`` guard holds. The library
        tries the transitions of a trigger from the case's state in that order
        and takes the first whose conditions hold: it alone decides."""
        global MACHINES_BUILT  # noqa: PLW0603 - a process-wide counter for one test
        wf = self.workflow
        machine = Machine(
            model=None,
            states=list(wf.states),
            initial=wf.initial_state,
            auto_transitions=False,
            send_event=True,
        )
        for index, transition in enumerate(wf.transitions):
            for source in wf.sources(transition):
                machine.add_transition(
                    transition.trigger,
                    source,
                    transition.to,
                    conditions=[self._role_for(index), self._guard_for(index)],
                    before=[self._taken(index)],
                )
        with _lock:
            MACHINES_BUILT += 1
        return machine

    def _role_for(self, index: int) -> Any:
        transition = self.workflow.transitions[index]

        def role_allows(event: Any) -> bool:
            role: str | None = event.kwargs["role"]
            if event.kwargs["automatic_only"] and not transition.automatic:
                return False
            if role is None or role in transition.roles:
                return True
            event.kwargs["refusals"].append(Refusal(index, transition, "role", ""))
            return False

        return role_allows

    def _guard_for(self, index: int) -> Any:
        transition = self.workflow.transitions[index]

        def guard(event: Any) -> bool:
            data = event.kwargs["data"]
            checklists = event.kwargs["checklists"]
            reason = holds(transition.when, self.workflow, data, checklists)
            if reason is not None:
                event.kwargs["refusals"].append(Refusal(index, transition, "guard", reason))
            return reason is None

        return guard

    @staticmethod
    def _taken(index: int) -> Any:
        def taken(event: Any) -> None:
            event.kwargs["taken"].append(index)

        return taken

    def choose(
        self,
        state: str,
        trigger: str,
        *,
        role: str | None,
        data: Mapping[str, Any],
        checklists: Any,
        automatic_only: bool = False,
    ) -> Choice:
        """Which transition ``trigger`` takes from ``state`` for an actor in ``role``
        (None: the engine itself, which may fire any) with the guards read on ``data``;
        or, when none, why each transition of the trigger from ``state`` was passed over."""
        bound = BoundCase(state)
        taken: list[int] = []
        refusals: list[Refusal] = []
        try:
            self.machine.events[trigger].trigger(
                bound,
                role=role,
                automatic_only=automatic_only,
                data=data,
                checklists=checklists,
                taken=taken,
                refusals=refusals,
            )
        except (MachineError, KeyError):
            return Choice(index=None, transition=None, refusals=())
        if taken:
            index = taken[0]
            return Choice(index=index, transition=self.workflow.transitions[index], refusals=())
        return Choice(index=None, transition=None, refusals=tuple(refusals))


@dataclass(frozen=True, slots=True)
class Refusal:
    """A transition passed over: its ``role`` does not allow the actor, or its ``guard``
    does not hold (``reason`` says why)."""

    index: int
    transition: Transition
    check: str
    reason: str


@dataclass(frozen=True, slots=True)
class Choice:
    """The transition taken (its index in the definition's list), or why none was."""

    index: int | None
    transition: Transition | None
    refusals: tuple[Refusal, ...]


_cache: dict[int, CompiledWorkflow] = {}


def compiled(
    workflow: Workflow, definition_id: int, content_hash: str, templates: dict[str, str]
) -> CompiledWorkflow:
    """The process-wide compiled form of a stored definition version (built once).

    The same id and text can mean another workflow in another database of the process
    (a row's recorded defaults, ``definitions.implied_defaults``), so the parsed workflow
    must be equal too; a service asks once per version, so the comparison is rare."""
    with _lock:
        found = _cache.get(definition_id)
        if found is None or found.content_hash != content_hash or found.workflow != workflow:
            found = CompiledWorkflow(workflow, definition_id, content_hash, templates)
            _cache[definition_id] = found
        return found
