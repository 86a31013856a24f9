"""What ``dk2020flow serve`` (or a test) configures the web application with."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from dk2020flow.clock import Clock, SystemClock
from dk2020flow.service.accounts import SESSION_LIFETIME, SIGN_IN_LINK_LIFETIME

SESSION_COOKIE = "dk2020flow_session"
CSRF_COOKIE = "dk2020flow_csrf"
LANGUAGE_COOKIE = "dk2020flow_lang"
OIDC_COOKIE = "dk2020flow_oidc"
"""The pending OpenID Connect sign-in (state, nonce, PKCE verifier) between the redirect to
the provider and its answer; only on the ``/sign-in/oidc`` paths, for minutes."""


@dataclass(frozen=True, kw_only=True)
class OidcConfig:
    """Single sign-on by OpenID Connect (``web/oidc.py``; the settings ``oidc_*``)."""

    issuer: str
    """The provider's issuer URL; its discovery document is at
    ``{issuer}/.well-known/openid-configuration``."""
    client_id: str
    client_secret: str | None = None
    """None: a public client (PKCE only, no client authentication at the token endpoint)."""
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    name: str = "single sign-on"
    """Shown on the sign-in page's button ("Sign in with …")."""
    timeout: float = 10.0
    """Seconds for each request to the provider."""


@dataclass(frozen=True, kw_only=True)
class WebConfig:
    database_url: str
    clock: Clock = field(default_factory=SystemClock)
    timezone: str | None = None
    """Dates and times on the pages are shown in this zone; None: the display zone
    (the setting ``timezone``, else the one programme's, else UTC: ``service/timezone.py``),
    found when the application starts."""
    base_url: str | None = None
    """The public address (``https://programme.example.org``) used in sign-in mails.
    ``dk2020flow serve`` always sets it (``--base-url``, else ``http://HOST:PORT``), so a
    forged Host header cannot put another site's address into a real sign-in mail; only
    a test's app without it falls back to the address the request came to."""
    session_lifetime: dt.timedelta = SESSION_LIFETIME
    sign_in_link_lifetime: dt.timedelta = SIGN_IN_LINK_LIFETIME
    threads: int = 40
    """Requests worked on at once: the threads that run the ``def`` endpoints (the rest
    wait in the event loop). Fewer threads contend less for Python's GIL: on SQLite, 2
    answer 20 concurrent clients about 1.5x faster than 40 (docs/web.md#threads), but a
    request that waits on the network (a single sign-on round trip, a sign-in mail sent
    at once) then holds up more of the others."""
    pool_size: int | None = None
    """Database connections kept (None: one per thread)."""
    deliver_sign_in_mail: bool = True
    """Try to send a sign-in mail at once (the daemon retries it if that fails)."""
    oidc: OidcConfig | None = None
    """Single sign-on by OpenID Connect; None: sign-in by link and code only."""
