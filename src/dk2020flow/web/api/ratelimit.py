"""Requests per token: an in-process sliding window.

Each token may make ``limit`` requests in any ``window`` (a sliding log: the instants of
its last ``limit`` requests; a request is let through when the oldest of them is more
than ``window`` ago). A refused request gets 429 with ``Retry-After``: the whole seconds
until the oldest request leaves the window. Refused requests are not counted, so a
client that waits as told gets through.

The window lives in the worker process: with ``dk2020flow serve --workers N`` each worker
keeps its own, and enforces ``limit // N`` (at least 1), so the whole server lets
through about ``limit`` per window however the requests are spread over the workers
(``ApiSettings.per_worker``). Time comes from the injected clock (a test moves it).

Settings (``DK2020FLOW_*`` variables or the configuration file, ``ApiSettings``):
``api_rate_limit`` (default 600) requests per ``api_rate_window_seconds`` (default 60).
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections import deque
from dataclasses import dataclass

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from dk2020flow.clock import Clock
from dk2020flow.settings import FileAndEnvSettings, SettingsError

DEFAULT_LIMIT = 600
DEFAULT_WINDOW_SECONDS = 60.0
FORGET_EVERY = 10_000
"""Every so many requests, the windows of idle tokens are dropped."""


class ApiSettings(FileAndEnvSettings):
    """The API's settings: ``DK2020FLOW_API_RATE_LIMIT`` and
    ``DK2020FLOW_API_RATE_WINDOW_SECONDS`` (or ``api_rate_limit`` … in the file)."""

    model_config = SettingsConfigDict(env_prefix="DK2020FLOW_", env_file=None, extra="ignore")

    api_rate_limit: int = Field(
        default=DEFAULT_LIMIT, ge=1, le=1_000_000, description="Requests per token per window."
    )
    api_rate_window_seconds: float = Field(default=DEFAULT_WINDOW_SECONDS, gt=0, le=86_400)
    web_workers: int = Field(
        default=1, ge=1, le=64, description="Set by `serve --workers` for each worker."
    )

    def per_worker(self) -> int:
        """What one worker lets through: the limit shared among the workers."""
        return max(1, self.api_rate_limit // self.web_workers)


def load_api_settings() -> ApiSettings:
    from pydantic import ValidationError

    try:
        return ApiSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"DK2020FLOW_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise SettingsError(f"invalid API settings ({problems}); see docs/api.md") from None


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    remaining: int
    retry_after: int
    """Whole seconds to wait (0 when allowed)."""


class SlidingWindowLimiter:
    """``limit`` requests per ``window`` per key (a token's id), thread-safe."""

    def __init__(self, limit: int, window: dt.timedelta, clock: Clock) -> None:
        if limit < 1:
            raise ValueError("the limit is at least one request")
        self.limit = limit
        self.window = window
        self.clock = clock
        self._seen: dict[int, deque[dt.datetime]] = {}
        self._lock = threading.Lock()
        self._hits = 0

    def hit(self, key: int) -> Verdict:
        """Count one request of ``key`` if the window allows it."""
        now = self.clock.now()
        start = now - self.window
        with self._lock:
            self._hits += 1
            if self._hits % FORGET_EVERY == 0:
                self._forget_idle(start)
            seen = self._seen.setdefault(key, deque())
            while seen and seen[0] <= start:
                seen.popleft()
            if len(seen) >= self.limit:
                wait = (seen[0] - start).total_seconds()
                return Verdict(allowed=False, remaining=0, retry_after=max(1, math.ceil(wait)))
            seen.append(now)
            return Verdict(allowed=True, remaining=self.limit - len(seen), retry_after=0)

    def _forget_idle(self, start: dt.datetime) -> None:
        """Drop the keys with nothing in the window (memory stays with active tokens)."""
        for key in [k for k, seen in self._seen.items() if not seen or seen[-1] <= start]:
            del self._seen[key]
