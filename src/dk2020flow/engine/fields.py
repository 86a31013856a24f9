"""Checking and normalising case data carried by triggers.

Values arrive as text from the command line or as JSON values from scripts;
they are stored as JSON values (dates as ISO 8601 text, datetimes in UTC).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import urlparse

from dk2020flow.definition.model import FieldDef, FieldType, Workflow
from dk2020flow.engine.records import JsonValue

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TRUE = {"true", "yes", "ja", "1", "on"}
_FALSE = {"false", "no", "nej", "0", "off"}


class FieldValueError(ValueError):
    """A value that does not fit its field; the message names the field and the fix."""


def coerce(workflow: Workflow, name: str, value: Any) -> JsonValue:
    """Check ``value`` against the field ``name`` and return its stored form."""
    field = workflow.fields.get(name)
    if field is None:
        known = ", ".join(sorted(workflow.fields)) or "none"
        raise FieldValueError(f"unknown field {name!r} (fields of this workflow: {known})")
    if value is None:
        return None
    try:
        return _coerce(workflow, field, value)
    except FieldValueError as exc:
        raise FieldValueError(f"field {name!r}: {exc}") from None


def _coerce(workflow: Workflow, field: FieldDef, value: Any) -> JsonValue:
    kind = field.type
    if kind is FieldType.BOOLEAN:
        return _boolean(value)
    if kind is FieldType.INTEGER:
        return _integer(value)
    text = _text(value, field.max_length)
    if kind is FieldType.DATE:
        try:
            return dt.date.fromisoformat(text).isoformat()
        except ValueError:
            raise FieldValueError(f"{text!r} is not a date; write YYYY-MM-DD") from None
    if kind is FieldType.DATETIME:
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise FieldValueError(
                f"{text!r} is not a date-time; write e.g. 2020-08-31T12:00+02:00"
            ) from None
        if parsed.tzinfo is None:
            raise FieldValueError(f"{text!r} needs a UTC offset, e.g. +02:00")
        return parsed.astimezone(dt.UTC).isoformat()
    if kind is FieldType.EMAIL:
        from email_validator import EmailNotValidError, validate_email  # only here (#15.18)

        try:
            return validate_email(text, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise FieldValueError(f"{text!r} is not an e-mail address ({exc})") from None
    if kind is FieldType.URL:
        parsed_url = urlparse(text)
        if parsed_url.scheme not in {"http", "https"} or not parsed_url.netloc:
            raise FieldValueError(f"{text!r} is not a web address; write https://…")
        return text
    if kind is FieldType.CHOICE and text not in field.choices:
        raise FieldValueError(f"{text!r} is not one of {', '.join(field.choices)}")
    if kind is FieldType.COHORT and text not in workflow.cohorts:
        raise FieldValueError(
            f"{text!r} is not a cohort; choose one of {', '.join(workflow.cohorts)}"
        )
    return text


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise FieldValueError(f"{value!r} is not a yes/no value; write true or false")


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise FieldValueError(f"{value!r} is not a whole number")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise FieldValueError(f"{value!r} is not a whole number") from None


def _text(value: Any, max_length: int) -> str:
    text = (value if isinstance(value, str) else str(value)).strip()
    if not text:
        raise FieldValueError("is empty")
    if len(text) > max_length:
        raise FieldValueError(f"is {len(text)} characters long; at most {max_length} are allowed")
    if _CONTROL.search(text):
        raise FieldValueError("contains control characters")
    return text


def as_date(value: JsonValue) -> dt.date | dt.datetime | None:
    """A stored date or datetime value back as a Python object (for date-anchored timers)."""
    if not isinstance(value, str):
        return None
    try:
        if "T" in value:
            return dt.datetime.fromisoformat(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def check_comment(comment: str, *, limit: int = 10_000) -> str:
    """Comments are free text but bounded and free of control characters (newlines allowed)."""
    if len(comment) > limit:
        raise FieldValueError(f"the comment is {len(comment)} characters long; at most {limit}")
    if _CONTROL.search(comment.replace("\r\n", "\n").replace("\t", " ")):
        raise FieldValueError("the comment contains control characters")
    return comment.strip()
