"""Single sign-on by OpenID Connect: the relying party's side of the authorization code flow.

``OidcClient`` speaks to one provider (``WebConfig.oidc``, from the ``oidc_*`` settings):

- the provider's endpoints come from its discovery document
  (``{issuer}/.well-known/openid-configuration``), whose ``issuer`` must be the one
  configured; the document and the signing keys (JWKS) are kept for an hour, the keys
  fetched again at once when a token names a key not among them;
- ``start`` makes the authorization request with a fresh ``state``, ``nonce`` and PKCE
  verifier (S256) — authlib's ``OAuth2Session`` builds the URL and, in ``finish``,
  exchanges the code (with the client secret when there is one); the three wait in the
  browser's pending cookie, signed (HMAC-SHA256 with a key the service derives from the
  database's link key, ``PENDING_PURPOSE``) and, over https, named ``__Host-…`` so that a
  sibling subdomain can neither make one nor plant one (``pending_cookie_name``);
- the ID token is checked with joserfc (the signature by the provider's keys, only the
  algorithms its discovery document announces, never ``none``) and authlib's
  ``CodeIDToken`` claims (``iss``, ``aud`` = the client id, ``exp``, ``iat``, ``nonce``,
  ``azp``, ``at_hash``), against the wall clock: the token's lifetime is the provider's,
  not the programme's (simulated) time;
- ``email`` is required (from the ID token, else the userinfo endpoint for the same
  ``sub``), and ``email_verified: false`` is refused.

Who the address belongs to (a staff account, a participant's contact rows) is the
service's decision: ``Accounts.sign_in_with_oidc``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from dk2020flow.errors import Dk2020flowError
from dk2020flow.web.config import OIDC_COOKIE, OidcConfig

if TYPE_CHECKING:
    # requests, authlib and joserfc are imported when a provider is first used (not at the
    # web's start-up when single sign-on is off: requests alone takes ~0.1 s).
    from authlib.integrations.requests_client import OAuth2Session
    from joserfc.jwk import KeySet

    from dk2020flow.settings import Settings

OidcProblem = Literal["state", "denied", "provider", "token", "email", "unverified"]
"""Why a sign-in by the provider failed before the service was asked (``OidcError``)."""

PENDING_LIFETIME = 600
"""Seconds a sign-in may take at the provider (the pending cookie's life)."""
PENDING_PURPOSE = "oidc-pending"
"""What the pending cookie's key is for (``service.links.purpose_key``)."""
PENDING_COOKIE = OIDC_COOKIE
"""The pending cookie over plain http (loopback: tests, a local try-out)."""
PENDING_HOST_COOKIE = f"__Host-{OIDC_COOKIE}"
"""The pending cookie over https: the ``__Host-`` prefix makes the browser accept it only
from this host, Secure, on ``Path=/`` and without a ``Domain`` (no sibling subdomain can
set or overwrite it)."""
CACHE_SECONDS = 3600
"""How long the discovery document and the keys are kept."""
LEEWAY = 60
"""Seconds of clock difference allowed between the provider and this server."""
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
"""The asymmetric algorithms accepted, as far as the provider announces them."""


LOOPBACK = ("localhost", "127.0.0.1", "::1")


def oidc_config(settings: Settings) -> OidcConfig | None:
    """The single sign-on the settings configure (None: ``oidc_issuer`` is not set);
    ``SettingsError`` naming the variable when they are incomplete or the issuer is not an
    https URL (plain http only on loopback, for a provider run in tests)."""
    from dk2020flow.settings import SettingsError

    issuer = (settings.oidc_issuer or "").strip()
    client_id = (settings.oidc_client_id or "").strip()
    if not issuer and not client_id:
        return None
    if not issuer or not client_id:
        missing = "DK2020FLOW_OIDC_ISSUER" if not issuer else "DK2020FLOW_OIDC_CLIENT_ID"
        raise SettingsError(
            f"{missing} is not set: single sign-on needs both the issuer and the client id "
            "(docs/portal.md, 'Single sign-on')"
        )
    parts = urlsplit(issuer)
    secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)
    if not secure or not parts.hostname or parts.query or parts.fragment:
        raise SettingsError(
            "DK2020FLOW_OIDC_ISSUER: the issuer must be an https URL without query or fragment "
            "(http only on loopback)"
        )
    scopes = tuple(dict.fromkeys(["openid", *settings.oidc_scopes.split()]))
    secret = settings.oidc_client_secret
    return OidcConfig(
        issuer=issuer,
        client_id=client_id,
        client_secret=secret.get_secret_value() if secret is not None else None,
        scopes=scopes,
        name=" ".join(settings.oidc_name.split()) or "single sign-on",
    )


class OidcError(Dk2020flowError):
    """The provider's answer cannot sign anyone in; ``problem`` says which kind of failure
    (shown to the person), the message says what exactly (logged)."""

    def __init__(self, problem: OidcProblem, message: str) -> None:
        super().__init__(message)
        self.problem: OidcProblem = problem


def pending_cookie_name(scheme: str) -> str:
    """The pending cookie's name for a request by ``scheme`` (the session cookie's rule:
    Secure over https): ``__Host-…`` over https, the plain name over http."""
    return PENDING_HOST_COOKIE if scheme == "https" else PENDING_COOKIE


def _signature(key: bytes, body: str) -> str:
    digest = hmac.digest(key, f"{PENDING_PURPOSE}\n{body}".encode(), "sha256")
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True, kw_only=True, slots=True)
class Pending:
    """A sign-in between the redirect to the provider and the provider's answer: kept in
    the browser (a signed HttpOnly cookie, ``pending_cookie_name``) and good once."""

    state: str
    nonce: str
    verifier: str
    next: str
    started: int
    """Wall-clock seconds when the sign-in began."""

    def to_cookie(self, key: bytes) -> str:
        """The cookie's value: the sign-in as base64url JSON, a dot, and its HMAC-SHA256
        under ``key`` (base64url)."""
        raw = json.dumps(
            {
                "s": self.state,
                "n": self.nonce,
                "v": self.verifier,
                "x": self.next,
                "t": self.started,
            },
            separators=(",", ":"),
        )
        body = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
        return f"{body}.{_signature(key, body)}"

    @classmethod
    def from_cookie(cls, value: str | None, key: bytes) -> Pending | None:
        """The pending sign-in in a cookie (None: missing, or not signed by ``key``: made
        elsewhere, changed, or signed before the key was renewed)."""
        if not value or len(value) > 2000 or value.count(".") != 1:
            return None
        body, signature = value.split(".")
        if not hmac.compare_digest(signature.encode(), _signature(key, body).encode()):
            return None
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            data = json.loads(raw)
            pending = cls(
                state=str(data["s"]),
                nonce=str(data["n"]),
                verifier=str(data["v"]),
                next=str(data["x"]),
                started=int(data["t"]),
            )
        except (binascii.Error, ValueError, TypeError, KeyError, AttributeError):
            return None
        return pending

    def matches(self, state: str, now: float) -> bool:
        """The provider's ``state`` is this sign-in's, and it is not too old."""
        fresh = 0 <= now - self.started <= PENDING_LIFETIME
        return fresh and bool(state) and hmac.compare_digest(state.encode(), self.state.encode())


@dataclass(frozen=True, kw_only=True, slots=True)
class Identity:
    """Who the provider says signed in."""

    subject: str
    email: str
    name: str | None


class OidcClient:
    """One provider's client; safe to share between the threads that run the endpoints."""

    def __init__(
        self,
        config: OidcConfig,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.wall_clock = wall_clock
        self.issuer = config.issuer.rstrip("/")
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0

    # ------------------------------------------------------------------ the provider

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        import requests

        try:
            response = requests.get(url, timeout=self.config.timeout)
            response.raise_for_status()
            data = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise OidcError(
                "provider", f"the provider's {what} ({url}) cannot be read: {exc}"
            ) from None
        if not isinstance(data, dict):
            raise OidcError("provider", f"the provider's {what} ({url}) is not a JSON object")
        return data

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (kept for ``CACHE_SECONDS``)."""
        now = self.wall_clock()
        with self._lock:
            if self._metadata is not None and now - self._metadata_at < CACHE_SECONDS:
                return self._metadata
        url = f"{self.issuer}/.well-known/openid-configuration"
        data = self._get_json(url, "discovery document")
        if str(data.get("issuer", "")).rstrip("/") != self.issuer:
            raise OidcError(
                "provider",
                f"the discovery document at {url} names issuer {data.get('issuer')!r}, "
                f"not {self.issuer!r} (check the oidc_issuer setting)",
            )
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(data.get(key), str):
                raise OidcError("provider", f"the discovery document at {url} has no {key}")
        with self._lock:
            self._metadata, self._metadata_at = data, now
        return data

    def _key_set(self, *, force: bool = False) -> KeySet:
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        now = self.wall_clock()
        with self._lock:
            if not force and self._keys is not None and now - self._keys_at < CACHE_SECONDS:
                return self._keys
        uri = str(self.metadata()["jwks_uri"])
        try:
            keys = KeySet.import_key_set(self._get_json(uri, "signing keys"))  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise OidcError(
                "provider", f"the provider's keys ({uri}) are not a JWKS: {exc}"
            ) from None
        with self._lock:
            self._keys, self._keys_at = keys, now
        return keys

    def _session(self, redirect_uri: str) -> OAuth2Session:
        from authlib.integrations.requests_client import OAuth2Session

        return OAuth2Session(
            client_id=self.config.client_id,
            client_secret=self.config.client_secret,
            scope=" ".join(self.config.scopes),
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method=(
                "client_secret_basic" if self.config.client_secret else "none"
            ),
        )

    # ------------------------------------------------------------------ the flow

    def start(self, redirect_uri: str, next_path: str) -> tuple[str, Pending]:
        """The provider's authorization URL to send the browser to, and what to keep."""
        endpoint = str(self.metadata()["authorization_endpoint"])
        pending = Pending(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(48),
            next=next_path,
            started=int(self.wall_clock()),
        )
        with self._session(redirect_uri) as session:
            url, _state = session.create_authorization_url(
                endpoint, state=pending.state, nonce=pending.nonce, code_verifier=pending.verifier
            )
        return str(url), pending

    def finish(self, pending: Pending, *, code: str, redirect_uri: str) -> Identity:
        """Exchange the code and check the ID token: who signed in (``OidcError`` if not)."""
        import requests
        from authlib.integrations.base_client import OAuthError
        from authlib.oauth2 import OAuth2Error

        metadata = self.metadata()
        with self._session(redirect_uri) as session:
            try:
                token = session.fetch_token(
                    str(metadata["token_endpoint"]),
                    code=code,
                    code_verifier=pending.verifier,
                    timeout=self.config.timeout,
                )
            except (OAuthError, OAuth2Error) as exc:
                raise OidcError(
                    "token", f"the provider refused the code: {exc.error}: {exc.description}"
                ) from None
            except (requests.RequestException, ValueError) as exc:
                raise OidcError(
                    "provider", f"the token endpoint cannot be reached: {exc}"
                ) from None
            id_token = token.get("id_token")
            if not isinstance(id_token, str):
                raise OidcError("token", "the provider's answer has no ID token (scope openid?)")
            access = token.get("access_token")
            claims = self.validate_id_token(
                id_token,
                nonce=pending.nonce,
                access_token=access if isinstance(access, str) else None,
            )
            subject = str(claims["sub"])
            email = claims.get("email")
            verified = claims.get("email_verified")
            name = claims.get("name")
            if not isinstance(email, str) and "userinfo_endpoint" in metadata and access:
                info = self._userinfo(session, str(metadata["userinfo_endpoint"]))
                if str(info.get("sub")) != subject:
                    raise OidcError("token", "the userinfo answer is about another subject")
                email = info.get("email")
                verified = info.get("email_verified", verified)
                name = name or info.get("name")
        if not isinstance(email, str) or not email.strip():
            raise OidcError("email", "the provider sent no e-mail claim (scope email?)")
        if verified is False or verified == "false":
            raise OidcError("unverified", "the provider says the e-mail address is not verified")
        return Identity(
            subject=subject, email=email.strip(), name=name if isinstance(name, str) else None
        )

    def _userinfo(self, session: OAuth2Session, endpoint: str) -> dict[str, Any]:
        import requests

        try:
            response = session.get(endpoint, timeout=self.config.timeout)
            response.raise_for_status()
            data = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise OidcError("provider", f"the userinfo endpoint cannot be read: {exc}") from None
        return data if isinstance(data, dict) else {}

    def validate_id_token(
        self, id_token: str, *, nonce: str, access_token: str | None = None
    ) -> dict[str, Any]:
        """The ID token's claims once its signature, issuer, audience, times and nonce are
        right; ``OidcError("token")`` naming the first thing that is not."""
        from authlib.oidc.core import CodeIDToken
        from joserfc import jwt
        from joserfc.errors import InvalidKeyIdError, JoseError
        from joserfc.jws import JWSRegistry

        metadata = self.metadata()
        announced = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [alg for alg in SIGNING_ALGORITHMS if alg in announced]
        if not algorithms:
            raise OidcError("provider", f"the provider signs with none of {SIGNING_ALGORITHMS}")
        registry = JWSRegistry(algorithms=algorithms, strict_check_header=False)
        try:
            try:
                decoded = jwt.decode(id_token, self._key_set(), registry=registry)
            except InvalidKeyIdError:  # the provider rolled its keys over
                decoded = jwt.decode(id_token, self._key_set(force=True), registry=registry)
        except (JoseError, ValueError) as exc:
            raise OidcError("token", f"the ID token's signature is not valid: {exc}") from None
        params: dict[str, Any] = {"nonce": nonce, "client_id": self.config.client_id}
        if access_token:
            params["access_token"] = access_token
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {
                "iss": {"essential": True, "value": str(metadata["issuer"])},
                "aud": {"essential": True, "value": self.config.client_id},
                "nonce": {"essential": True, "value": nonce},
            },
            params,
        )
        try:
            claims.validate(now=int(self.wall_clock()), leeway=LEEWAY)
        except (JoseError, ValueError, TypeError) as exc:
            raise OidcError("token", f"the ID token is not valid: {exc}") from None
        if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            raise OidcError("token", "the ID token's nonce is not this sign-in's")
        if not str(claims.get("sub", "")):
            raise OidcError("token", "the ID token has no subject")
        return dict(claims)
