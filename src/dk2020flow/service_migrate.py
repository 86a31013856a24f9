"""Moving running cases to a newer definition version: a dry run, then the migration."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dk2020flow.engine import decide
from dk2020flow.engine.decide import Actor
from dk2020flow.engine.machine import CompiledWorkflow
from dk2020flow.engine.records import CaseSnapshot, Decision
from dk2020flow.errors import RefusalReason, RefusedError
from dk2020flow.store.port import CaseFilter

if TYPE_CHECKING:
    from dk2020flow.service import Service


@dataclass(frozen=True, kw_only=True, slots=True)
class MigrationItem:
    case_id: int
    municipality: str
    from_state: str
    to_state: str
    timers: list[tuple[str, str, dt.datetime]]
    problem: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class MigrationPlan:
    workflow: str
    from_versions: list[str]
    to_version: str
    items: list[MigrationItem]
    applied: bool


def migrate(
    service: Service,
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
            try:
                decision = decide.migrate_case(
                    old,
                    new,
                    case,
                    state_map=state_map,
                    actor=Actor(name=actor, role=None),
                    now=now,
                )
            except RefusedError as refused:
                items.append(
                    MigrationItem(
                        case_id=case.id or 0,
                        municipality=case.municipality_name,
                        from_state=case.state,
                        to_state="?",
                        timers=[],
                        problem=str(refused),
                    )
                )
                continue
            decisions.append((new, case, decision))
            items.append(
                MigrationItem(
                    case_id=case.id or 0,
                    municipality=case.municipality_name,
                    from_state=case.state,
                    to_state=decision.case.state,
                    timers=[(a.timer, a.kind.value, a.due_at) for a in decision.arm],
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
