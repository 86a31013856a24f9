"""Who calls the API: a bearer token, and the role check every route declares.

``Authorization: Bearer dkf_…`` is checked by ``Service.tokens.authenticate``; a missing,
unknown, revoked or expired token is answered 401 with ``WWW-Authenticate: Bearer``,
before anything is read or changed. The API never reads a cookie: a browser's session
gives no access to it, which is also why it needs no CSRF token (a cross-site page
cannot make a browser send an ``Authorization`` header). The token's roles come from its
row, never from the request; a request may only choose one of them to act in.

Every route depends on one of:

- ``token``: any valid token (the reads);
- ``require_roles(...)``: a token with at least one of the roles (403 otherwise).

Each authenticated request counts against the token's rate limit (``ratelimit``); over
it, 429 with ``Retry-After``. tests/api/test_authorization.py calls every route with a
token of every role and with none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import Request

from dk2020flow.service.roles import acting_roles
from dk2020flow.service.tokens import token_actor
from dk2020flow.web.api.context import api_context
from dk2020flow.web.api.problems import ApiProblem

MAX_SECRET = 200
REALM = 'Bearer realm="dk2020flow"'

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    bearerFormat="dkf_…",
    description="A token made with `dk2020flow tokens create NAME --role ROLE`.",
)


@dataclass(frozen=True, kw_only=True)
class TokenPrincipal:
    token_id: int
    name: str
    roles: tuple[str, ...]

    @property
    def actor(self) -> str:
        """How the token's changes are recorded in a case's history."""
        return token_actor(self.name)

    @property
    def acting(self) -> list[str]:
        """The token's roles that act on cases (not ``admin``, not ``read_only``)."""
        return acting_roles(list(self.roles))

    def own_role(self, requested: str | None) -> str | None:
        """A role the request names must be one of the token's acting roles (403)."""
        if requested is not None and requested not in self.acting:
            raise ApiProblem(
                403,
                f"the token may not act as {requested!r}; its roles: {', '.join(self.roles)}",
            )
        return requested


def _unauthorized(detail: str, error: str | None = None) -> ApiProblem:
    challenge = REALM + (f', error="{error}"' if error else "")
    return ApiProblem(401, detail, headers={"WWW-Authenticate": challenge})


def token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> TokenPrincipal:
    """The calling token (401 without a valid one; 429 over its rate limit)."""
    if credentials is None:
        raise _unauthorized(
            "this needs an API token: send `Authorization: Bearer dkf_…` "
            "(`dk2020flow tokens create` makes one)"
        )
    secret = credentials.credentials
    ctx = api_context(request)
    found = None
    if 0 < len(secret) <= MAX_SECRET and secret.isascii():
        found = ctx.service.tokens.authenticate(secret, ctx.clock.now())
    if found is None:
        raise _unauthorized(
            "the token is unknown, revoked or expired (`dk2020flow tokens list` shows them)",
            "invalid_token",
        )
    verdict = ctx.limiter.hit(found.id)
    if not verdict.allowed:
        raise ApiProblem(
            429,
            f"the token {found.name!r} made {ctx.limiter.limit} requests in the last "
            f"{ctx.limiter.window.total_seconds():g} s; try again in {verdict.retry_after} s",
            headers={"Retry-After": str(verdict.retry_after)},
        )
    principal = TokenPrincipal(token_id=found.id, name=found.name, roles=tuple(found.roles))
    request.state.token = principal
    return principal


def require_roles(*roles: str) -> Callable[..., TokenPrincipal]:
    """A dependency: the calling token, which must hold one of ``roles``."""
    wanted = frozenset(roles)

    def check(principal: Annotated[TokenPrincipal, Depends(token)]) -> TokenPrincipal:
        if not wanted.intersection(principal.roles):
            raise ApiProblem(
                403,
                f"this needs a token with one of the roles {', '.join(sorted(wanted))}; "
                f"the token {principal.name!r} has {', '.join(principal.roles) or 'none'}",
            )
        return principal

    check.__name__ = f"require_{'_or_'.join(sorted(wanted))}"
    return check


def require_acting(principal: Annotated[TokenPrincipal, Depends(token)]) -> TokenPrincipal:
    """A token with a role that acts on cases (the engine then checks which it may)."""
    if not principal.acting:
        raise ApiProblem(
            403,
            f"the token {principal.name!r} has no role that acts on cases "
            f"({', '.join(principal.roles) or 'none'}); changes need e.g. secretariat",
        )
    return principal
