"""The REST API's queries: a page of cases by keyset, one case with its documents, a page
of the outbox, a workflow version parsed (``web/api/`` asks them; the web layer reads
nothing but through the service).

Each runs in one read transaction of the service's store, with the service's own helpers
(``Service.compiled``, ``Console.deadline_timers``, ``casepage.case_page``), and returns
the port's records; the routes turn them into the API's bodies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from dk2020flow.definition.loader import load_workflow_text
from dk2020flow.definition.model import Workflow
from dk2020flow.errors import NotFoundError
from dk2020flow.service.casepage import CasePage, case_page
from dk2020flow.service.core import Service
from dk2020flow.store.port import (
    CaseKeysetPage,
    CaseKeysetQuery,
    CaseSort,
    KeyValue,
    OutboxMessage,
    OutboxStatus,
    StoredDefinition,
    StoredDocument,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseFilterChoices:
    """What the cases list may be filtered by: the workflows' states and rounds, the
    organisations' regions."""

    workflows: tuple[str, ...]
    states: tuple[str, ...]
    cohorts: tuple[str, ...]
    regions: tuple[str, ...]


def filter_choices(service: Service, workflow: str | None) -> CaseFilterChoices:
    """The states and rounds of ``workflow`` (None: of every workflow loaded), and the
    regions; ``NotFoundError`` for a workflow that is not loaded."""
    with service.store.read() as tx:
        definitions = tx.definitions()
        names = sorted({d.name for d in definitions})
        if workflow is not None and workflow not in names:
            raise NotFoundError(
                f"no workflow {workflow!r} is loaded ({', '.join(names) or 'none is'})"
            )
        states: dict[str, None] = {}
        cohorts: dict[str, None] = {}
        for definition in definitions:
            if workflow is not None and definition.name != workflow:
                continue
            wf = service.compiled(tx, definition.id).workflow
            states.update(dict.fromkeys(wf.states))
            cohorts.update(dict.fromkeys(wf.cohorts))
        return CaseFilterChoices(
            workflows=tuple(names),
            states=tuple(states),
            cohorts=tuple(cohorts),
            regions=tuple(tx.regions()),
        )


def case_keyset_page(
    service: Service,
    *,
    workflow: str | None,
    now: dt.datetime,
    state: str | None,
    cohort: str | None,
    region: str | None,
    late: bool | None,
    search: str,
    sort: CaseSort,
    descending: bool,
    limit: int,
    after: Sequence[KeyValue] | None,
) -> CaseKeysetPage:
    """One page of cases after the key ``after``; *late* as the console judges it
    (``Console.deadline_timers``)."""
    with service.store.read() as tx:
        names = sorted({d.name for d in tx.definitions()})
        wanted = [workflow] if workflow is not None else names
        timers = tuple(
            found for name in wanted for found in service.console.deadline_timers(tx, name, now)
        )
        return tx.case_keyset_page(
            CaseKeysetQuery(
                workflow=workflow,
                now=now,
                deadline_timers=timers,
                state=state,
                cohort=cohort,
                region=region,
                late=late,
                search=search,
                sort=sort,
                descending=descending,
                limit=limit,
                after=tuple(after) if after is not None else None,
            )
        )


def case_with_documents(
    service: Service, case_id: int, *, roles: Sequence[str], language: str, now: dt.datetime
) -> tuple[CasePage, list[StoredDocument]]:
    """The console's page of the case (for a user with ``roles``) and its documents."""
    page = case_page(service, f"#{case_id}", roles=roles, language=language, now=now)
    with service.store.read() as tx:
        documents = tx.documents_of(case_id)
    return page, sorted(documents, key=lambda d: d.id)


def outbox_page(
    service: Service,
    *,
    status: OutboxStatus | None,
    case_id: int | None,
    before_id: int | None,
    limit: int,
) -> list[OutboxMessage]:
    with service.store.read() as tx:
        return tx.outbox_page(status=status, case_id=case_id, before_id=before_id, limit=limit)


def definition(service: Service, definition_id: int) -> StoredDefinition:
    found = next((d for d in service.definitions() if d.id == definition_id), None)
    if found is None:
        raise NotFoundError(f"there is no workflow version {definition_id}")
    return found


@lru_cache(maxsize=64)
def _parsed(
    definition_id: int,
    content_hash: str,
    source: str,
    path: str,
    implied: tuple[tuple[str, str | None], ...],
) -> Workflow:
    return load_workflow_text(source, path, implied=dict(implied)).workflow


def workflow_of(stored: StoredDefinition) -> Workflow:
    """A stored version's workflow (versions never change: parsed once per process)."""
    implied = tuple(sorted(stored.implied_defaults.items()))
    return _parsed(stored.id, stored.content_hash, stored.source_text, stored.source_path, implied)
