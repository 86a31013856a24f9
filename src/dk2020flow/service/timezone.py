"""The timezone the commands and the pages show times in (docs/time.md, "Shown times").

One rule for every clock display and every local ``--now`` (an instant written without
an offset): the setting ``timezone`` (``DK2020FLOW_TIMEZONE`` or the configuration file's
``timezone``), else the timezone of the database's one programme (its workflow's
``timezone:``, ``service.programme.programme``), else UTC. Nothing in the code assumes a
country: a database with several programmes, or none yet, shows UTC unless told.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dk2020flow.service.core import Service
    from dk2020flow.service.reads import Reader
    from dk2020flow.settings import Settings

FALLBACK = "UTC"
"""The zone shown when neither a setting nor one programme names one."""


def display_timezone(service: Service) -> str:
    """The zone ``service``'s times are shown in: the setting, the one programme's, UTC."""
    if service.settings.timezone is not None:
        return service.settings.timezone
    from dk2020flow.service.programme import programme

    workflow = programme(service)
    return FALLBACK if workflow is None else workflow.timezone


def reader_timezone(reader: Reader, settings: Settings) -> str:
    """As :func:`display_timezone`, for the light read commands (no service, and neither
    the workflow model nor its parser imported, #15.18): the one programme's newest
    version's ``timezone:`` read from its text (:func:`written_timezone`), else the
    default it was stored with; parsed in full only when the text is not plain enough."""
    if settings.timezone is not None:
        return settings.timezone
    with reader.store.read() as tx:
        versions = tx.definition_names()  # oldest first
        if len({name for _, name in versions}) != 1:
            return FALLBACK
        stored = tx.definition(max(definition_id for definition_id, _ in versions))
    written = written_timezone(stored.source_text)
    if written is not None:
        return written
    implied = stored.implied_defaults.get("timezone")
    if implied is not None and not _mentions_timezone(stored.source_text):
        return implied
    from dk2020flow.definition.loader import load_workflow_text

    return load_workflow_text(
        stored.source_text, stored.source_path, implied=stored.implied_defaults
    ).workflow.timezone


_KEY_LINE = re.compile(r"""^["']?timezone["']?[ \t]*:""", re.MULTILINE)
_PLAIN_LINE = re.compile(r"^timezone:[ \t]+([A-Za-z0-9_+\-/]+)[ \t]*(?:#.*)?$", re.MULTILINE)
_QUOTED_LINE = re.compile(r"""^timezone:[ \t]+(["'])([A-Za-z0-9_+\-/]+)\1[ \t]*(?:#.*)?$""", re.M)


def written_timezone(text: str) -> str | None:
    """The ``timezone:`` a stored workflow text writes, read without parsing it: its one
    top-level line ``timezone: NAME`` (plain or quoted, a comment after it). None when
    the text has no such line or writes it otherwise (the caller then parses it). A stored
    text passed every check, so a block mapping's top-level key is the line at column 0."""
    if _flow_document(text) or len(_KEY_LINE.findall(text)) != 1:
        return None
    plain = _PLAIN_LINE.search(text)
    if plain is not None:
        return plain.group(1)
    quoted = _QUOTED_LINE.search(text)
    return None if quoted is None else quoted.group(2)


def _mentions_timezone(text: str) -> bool:
    """Whether the text could write ``timezone`` in a way the line scan does not read: a
    flow-style document, or a top-level key line of its own."""
    return _flow_document(text) or _KEY_LINE.search(text) is not None


def _flow_document(text: str) -> bool:
    """Whether the document is written as one flow mapping (``{workflow: …}``)."""
    for line in text.splitlines():
        content = line.strip()
        if content and not content.startswith(("#", "%", "---")):
            return content.startswith("{")
    return False
