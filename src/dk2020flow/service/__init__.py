"""The application's one door: what users do (commands) and read (queries).

The CLI, the web console and the API call this package and nothing below it
(docs/architecture.md). Modules:

- ``core``: ``Service`` (commands, and the queries that compile a workflow) and
  ``open_service``;
- ``reads``: ``Reader``, the light queries ``Service`` inherits, and ``open_reader``;
- ``mail``, ``dispatch``, ``migrate``, ``verify``: rendering, firing due timers,
  moving cases between versions, checking the audit log (``parts`` is what
  ``dispatch`` and ``migrate`` need of the service);
- ``participants``: the participants CSV and its row checks;
- ``health``: the scheduler's health; ``database``: the schema's upgrade and status.

The names below are imported when first used, so that a light command that goes
through ``reads`` does not pay for the engine, the templates and the mail code.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dk2020flow.service.core import (
        CaseDetails,
        OpenedCases,
        Service,
        open_service,
    )
    from dk2020flow.service.database import DatabaseStatus, database_status, upgrade_database
    from dk2020flow.service.dispatch import DispatchResult
    from dk2020flow.service.health import Health, SchedulerHealth
    from dk2020flow.service.mail import Preview
    from dk2020flow.service.migrate import MigrationItem, MigrationPlan
    from dk2020flow.service.participants import ParticipantsImported
    from dk2020flow.service.reads import AmbiguousError, Reader, open_reader
    from dk2020flow.service.verify import CaseCheck

_WHERE = {
    "CaseDetails": "core",
    "OpenedCases": "core",
    "Service": "core",
    "open_service": "core",
    "DatabaseStatus": "database",
    "database_status": "database",
    "upgrade_database": "database",
    "DispatchResult": "dispatch",
    "Health": "health",
    "SchedulerHealth": "health",
    "Preview": "mail",
    "MigrationItem": "migrate",
    "MigrationPlan": "migrate",
    "ParticipantsImported": "participants",
    "AmbiguousError": "reads",
    "Reader": "reads",
    "open_reader": "reads",
    "CaseCheck": "verify",
}

__all__ = [
    "AmbiguousError",
    "CaseCheck",
    "CaseDetails",
    "DatabaseStatus",
    "DispatchResult",
    "Health",
    "MigrationItem",
    "MigrationPlan",
    "OpenedCases",
    "ParticipantsImported",
    "Preview",
    "Reader",
    "SchedulerHealth",
    "Service",
    "database_status",
    "open_reader",
    "open_service",
    "upgrade_database",
]


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
