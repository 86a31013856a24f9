"""Requests per token: a sliding window, 429 with Retry-After, time from a clock the test
moves (no sleeping)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dk2020flow.clock import ManualClock
from dk2020flow.web.api.ratelimit import ApiSettings, SlidingWindowLimiter

from .conftest import NOW, limit_requests

MINUTE = dt.timedelta(minutes=1)


def test_over_the_limit_is_429_with_retry_after_until_the_window_slides(
    app: FastAPI, api_as: Callable[..., TestClient]
) -> None:
    clock = ManualClock(NOW)
    limit_requests(app, 3, MINUTE, clock)
    client = api_as("read_only")
    other = api_as("secretariat")
    for second in range(3):
        assert client.get("/api/v1/workflows").status_code == 200
        clock.advance(dt.timedelta(seconds=10 * second))
    refused = client.get("/api/v1/workflows")  # at +30 s: the first request was at 0
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/rate-limited")
    assert refused.headers["retry-after"] == "30"
    # Each token has its own window.
    assert other.get("/api/v1/workflows").status_code == 200
    # A refused request is not counted: waiting as told lets the next ones through (the
    # two requests made at 0 s have left the window; the one at 10 s has not).
    clock.advance(dt.timedelta(seconds=30))
    assert client.get("/api/v1/workflows").status_code == 200
    assert client.get("/api/v1/workflows").status_code == 200
    assert client.get("/api/v1/workflows").headers["retry-after"] == "10"


def test_the_limiter_counts_a_sliding_window() -> None:
    clock = ManualClock(NOW)
    limiter = SlidingWindowLimiter(2, MINUTE, clock)
    assert limiter.hit(1).allowed and limiter.hit(1).allowed
    verdict = limiter.hit(1)
    assert not verdict.allowed and verdict.retry_after == 60
    clock.advance(dt.timedelta(seconds=59.5))
    assert limiter.hit(1).retry_after == 1  # whole seconds, rounded up
    clock.advance(dt.timedelta(seconds=0.5))
    assert limiter.hit(1).allowed


def test_the_limit_comes_from_the_environment_and_is_shared_among_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert ApiSettings().api_rate_limit == 600
    monkeypatch.setenv("DK2020FLOW_API_RATE_LIMIT", "100")
    monkeypatch.setenv("DK2020FLOW_API_RATE_WINDOW_SECONDS", "10")
    monkeypatch.setenv("DK2020FLOW_WEB_WORKERS", "3")
    settings = ApiSettings()
    assert (settings.api_rate_limit, settings.api_rate_window_seconds) == (100, 10.0)
    assert settings.per_worker() == 33
