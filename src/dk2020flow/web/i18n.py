"""The console's texts in Danish and English, dates and numbers in the reader's language.

A page opens in the reader's language (their choice, a cookie; else their account's),
else in the programme's first language (``service.programme.programme_language``: an
EU Mission database opens in English, a DK2020 one in Danish), else in English.

Texts live in ``web/messages/<area>.py``: each module has ``MESSAGES``, a dict from a
key to ``(danish, english)``; the keys of all modules are merged here (a key defined
twice is an error at start-up). Templates call ``t("key", name=...)`` — the text is a
``str.format`` pattern — and the ``date``/``datetime``/``number`` helpers, which format
in the page's language (Babel) and the time zone the application is given
(``WebConfig.timezone``).

A reader may have any language a programme may be written in (two letters Babel has a
locale for, ``definition.model.is_language``): one of German (``de``) reads the console's
own texts and the programme's titles in English (the page's language,
``Translator.text_language``) and dates and numbers formatted in German. So a
programme whose first language is German opens, for a reader who has chosen nothing,
with English texts and German dates.
"""

from __future__ import annotations

import datetime as dt
import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_timedelta
from babel.numbers import format_decimal

from dk2020flow.definition.model import BABEL_LOCALES, babel_locale_name, is_language
from dk2020flow.web import messages

LANGUAGES = ("da", "en")
"""The languages of the console's own texts (``web/messages`` holds a pair of each)."""
TEXT_FALLBACK = "en"
"""The texts a reader of another language gets, and the language of a page when
neither the reader nor the programme names one."""
LOCALES = BABEL_LOCALES


@cache
def catalogue() -> Mapping[str, tuple[str, str]]:
    """Every message of every ``web/messages`` module."""
    merged: dict[str, tuple[str, str]] = {}
    for info in sorted(pkgutil.iter_modules(messages.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{messages.__name__}.{info.name}")
        for key, texts in module.MESSAGES.items():
            if key in merged:
                raise ValueError(f"web message {key!r} is defined twice ({info.name})")
            merged[key] = texts
    return merged


@cache
def _babel_locale(name: str) -> Locale:
    """Parsed once: Babel parses a locale given by name at every call (half a date's cost)."""
    return Locale.parse(name)


def language_of(value: str | None, default: str = TEXT_FALLBACK) -> str:
    """The reader's language: ``value`` when it is a language (``da``, ``en``, ``de`` …),
    else ``default``."""
    return value if is_language(value) else default


def text_language(language: str) -> str:
    """The language of the console's texts for a reader of ``language``: Danish or English."""
    return language if language in LANGUAGES else TEXT_FALLBACK


@dataclass(frozen=True)
class Translator:
    """The texts and formats of one reader's language.

    ``language`` is the reader's; ``text_language`` the console's texts' and the page's
    (``da`` or ``en``: English for any other; the programme's titles are picked in it);
    ``locale_name`` the Babel locale of dates and numbers (``da_DK``, ``en_GB``, ``de`` …).
    A language Babel does not know (never one ``language_of`` gives) reads as English.
    ``timezone`` is the zone instants are shown in (the application's,
    ``WebConfig.timezone``); a translator without one (the diagram's labels) writes
    texts, numbers and dates, and refuses an instant.
    """

    language: str
    timezone: str | None = None
    text_language: str = field(init=False, repr=False, compare=False)
    locale_name: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        known = self.language in LANGUAGES or is_language(self.language)
        language = self.language if known else TEXT_FALLBACK
        object.__setattr__(self, "text_language", text_language(language))
        object.__setattr__(self, "locale_name", babel_locale_name(language))

    @property
    def locale(self) -> Locale:
        return _babel_locale(self.locale_name)

    def t(self, key: str, /, **values: object) -> str:
        texts = catalogue().get(key)
        if texts is None:
            raise KeyError(f"no web message {key!r} (add it to web/messages/)")
        text = texts[0] if self.text_language == "da" else texts[1]
        return text.format(**values) if values else text

    def local(self, instant: dt.datetime) -> dt.datetime:
        return instant.astimezone(ZoneInfo(self._zone()))

    def datetime(self, instant: dt.datetime | None, fmt: str = "medium") -> str:
        if instant is None:
            return ""
        return _datetime(instant, fmt, self.locale_name, self._zone())

    def _zone(self) -> str:
        if self.timezone is None:
            raise ValueError("this Translator has no time zone: give it one to show instants")
        return self.timezone

    def date(self, value: dt.datetime | dt.date | None, fmt: str = "medium") -> str:
        if value is None:
            return ""
        day = self.local(value).date() if isinstance(value, dt.datetime) else value
        return _date(day, fmt, self.locale_name)

    def number(self, value: float | int) -> str:
        return _number(value, self.locale_name)

    def duration(self, delta: dt.timedelta, *, direction: bool = True) -> str:
        """``om 3 dage`` / ``for 2 uger siden`` (``in 3 days`` / ``2 weeks ago``), to the
        second."""
        whole = dt.timedelta(days=delta.days, seconds=delta.seconds)
        return _duration(whole, direction, self.locale_name)


# Babel's formatting is a large part of a page's time (plural rules, patterns): a page
# shows the same counts, dates and durations to every user, so each is formatted once
# per language (and time zone) and then looked up.
_FORMATTED = 4096


@lru_cache(maxsize=_FORMATTED)
def _datetime(instant: dt.datetime, fmt: str, locale: str, timezone: str) -> str:
    return format_datetime(
        instant.astimezone(ZoneInfo(timezone)), fmt, locale=_babel_locale(locale)
    )


@lru_cache(maxsize=_FORMATTED)
def _date(day: dt.date, fmt: str, locale: str) -> str:
    return format_date(day, fmt, locale=_babel_locale(locale))


@lru_cache(maxsize=_FORMATTED, typed=True)  # 1 and 1.0 are one key otherwise
def _number(value: float | int, locale: str) -> str:
    return format_decimal(value, locale=_babel_locale(locale))


@lru_cache(maxsize=_FORMATTED)
def _duration(delta: dt.timedelta, direction: bool, locale: str) -> str:
    return format_timedelta(
        delta, threshold=1.5, add_direction=direction, locale=_babel_locale(locale)
    )
