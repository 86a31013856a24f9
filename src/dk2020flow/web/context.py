"""What every request shares: the service, the clock, the templates, the config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from starlette.requests import Request

from dk2020flow.web.config import WebConfig

if TYPE_CHECKING:
    from dk2020flow.service.core import Service
    from dk2020flow.web.rendering import Renderer


@dataclass(frozen=True, kw_only=True)
class WebContext:
    config: WebConfig
    service: Service
    renderer: Renderer


def web_context(request: Request) -> WebContext:
    """The application's context (``create_app`` puts it on ``app.state``)."""
    return cast(WebContext, request.app.state.web)
