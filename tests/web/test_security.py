"""The console's defences, each tried as an attacker would: CSRF, response headers, the
session cookie, HTML in case data, secrets in pages and logs, open redirects."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import create_engine, select, update

from dk2020flow.clock import ManualClock
from dk2020flow.runtime.logs import JsonFormatter, TextFormatter
from dk2020flow.service.core import Service
from dk2020flow.store import tables as t
from dk2020flow.web.app import create_app
from dk2020flow.web.config import CSRF_COOKIE, SESSION_COOKIE, WebConfig

from .conftest import csrf_of, post_form, web_service

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
EVIL = ("//evil.example", "https://evil.example", "/\\evil.example", "https:evil.example")
INVITED = "Frederiksberg"
"""Invited, late on the council's answer (the web tests' programme)."""


def case_path(service: Service, organisation: str) -> str:
    """The case page's address, as the console's own links write it (``#12``)."""
    return f"/cases/%23{service.case(organisation, 'dk2020').id}"


def _history(service: Service, ref: str) -> list[Any]:
    """The case's events (its log)."""
    return service.history(ref, workflow="dk2020")[1]


def _set_cookie_headers(response: Response) -> list[str]:
    return response.headers.get_list("set-cookie")


def _cookie(response: Response, name: str) -> str:
    found = [c for c in _set_cookie_headers(response) if c.startswith(f"{name}=")]
    assert found, f"no {name} cookie in {_set_cookie_headers(response)}"
    return found[0]


def _attributes(cookie: str) -> set[str]:
    return {part.strip().lower() for part in cookie.split(";")[1:]}


# ----------------------------------------------------------------------------- CSRF


DECLINE = {"decision_date": "2021-11-30"}
"""A valid form for ``decide_decline`` on an invited case (as follow_up)."""


@pytest.fixture
def follow_up(client_as: Callable[..., TestClient]) -> TestClient:
    browser = client_as("follow_up")
    csrf_of(browser)
    return browser


def _fire_url(service: Service) -> str:
    return f"{case_path(service, INVITED)}/fire/decide_decline"


@pytest.mark.parametrize(
    "attack",
    ["no token", "wrong token", "token without its cookie", "another site's origin"],
)
def test_a_forged_post_is_refused_and_changes_nothing(follow_up: TestClient, attack: str) -> None:
    service = web_service(follow_up)
    before = service.case(INVITED, "dk2020")
    history = _history(service, INVITED)
    token = csrf_of(follow_up)
    data: dict[str, str] = dict(DECLINE)
    headers: dict[str, str] = {}
    if attack == "wrong token":
        data["csrf_token"] = "x" * len(token)
    elif attack == "token without its cookie":
        data["csrf_token"] = token
        follow_up.cookies.delete(CSRF_COOKIE)
    elif attack == "another site's origin":
        data["csrf_token"] = token
        headers["origin"] = "https://evil.example"
    response = follow_up.post(_fire_url(service), data=data, headers=headers)
    assert response.status_code == 403, response.text
    after = service.case(INVITED, "dk2020")
    assert (after.state, after.version) == (before.state, before.version)
    assert _history(service, INVITED) == history


def test_the_same_post_with_its_token_goes_through(follow_up: TestClient) -> None:
    """The control for the test above: the forged requests differ only in the token."""
    service = web_service(follow_up)
    history = _history(service, INVITED)
    response = post_form(follow_up, _fire_url(service), DECLINE)
    assert response.status_code == 303, response.text
    assert service.case(INVITED, "dk2020").state == "declined"
    assert len(_history(service, INVITED)) == len(history) + 1


def test_a_wrong_token_in_the_htmx_header_is_refused(follow_up: TestClient) -> None:
    service = web_service(follow_up)
    response = follow_up.post(
        _fire_url(service),
        data=DECLINE,
        headers={"hx-request": "true", "x-csrf-token": "y" * 43},
    )
    assert response.status_code == 403
    assert service.case(INVITED, "dk2020").state == "invited"


def _post_routes(client: TestClient) -> list[str]:
    app: Any = client.app
    paths = []
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute) and "POST" in (context.methods or ()):
            assert context.path
            paths.append(re.sub(r"\{[^}]+\}", "1", context.path))
    assert paths
    return paths


def test_every_post_route_refuses_a_request_without_the_token(
    client_as: Callable[..., TestClient],
) -> None:
    """Signed in with every role, so that nothing but the token is missing."""
    browser = client_as("secretariat", "follow_up", "admin")
    csrf_of(browser)
    refused = {
        path: browser.post(path, data={"x": "1"}).status_code for path in _post_routes(browser)
    }
    assert {path: status for path, status in refused.items() if status != 403} == {}


def test_the_csrf_cookie_is_httponly_and_strict(client: TestClient) -> None:
    cookie = _cookie(client.get("/sign-in"), CSRF_COOKIE)
    assert {"httponly", "samesite=strict", "path=/"} <= _attributes(cookie)
    assert "secure" not in _attributes(cookie)


# ----------------------------------------------------------------------------- headers


def _pages(client_as: Callable[..., TestClient], client: TestClient) -> dict[str, Response]:
    anonymous = {
        "sign-in page": client.get("/sign-in"),
        "accessibility statement": client.get("/tilgaengelighed"),
        "redirect to sign-in": client.get("/cases"),
        "health": client.get("/healthz"),
        "static file": client.get("/static/app.css"),
    }
    browser = client_as("read_only")
    signed = {
        "overview": browser.get("/"),
        "case": browser.get(case_path(web_service(browser), INVITED)),
        "not found": browser.get("/cases/%2399999"),
        "forbidden": browser.get("/admin/users"),
    }
    return {**anonymous, **signed}


def test_every_kind_of_response_carries_the_security_headers(
    client_as: Callable[..., TestClient], client: TestClient
) -> None:
    problems = []
    for what, response in _pages(client_as, client).items():
        headers = response.headers
        csp = headers.get("content-security-policy", "")
        wanted = {
            "x-content-type-options": "nosniff",
            "x-frame-options": "DENY",
            "referrer-policy": "no-referrer",
        }
        for name, value in wanted.items():
            if headers.get(name) != value:
                problems.append(f"{what} ({response.status_code}): {name}={headers.get(name)}")
        for directive in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"):
            if directive not in csp:
                problems.append(f"{what}: CSP without {directive!r}: {csp!r}")
        if "unsafe-inline" in csp or "unsafe-eval" in csp:
            problems.append(f"{what}: CSP allows unsafe code: {csp!r}")
    assert not problems, problems


def test_the_pages_have_no_inline_script_or_style(client_as: Callable[..., TestClient]) -> None:
    """The CSP refuses them, so a page that had one would be broken in a browser."""
    browser = client_as("secretariat")
    case = case_path(web_service(browser), INVITED)
    for path in ("/", case, "/cases", "/sign-in", "/tilgaengelighed"):
        body = browser.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body), path
        assert " style=" not in body and "<style" not in body, path
        assert not re.search(r"\son[a-z]+=", body), path


# ----------------------------------------------------------------------------- the session cookie


@pytest.fixture
def https_config(programme_url: str, clock: ManualClock) -> WebConfig:
    return WebConfig(database_url=programme_url, clock=clock, threads=4, deliver_sign_in_mail=False)


def _browser(config: WebConfig, base_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(config), base_url=base_url, follow_redirects=False) as browser:
        yield browser


@pytest.fixture
def http_browser(https_config: WebConfig) -> Iterator[TestClient]:
    yield from _browser(https_config, "http://testserver")


@pytest.fixture
def https_browser(https_config: WebConfig) -> Iterator[TestClient]:
    yield from _browser(https_config, "https://testserver")


def _latest_sign_in_mail(url: str) -> tuple[str, str]:
    """The (link token, code) of the newest sign-in mail in the outbox."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            text = conn.execute(
                select(t.outbox.c.text).order_by(t.outbox.c.id.desc()).limit(1)
            ).scalar_one()
    finally:
        engine.dispose()
    link = re.search(r"/sign-in/link\?token=([A-Za-z0-9_-]+)", text)
    assert link, text
    code = re.search(r"\b([A-Z2-9]{4})-([A-Z2-9]{4})\b", text)
    assert code, text
    return link.group(1), code.group(1) + code.group(2)


def _sign_in(browser: TestClient, url: str, email: str, *, roles: list[str]) -> Response:
    """Sign in as a person does: ask for a link, open it, press the button."""
    service = web_service(browser)
    if email not in {u.email for u in service.accounts.list_users()}:
        service.accounts.add_user(email, "Signe Sikker", roles, actor="test")
    asked = post_form(browser, "/sign-in", {"email": email})
    assert asked.status_code == 200, asked.text
    token, _code = _latest_sign_in_mail(url)
    page = browser.get(f"/sign-in/link?token={token}")
    assert page.status_code == 200
    return browser.post("/sign-in/link", data={"token": token, "csrf_token": csrf_of(browser)})


def test_the_session_cookie_is_httponly_and_lax(http_browser: TestClient, sqlite_url: str) -> None:
    response = _sign_in(http_browser, sqlite_url, "signe@staff.example.dk", roles=["secretariat"])
    assert response.status_code == 303
    cookie = _cookie(response, SESSION_COOKIE)
    assert {"httponly", "samesite=lax", "path=/"} <= _attributes(cookie)
    assert "secure" not in _attributes(cookie)


def test_over_https_the_cookies_are_secure(https_browser: TestClient, sqlite_url: str) -> None:
    first = https_browser.get("/sign-in")
    assert "secure" in _attributes(_cookie(first, CSRF_COOKIE))
    response = _sign_in(https_browser, sqlite_url, "signe@staff.example.dk", roles=["secretariat"])
    assert response.status_code == 303
    cookie = _cookie(response, SESSION_COOKIE)
    assert {"httponly", "samesite=lax", "secure"} <= _attributes(cookie)
    language = https_browser.get("/language?lang=en&next=/")
    assert "secure" in _attributes(_cookie(language, "dk2020flow_lang"))


# ----------------------------------------------------------------------------- escaping


def _rename(url: str, name: str, new: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                update(t.organisations).where(t.organisations.c.name == name).values(name=new)
            )
    finally:
        engine.dispose()


def _assert_escaped(response: Response, what: str) -> None:
    assert response.status_code == 200, f"{what}: {response.status_code}"
    assert SCRIPT not in response.text, f"{what} shows the organisation's name unescaped"
    assert ESCAPED in response.text, f"{what} does not show the organisation's name"


def test_html_in_a_organisation_name_is_shown_escaped(
    client_as: Callable[..., TestClient], sqlite_url: str
) -> None:
    browser = client_as("secretariat")
    case = case_path(web_service(browser), INVITED)
    _rename(sqlite_url, INVITED, SCRIPT)
    _assert_escaped(browser.get("/"), "the overview")
    _assert_escaped(browser.get("/cases?q=alert"), "the cases page")
    _assert_escaped(browser.get(case), "the case page")


def test_html_in_case_data_and_in_the_query_is_shown_escaped(
    client_as: Callable[..., TestClient],
) -> None:
    browser = client_as("secretariat", "follow_up")
    service = web_service(browser)
    case = service.case("Odense", "dk2020")
    service.set_data(
        f"#{case.id}",
        {"contact_person_name": SCRIPT},
        actor="test",
        role="follow_up",
    )
    _assert_escaped(browser.get(case_path(service, "Odense")), "the case page's fields")
    searched = browser.get("/cases", params={"q": SCRIPT})
    assert searched.status_code == 200
    assert SCRIPT not in searched.text, "the search box reflects the query unescaped"


# ----------------------------------------------------------------------------- secrets


def test_no_secret_in_any_page_or_log_line(
    http_browser: TestClient, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The link's token, its code and the session cookie appear in no page after
    sign-in (not even the outbox's, nor another user's) and in no log line."""
    caplog.set_level(logging.DEBUG, logger="dk2020flow")
    address = "hemmelig@staff.example.dk"
    service = web_service(http_browser)
    service.accounts.add_user(address, "Hemmelig", ["secretariat", "admin"], actor="test")
    post_form(http_browser, "/sign-in", {"email": address})
    token, code = _latest_sign_in_mail(sqlite_url)
    signed = post_form(http_browser, "/sign-in/link", {"token": token})
    assert signed.status_code == 303
    session = http_browser.cookies.get(SESSION_COOKIE)
    assert session
    # A second link is asked for and left unused: it must not show on any page either.
    post_form(http_browser, "/sign-in", {"email": address})
    pending_token, pending_code = _latest_sign_in_mail(sqlite_url)
    secrets = {
        "link token": token,
        "session": session,
        "unused link": pending_token,
        "code": code,
        "unused code": pending_code,
        "unused code, as the mail shows it": f"{pending_code[:4]}-{pending_code[4:]}",
    }
    paths = ["/", "/cases", case_path(service, INVITED), "/account", "/admin/users", "/operations"]
    paths += ["/operations/outbox", "/operations/scheduler", "/cases.csv"]
    paths += [f"/operations/outbox?status={status}" for status in ("pending", "sent", "parked")]
    leaks = []
    for path in paths:
        response = http_browser.get(path)
        if response.status_code != 200:
            leaks.append(f"{path}: {response.status_code} (the page should be checked)")
        leaks += [f"{what} on {path}" for what, value in secrets.items() if value in response.text]
    formatters = (TextFormatter(), JsonFormatter())
    for record in caplog.records:
        for formatter in formatters:
            line = formatter.format(record)
            leaks += [f"{what} in log: {line}" for what, value in secrets.items() if value in line]
    assert not leaks, leaks


# ----------------------------------------------------------------------------- open redirects


@pytest.mark.parametrize("target", EVIL)
def test_the_language_switch_never_sends_to_another_site(client: TestClient, target: str) -> None:
    response = client.get("/language", params={"lang": "en", "next": target})
    assert response.status_code == 303
    assert response.headers["location"] == "/"


@pytest.mark.parametrize("target", EVIL)
def test_sign_in_never_sends_to_another_site(
    http_browser: TestClient, sqlite_url: str, target: str
) -> None:
    address = "videre@staff.example.dk"
    web_service(http_browser).accounts.add_user(address, "Videre", ["follow_up"], actor="test")
    page = http_browser.get("/sign-in", params={"next": target})
    assert target not in page.text
    post_form(http_browser, "/sign-in", {"email": address, "next": target})
    token, _ = _latest_sign_in_mail(sqlite_url)
    signed = post_form(http_browser, "/sign-in/link", {"token": token, "next": target})
    assert signed.status_code == 303
    assert signed.headers["location"] == "/"


def test_sign_in_keeps_a_local_next(http_browser: TestClient, sqlite_url: str) -> None:
    """The control: a local path survives the sign-in."""
    address = "lokal@staff.example.dk"
    web_service(http_browser).accounts.add_user(address, "Lokal", ["follow_up"], actor="test")
    post_form(http_browser, "/sign-in", {"email": address, "next": "/cases?late=1"})
    token, _ = _latest_sign_in_mail(sqlite_url)
    signed = post_form(http_browser, "/sign-in/link", {"token": token, "next": "/cases?late=1"})
    assert signed.headers["location"] == "/cases?late=1"
