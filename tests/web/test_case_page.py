"""The page for one case, over HTTP: what it shows, the actions it offers, and that a
form changes the case only as ``dk2020flow case fire|extend|check`` would."""

from __future__ import annotations

import datetime as dt
import html
import sqlite3
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from dk2020flow.engine.records import EventKind
from dk2020flow.errors import RefusedError
from dk2020flow.service.core import Service

from .conftest import csrf_of, post_form, web_service

ClientAs = Callable[..., TestClient]


def _case_id(service: Service, name: str) -> int:
    found = service.case(name).id
    assert found is not None
    return found


def _events(service: Service, name: str) -> list[EventKind]:
    return [e.record.kind for e in service.history(name)[1]]


def test_the_page_shows_state_fields_deadlines_history_and_mail(client_as: ClientAs) -> None:
    client = client_as("secretariat")
    page = client.get("/cases/Odense")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "<h1>Odense</h1>" in text
    assert "Deltagelse besluttet" in text  # the state, in Danish by default
    assert "Kontakt Odense" in text and "kontakt@example.dk" in text  # fields
    assert "Ansøgningsfrist" in text and "For sent: 3 måneder" in text  # the late deadline
    assert "Kommunalbestyrelsen deltager" in text  # history: the decision
    assert "kl@example.dk (KL (opfølgning))" in text
    assert "Velkommen i DK2020: Odense Kommune deltager i runde 2" in text  # the mail
    assert "Parkeret: no recipient in role mayor for Odense" in text  # with its status
    # The same page by case number (the console's links) and by `#number` as the CLI
    # writes it; in an address a bare number is the case's id, not an organisation code.
    number = _case_id(web_service(client), "Odense")
    assert number != 461
    assert "<h1>Odense</h1>" in client.get(f"/cases/{number}").text
    assert "<h1>Odense</h1>" in client.get(f"/cases/%23{number}").text
    assert client.get("/cases/461").status_code == 404


def test_the_page_in_english(client_as: ClientAs) -> None:
    client = client_as("secretariat")
    client.get("/language?lang=en&next=/cases/Odense")
    text = html.unescape(client.get("/cases/Odense").text)
    assert "Participation decided" in text
    assert "Application deadline" in text and "Late: 3 months" in text
    assert "The council joins" in text


def test_an_unknown_case_is_404_and_nobody_is_sent_to_sign_in(
    client: TestClient, client_as: ClientAs
) -> None:
    anonymous = client.get("/cases/Odense")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/sign-in?next=")
    assert client_as("secretariat").get("/cases/Atlantis").status_code == 404


def test_only_the_triggers_the_users_roles_may_fire_are_offered(client_as: ClientAs) -> None:
    client = client_as("secretariat")
    text = client.get("/cases/Odense").text
    # From `decided`: submit_application is the contact person's only, withdraw follow_up's.
    assert "/fire/submit_application" not in text
    assert "/fire/withdraw" not in text
    assert "Du kan ikke foretage nogen handling" in text
    both = client_as("secretariat", "follow_up").get("/cases/Odense").text
    assert "/fire/withdraw" in both and "/fire/submit_application" not in both
    assert "Udføres som KL (opfølgning)" in both
    assert 'name="_role" value="follow_up"' in both


@pytest.mark.parametrize("roles", [("read_only",), ("admin",)])
def test_read_only_and_admin_see_the_case_but_no_action(
    client_as: ClientAs, roles: tuple[str, ...]
) -> None:
    client = client_as(*roles)
    page = client.get("/cases/Kolding")
    assert page.status_code == 200
    assert "/fire/" not in page.text and "/extend/" not in page.text
    assert "/checklists/" not in page.text
    assert "Din rolle kan se sagen, men ikke ændre den." in page.text
    number = _case_id(web_service(client), "Kolding")
    before = _events(web_service(client), "Kolding")
    refused = post_form(
        client, f"/cases/{number}/fire/decide_decline", {"decision_date": "2021-12-01"}
    )
    assert refused.status_code == 403
    assert _events(web_service(client), "Kolding") == before


def test_firing_a_trigger_with_the_form_shows_it_in_the_history(client_as: ClientAs) -> None:
    client = client_as("follow_up")
    service = web_service(client)
    number = _case_id(service, "Odense")
    before = _events(service, "Odense")
    done = post_form(
        client,
        f"/cases/{number}/fire/withdraw",
        {"_role": "follow_up", "withdraw_reason": "Byrådet har trukket sig", "_comment": ""},
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/cases/{number}?done=fire&what=withdraw"
    page = client.get(done.headers["location"])
    text = html.unescape(page.text)
    assert "Udført: Udtræd af DK2020." in text
    assert "Deltagelse besluttet → Udtrådt" in text  # the new history entry
    assert "withdraw_reason=Byrådet har trukket sig" in text
    case = service.case("Odense")
    assert case.state == "withdrawn"
    assert _events(service, "Odense") == [*before, EventKind.TRANSITION]
    (event,) = service.history("Odense")[1][-1:]
    assert (event.record.actor, event.record.role) == ("follow_up@staff.example.dk", "follow_up")


def test_invalid_data_gives_the_engines_message_and_changes_nothing(
    client_as: ClientAs,
) -> None:
    client = client_as("follow_up")
    service = web_service(client)
    number = _case_id(service, "Kolding")
    before = _events(service, "Kolding")
    form = {
        "cohort": "round2",
        "decision_date": "1. december",
        "contact_person_name": "Kontakt Kolding",
        "contact_person_email": "kontakt@example.dk",
    }
    refused = post_form(client, f"/cases/{number}/fire/decide_participate", form)
    assert refused.status_code == 422
    # The message `case fire --data decision_date='1. december' …` gives.
    with pytest.raises(RefusedError) as cli:
        service.fire("Kolding", "decide_participate", actor="x", role="follow_up", data=form)
    assert str(cli.value) in html.unescape(refused.text)
    assert "field &#39;decision_date&#39;: &#39;1. december&#39; is not a date" in refused.text
    # The form comes back with what was typed.
    assert 'value="Kontakt Kolding"' in refused.text
    missing = post_form(client, f"/cases/{number}/fire/decide_participate", {"cohort": "round2"})
    assert missing.status_code == 422
    assert "needs decision_date, contact_person_name, contact_person_email" in missing.text
    assert _events(service, "Kolding") == before
    assert service.case("Kolding").state == "invited"


def test_a_role_the_transition_does_not_allow_is_refused_and_logged(client_as: ClientAs) -> None:
    client = client_as("secretariat")
    service = web_service(client)
    number = _case_id(service, "Odense")
    refused = post_form(client, f"/cases/{number}/fire/withdraw", {"withdraw_reason": "Forsøg"})
    assert refused.status_code == 409
    assert "role &#39;secretariat&#39; may not fire &#39;withdraw&#39;" in refused.text
    assert service.case("Odense").state == "decided"
    last = service.history("Odense")[1][-1].record
    assert (last.kind, last.role, last.trigger) == (EventKind.REFUSED, "secretariat", "withdraw")
    # A role the user does not hold is not theirs to claim.
    claimed = post_form(
        client,
        f"/cases/{number}/fire/withdraw",
        {"_role": "follow_up", "withdraw_reason": "Forsøg"},
    )
    assert claimed.status_code == 403
    assert service.case("Odense").state == "decided"


def test_htmx_swaps_the_main_part_of_the_page(client_as: ClientAs) -> None:
    client = client_as("follow_up")
    number = _case_id(web_service(client), "Odense")
    answer = client.post(
        f"/cases/{number}/fire/withdraw",
        data={"withdraw_reason": "Udtræder"},
        headers={"HX-Request": "true", "X-CSRF-Token": csrf_of(client)},
    )
    assert answer.status_code == 200
    assert answer.text.lstrip().startswith('<div id="case-main">')
    assert "<html" not in answer.text
    assert "Udført: Udtræd af DK2020." in html.unescape(answer.text)
    assert answer.headers["hx-push-url"] == f"/cases/{number}?done=fire&what=withdraw"


def test_extending_a_deadline_needs_a_reason_and_is_logged(client_as: ClientAs) -> None:
    client = client_as("secretariat")
    service = web_service(client)
    number = _case_id(service, "Odense")
    url = f"/cases/{number}/extend/application_deadline"
    before = _events(service, "Odense")
    no_reason = post_form(client, url, {"to_date": "2022-01-14", "to_time": "12:00", "reason": ""})
    assert no_reason.status_code == 422
    assert "moving a deadline needs a reason" in no_reason.text
    bad_span = post_form(client, url, {"by": "two weeks", "reason": "Syg"})
    assert bad_span.status_code == 422
    assert _events(service, "Odense") == before
    done = post_form(
        client, url, {"to_date": "2022-01-14", "to_time": "12:00", "reason": "Byrådsmøde flyttet"}
    )
    assert done.status_code == 303
    text = html.unescape(client.get(done.headers["location"]).text)
    assert "Fristen Ansøgningsfrist er flyttet." in text
    assert "14. jan. 2022 12.00.00" in text
    assert "Byrådsmøde flyttet" in text  # the reason, in the history
    assert "For sent" not in text
    last = service.history("Odense")[1][-1].record
    assert (last.kind, last.role, last.comment) == (
        EventKind.DEADLINE_EXTENDED,
        "secretariat",
        "Byrådsmøde flyttet",
    )
    assert last.data["to"] == dt.datetime(2022, 1, 14, 11, 0, tzinfo=dt.UTC).isoformat()
    by_span = post_form(client, url, {"by": "P14D", "reason": "Endnu en uge eller to"})
    assert by_span.status_code == 303
    assert service.history("Odense")[1][-1].record.data["to"] == "2022-01-28T11:00:00+00:00"


def test_recording_the_checklist(client_as: ClientAs) -> None:
    client = client_as("secretariat")
    service = web_service(client)
    number = _case_id(service, "Aarhus")
    page = client.get("/cases/Aarhus").text
    assert 'name="status:P1.1"' in page and 'for="check-capf-status-P1-1"' in page
    done = post_form(
        client,
        f"/cases/{number}/checklists/capf",
        {"status:P1.1": "met", "comment:P1.1": "Klar vision", "status:P1.2": ""},
    )
    assert done.status_code == 303
    items = service.case("Aarhus").checklists["capf"]
    assert set(items) == {"P1.1"}
    assert (items["P1.1"].status, items["P1.1"].comment) == ("met", "Klar vision")
    text = html.unescape(client.get(done.headers["location"]).text)
    assert "CAPF-screening er gemt." in text
    assert '<option value="met" selected>Opfyldt</option>' in text
    bad = post_form(client, f"/cases/{number}/checklists/capf", {"status:P1.2": "perfect"})
    assert bad.status_code == 422
    assert "&#39;perfect&#39; is not a status" in bad.text
    # follow_up may see the checklist, not record it: the engine refuses and logs it.
    follow_up = client_as("follow_up")
    assert "/checklists/capf" not in follow_up.get("/cases/Aarhus").text
    refused = post_form(follow_up, f"/cases/{number}/checklists/capf", {"status:P1.2": "met"})
    assert refused.status_code == 409
    assert service.history("Aarhus")[1][-1].record.kind is EventKind.REFUSED
    assert set(service.case("Aarhus").checklists["capf"]) == {"P1.1"}


def test_html_in_a_organisation_name_is_shown_escaped(
    client_as: ClientAs, programme_url: str
) -> None:
    evil = '<script>alert("x")</script>Odense'
    with sqlite3.connect(programme_url.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE organisations SET name = ? WHERE code = '461'", (evil,))
    db.close()
    client = client_as("secretariat")
    page = client.get(f"/cases/{_case_id(web_service(client), '461')}")
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;Odense" in page.text
