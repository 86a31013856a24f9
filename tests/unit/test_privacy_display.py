"""What the history shows of a forgotten person: their address and name, wherever an
event's actor or data holds exactly one of them (case-insensitively), read
"(forgotten person)"; everything else, and the stored record, stays as it was."""

from __future__ import annotations

import datetime as dt

from dk2020flow.engine.records import EventKind, EventRecord
from dk2020flow.service.privacy import FORGOTTEN, digest, displayed_events
from dk2020flow.store.port import StoredEvent

AT = dt.datetime(2020, 8, 20, 13, 0, tzinfo=dt.UTC)


def _event(actor: str, data: dict[str, object]) -> StoredEvent:
    record = EventRecord(
        kind=EventKind.TRANSITION, at=AT, actor=actor, role="council", trigger="decide",
        from_state="invited", to_state="deciding", data=data,
    )  # fmt: skip
    return StoredEvent(id=1, case_id=1, seq=1, record=record)


def test_the_address_and_name_are_replaced_and_nothing_else() -> None:
    digests = frozenset({digest("anna@aarhus.example.dk"), digest("Anna Jensen")})
    event = _event(
        "Anna@Aarhus.example.dk",
        {
            "contact_person_name": "anna jensen ",
            "contact_person_email": "anna@aarhus.example.dk",
            "cohort": "round1",
            "others": ["Ole Hansen", "Anna Jensen"],
            "hours": 3,
        },
    )
    [shown] = displayed_events([event], digests)
    assert shown.record.actor == FORGOTTEN
    assert shown.record.data == {
        "contact_person_name": FORGOTTEN,
        "contact_person_email": FORGOTTEN,
        "cohort": "round1",
        "others": ["Ole Hansen", FORGOTTEN],
        "hours": 3,
    }
    assert event.record.actor == "Anna@Aarhus.example.dk"  # the stored record is unchanged
    assert shown.record.trigger == "decide" and shown.seq == 1


def test_no_one_forgotten_shows_the_events_as_they_are() -> None:
    event = _event("kl@example.dk", {"contact_person_name": "Anna Jensen"})
    assert displayed_events([event], frozenset()) == [event]
    assert displayed_events([event], frozenset({digest("someone else")}))[0] is event


def test_the_digest_is_of_the_stripped_case_folded_value() -> None:
    assert digest(" ANNA@aarhus.example.dk ") == digest("anna@aarhus.example.dk")
    assert len(digest("x")) == 64
