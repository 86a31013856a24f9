"""The account page (one's own sessions) and the users' administration (admins only)."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient

from dk2020flow.web.config import SESSION_COOKIE

from .conftest import post_form, web_service


def test_the_account_page_lists_and_revokes_sessions(
    client_as: Callable[..., TestClient],
) -> None:
    client = client_as("approver", email="anna@kl.example.dk")
    service = web_service(client)
    other = service.accounts.open_session(
        "anna@kl.example.dk", method="link", client="10.1.2.3", user_agent="Phone <b>Safari</b>"
    )
    page = client.get("/account")
    assert page.status_code == 200
    assert page.text.count("/revoke") == 2
    assert "Denne browser" in page.text  # this one marked
    assert "Phone &lt;b&gt;Safari&lt;/b&gt; (10.1.2.3)" in page.text  # escaped
    assert '<th scope="col">' in page.text

    user = service.accounts.session_user(other, service.clock.now())
    assert user is not None
    done = post_form(client, f"/account/sessions/{user.session_id}/revoke")
    assert done.status_code == 303 and done.headers["location"] == "/account?revoked=1"
    assert service.accounts.session_user(other, service.clock.now()) is None
    assert "Login afsluttet" in client.get("/account?revoked=1").text

    # Someone else's session cannot be revoked (404), and stays.
    third = service.accounts.open_session(
        "anna@kl.example.dk", method="test", client="c", user_agent="x"
    )
    mine = service.accounts.session_user(third, service.clock.now())
    assert mine is not None
    client_as("secretariat", email="bob@kl.example.dk")
    refused = post_form(client, f"/account/sessions/{mine.session_id}/revoke")
    assert refused.status_code == 404
    assert service.accounts.session_user(third, service.clock.now()) is not None


def test_revoking_this_session_signs_out(client_as: Callable[..., TestClient]) -> None:
    client = client_as("read_only")
    [row] = re.findall(r"/account/sessions/(\d+)/revoke", client.get("/account").text)
    done = post_form(client, f"/account/sessions/{row}/revoke")
    assert done.status_code == 303 and done.headers["location"] == "/"
    assert f'{SESSION_COOKIE}=""' in done.headers["set-cookie"]
    assert client.get("/account").status_code == 303


def test_only_admins_see_the_users_page(
    client: TestClient, client_as: Callable[..., TestClient]
) -> None:
    assert client.get("/admin/users").status_code == 303
    client_as("secretariat")
    assert client.get("/admin/users").status_code == 403
    refused = post_form(
        client, "/admin/users", {"email": "x@example.dk", "name": "X", "roles": ["admin"]}
    )
    assert refused.status_code == 403
    assert "x@example.dk" not in {u.email for u in web_service(client).accounts.list_users()}


def test_an_admin_adds_and_disables_users(client_as: Callable[..., TestClient]) -> None:
    client = client_as("admin", email="boss@kl.example.dk")
    page = client.get("/admin/users")
    assert page.status_code == 200
    assert "boss@kl.example.dk" in page.text and 'aria-current="page"' in page.text

    added = post_form(
        client,
        "/admin/users",
        {
            "email": "New.Person@KL.example.dk",
            "name": "<script>alert(1)</script>",
            "roles": ["follow_up", "read_only"],
            "language": "en",
        },
    )
    assert added.status_code == 303
    shown = client.get(added.headers["location"])
    assert "new.person@kl.example.dk er oprettet" in shown.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown.text
    assert "<script>alert(1)" not in shown.text
    user = {u.email: u for u in web_service(client).accounts.list_users()}[
        "new.person@kl.example.dk"
    ]
    assert user.roles == ("follow_up", "read_only") and user.language == "en"

    bad = post_form(
        client, "/admin/users", {"email": "y@kl.example.dk", "name": "Y", "roles": ["no_such_role"]}
    )
    assert bad.status_code == 422
    assert (
        "role &#39;no_such_role&#39; is not one of" in bad.text
        and 'value="y@kl.example.dk"' in bad.text
    )
    none = post_form(client, "/admin/users", {"email": "y@kl.example.dk", "name": "Y"})
    assert none.status_code == 422 and "at least one role" in none.text
    assert "y@kl.example.dk" not in {u.email for u in web_service(client).accounts.list_users()}

    # Disabling ends the user's sessions at once.
    session = web_service(client).accounts.open_session(
        "new.person@kl.example.dk", method="test", client="c", user_agent="x"
    )
    gone = post_form(client, f"/admin/users/{user.id}/disable")
    assert gone.status_code == 303
    assert "deaktiveret" in client.get(gone.headers["location"]).text
    now = web_service(client).clock.now()
    assert web_service(client).accounts.session_user(session, now) is None

    # An admin cannot disable themselves here (no button, and the POST is refused).
    me = {u.email: u for u in web_service(client).accounts.list_users()}["boss@kl.example.dk"]
    assert f"/admin/users/{me.id}/disable" not in client.get("/admin/users").text
    assert post_form(client, f"/admin/users/{me.id}/disable").status_code == 400
    assert post_form(client, "/admin/users/99999/disable").status_code == 404
