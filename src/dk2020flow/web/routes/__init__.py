"""The console's routes, one module per area; ``ROUTERS`` is what the app includes.

Every route declares who may call it with a dependency from ``web.auth``
(``anyone``, ``signed_in`` or ``require_roles``); the authorization matrix test
(tests/web/test_authorization.py) finds every route from the app itself.
"""

from __future__ import annotations

from fastapi import APIRouter

from dk2020flow.web.routes import (
    auth,
    case,
    cases,
    oidc,
    operations,
    overview,
    pages,
    portal,
    privacy,
)

ROUTERS: tuple[APIRouter, ...] = (
    pages.router,
    auth.router,
    oidc.router,
    overview.router,
    cases.router,
    case.router,
    operations.router,
    portal.router,
    privacy.router,
)
