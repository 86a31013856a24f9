"""The programme's identity, as the console's and the portal's pages show it.

The name, the participant noun (``participant``), the help contact and the languages
are the workflow's (``definition.model.Workflow``), never words in the code: a
database that holds one workflow shows its newest version's; one that holds several,
or none, has no one programme (the pages then say "the secretariat's console",
"Organisation").

Reading the programme costs one light read transaction — the ids and names of the
stored definitions, not their text; a version's text is parsed once per service
(``Service.compiled``) — and what it found is kept for ``PROGRAMME_LIFETIME`` on the
service's clock, so a page reads it at most once per lifetime, not once per page. A
workflow loaded since (by ``dk2020flow workflow load`` in another process, or by this
service) shows on the pages within that lifetime. A clock that goes back (a simulation
replaying a period) reads it again.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from dk2020flow.definition.model import Text, Workflow, text_in

if TYPE_CHECKING:
    from dk2020flow.service.core import Service

__all__ = [
    "PROGRAMME_LIFETIME",
    "programme",
    "programme_language",
    "programme_name",
    "programme_title",
    "programme_workflows",
]

PROGRAMME_LIFETIME = dt.timedelta(seconds=30)
"""How long what was read is kept: the longest a newly loaded workflow waits to show."""


@dataclass(frozen=True, slots=True)
class _Seen:
    at: dt.datetime
    workflows: tuple[Workflow, ...]

    def fresh(self, now: dt.datetime) -> bool:
        return self.at <= now < self.at + PROGRAMME_LIFETIME


_seen: WeakKeyDictionary[Service, _Seen] = WeakKeyDictionary()
_seen_guard = threading.Lock()


def programme_workflows(service: Service) -> tuple[Workflow, ...]:
    """The newest version of each workflow the database holds (oldest loaded first), as
    read at most ``PROGRAMME_LIFETIME`` ago on the service's clock."""
    now = service.clock.now()
    with _seen_guard:
        seen = _seen.get(service)
    if seen is None or not seen.fresh(now):
        # Two threads may both read at the lifetime's end; the later answer stays.
        seen = _Seen(at=now, workflows=_read(service))
        with _seen_guard:
            _seen[service] = seen
    return seen.workflows


def _read(service: Service) -> tuple[Workflow, ...]:
    with service.store.read() as tx:
        newest: dict[str, int] = {}
        for definition_id, name in tx.definition_names():
            newest[name] = max(newest.get(name, definition_id), definition_id)
        return tuple(service.compiled(tx, i).workflow for i in sorted(newest.values()))


def programme(service: Service) -> Workflow | None:
    """The one workflow the database holds (its newest version), or ``None`` when it
    holds several or none: what the pages and commands take the programme's identity
    from (title, participant noun, links, languages)."""
    workflows = programme_workflows(service)
    return workflows[0] if len(workflows) == 1 else None


def programme_language(service: Service) -> str | None:
    """The language the pages open in when the reader has chosen none: the programme's
    first language; for several workflows the first language they all share (DK2020 and
    its yearly status reports: ``da``); ``None`` for none, or when they differ."""
    first = {workflow.default_language for workflow in programme_workflows(service)}
    return first.pop() if len(first) == 1 else None


def programme_title(service: Service) -> Text | None:
    """The title of the one workflow the database holds (its newest version's), or
    ``None`` when it holds several or none."""
    workflow = programme(service)
    return None if workflow is None else workflow.title


def programme_name(service: Service, language: str) -> str:
    """``programme_title`` in ``language`` (the title's first language when it has no
    text in that one); ``""`` when there is no one programme."""
    return text_in(programme_title(service), language).strip()
