"""A reader of another language (#18): the console's texts in English, dates and numbers in
the reader's own language (Babel's locale), looked up once formatted as for Danish and
English."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date, format_datetime, format_timedelta
from babel.numbers import format_decimal
from fastapi.testclient import TestClient

from dk2020flow.web import i18n
from dk2020flow.web.config import LANGUAGE_COOKIE
from dk2020flow.web.i18n import Translator, language_of

AT = dt.datetime(2021, 12, 1, 9, 30, tzinfo=dt.UTC)
OPENED = dt.datetime(2020, 8, 3, 9, 0, tzinfo=dt.UTC)  # the web tests' cases were opened then
COPENHAGEN = ZoneInfo("Europe/Copenhagen")


@pytest.mark.parametrize(
    ("given", "language"),
    [
        ("da", "da"),
        ("en", "en"),
        ("de", "de"),
        ("fr", "fr"),
        ("nb", "nb"),
        ("xx", "en"),  # two letters, but no locale
        ("DE", "en"),  # a language code is lower case
        ("de_DE", "en"),
        ("english", "en"),
        ("", "en"),
        (None, "en"),
        ("<script>", "en"),
    ],
)
def test_a_readers_language_is_any_language_babel_knows(given: str | None, language: str) -> None:
    assert language_of(given) == language
    assert language_of(given, "da") == (language if given == language else "da")


@pytest.mark.parametrize("language", ["de", "fr", "nl"])
def test_texts_in_english_and_dates_numbers_and_durations_in_the_readers_language(
    language: str,
) -> None:
    tr, english = Translator(language, "Europe/Copenhagen"), Translator("en")
    assert tr.text_language == "en" and tr.locale_name == language
    assert str(tr.locale) == language
    assert tr.t("diagram.desc_current", state="x") == english.t("diagram.desc_current", state="x")
    assert tr.datetime(AT) == format_datetime(AT.astimezone(COPENHAGEN), "medium", locale=language)
    assert tr.date(AT, "long") == format_date(dt.date(2021, 12, 1), "long", locale=language)
    assert tr.number(12345.5) == format_decimal(12345.5, locale=language)
    delta = dt.timedelta(days=3)
    assert tr.duration(delta) == format_timedelta(
        delta, threshold=1.5, add_direction=True, locale=language
    )


def test_german_and_french_as_babel_writes_them() -> None:
    german, french = Translator("de", "Europe/Berlin"), Translator("fr", "Europe/Paris")
    assert german.date(AT, "long") == "1. Dezember 2021"
    assert french.date(AT, "long") == "1 décembre 2021"
    assert german.number(12345.5) == "12.345,5"
    assert french.number(12345.5) == "12\u202f345,5"
    assert german.duration(dt.timedelta(days=3)) == "in 3 Tagen"


def test_danish_and_english_are_as_before() -> None:
    danish, english = Translator("da"), Translator("en")
    assert (danish.text_language, danish.locale_name) == ("da", "da_DK")
    assert (english.text_language, english.locale_name) == ("en", "en_GB")
    assert danish.t("diagram.desc_current", state="x") == "Sagen er i tilstanden x."
    assert english.t("diagram.desc_current", state="x") == "The case is in the state x."


def test_a_language_babel_does_not_know_reads_as_english() -> None:
    unknown = Translator("xx", "Europe/Copenhagen")
    assert (unknown.text_language, unknown.locale_name) == ("en", "en_GB")
    english = Translator("en", "Europe/Copenhagen")
    assert unknown.date(AT, "long") == english.date(AT, "long")


def test_a_translator_without_a_time_zone_refuses_an_instant() -> None:
    """The diagram's labels need no zone; an instant must never be shown in a guessed one."""
    texts = Translator("da")
    assert texts.date(dt.date(2021, 12, 1), "long") == "1. december 2021"
    with pytest.raises(ValueError, match="no time zone"):
        texts.datetime(AT)
    with pytest.raises(ValueError, match="no time zone"):
        texts.date(AT)


def test_each_locale_is_formatted_once_and_kept_apart() -> None:
    day = dt.date(2031, 2, 3)  # a day no other test formats
    before = i18n._date.cache_info()
    german = Translator("de").date(day)
    assert Translator("de", "Asia/Tokyo").date(day) == german  # looked up, not formatted
    danish = Translator("da").date(day)
    after = i18n._date.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (2, 1)
    assert german == "03.02.2031" and danish == format_date(day, locale="da_DK") != german
    # The Babel locale itself is parsed once per name.
    assert Translator("de").locale is Translator("de", "Asia/Tokyo").locale


def test_the_console_in_english_with_german_dates(
    client_as: Callable[..., TestClient],
) -> None:
    client = client_as("secretariat")
    switched = client.get("/language?lang=de&next=/cases/Odense")
    assert switched.status_code == 303 and switched.headers["location"] == "/cases/Odense"
    assert client.cookies.get(LANGUAGE_COOKIE) == "de"
    page = html.unescape(client.get("/cases/Odense").text)
    opened = format_datetime(OPENED.astimezone(COPENHAGEN), "medium", locale="de")
    assert opened == "03.08.2020, 11:00:00"
    assert f"<dt>Opened</dt><dd>{opened}</dd>" in page
    assert "The workflow's 14 states and 18 transitions." in page

    client.get("/language?lang=en&next=/cases/Odense")
    english = html.unescape(client.get("/cases/Odense").text)
    assert "<dt>Opened</dt><dd>3 Aug 2020, 11:00:00</dd>" in english


def test_a_language_without_a_locale_keeps_the_pages_language(
    client_as: Callable[..., TestClient],
) -> None:
    client = client_as("secretariat")
    client.get("/language?lang=xx&next=/cases/Odense")
    assert client.cookies.get(LANGUAGE_COOKIE) == "da"
    page = html.unescape(client.get("/cases/Odense").text)
    opened = format_datetime(OPENED.astimezone(COPENHAGEN), "medium", locale="da_DK")
    assert f"<dt>Oprettet</dt><dd>{opened}</dd>" in page
