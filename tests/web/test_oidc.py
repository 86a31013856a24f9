"""Single sign-on by OpenID Connect, end to end against a real provider on loopback.

The provider is ``oidc-provider-mock``: authlib's authorization server on Flask, served by
werkzeug on a loopback port in a thread. It speaks real HTTP, serves discovery and its
JWKS, and signs real RS256 ID tokens; its authorize page lets the "browser" (an httpx2
client here) choose the user. The app is the console's (TestClient, as every web test),
and its calls to the provider (discovery, keys, the code exchange) are the production
code of ``web/oidc.py`` over real HTTP. Nothing of the client library is replaced.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx2
import pytest
from fastapi.testclient import TestClient

from api.served import environment, serve
from dk2020flow.clock import ManualClock
from dk2020flow.service.accounts import PARTICIPANT, OidcRefusedError
from dk2020flow.service.core import open_service
from dk2020flow.service.links import purpose_key, renew_key
from dk2020flow.settings import ConfigError, SettingsError, load_settings
from dk2020flow.web.app import create_app
from dk2020flow.web.config import OIDC_COOKIE, SESSION_COOKIE, OidcConfig, WebConfig
from dk2020flow.web.oidc import (
    PENDING_HOST_COOKIE,
    PENDING_PURPOSE,
    OidcClient,
    OidcError,
    Pending,
    oidc_config,
)
from pgwait import until_waiting_on_a_lock

from .conftest import NOW, web_service
from .portal_world import AARHUS, ANNA, ODENSE, OLE, add_contacts, case_id

CLIENT_ID = "dk2020flow-test"
SECRET = "the-client-secret"
STAFF = "sekretariat@staff.example.dk"
STRANGER = "fremmed@example.dk"

pytestmark = pytest.mark.filterwarnings(
    # Raised in the provider's threads: oidc-provider-mock uses authlib's older server API.
    "ignore:get_jwt_config:DeprecationWarning",
)

USERS = {
    "anna-sub": {"email": ANNA, "email_verified": True, "name": "Anna Aarhus"},
    "staff-sub": {"email": STAFF, "email_verified": True, "name": "Sekretariatet"},
    "stranger-sub": {"email": STRANGER, "email_verified": True},
    "impostor-sub": {"email": ANNA, "email_verified": True},
    "unverified-sub": {"email": OLE, "email_verified": False},
    "no-mail-sub": {"name": "Uden Mail"},
}


@pytest.fixture
def issuer() -> Iterator[str]:
    """The provider's issuer URL (it runs while the test does)."""
    with warnings.catch_warnings():
        # The provider imports authlib.jose, which authlib deprecates in favour of joserfc
        # (authlib's own filter says "always" for its warnings: this one goes first).
        from authlib.deprecate import AuthlibDeprecationWarning

        warnings.simplefilter("ignore", AuthlibDeprecationWarning)
        import oidc_provider_mock
    users = [oidc_provider_mock.User(sub=sub, claims=claims) for sub, claims in USERS.items()]
    with oidc_provider_mock.run_server_in_thread(
        require_nonce=True, issue_refresh_token=False, user_claims=users
    ) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def oidc(issuer: str) -> OidcConfig:
    return OidcConfig(issuer=issuer, client_id=CLIENT_ID, client_secret=SECRET, name="Test SSO")


@pytest.fixture
def app(programme_url: str, clock: ManualClock, oidc: OidcConfig) -> Iterator[TestClient]:
    add_contacts(programme_url)
    config = WebConfig(
        database_url=programme_url, clock=clock, threads=4, deliver_sign_in_mail=False, oidc=oidc
    )
    with TestClient(create_app(config), follow_redirects=False) as client:
        yield client


@pytest.fixture
def browser() -> Iterator[httpx2.Client]:
    """The browser's side at the provider (its own cookies, real HTTP)."""
    with httpx2.Client(follow_redirects=False, timeout=10) as client:
        yield client


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return urlunsplit(parts._replace(query=urlencode({**query, **changes})))


def to_provider(app: TestClient, next_path: str = "/") -> str:
    """Press the sign-in page's button: the provider's authorize URL the app sends to."""
    page = app.get("/sign-in", params={"next": next_path})
    found = re.search(r'id="sign-in-oidc"\s+href="([^"]+)"', page.text)
    assert found, page.text
    started = app.get(unescape(found.group(1)))
    assert started.status_code == 303, started.text
    return started.headers["location"]


def authorize(browser: httpx2.Client, authorize_url: str, sub: str) -> str:
    """At the provider: open its page and choose the user; the redirect back to the app."""
    page = browser.get(authorize_url)
    assert page.status_code == 200, page.text
    assert f'value="{sub}"' in page.text  # the provider offers the user
    chosen = browser.post(authorize_url, data={"sub": sub})
    assert chosen.status_code == 302, chosen.text
    return chosen.headers["location"]


def back_to_app(app: TestClient, redirect: str) -> Any:
    parts = urlsplit(redirect)
    assert f"{parts.scheme}://{parts.netloc}" == "http://testserver", redirect
    return app.get(f"{parts.path}?{parts.query}")


def sign_in(app: TestClient, browser: httpx2.Client, sub: str, next_path: str = "/") -> Any:
    """The whole journey; the app's answer to the provider's redirect."""
    return back_to_app(app, authorize(browser, to_provider(app, next_path), sub))


def test_the_button_is_there_only_when_single_sign_on_is_configured(
    app: TestClient, client: TestClient
) -> None:
    assert "Log ind med Test SSO" in app.get("/sign-in").text
    assert "sign-in-oidc" not in client.get("/sign-in").text
    # Without the setting the paths lead to the sign-in page.
    assert client.get("/sign-in/oidc").headers["location"] == "/sign-in"
    assert client.get("/sign-in/oidc/callback?code=x&state=y").headers["location"] == "/sign-in"


def test_the_authorization_request_uses_pkce_state_and_nonce(
    app: TestClient, oidc: OidcConfig
) -> None:
    url = to_provider(app)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert url.startswith(f"{oidc.issuer}/oauth2/authorize?")
    assert query["response_type"] == "code" and query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == "http://testserver/sign-in/oidc/callback"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) >= 43
    assert set(query["scope"].split()) == {"openid", "email", "profile"}
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32
    # The verifier is kept in the browser's cookie, never sent to the provider in the URL.
    assert app.cookies.get(OIDC_COOKIE) and "code_verifier" not in url


def test_a_contact_signs_in_to_the_portal_with_their_roles(
    app: TestClient, browser: httpx2.Client, programme_url: str
) -> None:
    done = sign_in(app, browser, "anna-sub")
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/portal"
    assert app.cookies.get(SESSION_COOKIE) and not app.cookies.get(OIDC_COOKIE)
    service = web_service(app)
    with service.store.read() as tx:
        user = tx.find_user(ANNA)
        assert user is not None and user.kind == PARTICIPANT  # made as a link's request would
        assert tx.oidc_subject(user.id) == "anna-sub"
    [session] = service.accounts.sessions(user.id)
    assert session.method == "oidc"
    # Aarhus's contact person: Aarhus's case, not Odense's.
    assert app.get("/portal").status_code == 200
    assert app.get(f"/portal/cases/{case_id(programme_url, AARHUS)}").status_code == 200
    assert app.get(f"/portal/cases/{case_id(programme_url, ODENSE)}").status_code == 403
    # Signing in again with the same identity works (the subject is the one bound).
    app.cookies.clear()
    assert sign_in(app, browser, "anna-sub").status_code == 303


def test_a_staff_address_signs_in_to_the_console(app: TestClient, browser: httpx2.Client) -> None:
    service = web_service(app)
    service.accounts.add_user(STAFF, "Sekretariatet", ["secretariat"], actor="test")
    done = sign_in(app, browser, "staff-sub", next_path="/cases")
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/cases"
    page = app.get("/cases")
    assert page.status_code == 200 and "Sekretariatet" in page.text
    [user] = [u for u in service.accounts.list_users() if u.email == STAFF]
    assert [s.method for s in service.accounts.sessions(user.id)] == ["oidc"]


def test_an_unknown_address_is_refused_and_no_account_is_made(
    app: TestClient, browser: httpx2.Client
) -> None:
    done = sign_in(app, browser, "stranger-sub")
    assert done.status_code == 403
    assert STRANGER in done.text and "Adressen kendes ikke" in done.text
    assert not app.cookies.get(SESSION_COOKIE)
    with web_service(app).store.read() as tx:
        assert tx.find_user(STRANGER) is None


def test_another_subject_for_a_bound_address_is_refused(
    app: TestClient, browser: httpx2.Client
) -> None:
    assert sign_in(app, browser, "anna-sub").status_code == 303
    app.cookies.clear()
    refused = sign_in(app, browser, "impostor-sub")
    assert refused.status_code == 403 and "en anden identitet" in refused.text
    assert not app.cookies.get(SESSION_COOKIE)


def test_a_disabled_staff_account_is_refused(app: TestClient, browser: httpx2.Client) -> None:
    service = web_service(app)
    service.accounts.add_user(STAFF, "Sekretariatet", ["secretariat"], actor="test")
    service.accounts.disable_user(STAFF, actor="test")
    assert sign_in(app, browser, "staff-sub").status_code == 403
    assert not app.cookies.get(SESSION_COOKIE)


def test_a_tampered_or_replayed_state_signs_nobody_in(
    app: TestClient, browser: httpx2.Client, oidc: OidcConfig
) -> None:
    redirect = authorize(browser, to_provider(app), "anna-sub")
    tampered = back_to_app(app, _with_query(redirect, state="x" * 43))
    assert tampered.status_code == 400 and "Login blev afbrudt" in tampered.text
    assert not app.cookies.get(SESSION_COOKIE)
    # The pending sign-in was spent by the refused answer: the right state no longer works.
    assert back_to_app(app, redirect).status_code == 400
    # A good answer works once: replayed (the pending cookie is gone), it is refused.
    redirect = authorize(browser, to_provider(app), "anna-sub")
    assert back_to_app(app, redirect).status_code == 303
    app.cookies.delete(SESSION_COOKIE)
    assert back_to_app(app, redirect).status_code == 400
    # An answer in another browser (no pending sign-in there) is refused.
    redirect = authorize(browser, to_provider(app), "anna-sub")
    with TestClient(app.app, follow_redirects=False) as other:
        assert back_to_app(other, redirect).status_code == 400
    # The provider's "deny" is answered with a page, not a session.
    url = to_provider(app)
    denied = browser.post(url, data={"action": "deny"})
    answer = back_to_app(app, denied.headers["location"])
    assert answer.status_code == 403 and not app.cookies.get(SESSION_COOKIE)


def _pending_of(app: TestClient, name: str = OIDC_COOKIE) -> dict[str, Any]:
    """What the pending cookie holds (its body, without checking the signature)."""
    body = str(app.cookies.get(name)).split(".")[0]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return data


def _unsigned(data: dict[str, Any]) -> str:
    """A pending cookie as one could make it without the key (the old, unsigned form)."""
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _plant(app: TestClient, name: str, value: str) -> None:
    """The browser holds ``value`` as its only cookie ``name`` (as a planted one would be)."""
    for cookie in list(app.cookies.jar):
        if cookie.name == name:
            app.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)
    app.cookies.set(name, value)


def test_a_pending_cookie_made_or_changed_elsewhere_signs_nobody_in(
    app: TestClient, browser: httpx2.Client
) -> None:
    """Login CSRF: a cookie someone else made (a sibling subdomain can plant cookies on
    plain http) for the state of *their* answer must not sign the victim in as them."""
    redirect = authorize(browser, to_provider(app), "anna-sub")
    held = _pending_of(app)
    # Unsigned (the attacker knows the state, nonce and verifier: they made them).
    _plant(app, OIDC_COOKIE, _unsigned(held))
    refused = back_to_app(app, redirect)
    assert refused.status_code == 400 and "Login blev afbrudt" in refused.text
    assert not app.cookies.get(SESSION_COOKIE)
    # Signed with another key (another installation's, or a guess).
    pending = Pending(
        state=held["s"], nonce=held["n"], verifier=held["v"], next="/", started=held["t"]
    )
    _plant(app, OIDC_COOKIE, pending.to_cookie(b"k" * 32))
    assert back_to_app(app, redirect).status_code == 400
    # Ours, with its start moved on (to outlive the ten minutes): the signature breaks.
    key = purpose_key(web_service(app), PENDING_PURPOSE)
    good = pending.to_cookie(key)
    moved = _unsigned({**held, "t": held["t"] + 3600})
    _plant(app, OIDC_COOKIE, f"{moved}.{good.split('.')[1]}")
    assert back_to_app(app, redirect).status_code == 400
    assert not app.cookies.get(SESSION_COOKIE)
    # The same sign-in signed with this database's key goes through.
    _plant(app, OIDC_COOKIE, good)
    assert back_to_app(app, redirect).status_code == 303


def test_a_renewed_link_key_voids_a_pending_sign_in(
    app: TestClient, browser: httpx2.Client
) -> None:
    redirect = authorize(browser, to_provider(app), "anna-sub")
    renew_key(web_service(app))
    refused = back_to_app(app, redirect)
    assert refused.status_code == 400 and not app.cookies.get(SESSION_COOKIE)


def test_over_https_the_pending_cookie_is_a_host_cookie(
    app: TestClient, browser: httpx2.Client
) -> None:
    with TestClient(app.app, base_url="https://testserver", follow_redirects=False) as secure:
        started = secure.get("/sign-in/oidc")
        assert started.status_code == 303, started.text
        [header] = [h for h in started.headers.get_list("set-cookie") if h.startswith("__Host-")]
        assert header.startswith(f"{PENDING_HOST_COOKIE}=")
        attributes = {a.strip().split("=")[0].lower() for a in header.split(";")[1:]}
        assert {"secure", "httponly", "path"} <= attributes and "domain" not in attributes
        assert "; Path=/;" in header or header.endswith("; Path=/")
        value = str(secure.cookies.get(PENDING_HOST_COOKIE))
        redirect = authorize(browser, started.headers["location"], "anna-sub")
        parts = urlsplit(redirect)
        assert f"{parts.scheme}://{parts.netloc}" == "https://testserver", redirect
        answer = f"{parts.path}?{parts.query}"
        # The plain name is not read over https (a sibling subdomain could have set it).
        _plant(secure, PENDING_HOST_COOKIE, "")
        secure.cookies.delete(PENDING_HOST_COOKIE)
        _plant(secure, OIDC_COOKIE, value)
        refused = secure.get(answer)
        assert refused.status_code == 400 and "Login blev afbrudt" in refused.text
        _plant(secure, PENDING_HOST_COOKIE, value)
        done = secure.get(answer)
        assert done.status_code == 303 and done.headers["location"] == "/portal", done.text
        assert secure.cookies.get(SESSION_COOKIE)


def test_of_two_first_sign_ins_binding_one_subject_at_once_the_loser_is_refused(
    pg_url: str,
) -> None:
    """PostgreSQL: both read the subject as free; the unique index makes the second wait
    for the first and then refuses it. The loser gets the refusal, not a server error."""
    clock = ManualClock(NOW)
    first, second = "first@staff.example.dk", "second@staff.example.dk"
    with open_service(pg_url, clock=clock, settings=load_settings()) as service:
        a = service.accounts.add_user(first, "First", ["secretariat"], actor="test")
        service.accounts.add_user(second, "Second", ["secretariat"], actor="test")
        outcome: list[object] = []

        def loser() -> None:
            try:
                outcome.append(
                    service.accounts.sign_in_with_oidc(
                        second, "shared-sub", client="test", user_agent="test"
                    )
                )
            except Exception as exc:
                outcome.append(exc)

        with service.store.transaction() as tx:
            assert tx.bind_oidc_subject(a.id, "shared-sub")  # not committed yet
            thread = threading.Thread(target=loser)
            thread.start()
            until_waiting_on_a_lock(pg_url, thread)  # the second waits on the unique index
        thread.join()
        [refused] = outcome
        assert isinstance(refused, OidcRefusedError), refused
        assert refused.problem == "subject" and refused.address == second
        with service.store.read() as tx:
            owner = tx.find_user(second)
            assert owner is not None and tx.oidc_subject(owner.id) is None
            assert tx.oidc_subject(a.id) == "shared-sub"
        assert service.accounts.sessions(owner.id) == []


def test_an_answer_after_ten_minutes_is_refused(
    app: TestClient, browser: httpx2.Client, oidc: OidcConfig
) -> None:
    redirect = authorize(browser, to_provider(app), "anna-sub")
    # The app's client of the provider, its wall clock 11 minutes on (the pending sign-in's
    # life is ten); the ID token itself would still be valid.
    later = OidcClient(oidc, wall_clock=lambda: time.time() + 11 * 60)
    app.app.state.oidc_client = later  # type: ignore[attr-defined]
    refused = back_to_app(app, redirect)
    assert refused.status_code == 400 and not app.cookies.get(SESSION_COOKIE)


def test_a_token_with_another_nonce_is_refused(app: TestClient, browser: httpx2.Client) -> None:
    # The authorization request is changed on its way to the provider: the ID token it
    # signs carries a nonce that is not this sign-in's.
    url = _with_query(to_provider(app), nonce="n" * 43)
    refused = back_to_app(app, authorize(browser, url, "anna-sub"))
    assert refused.status_code == 400 and "Login blev afvist" in refused.text
    assert not app.cookies.get(SESSION_COOKIE)


def test_a_code_issued_to_another_client_is_refused(
    app: TestClient, browser: httpx2.Client
) -> None:
    url = _with_query(to_provider(app), client_id="another-client")
    refused = back_to_app(app, authorize(browser, url, "anna-sub"))
    assert refused.status_code == 400 and not app.cookies.get(SESSION_COOKIE)


def test_unverified_or_missing_addresses_are_refused(
    app: TestClient, browser: httpx2.Client
) -> None:
    unverified = sign_in(app, browser, "unverified-sub")
    assert unverified.status_code == 403 and "ikke bekræftet" in unverified.text
    missing = sign_in(app, browser, "no-mail-sub")
    assert missing.status_code == 400 and "Ingen e-mailadresse" in missing.text
    assert not app.cookies.get(SESSION_COOKIE)


def _id_token(browser: httpx2.Client, issuer: str, client_id: str, nonce: str) -> str:
    """A real ID token from the provider, for ``client_id``."""
    callback = "http://client.example/cb"
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": callback,
        "scope": "openid email",
        "state": "s",
        "nonce": nonce,
    }
    url = f"{issuer}/oauth2/authorize?{urlencode(query)}"
    code = parse_qs(urlsplit(authorize(browser, url, "anna-sub")).query)["code"][0]
    token = browser.post(
        f"{issuer}/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": callback},
        auth=(client_id, "any"),
    )
    assert token.status_code == 200, token.text
    return str(token.json()["id_token"])


def test_the_id_token_checks(browser: httpx2.Client, issuer: str, oidc: OidcConfig) -> None:
    client = OidcClient(oidc)
    mine = _id_token(browser, issuer, CLIENT_ID, "the-nonce")
    assert client.validate_id_token(mine, nonce="the-nonce")["email"] == ANNA
    with pytest.raises(OidcError, match="nonce"):
        client.validate_id_token(mine, nonce="another-nonce")
    theirs = _id_token(browser, issuer, "another-client", "the-nonce")
    with pytest.raises(OidcError, match="aud"):
        client.validate_id_token(theirs, nonce="the-nonce")
    later = OidcClient(oidc, wall_clock=lambda: time.time() + 2 * 3600)
    with pytest.raises(OidcError, match="expired"):
        later.validate_id_token(mine, nonce="the-nonce")
    head, body, signature = mine.split(".")
    forged = f"{head}.{body}.{signature[::-1]}"
    with pytest.raises(OidcError, match="signature"):
        client.validate_id_token(forged, nonce="the-nonce")
    elsewhere = OidcClient(OidcConfig(issuer=issuer + "/", client_id=CLIENT_ID))
    assert elsewhere.validate_id_token(mine, nonce="the-nonce")["sub"] == "anna-sub"


def test_a_provider_that_does_not_answer_gets_a_page(
    programme_url: str, clock: ManualClock
) -> None:
    gone = OidcConfig(issuer="http://127.0.0.1:9", client_id=CLIENT_ID, timeout=2)
    config = WebConfig(database_url=programme_url, clock=clock, threads=4, oidc=gone)
    with TestClient(create_app(config), follow_redirects=False) as app:
        page = app.get("/sign-in/oidc")
        assert page.status_code == 502 and "kan ikke nås" in page.text


def test_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert oidc_config(load_settings()) is None
    monkeypatch.setenv("DK2020FLOW_OIDC_ISSUER", "https://broker.example.dk/realms/dk2020")
    with pytest.raises(SettingsError, match="DK2020FLOW_OIDC_CLIENT_ID"):
        oidc_config(load_settings())
    monkeypatch.setenv("DK2020FLOW_OIDC_CLIENT_ID", "dk2020flow")
    monkeypatch.setenv("DK2020FLOW_OIDC_CLIENT_SECRET", "from-the-environment")
    monkeypatch.setenv("DK2020FLOW_OIDC_NAME", "MitID Erhverv")
    config = oidc_config(load_settings())
    assert config is not None and config.client_secret == "from-the-environment"
    assert config.name == "MitID Erhverv" and config.scopes == ("openid", "email", "profile")
    monkeypatch.setenv("DK2020FLOW_OIDC_ISSUER", "http://broker.example.dk")
    with pytest.raises(SettingsError, match="https"):
        oidc_config(load_settings())
    # The secret never in a file.
    (tmp_path / "dk2020flow.toml").write_text('oidc_client_secret = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="oidc_client_secret must not be in a file"):
        load_settings()


def test_the_installed_serve_signs_a_contact_in_with_the_environments_settings(
    programme_url: str, issuer: str, tmp_path: Path, browser: httpx2.Client
) -> None:
    """``dk2020flow serve`` (a real uvicorn) with DK2020FLOW_OIDC_* from the environment:
    the whole journey over HTTP, the browser one httpx2 client for both sites."""
    add_contacts(programme_url)
    env = {
        "DK2020FLOW_OIDC_ISSUER": issuer,
        "DK2020FLOW_OIDC_CLIENT_ID": CLIENT_ID,
        "DK2020FLOW_OIDC_CLIENT_SECRET": SECRET,
        "DK2020FLOW_OIDC_NAME": "MitID Erhverv",
    }
    with serve(programme_url, tmp_path, env=env) as base:
        page = browser.get(f"{base}/sign-in")
        found = re.search(r'id="sign-in-oidc"\s+href="([^"]+)"', page.text)
        assert found and "Log ind med MitID Erhverv" in page.text, page.text
        started = browser.get(base + unescape(found.group(1)))
        assert started.status_code == 303 and started.headers["location"].startswith(issuer)
        redirect = authorize(browser, started.headers["location"], "anna-sub")
        assert redirect.startswith(f"{base}/sign-in/oidc/callback?")
        done = browser.get(redirect)
        assert done.status_code == 303 and done.headers["location"] == "/portal", done.text
        portal = browser.get(f"{base}/portal")
        assert portal.status_code == 200 and "Aarhus" in portal.text


def test_serve_refuses_incomplete_settings_in_one_line(programme_url: str, tmp_path: Path) -> None:
    done = subprocess.run(
        ["dk2020flow", "serve", "--db", programme_url],
        check=False,
        cwd=tmp_path,
        env=environment({"DK2020FLOW_OIDC_ISSUER": "https://broker.example.dk"}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "DK2020FLOW_OIDC_CLIENT_ID" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
