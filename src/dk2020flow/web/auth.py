"""Who is signed in, and the role check every route declares.

``Principal`` is read from the session cookie through the service (the cookie holds a
random token; the database only its hash). Every route depends on one of:

- ``signed_in``: any signed-in staff user (a staff page anyone with an account may see);
- ``acting_staff``: a staff user with a workflow role (who may act on cases);
- ``require_roles(...)``: a staff user with at least one of the roles;
- ``participant``: a signed-in participant (the portal, ``/portal``);
- ``anyone``: no user needed (the sign-in pages, the accessibility statement).

A request without a session on a page that needs one is sent to the sign-in page
(``SignInRequired``); a user without the role gets 403 (``Forbidden``). Participants
get 403 on every staff route and staff on every portal route.

A participant's roles are case-scoped: ``Principal.case_roles`` maps an organisation's
code to the roles the person holds on that organisation's cases, read from the
contact rows for their address at each request (through the service), never from the
request. Their account's own ``roles`` are empty.
``tests/web/test_authorization.py`` calls every route as every role and as nobody.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from fastapi import Depends
from starlette.requests import Request

from dk2020flow.service.accounts import PARTICIPANT, STAFF
from dk2020flow.service.roles import acting_roles
from dk2020flow.web.config import SESSION_COOKIE
from dk2020flow.web.context import web_context


@dataclass(frozen=True, kw_only=True)
class Principal:
    user_id: int
    session_id: int
    email: str
    name: str
    roles: tuple[str, ...]
    language: str
    kind: str = STAFF
    case_roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """A participant's roles by organisation code (empty for staff)."""

    def has(self, *roles: str) -> bool:
        return any(role in self.roles for role in roles)

    @property
    def is_participant(self) -> bool:
        return self.kind == PARTICIPANT

    def roles_on(self, organisation_code: str) -> tuple[str, ...]:
        """A participant's roles on a case of the organisation (none: not their case)."""
        return tuple(self.case_roles.get(organisation_code, ()))


class SignInRequired(Exception):  # noqa: N818 - a signal, not an error: the user is sent on
    """No (valid) session: the user is sent to the sign-in page."""


class Forbidden(Exception):  # noqa: N818 - named as the HTTP status it becomes
    """Signed in, but without a role the route needs."""


def current_principal(request: Request) -> Principal | None:
    """The signed-in user, or None (read once per request)."""
    if "principal" in request.scope.get("state", {}):
        found: Principal | None = request.state.principal
        return found
    token = request.cookies.get(SESSION_COOKIE)
    principal: Principal | None = None
    if token:
        ctx = web_context(request)
        # The session and (a participant's) roles in one read transaction.
        session = ctx.service.accounts.session(token, ctx.config.clock.now())
        user, known = session if session is not None else (None, None)
        if user is not None and user.kind == PARTICIPANT:
            principal = Principal(
                user_id=user.user_id,
                session_id=user.session_id,
                email=user.email,
                name=known.name if known else user.name,
                roles=(),
                language=known.language if known else user.language,
                kind=PARTICIPANT,
                case_roles=known.by_organisation if known else {},
            )
        elif user is not None:
            principal = Principal(
                user_id=user.user_id,
                session_id=user.session_id,
                email=user.email,
                name=user.name,
                roles=tuple(user.roles),
                language=user.language,
            )
    request.state.principal = principal
    return principal


def anyone(request: Request) -> Principal | None:
    """A route open to everyone; gives the user when one is signed in."""
    return current_principal(request)


def signed_in(request: Request) -> Principal:
    """A signed-in staff user (a participant gets 403)."""
    principal = current_principal(request)
    if principal is None:
        raise SignInRequired
    if principal.kind != STAFF:
        raise Forbidden
    return principal


def acting_staff(principal: Principal = Depends(signed_in)) -> Principal:
    """A signed-in staff user with a workflow role (not only ``admin`` or ``read_only``):
    one who may act on cases, as far as the workflow lets their roles."""
    if not acting_roles(principal.roles):
        raise Forbidden
    return principal


def participant(request: Request) -> Principal:
    """A signed-in participant (staff get 403: they have the console)."""
    principal = current_principal(request)
    if principal is None:
        raise SignInRequired
    if principal.kind != PARTICIPANT:
        raise Forbidden
    return principal


def require_roles(*roles: str) -> Callable[..., Principal]:
    """A dependency: the signed-in user, who must hold one of ``roles``."""
    wanted = frozenset(roles)

    def check(principal: Principal = Depends(signed_in)) -> Principal:
        if not wanted.intersection(principal.roles):
            raise Forbidden
        return principal

    check.__name__ = f"require_{'_or_'.join(sorted(wanted))}"
    return check
