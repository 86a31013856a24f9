"""Changing a case through the API: the same checks and refusals as the command line,
as problems naming the fields; ETag and If-Match; Idempotency-Key; the token in the
history."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from dk2020flow.service.core import Service

from .conftest import case_id

DECISION = {
    "cohort": "round2",
    "decision_date": "2021-11-20",
    "contact_person_name": "Karin Esbjerg",
    "contact_person_email": "karin@esbjerg.example.dk",
}


def _state(service: Service, ref: str) -> tuple[Any, ...]:
    case, events = service.history(ref)
    return case.state, case.version, len(events)


def test_firing_a_trigger_records_the_token_and_answers_the_new_etag(
    api_as: Callable[..., TestClient], service: Service
) -> None:
    esbjerg = case_id(service, "Esbjerg")
    answer = api_as("follow_up").post(
        f"/api/v1/cases/{esbjerg}/triggers/decide_participate",
        json={"data": DECISION, "comment": "from KL's system"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["state"] == "decided" and body["data"]["cohort"] == "round2"
    assert answer.headers["etag"] == f'"{body["version"]}"'
    _, events = service.history(f"#{esbjerg}")
    last = events[-1].record
    assert (last.actor, last.role, last.trigger) == (
        "token:test-follow-up",
        "follow_up",
        "decide_participate",
    )
    assert last.comment == "from KL's system"


def test_a_refusal_for_data_names_the_fields_and_changes_nothing(
    api_as: Callable[..., TestClient], service: Service
) -> None:
    esbjerg = case_id(service, "Esbjerg")
    before = _state(service, f"#{esbjerg}")
    client = api_as("follow_up")
    url = f"/api/v1/cases/{esbjerg}/triggers/decide_participate"
    missing = client.post(url, json={"data": {"cohort": "round2"}})
    assert missing.status_code == 422
    problem = missing.json()
    assert missing.headers["content-type"] == "application/problem+json"
    assert problem["type"].endswith("/invalid-data") and problem["reason"] == "missing_data"
    assert {e["field"] for e in problem["errors"]} == {
        "data.decision_date",
        "data.contact_person_name",
        "data.contact_person_email",
    }
    wrong = client.post(url, json={"data": {**DECISION, "decision_date": "tomorrow"}})
    assert wrong.status_code == 422
    assert [e["field"] for e in wrong.json()["errors"]] == ["data.decision_date"]
    assert "is not a date" in wrong.json()["detail"]
    unknown = client.post(url, json={"data": {**DECISION, "colour": "green"}})
    assert [e["field"] for e in unknown.json()["errors"]] == ["data.colour"]
    assert _state(service, f"#{esbjerg}") == before


def test_a_trigger_the_state_does_not_allow_is_409_and_a_role_it_does_not_403(
    api_as: Callable[..., TestClient], service: Service
) -> None:
    esbjerg = case_id(service, "Esbjerg")
    before = _state(service, f"#{esbjerg}")
    wrong_state = api_as("secretariat").post(f"/api/v1/cases/{esbjerg}/triggers/accept_application")
    assert wrong_state.status_code == 409
    assert wrong_state.json()["reason"] == "invalid_from_state"
    assert _state(service, f"#{esbjerg}") == before
    # The approver may not decide for a council: refused, the case unchanged, and the
    # refusal logged on it (security-relevant, as `case fire --role` logs it).
    wrong_role = api_as("approver").post(
        f"/api/v1/cases/{esbjerg}/triggers/decide_participate", json={"data": DECISION}
    )
    assert wrong_role.status_code == 403
    assert wrong_role.json()["reason"] == "role"
    state, version, events = _state(service, f"#{esbjerg}")
    assert (state, version) == before[:2] and events == before[2] + 1
    _, history = service.history(f"#{esbjerg}")
    assert history[-1].record.kind.value == "refused"
    assert history[-1].record.actor == "token:test-approver"
    # A role the token does not hold, named in the request: 403 before anything is read.
    named = api_as("follow_up").post(
        f"/api/v1/cases/{esbjerg}/triggers/decide_participate",
        json={"data": DECISION, "role": "secretariat"},
    )
    assert named.status_code == 403 and named.json().get("reason") is None
    assert _state(service, f"#{esbjerg}")[2] == events


def test_if_match_makes_a_change_conditional(
    api_as: Callable[..., TestClient], service: Service
) -> None:
    esbjerg = case_id(service, "Esbjerg")
    client = api_as("follow_up")
    etag = client.get(f"/api/v1/cases/{esbjerg}").headers["etag"]
    stale = f'"{int(etag.strip(chr(34))) - 1}"'
    before = _state(service, f"#{esbjerg}")
    refused = client.post(
        f"/api/v1/cases/{esbjerg}/triggers/decide_participate",
        json={"data": DECISION},
        headers={"If-Match": stale},
    )
    assert refused.status_code == 412
    assert refused.json()["type"].endswith("/precondition-failed")
    assert _state(service, f"#{esbjerg}") == before
    bad = client.post(
        f"/api/v1/cases/{esbjerg}/triggers/decide_participate",
        json={"data": DECISION},
        headers={"If-Match": 'W/"1"'},
    )
    assert bad.status_code == 422
    done = client.post(
        f"/api/v1/cases/{esbjerg}/triggers/decide_participate",
        json={"data": DECISION},
        headers={"If-Match": etag},
    )
    assert done.status_code == 200
    assert done.headers["etag"] != etag


def test_an_idempotency_key_changes_the_case_once_and_answers_the_same(
    api_as: Callable[..., TestClient], service: Service
) -> None:
    esbjerg = case_id(service, "Esbjerg")
    client = api_as("follow_up")
    url = f"/api/v1/cases/{esbjerg}/triggers/decide_participate"
    key = {"Idempotency-Key": "kl-2021-11-20-esbjerg"}
    first = client.post(url, json={"data": DECISION}, headers=key)
    assert first.status_code == 200
    after = _state(service, f"#{esbjerg}")
    again = client.post(url, json={"data": DECISION}, headers=key)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["etag"] == first.headers["etag"]
    assert "idempotent-replayed" not in first.headers
    assert _state(service, f"#{esbjerg}") == after
    other = client.post(url, json={"data": {**DECISION, "cohort": "round1"}}, headers=key)
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert _state(service, f"#{esbjerg}") == after
    # Another token's same key is its own.
    elsewhere = api_as("follow_up", "council").post(url, json={"data": DECISION}, headers=key)
    assert elsewhere.status_code == 409  # a new request: the case is decided already


def test_two_requests_with_one_key_at_once_make_one_change(
    api_as: Callable[..., TestClient], service: Service
) -> None:
    esbjerg = case_id(service, "Esbjerg")
    before = _state(service, f"#{esbjerg}")
    url = f"/api/v1/cases/{esbjerg}/triggers/decide_participate"
    answers: list[Any] = []
    start = threading.Barrier(2, timeout=30)

    def send(client: TestClient) -> None:
        start.wait()
        answers.append(client.post(url, json={"data": DECISION}, headers={"Idempotency-Key": "k1"}))

    clients = [api_as("follow_up"), api_as("follow_up")]
    threads = [threading.Thread(target=send, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()
    assert sorted(a.headers.get("idempotent-replayed", "") for a in answers) == ["", "true"]
    state, version, _events = _state(service, f"#{esbjerg}")
    assert (state, version) == ("decided", before[1] + 1)


def test_extend_a_deadline_and_record_a_checklist(
    api_as: Callable[..., TestClient], service: Service
) -> None:
    aarhus = case_id(service, "Aarhus")
    client = api_as("secretariat")
    moved = client.post(
        f"/api/v1/cases/{aarhus}/deadlines/application_deadline/extend",
        json={"to": "2022-01-15T23:59:00+01:00", "reason": "the council meets later"},
    )
    assert moved.status_code == 200, moved.text
    _, events = service.history(f"#{aarhus}")
    assert events[-1].record.kind.value == "deadline_extended"
    assert events[-1].record.actor == "token:test-secretariat"
    bad_span = client.post(
        f"/api/v1/cases/{aarhus}/deadlines/application_deadline/extend",
        json={"by": "two weeks", "reason": "x"},
    )
    assert bad_span.status_code == 422
    assert [e["field"] for e in bad_span.json()["errors"]] == ["by"]
    recorded = client.post(
        f"/api/v1/cases/{aarhus}/checklists/capf",
        json={"items": {"P1.1": {"status": "met", "comment": "fine"}}},
    )
    assert recorded.status_code == 200, recorded.text
    assert service.case(f"#{aarhus}").checklists["capf"]["P1.1"].status == "met"
    unknown = client.post(
        f"/api/v1/cases/{aarhus}/checklists/capf", json={"items": {"P9.9": {"status": "met"}}}
    )
    assert unknown.status_code == 422
