"""Sign-in through the browser's eyes: the link from the mail in the outbox, the code,
expired, reused and forged links, the rate limit, sign-out and disabled accounts."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import logging
import re
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dk2020flow.clock import ManualClock
from dk2020flow.store.port import OutboxMessage, OutboxStatus
from dk2020flow.web.app import create_app
from dk2020flow.web.config import SESSION_COOKIE, WebConfig

from .conftest import post_form, web_service

EMAIL = "mette@kl.example.dk"


@pytest.fixture
def staff(client: TestClient) -> TestClient:
    web_service(client).accounts.add_user(EMAIL, "Mette Hansen", ["secretariat"], actor="test")
    return client


def sign_in_mails(client: TestClient) -> list[OutboxMessage]:
    with web_service(client).store.read() as tx:
        return [m for m in tx.outbox(limit=1000) if m.template == "sign_in"]


def _from_text(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found, text
    return found.group(1)


def token_of(mail: OutboxMessage) -> str:
    found = re.search(r"/sign-in/link\?token=([\w-]+)", mail.text)
    assert found, mail.text
    return found.group(1)


def code_of(mail: OutboxMessage) -> str:
    found = re.search(r"\b([A-Z2-9]{4}-[A-Z2-9]{4})\b", mail.text)
    assert found, mail.text
    return found.group(1)


def signed_in_as(client: TestClient) -> str | None:
    page = client.get("/account")
    if page.status_code != 200:
        return None
    found = re.search(r"Logget ind som ([^<]+)<", page.text)
    return found.group(1) if found else None


def ask_for_link(client: TestClient, email: str = EMAIL, next_path: str = "/") -> str:
    page = post_form(client, "/sign-in", {"email": email, "next": next_path})
    assert page.status_code == 200, page.text
    return page.text


def test_the_sign_in_page_keeps_a_local_next(client: TestClient) -> None:
    page = client.get("/sign-in?next=/cases%3Fround%3Dround2")
    assert page.status_code == 200
    assert 'name="next" value="/cases?round=round2"' in page.text
    assert 'for="sign-in-email"' in page.text
    evil = client.get("/sign-in?next=//evil.example.com/")
    assert 'name="next" value="/"' in evil.text


def test_a_page_that_needs_a_session_sends_to_sign_in(client: TestClient) -> None:
    page = client.get("/account")
    assert page.status_code == 303
    assert page.headers["location"] == "/sign-in?next=%2Faccount"


def test_the_link_from_the_mail_signs_in(staff: TestClient) -> None:
    text = ask_for_link(staff, "Mette@KL.example.dk", "/cases")
    assert "Tjek din e-mail" in text and 'action="/sign-in/code"' in text
    [mail] = sign_in_mails(staff)
    assert mail.to == (("Mette Hansen", EMAIL),) and mail.status is OutboxStatus.PENDING
    assert mail.text.count("http://testserver/sign-in/link?token=") == 1
    token = token_of(mail)
    assert token not in text  # the page never shows the token

    # The GET (what a mail scanner does) shows a button and consumes nothing.
    for _ in range(2):
        page = staff.get(f"/sign-in/link?token={token}&next=/cases")
        assert page.status_code == 200
        assert 'action="/sign-in/link"' in page.text and f'value="{token}"' in page.text
        assert SESSION_COOKIE not in page.headers.get("set-cookie", "")

    done = post_form(staff, "/sign-in/link", {"token": token, "next": "/cases"})
    assert done.status_code == 303 and done.headers["location"] == "/cases"
    cookie = done.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here; Secure behind https
    assert signed_in_as(staff) == "Mette Hansen"

    # Reused: a clear page, no new session.
    staff.cookies.clear()
    again = post_form(staff, "/sign-in/link", {"token": token})
    assert again.status_code == 410 and "allerede brugt" in again.text
    assert SESSION_COOKIE not in again.headers.get("set-cookie", "")
    assert staff.get(f"/sign-in/link?token={token}").status_code == 410
    assert signed_in_as(staff) is None


def test_an_expired_link_asks_for_a_new_one(staff: TestClient, clock: ManualClock) -> None:
    ask_for_link(staff)
    token = token_of(sign_in_mails(staff)[0])
    clock.advance(dt.timedelta(minutes=15, seconds=1))
    page = staff.get(f"/sign-in/link?token={token}")
    assert page.status_code == 410 and "udløbet" in page.text
    used = post_form(staff, "/sign-in/link", {"token": token})
    assert used.status_code == 410 and 'href="/sign-in"' in used.text
    assert SESSION_COOKIE not in used.headers.get("set-cookie", "")


def test_a_forged_link_is_refused(staff: TestClient) -> None:
    ask_for_link(staff)
    token = token_of(sign_in_mails(staff)[0])
    for forged in (token[::-1], "x", ""):
        page = staff.get(f"/sign-in/link?token={forged}")
        assert page.status_code == 400 and "ikke gyldigt" in page.text
        post = post_form(staff, "/sign-in/link", {"token": forged})
        assert post.status_code == 400
        assert SESSION_COOKIE not in post.headers.get("set-cookie", "")
    # The real one still works.
    assert post_form(staff, "/sign-in/link", {"token": token}).status_code == 303


def test_the_code_signs_in_on_another_device(staff: TestClient) -> None:
    ask_for_link(staff)
    code = code_of(sign_in_mails(staff)[0])
    wrong = post_form(staff, "/sign-in/code", {"email": EMAIL, "code": "AAAA-AAAA"})
    assert wrong.status_code == 400 and "Koden er forkert" in wrong.text
    assert 'aria-invalid="true"' in wrong.text
    done = post_form(staff, "/sign-in/code", {"email": EMAIL, "code": code.lower(), "next": "/x"})
    assert done.status_code == 303 and done.headers["location"] == "/x"
    assert signed_in_as(staff) == "Mette Hansen"
    assert "<td>kode</td>" in staff.get("/account").text


def test_an_unknown_address_gets_the_same_page_and_no_mail(staff: TestClient) -> None:
    known = ask_for_link(staff, EMAIL)
    unknown = ask_for_link(staff, "nobody@kl.example.dk")
    assert unknown.replace("nobody@kl.example.dk", EMAIL) == known
    assert [m.to[0][1] for m in sign_in_mails(staff)] == [EMAIL]


def test_too_many_requests_are_refused(staff: TestClient) -> None:
    for _ in range(5):
        ask_for_link(staff)
    page = post_form(staff, "/sign-in", {"email": EMAIL})
    assert page.status_code == 429
    assert "For mange forsøg" in page.text and "Retry-After" in page.headers
    assert len(sign_in_mails(staff)) == 5
    code = post_form(staff, "/sign-in/code", {"email": EMAIL, "code": "ABCD-EFGH"})
    assert code.status_code == 429


def test_sign_out_ends_the_session(client_as: Callable[..., TestClient]) -> None:
    client = client_as("secretariat")
    token = client.cookies.get(SESSION_COOKIE)
    assert signed_in_as(client) == "Test secretariat"
    out = post_form(client, "/sign-out")
    assert out.status_code == 303 and out.headers["location"] == "/"
    assert f'{SESSION_COOKIE}=""' in out.headers["set-cookie"]
    # The old cookie no longer works even if a browser kept it.
    assert token
    client.cookies.set(SESSION_COOKIE, token)
    assert signed_in_as(client) is None


def test_a_disabled_users_session_stops_at_once(client_as: Callable[..., TestClient]) -> None:
    client = client_as("follow_up", email="leaver@kl.example.dk")
    assert signed_in_as(client) == "Test follow_up"
    web_service(client).accounts.disable_user("leaver@kl.example.dk", actor="test")
    assert signed_in_as(client) is None
    assert ask_for_link(client, "leaver@kl.example.dk")
    assert sign_in_mails(client) == []


def test_sign_in_without_csrf_token_is_refused(staff: TestClient) -> None:
    page = staff.post("/sign-in", data={"email": EMAIL})
    assert page.status_code == 403
    assert sign_in_mails(staff) == []


@pytest.fixture
def delivering(
    programme_url: str, clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, Path]]:
    folder = tmp_path / "outbox"
    monkeypatch.setenv("DK2020FLOW_MAIL_TRANSPORT", "folder")
    monkeypatch.setenv("DK2020FLOW_MAIL_FOLDER", str(folder))
    config = WebConfig(database_url=programme_url, clock=clock, threads=4)
    assert config.deliver_sign_in_mail
    with TestClient(create_app(config), follow_redirects=False) as client:
        yield client, folder


def test_the_mail_is_delivered_at_once(
    delivering: tuple[TestClient, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client, folder = delivering
    web_service(client).accounts.add_user(EMAIL, "Mette Hansen", ["admin"], actor="test")
    ask_for_link(client)
    [mail] = sign_in_mails(client)
    assert mail.status is OutboxStatus.SENT
    [eml] = list(folder.glob("*.eml"))
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("plain",))
    assert body is not None
    token = _from_text(r"/sign-in/link\?token=([\w-]+)", body.get_content())
    code = _from_text(r"\b([A-Z2-9]{4}-[A-Z2-9]{4})\b", body.get_content())
    # Sent, the outbox forgets the link and the code: the database never keeps them.
    assert token not in mail.text + mail.html and code not in mail.text + mail.html
    assert post_form(client, "/sign-in/link", {"token": token}).status_code == 303
    # Nothing secret in the logs: neither the link's token, nor the code, nor the cookie.
    logged = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert caplog.records  # the sign-in and the delivery were logged ...
    cookie = client.cookies.get(SESSION_COOKIE)
    assert cookie
    for secret in (token, code, cookie):
        assert secret not in logged  # ... without their secrets


def test_a_failed_delivery_leaves_the_mail_for_the_daemon(
    delivering: tuple[TestClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = delivering
    monkeypatch.setenv("DK2020FLOW_MAIL_TRANSPORT", "smtp")
    monkeypatch.setenv("DK2020FLOW_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("DK2020FLOW_SMTP_PORT", "9")  # nothing listens: connection refused
    web_service(client).accounts.add_user(EMAIL, "Mette Hansen", ["admin"], actor="test")
    assert "Tjek din e-mail" in ask_for_link(client)
    [mail] = sign_in_mails(client)
    assert mail.status is OutboxStatus.PENDING and mail.attempts == 1
    assert "connect" in mail.last_error
