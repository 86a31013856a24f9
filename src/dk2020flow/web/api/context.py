"""What every API request shares: the service, the clock, the rate limiter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from starlette.requests import Request

from dk2020flow.clock import Clock
from dk2020flow.web.api.ratelimit import SlidingWindowLimiter

if TYPE_CHECKING:
    from dk2020flow.service.core import Service


@dataclass(frozen=True, kw_only=True)
class ApiContext:
    service: Service
    clock: Clock
    """The application's clock (``serve --now``): what the API judges by."""
    limiter: SlidingWindowLimiter
    """Requests per token (its own clock: the machine's, or a test's)."""


def api_context(request: Request) -> ApiContext:
    """The API's context (``create_api`` puts it on its app's state)."""
    return cast(ApiContext, request.app.state.api)
