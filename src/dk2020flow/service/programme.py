"""The programme's name, as the console's and the portal's header and footer show it.

The name is the workflow's ``title`` (``definition.model.Workflow.title``), never a
word in the code: a database that holds one workflow shows its newest version's
title; one that holds several, or none, shows no name (the pages then say "the
secretariat's console", "my case"). Reading it costs one light query — the ids and
names of the stored definitions, not their text — and the title of a version is
taken from the service's compiled definitions, so a version's file is parsed once
per process however many pages show its name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dk2020flow.definition.model import Text, Workflow, text_in

if TYPE_CHECKING:
    from dk2020flow.service.core import Service

__all__ = ["programme", "programme_name", "programme_title"]


def programme(service: Service) -> Workflow | None:
    """The one workflow the database holds (its newest version), or ``None`` when it
    holds several or none: what the pages and commands take the programme's identity
    from (title, languages, timezone)."""
    with service.store.read() as tx:
        versions = tx.definition_names()  # oldest first
        if len({name for _, name in versions}) != 1:
            return None
        newest = max(definition_id for definition_id, _ in versions)
        return service.compiled(tx, newest).workflow


def programme_title(service: Service) -> Text | None:
    """The title of the one workflow the database holds (its newest version's), or
    ``None`` when it holds several or none."""
    workflow = programme(service)
    return None if workflow is None else workflow.title


def programme_name(service: Service, language: str) -> str:
    """``programme_title`` in ``language`` (the title's first language when it has no
    text in that one); ``""`` when there is no one programme."""
    return text_in(programme_title(service), language).strip()
