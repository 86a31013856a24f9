"""The typed, frozen shape of a workflow file.

These pydantic models are the schema of the YAML format (docs/workflow-format.md)
and the source of the JSON Schema that editors use. They check *shape*; the
cross-references (states, roles, templates, reachability …) are checked in
``validate.py``. Once a file has passed both, the resulting ``Workflow`` is
immutable and nothing downstream re-validates it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from enum import StrEnum
from functools import cache
from types import MappingProxyType
from typing import Annotated, Any, Literal, TypeGuard

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from dk2020flow.definition.durations import Duration, parse_duration

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]
"""Identifiers: lower-case letters, digits and underscores, starting with a letter."""

ItemId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=32)]
"""Checklist item ids such as ``P1.1``."""

ANY_OPEN_STATE = "*"
"""``from: "*"`` means every state that is not terminal."""


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


# ----------------------------------------------------------------------------- languages

LANGUAGE_PATTERN = r"^[a-z]{2}$"
"""A language is an ISO 639-1 code: two lower-case letters (``da``, ``en``, ``de``, ``fr``)."""
_LANGUAGE = re.compile(LANGUAGE_PATTERN)

BABEL_LOCALES: Mapping[str, str] = MappingProxyType({"da": "da_DK", "en": "en_GB"})
"""The Babel locale of a language where it is not the language's own default: English is
British English (31 August 2020, not August 31, 2020). Any other language is its own
locale name (``de``, ``fr``)."""

_COUNTRY_NOT_LANGUAGE = {"dk": "da", "cz": "cs", "gr": "el", "jp": "ja", "cn": "zh"}
"""Country codes Babel knows no language by, written where a language is meant."""


def language_shape_problem(code: str) -> str | None:
    """Why ``code`` is not written as a language code (None when it is two lower-case letters)."""
    if _LANGUAGE.fullmatch(code):
        return None
    lowered = code.strip().lower()
    if _LANGUAGE.fullmatch(lowered):
        return f"write the language `{code}` in lower case: `{lowered}`"
    return (
        f"`{code}` is not a language code: write two lower-case letters (ISO 639-1), "
        "such as da, en, de or fr"
    )


def babel_locale_name(language: str) -> str:
    """The Babel locale that dates and numbers in ``language`` are formatted with."""
    return BABEL_LOCALES.get(language, language)


def babel_knows(language: str) -> bool:
    """True when ``language`` is two lower-case letters Babel has a locale for
    (``babel.Locale.parse`` succeeds)."""
    if language in BABEL_LOCALES:
        return True
    return _LANGUAGE.fullmatch(language) is not None and _babel_has(language)


@cache  # two-letter codes only: at most 676 answers are kept
def _babel_has(language: str) -> bool:
    # Babel is imported on the first question: reading a stored workflow asks none (#15.18).
    from babel import Locale, UnknownLocaleError

    try:
        Locale.parse(babel_locale_name(language))
    except (UnknownLocaleError, ValueError):
        return False
    return True


def is_language(value: object) -> TypeGuard[str]:
    """A language a programme, a contact or a user may have: two lower-case letters Babel
    knows a locale for."""
    return isinstance(value, str) and babel_knows(value)


def unknown_language_hint(code: str) -> str:
    """What to write instead of a language code Babel does not know."""
    meant = _COUNTRY_NOT_LANGUAGE.get(code)
    if meant is not None and babel_knows(meant):
        return f"`{code}` is a country code; did you mean the language `{meant}`?"
    return "write an ISO 639-1 code Babel has a locale for, such as da, en, de, fr or nl"


def _language_code(value: str) -> str:
    problem = language_shape_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Language = Annotated[
    str,
    AfterValidator(_language_code),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": LANGUAGE_PATTERN,
            "description": "An ISO 639-1 language code Babel knows: da, en, de, fr …",
        }
    ),
]
"""A language code as the workflow writes it; that Babel knows it is checked with the
templates (DF063), where Babel is at hand to format their dates."""


def _text_languages(value: str | dict[str, str]) -> str | dict[str, str]:
    if isinstance(value, dict):
        for code in value:
            problem = language_shape_problem(code)
            if problem is not None:
                raise ValueError(f"{problem} (a text's keys are languages: {{da: …, en: …}})")
    return value


Text = Annotated[
    str | dict[str, str],
    AfterValidator(_text_languages),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "propertyNames": {"pattern": LANGUAGE_PATTERN},
                    "additionalProperties": {"type": "string"},
                },
            ]
        }
    ),
]
"""Human text: one string, or one string per language code (``{da: …, en: …}``)."""


def text_in(text: Text | None, language: str, fallback: str = "") -> str:
    """Pick the text for ``language`` from a ``Text`` value (first language as fallback)."""
    if text is None:
        return fallback
    if isinstance(text, str):
        return text
    return text.get(language) or next(iter(text.values()), fallback)


TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _check_time_of_day(value: str) -> str:
    if not TIME_OF_DAY.match(value):
        raise ValueError(f"time of day must be HH:MM (24-hour), got {value!r}")
    return value


_DATE_ONLY = re.compile(r"\s*\d{4}-\d{2}-\d{2}\s*")


def _date_text_is_a_date(value: Any) -> Any:
    """``2020-08-31`` (YAML dates arrive as text) is a date, not a date-time at 00:00.

    An impossible date such as 2021-02-29 is a located type error (DF012).
    """
    if isinstance(value, str) and _DATE_ONLY.fullmatch(value):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError as exc:
            raise PydanticCustomError(
                "date_parsing",
                "not a date in the calendar ({reason})",
                {"reason": str(exc)},
            ) from None
    return value


def _to_duration(value: Any) -> Duration:
    if isinstance(value, Duration):
        return value
    if not isinstance(value, str):
        raise ValueError(f"a duration is an ISO 8601 text such as P14D or P1M, got {value!r}")
    return parse_duration(value)


# ----------------------------------------------------------------------------- metadata


class OptionalHoliday(StrEnum):
    """Danish days that are holidays for many, but not public holidays in law."""

    MAY_1 = "may_1"
    CONSTITUTION_DAY = "constitution_day"
    CHRISTMAS_EVE = "christmas_eve"
    NEW_YEARS_EVE = "new_years_eve"


CalendarDate = Annotated[dt.date, BeforeValidator(_date_text_is_a_date)]

DANISH_CLOSED_ON = (
    OptionalHoliday.CONSTITUTION_DAY,
    OptionalHoliday.CHRISTMAS_EVE,
    OptionalHoliday.NEW_YEARS_EVE,
)
"""The optional Danish days closed when a Danish calendar does not say (``closed_on``)."""


class Closure(Frozen):
    """A named closed day or run of days (the office's summer closing, a bridge day)."""

    name: Text
    on: CalendarDate | None = Field(default=None, description="One closed day.")
    from_: CalendarDate | None = Field(default=None, alias="from", description="First day.")
    to: CalendarDate | None = Field(default=None, description="Last day (included).")

    @model_validator(mode="after")
    def _one_day_or_a_run(self) -> Closure:
        if (self.on is None) == (self.from_ is None and self.to is None):
            raise ValueError("a closure has either `on: DATE` or `from: DATE` and `to: DATE`")
        if self.on is None and (self.from_ is None or self.to is None):
            raise ValueError("a closure with `from:` needs `to:` as well (and the other way)")
        if self.from_ is not None and self.to is not None and self.from_ > self.to:
            raise ValueError(f"a closure's `from` ({self.from_}) is after its `to` ({self.to})")
        return self

    def days(self) -> tuple[dt.date, ...]:
        """Every closed day of the closure, in order."""
        if self.on is not None:
            return (self.on,)
        first, last = self.from_, self.to
        if first is None or last is None:  # not after the validator: it needs both
            return ()
        return tuple(first + dt.timedelta(days=n) for n in range((last - first).days + 1))


class Calendar(Frozen):
    """Which days are business days: weekdays that are neither public holidays of the
    country (and subdivision) nor closed by the workflow, and extra working days."""

    country: str | None = Field(
        default=None,
        min_length=2,
        max_length=3,
        description="The public holidays of this country (ISO 3166-1 code, e.g. DK, DE, BE); "
        "none: weekends are the only closed days besides the workflow's own.",
    )
    subdivision: str | None = Field(
        default=None,
        min_length=1,
        max_length=10,
        description="A state, region or province with holidays of its own (e.g. BY for Bavaria).",
    )
    closed_on: tuple[OptionalHoliday, ...] | None = Field(
        default=None,
        description="Danish calendars: optional days that count as closed "
        "(default constitution_day, christmas_eve, new_years_eve).",
    )
    extra_closed_days: tuple[CalendarDate, ...] = ()
    closures: tuple[Closure, ...] = Field(
        default=(), description="Named closed days or runs of days."
    )
    extra_working_days: tuple[CalendarDate, ...] = Field(
        default=(),
        description="Business days although a weekend or holiday (a Saturday made a working day).",
    )

    def optional_days_closed(self) -> tuple[OptionalHoliday, ...]:
        """The optional Danish days this calendar closes (none unless its country is DK)."""
        if self.closed_on is not None:
            return self.closed_on
        return DANISH_CLOSED_ON if self.country == "DK" else ()


class OfficeHours(Frozen):
    """Mail that falls due outside these hours waits for the next opening unless urgent."""

    days: Literal["business_days", "every_day"] = "business_days"
    opens: str = "08:00"
    closes: str = "17:00"

    _opens = field_validator("opens", "closes")(_check_time_of_day)

    @model_validator(mode="after")
    def _opens_before_closes(self) -> OfficeHours:
        if self.opens >= self.closes:
            raise ValueError("office hours must open before they close")
        return self


class Links(Frozen):
    """Addresses that templates may show (``links.programme`` …)."""

    programme: str = ""
    help_email: str = ""
    help_name: str = ""
    accessibility_enforcement: Text = Field(
        default="",
        description="The accessibility statement's paragraph on the national law and where "
        "to complain (the enforcement body); none: the statement names no law or body.",
    )


class Sender(Frozen):
    """Who the programme's mail is from (the From header and the ``.ics`` ORGANIZER)."""

    name: str = Field(default="", max_length=200)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)


# ----------------------------------------------------------------------------- roles, fields


class Role(Frozen):
    title: Text = ""
    receives_mail: bool = Field(
        default=False,
        description="True for roles that are contacts on a case (recipients of its mail).",
    )
    description: str = ""
    name: str = Field(default="", description="Name used for the role's shared mailbox.")
    email: str = Field(
        default="",
        description="A shared mailbox for the role on every case (e.g. the secretariat); "
        "used when a case has no contact of its own in this role.",
    )


class FieldType(StrEnum):
    TEXT = "text"
    DATE = "date"
    DATETIME = "datetime"
    EMAIL = "email"
    BOOLEAN = "boolean"
    INTEGER = "integer"
    URL = "url"
    CHOICE = "choice"
    COHORT = "cohort"


class FieldDef(Frozen):
    """A piece of case data that triggers carry or set."""

    type: FieldType = FieldType.TEXT
    title: Text = ""
    choices: tuple[str, ...] = ()
    max_length: int = Field(default=2000, ge=1, le=100_000)

    @model_validator(mode="after")
    def _choices_only_for_choice(self) -> FieldDef:
        if self.type is FieldType.CHOICE and not self.choices:
            raise ValueError("a field of type choice needs a list of choices")
        if self.type is not FieldType.CHOICE and self.choices:
            raise ValueError("choices are only allowed on a field of type choice")
        return self


# ----------------------------------------------------------------------------- mail


class MailSpec(Frozen):
    template: Name
    to: tuple[Name, ...] = Field(min_length=1)
    cc: tuple[Name, ...] = ()
    urgent: bool = Field(default=False, description="Send outside office hours too.")

    @field_validator("to", "cc", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


def _mail_list(value: Any) -> Any:
    """``mail:`` accepts one mail or a list of mails."""
    if value is None:
        return ()
    return (value,) if isinstance(value, dict) else value


# ----------------------------------------------------------------------------- cohorts


class CalendarEvent(Frozen):
    """A dated programme event (start conference, workshop) for a cohort."""

    title: Text
    at: dt.datetime = Field(description="Local start time in the workflow's timezone.")
    duration: Duration = Field(default_factory=lambda: parse_duration("PT3H"))
    location: str = ""
    regions: tuple[str, ...] = Field(
        default=(), description="Only cases in these regions; empty means every region."
    )
    states: tuple[Name, ...] = Field(
        min_length=1, description="Cases in these states at the time are invited."
    )
    mail: MailSpec
    invite_before: Duration = Field(
        default_factory=lambda: parse_duration("P21D"),
        description="The invitation goes out this long before the event.",
    )
    reminders: tuple[Duration, ...] = Field(
        default=(), description="Reminder mails this long before the event."
    )
    cancelled: bool = False
    sequence: int = Field(default=0, ge=0, description="Raise when the event changes.")

    _durations = field_validator("duration", mode="before")(_to_duration)

    @field_validator("reminders", mode="before")
    @classmethod
    def _reminder_durations(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        return tuple(_to_duration(v) for v in value) if isinstance(value, list | tuple) else value

    @field_validator("at")
    @classmethod
    def _naive_local(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is not None:
            raise ValueError("write event times as local times without an offset")
        return value


class Cohort(Frozen):
    """A round of the programme with its own dates."""

    title: Text
    application_deadline: dt.datetime | dt.date
    start: dt.datetime | dt.date
    planned_end: dt.datetime | dt.date
    events: dict[Name, CalendarEvent] = Field(default_factory=dict)

    _dates = field_validator("application_deadline", "start", "planned_end", mode="before")(
        _date_text_is_a_date
    )

    @model_validator(mode="after")
    def _ordered(self) -> Cohort:
        def as_dt(value: dt.datetime | dt.date) -> dt.datetime:
            if isinstance(value, dt.datetime):
                return value.replace(tzinfo=None)
            return dt.datetime.combine(value, dt.time())

        if as_dt(self.start) > as_dt(self.planned_end):
            raise ValueError("a cohort's start must come before its planned_end")
        return self

    def date(self, name: str) -> dt.datetime | dt.date:
        value: dt.datetime | dt.date = getattr(self, name)
        return value


COHORT_DATES = ("application_deadline", "start", "planned_end")


# ----------------------------------------------------------------------------- checklists


class ItemStatus(StrEnum):
    MET = "met"
    PARTLY_MET = "partly_met"
    NOT_MET = "not_met"
    NOT_APPLICABLE = "not_applicable"


class Checklist(Frozen):
    title: Text
    items: dict[ItemId, Text] = Field(min_length=1)
    roles: tuple[Name, ...] = Field(min_length=1, description="Roles that may record statuses.")
    answered_by: tuple[Name, ...] = Field(
        default=(),
        description=(
            "Roles that may answer the comments of items that need revision "
            "(status partly_met or not_met), e.g. [contact_person]."
        ),
    )


ANSWERABLE_STATUSES: tuple[str, ...] = (ItemStatus.PARTLY_MET.value, ItemStatus.NOT_MET.value)
"""The statuses of the items that need revision: only those can be answered."""


# ----------------------------------------------------------------------------- documents


DOCUMENT_TYPES: dict[str, str] = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "png": "image/png",
    "jpeg": "image/jpeg",
}
"""The document types a workflow may allow, by their short names, and their media types.
An upload's type is read from its bytes (``service/filetypes.py``), never from its name."""

MAX_DOCUMENT_BYTES = 100_000_000
"""The largest ``max_size`` a document may declare (100 MB)."""

SIZE_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]i?[bB]|[bB])?\s*$"
_SIZE = re.compile(SIZE_PATTERN)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}


def parse_size(value: str | int) -> int:
    """A size in bytes from ``20MB`` (decimal: 20,000,000), ``20MiB`` (20 × 1024²), ``500kB``,
    or a whole number of bytes; ``ValueError`` saying why for anything else."""
    if isinstance(value, bool):
        raise ValueError(f"a size is a number of bytes or a text such as 20MB, got {value!r}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(value)
        if match is None:
            raise ValueError(
                f"{value!r} is not a size: write a number and a unit, such as 20MB or 500kB"
            )
        unit = (match.group(2) or "b").lower()
        size = int(float(match.group(1)) * _SIZE_UNITS[unit])
    if size <= 0:
        raise ValueError(f"a size limit must be more than zero bytes, got {value!r}")
    if size > MAX_DOCUMENT_BYTES:
        raise ValueError(
            f"{value!r} is more than the largest size limit, {MAX_DOCUMENT_BYTES // 1000**2}MB"
        )
    return size


DocumentTypeName = Annotated[str, Field(json_schema_extra={"enum": list(DOCUMENT_TYPES)})]
"""A document type's short name: checked by the validator (DF071), listed for editors."""

SizeLimit = Annotated[
    int | str,
    Field(
        json_schema_extra={
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_DOCUMENT_BYTES},
                {"type": "string", "pattern": SIZE_PATTERN},
            ]
        }
    ),
]
"""A size limit: ``20MB``, ``500kB``, ``20MiB`` or a whole number of bytes (DF072)."""


class DocumentDef(Frozen):
    """A document a case is handed (an application, a draft plan, a council's decision)."""

    title: Text
    description: str = ""
    types: tuple[DocumentTypeName, ...] = Field(
        min_length=1, description="The types it may be, read from the file's bytes: pdf, docx …"
    )
    max_size: SizeLimit = Field(description="The largest file accepted: 20MB, 500kB, …")
    roles: tuple[Name, ...] = Field(
        default=(),
        description="Who may upload it; default: the roles of the transitions that need it.",
    )

    @field_validator("types", "roles", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("max_size", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("a size is a number of bytes or a text such as 20MB")
        return value

    @property
    def max_bytes(self) -> int:
        """``max_size`` in bytes (a validated workflow's limit always reads)."""
        return parse_size(self.max_size)

    def media_types(self) -> tuple[str, ...]:
        return tuple(DOCUMENT_TYPES[t] for t in self.types if t in DOCUMENT_TYPES)


# ----------------------------------------------------------------------------- guards


class Condition(Frozen):
    """One condition of a guard. Exactly one form per entry.

    - ``field: X`` with ``present: true|false`` or ``equals: V`` or ``in: [..]``
    - ``all_true: [flag, …]``: every named boolean field is true
    - ``checklist: capf`` with ``all_in: [met, not_applicable]``
    - ``any: [conditions]``: at least one holds
    """

    field: Name | None = None
    present: bool | None = None
    equals: str | int | bool | None = None
    in_: tuple[str | int | bool, ...] | None = Field(default=None, alias="in")
    all_true: tuple[Name, ...] | None = None
    checklist: Name | None = None
    all_in: tuple[ItemStatus, ...] | None = None
    any: tuple[Condition, ...] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Condition:
        forms = [
            self.field is not None,
            self.all_true is not None,
            self.checklist is not None,
            self.any is not None,
        ]
        if sum(forms) != 1:
            raise ValueError("a condition has exactly one of: field, all_true, checklist, any")
        if self.field is not None:
            tests = [self.present is not None, self.equals is not None, self.in_ is not None]
            if sum(tests) != 1:
                raise ValueError("a field condition needs exactly one of: present, equals, in")
        elif self.present is not None or self.equals is not None or self.in_ is not None:
            raise ValueError("present, equals and in belong to a field condition")
        if self.checklist is not None and not self.all_in:
            raise ValueError("a checklist condition needs all_in: [statuses]")
        if self.checklist is None and self.all_in is not None:
            raise ValueError("all_in belongs to a checklist condition")
        return self


# ----------------------------------------------------------------------------- timers


class MissedPolicy(StrEnum):
    FIRE_ALL = "fire_all"
    LATEST_ONCE = "latest_once"
    SKIP_OLDER_THAN = "skip_older_than"


class Missed(Frozen):
    """What to do with firings that fell due while no daemon ran."""

    policy: MissedPolicy = MissedPolicy.FIRE_ALL
    window: Duration | None = None

    _window = field_validator("window", mode="before")(
        lambda v: None if v is None else _to_duration(v)
    )

    @model_validator(mode="after")
    def _window_for_skip(self) -> Missed:
        if self.policy is MissedPolicy.SKIP_OLDER_THAN and self.window is None:
            raise ValueError("policy skip_older_than needs a window (e.g. P7D)")
        return self


class Due(Frozen):
    """When a timer falls due. Exactly one anchor:

    - ``at``: an absolute local date-time (or a date; ``time`` gives the hour)
    - ``after`` / ``business_days`` alone: relative to entering the state
    - ``cohort_date: start`` (+ ``after``/``business_days``): relative to the case's cohort
    - ``field: some_date`` (+ ``after``/``business_days``): relative to a date on the case
    ``time: "HH:MM"`` fixes the local time of day of the result.
    """

    at: dt.datetime | dt.date | None = None
    cohort_date: Literal["application_deadline", "start", "planned_end"] | None = None
    field: Name | None = None
    after: Duration | None = None
    business_days: int | None = Field(default=None, ge=-500, le=500)
    time: str | None = None
    roll: Literal["none", "next_business_day", "previous_business_day"] = Field(
        default="none",
        description="Move a deadline that falls on a weekend or holiday to a business day.",
    )

    _after = field_validator("after", mode="before")(
        lambda v: None if v is None else _to_duration(v)
    )

    @field_validator("time")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        return None if value is None else _check_time_of_day(value)

    # pydantic would read "2020-08-31" as a datetime at 00:00; a date alone means 23:59.
    _at = field_validator("at", mode="before")(_date_text_is_a_date)

    @field_validator("at")
    @classmethod
    def _naive_local(cls, value: dt.datetime | dt.date | None) -> dt.datetime | dt.date | None:
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            raise ValueError("write times as local times without an offset")
        return value

    @model_validator(mode="after")
    def _one_anchor(self) -> Due:
        anchors = [self.at is not None, self.cohort_date is not None, self.field is not None]
        if sum(anchors) > 1:
            raise ValueError("use only one of at, cohort_date, field")
        if self.after is not None and self.business_days is not None:
            raise ValueError("use after (a duration) or business_days, not both")
        if self.at is not None and (self.after is not None or self.business_days is not None):
            raise ValueError("an absolute time (at) takes no offset")
        if sum(anchors) == 0 and self.after is None and self.business_days is None:
            raise ValueError("give at, cohort_date, field, after or business_days")
        return self


class OnDue(Frozen):
    trigger: Name | None = None
    mail: tuple[MailSpec, ...] = ()
    _mail = field_validator("mail", mode="before")(_mail_list)


class BusinessDays(Frozen):
    """An offset counted in business days of the workflow's calendar: ``{business_days: 5}``.

    Counted on the local date from the deadline (never counting the deadline's own
    day), keeping the local time of day, as a deadline's own ``business_days`` is.
    """

    business_days: int = Field(ge=-500, le=500)

    def approximate(self) -> dt.timedelta:
        """An exact length for ordering (a business day counts one day)."""
        return dt.timedelta(days=self.business_days)

    def __str__(self) -> str:
        count = self.business_days
        return f"{count} business day" if abs(count) == 1 else f"{count} business days"


def _offset_kind(value: Any) -> str:
    return "days" if isinstance(value, dict | BusinessDays) else "iso"


def _to_offset(value: Any) -> Any:
    if isinstance(value, dict | BusinessDays | Duration):
        return value
    if not isinstance(value, str):
        raise ValueError(
            "an offset is an ISO 8601 duration such as P7D, or business days such as "
            f"{{business_days: 5}}, got {value!r}"
        )
    return parse_duration(value)


Offset = Annotated[
    Annotated[Duration, Tag("iso")] | Annotated[BusinessDays, Tag("days")],
    Discriminator(_offset_kind),
    BeforeValidator(_to_offset),
]
"""A reminder's or escalation's distance from the deadline: a calendar duration
(``P14D``, ``P1M``, ``PT8H``) or business days (``{business_days: 10}``)."""


class Reminders(Frozen):
    before: tuple[Offset, ...] = Field(
        min_length=1,
        description="Each reminder goes out this long before the deadline: P14D, or "
        "{business_days: 10}.",
    )
    mail: MailSpec

    @field_validator("before", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | dict) else value


class Repeat(Frozen):
    every: Duration
    times: int = Field(ge=1, le=100)
    mail: MailSpec
    _every = field_validator("every", mode="before")(_to_duration)


class Escalate(Frozen):
    after: Offset = Field(
        description="The escalation goes out this long after the deadline: P7D, or "
        "{business_days: 5}."
    )
    to: tuple[Name, ...] = Field(min_length=1)
    mail: MailSpec
    trigger: Name | None = None

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


class Timer(Frozen):
    """A deadline on a state, armed on entry and cancelled on leaving."""

    description: str = ""
    title: Text = Field(
        default="", description="The deadline as people read it (mail, calendar entries)."
    )
    due: Due
    on_due: OnDue = Field(default_factory=OnDue)
    reminders: Reminders | None = None
    repeat: Repeat | None = None
    escalate: Escalate | None = None
    missed: Missed = Field(default_factory=Missed)
    extend_roles: tuple[Name, ...] = Field(
        default=(), description="Roles that may move this deadline for one case."
    )
    calendar_invite: bool = Field(
        default=False, description="Attach an .ics of the deadline to its mails."
    )
    calendar: Literal["programme", "organisation"] = Field(
        default="programme",
        description="Whose business days this timer counts (`business_days`, `roll`, "
        "business-day offsets): the workflow's calendar (`programme`), or the public "
        "holidays of the case's organisation's country and subdivision (`organisation`; "
        "the programme's calendar for an organisation with no country).",
    )


# ----------------------------------------------------------------------------- states, transitions


class OnEntry(Frozen):
    mail: tuple[MailSpec, ...] = ()
    _mail = field_validator("mail", mode="before")(_mail_list)


class State(Frozen):
    title: Text = ""
    description: str = ""
    initial: bool = False
    terminal: bool = False
    on_entry: OnEntry = Field(default_factory=OnEntry)
    timers: dict[Name, Timer] = Field(default_factory=dict)
    may_open_here: bool = Field(
        default=False,
        description="Cases may be opened directly in this state (joining mid-course).",
    )

    @model_validator(mode="after")
    def _terminal_has_no_timers(self) -> State:
        if self.terminal and self.timers:
            raise ValueError("a terminal state cannot have timers")
        if self.terminal and self.initial:
            raise ValueError("a state cannot be both initial and terminal")
        return self


class Transition(Frozen):
    trigger: Name
    from_: tuple[str, ...] = Field(alias="from", min_length=1)
    to: Name
    title: Text = ""
    description: str = ""
    roles: tuple[Name, ...] = ()
    automatic: bool = Field(default=False, description="Fires by itself once `when` holds.")
    requires: tuple[Name, ...] = Field(default=(), description="Fields the trigger must carry.")
    accepts: tuple[Name, ...] = Field(default=(), description="Fields the trigger may carry.")
    needs_documents: tuple[Name, ...] = Field(
        default=(),
        description="Documents the case must have been handed in its current state.",
    )
    sets: dict[Name, str | int | bool | None] = Field(default_factory=dict)
    when: tuple[Condition, ...] = ()
    mail: tuple[MailSpec, ...] = ()

    _mail = field_validator("mail", mode="before")(_mail_list)

    @field_validator("from_", "roles", "requires", "accepts", "needs_documents", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _roles_or_automatic(self) -> Transition:
        if self.automatic and self.roles:
            raise ValueError("an automatic transition fires by itself: give it no roles")
        if self.automatic and not self.when:
            raise ValueError("an automatic transition needs a `when` guard")
        if self.automatic and self.requires:
            raise ValueError("an automatic transition carries no data: remove `requires`")
        if self.automatic and self.needs_documents:
            raise ValueError(
                "an automatic transition is fired by the engine, which hands in no documents: "
                "remove `needs_documents`"
            )
        return self


# ----------------------------------------------------------------------------- the workflow


class Workflow(Frozen):
    """A whole workflow file."""

    workflow: Name = Field(description="The workflow's name, used on the command line.")
    version: str = Field(min_length=1, max_length=64, description="A label for people.")
    title: Text
    description: str = ""
    timezone: str = Field(
        default="UTC",
        description="The IANA timezone local dates and times of day are read in.",
    )
    calendar: Calendar = Field(default_factory=Calendar)
    languages: tuple[Language, ...] = Field(
        default=("da", "en"),
        min_length=1,
        description="The languages of the programme's mail and titles; the first is the default.",
    )
    office_hours: OfficeHours = Field(default_factory=OfficeHours)
    links: Links = Field(default_factory=Links)
    sender: Sender | None = Field(
        default=None, description="The From of the programme's mail (a setting may override it)."
    )
    organisations: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="The programme's data set: a CSV of organisations (path relative to "
        "this file) that `workflow load` adds to the database where it does not know them.",
    )
    participant: Text = Field(
        default="",
        description="What the programme calls a participant, as a column header writes it "
        "({da: Kommune, en: Municipality}); none: the pages say Organisation.",
    )
    roles: dict[Name, Role] = Field(min_length=1)
    fields: dict[Name, FieldDef] = Field(default_factory=dict)
    cohorts: dict[Name, Cohort] = Field(default_factory=dict)
    checklists: dict[Name, Checklist] = Field(default_factory=dict)
    documents: dict[Name, DocumentDef] = Field(
        default_factory=dict, description="The documents cases are handed, by name."
    )
    states: dict[Name, State] = Field(min_length=1)
    transitions: tuple[Transition, ...] = ()

    @field_validator("languages")
    @classmethod
    def _language_codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            twice = next(code for code in value if value.count(code) > 1)
            raise ValueError(f"the language `{twice}` is listed twice")
        return value

    @field_validator("fields")
    @classmethod
    def _cohort_field_is_named_cohort(cls, value: dict[str, FieldDef]) -> dict[str, FieldDef]:
        for name, field in value.items():
            if field.type is FieldType.COHORT and name != "cohort":
                raise ValueError(
                    f"the field {name!r} has type cohort: name it `cohort` "
                    "(that field sets the case's cohort)"
                )
        return value

    @property
    def default_language(self) -> str:
        return self.languages[0]

    @property
    def initial_state(self) -> str:
        return next(name for name, state in self.states.items() if state.initial)

    def open_states(self) -> tuple[str, ...]:
        return tuple(name for name, state in self.states.items() if not state.terminal)

    def sources(self, transition: Transition) -> tuple[str, ...]:
        """The concrete source states of a transition (``*`` expanded)."""
        if ANY_OPEN_STATE in transition.from_:
            return self.open_states()
        return transition.from_

    def transitions_named(self, trigger: str) -> tuple[Transition, ...]:
        return tuple(t for t in self.transitions if t.trigger == trigger)

    def contact_roles(self) -> tuple[str, ...]:
        return tuple(name for name, role in self.roles.items() if role.receives_mail)

    def transitions_needing(self, document: str) -> tuple[Transition, ...]:
        """The transitions whose ``needs_documents`` names ``document``."""
        return tuple(t for t in self.transitions if document in t.needs_documents)

    def upload_roles(self, document: str) -> tuple[str, ...]:
        """Who may upload ``document``: its ``roles``, else the roles of the transitions
        that need it (in file order)."""
        spec = self.documents.get(document)
        if spec is None:
            return ()
        if spec.roles:
            return spec.roles
        found: dict[str, None] = {}
        for transition in self.transitions_needing(document):
            found.update(dict.fromkeys(transition.roles))
        return tuple(found)
