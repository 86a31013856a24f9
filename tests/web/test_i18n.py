"""The pages' number, date and duration formats: what Babel gives, looked up once formatted."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import anyio.to_thread
from babel.dates import format_datetime, format_timedelta
from babel.numbers import format_decimal
from fastapi.testclient import TestClient

from dk2020flow.web.app import create_app
from dk2020flow.web.config import WebConfig
from dk2020flow.web.i18n import Translator

AT = dt.datetime(2021, 12, 1, 9, 30, tzinfo=dt.UTC)


def test_numbers_are_babels_and_an_int_is_not_taken_for_a_float() -> None:
    da, en = Translator("da"), Translator("en")
    assert da.number(12345) == format_decimal(12345, locale="da_DK") == "12.345"
    assert en.number(12345) == "12,345"
    assert da.number(1.5) == "1,5"
    # 2 and 2.0 are equal keys to a plain cache: both must still be Babel's own answer.
    assert da.number(2.0) == format_decimal(2.0, locale="da_DK")
    assert da.number(2) == format_decimal(2, locale="da_DK")


def test_a_date_and_time_in_the_translators_zone_whatever_zone_it_came_in() -> None:
    copenhagen = Translator("da", "Europe/Copenhagen")
    same_instant = AT.astimezone(ZoneInfo("America/New_York"))
    expected = format_datetime(
        AT.astimezone(ZoneInfo("Europe/Copenhagen")), "medium", locale="da_DK"
    )
    assert copenhagen.datetime(AT) == copenhagen.datetime(same_instant) == expected
    # The zone is part of what is looked up: another translator's zone gives its own time.
    tokyo = Translator("da", "Asia/Tokyo")
    assert tokyo.datetime(AT) != copenhagen.datetime(AT)
    assert tokyo.datetime(AT) == format_datetime(
        AT.astimezone(ZoneInfo("Asia/Tokyo")), "medium", locale="da_DK"
    )


def test_durations_to_the_second_in_each_language() -> None:
    delta = dt.timedelta(days=3, hours=2, microseconds=999_999)
    whole = dt.timedelta(days=3, hours=2)
    for language, locale in (("da", "da_DK"), ("en", "en_GB")):
        tr = Translator(language)
        assert tr.duration(delta) == format_timedelta(
            whole, threshold=1.5, add_direction=True, locale=locale
        )
        assert tr.duration(-delta, direction=False) == format_timedelta(
            -delta, threshold=1.5, add_direction=False, locale=locale
        )
    assert Translator("en").duration(delta) == "in 3 days"
    assert Translator("da").duration(-whole) == "for 3 dage siden"


def test_the_thread_pool_is_as_large_as_serve_threads_says(app_config: WebConfig) -> None:
    config = dataclasses.replace(app_config, threads=3)
    with TestClient(create_app(config)) as client:
        limiter = client.portal.call(anyio.to_thread.current_default_thread_limiter)
        assert limiter.total_tokens == 3
        assert client.get("/healthz").status_code == 200  # one of its 3 connections
