"""What the service's helper modules (dispatch, migrate) need of the service.

``dispatch`` and ``migrate`` receive the service as this protocol, so that they
depend on ``core`` not at all (no import cycle): ``core.Service`` provides it.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from dk2020flow.clock import Clock
from dk2020flow.engine.machine import CompiledWorkflow
from dk2020flow.engine.records import CaseSnapshot, Decision
from dk2020flow.service.mail import MailComposer
from dk2020flow.settings import Settings
from dk2020flow.store.port import Store, Tx


class ServiceParts(Protocol):
    """The store, clock, settings and mail composer, and the compiled definitions."""

    @property
    def store(self) -> Store: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def mail(self) -> MailComposer: ...

    def compiled(self, tx: Tx, definition_id: int) -> CompiledWorkflow: ...

    def latest(self, tx: Tx, workflow: str) -> CompiledWorkflow: ...

    def apply(
        self,
        tx: Tx,
        wf: CompiledWorkflow,
        case: CaseSnapshot,
        decision: Decision,
        now: dt.datetime,
    ) -> CaseSnapshot: ...
