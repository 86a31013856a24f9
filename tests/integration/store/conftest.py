"""Builders for the store suite: definitions, decisions, mail and timers, as the service makes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pytest

from dk2020flow.engine.records import (
    CaseSnapshot,
    Decision,
    EventKind,
    EventRecord,
    TimerArm,
    TimerKind,
)
from dk2020flow.store.port import NewMail
from dk2020flow.store.repository import SqlStore

CPH = dt.timezone(dt.timedelta(hours=2), "CEST")
T0 = dt.datetime(2020, 6, 20, 10, 0, tzinfo=CPH)


@dataclass
class Build:
    """Makes the records a test needs, with sensible defaults."""

    definition_id: int

    def case(self, organisation: str = "751", **changes: object) -> CaseSnapshot:
        base = CaseSnapshot(
            id=None,
            workflow="dk2020",
            definition_id=self.definition_id,
            organisation_code=organisation,
            organisation_name="",
            region="",
            state="invited",
            epoch=1,
            cohort="round1",
            data={"contact_name": "Anne Ørsted", "decision_date": "2020-08-31", "n": 3},
            checklists={},
            entered_at=T0,
            opened_at=T0,
            version=1,
        )
        return replace(base, **changes)  # type: ignore[arg-type]

    def event(self, kind: EventKind = EventKind.OPENED, **changes: object) -> EventRecord:
        base = EventRecord(kind=kind, at=T0, actor="secretariat@example.dk", to_state="invited")
        return replace(base, **changes)  # type: ignore[arg-type]

    def arm(
        self,
        timer: str = "reply",
        *,
        due: dt.datetime,
        epoch: int = 1,
        index: int = 0,
        kind: TimerKind = TimerKind.DEADLINE,
    ) -> TimerArm:
        return TimerArm(
            timer=timer, kind=kind, index=index, due_at=due, deadline_at=due, epoch=epoch
        )

    def mail(self, *, case_id: int | None = None, **changes: object) -> NewMail:
        base = NewMail(
            case_id=case_id,
            template="invitation",
            language="da",
            to=(("Anne Ørsted", "anne@aarhus.example.dk"),),
            cc=(("Sekretariatet", "dk2020@concito.example.dk"),),
            subject="Invitation til DK2020",
            text="Kære Anne",
            html="<p>Kære Anne</p>",
            ics=None,
            not_before=T0,
            created_at=T0,
        )
        return replace(base, **changes)  # type: ignore[arg-type]

    def decision(
        self, case: CaseSnapshot, events: Sequence[EventRecord] | None = None, **changes: object
    ) -> Decision:
        base = Decision(case=case, events=tuple(events if events is not None else [self.event()]))
        return replace(base, **changes)  # type: ignore[arg-type]

    def open(
        self,
        store: SqlStore,
        organisation: str = "751",
        *,
        arm: Sequence[TimerArm] = (),
        mails: Sequence[NewMail] = (),
        **changes: object,
    ) -> int:
        """Open a case in its own transaction; return its id."""
        decision = self.decision(self.case(organisation, **changes), arm=tuple(arm))
        with store.transaction() as tx:
            return tx.insert_case(decision, list(mails))


@pytest.fixture
def build(store: SqlStore) -> Iterator[Build]:
    with store.transaction() as tx:
        definition, _ = tx.save_definition(
            name="dk2020",
            version_label="2020.1",
            content_hash="sha256:aaaa",
            source_text="name: dk2020\n",
            templates={"invitation.da.txt": "Kære {{ name }}"},
            source_path="workflows/dk2020.yaml",
            now=T0,
        )
    return Build(definition.id)


def decide_and_decline(
    service: Any, joining: Sequence[str], declining: str, at: dt.datetime
) -> None:
    """The follow-up records that ``joining`` take part in round 1 and ``declining`` does not
    (the DK2020 workflow's first decisions, as the console and deadline tests need them)."""
    for name in joining:
        service.fire(
            name,
            "decide_participate",
            actor="kl",
            role="follow_up",
            data={
                "cohort": "round1",
                "decision_date": at.date().isoformat(),
                "contact_person_name": "K",
                "contact_person_email": "k@example.dk",
            },
            workflow="dk2020",
            now=at,
        )
    service.fire(
        declining,
        "decide_decline",
        actor="kl",
        role="follow_up",
        data={"decision_date": at.date().isoformat()},
        workflow="dk2020",
        now=at,
    )
