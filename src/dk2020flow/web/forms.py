"""The case page's forms: from the workflow's fields to inputs, and back to values.

An action's inputs are built from its transition's ``requires``/``accepts``
(``service.casepage.InputField``); what a browser sends comes back as the text values
``dk2020flow case fire --data`` would pass, so the engine checks them exactly as it
checks the CLI's (``engine/fields.py``): the same rules and the same messages.
Only the browser's own formats are adapted here (a ``datetime-local`` value has no
UTC offset: it is read in the workflow's time zone). Empty inputs are left out, as an
option not given on the command line is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from dk2020flow.definition.durations import Duration, parse_duration
from dk2020flow.definition.model import FieldType, Workflow
from dk2020flow.localtime import to_utc

ROLE = "_role"
COMMENT = "_comment"
CSRF = "csrf_token"
META = frozenset({ROLE, COMMENT, CSRF})
"""Form names that are not case data (field names start with a letter: no clash)."""

HTML_INPUT_TYPES = {
    FieldType.TEXT: "text",
    FieldType.DATE: "date",
    FieldType.DATETIME: "datetime-local",
    FieldType.EMAIL: "email",
    FieldType.INTEGER: "number",
    FieldType.URL: "url",
}
"""The ``<input type>`` of each field type (boolean, choice and cohort are selects)."""

SELECT_TYPES = frozenset({FieldType.BOOLEAN, FieldType.CHOICE, FieldType.COHORT})


def input_type(kind: FieldType) -> str:
    return HTML_INPUT_TYPES.get(kind, "text")


def input_id(form: str, name: str) -> str:
    """An element id unique on the page (several forms share field names)."""
    return f"{form}-{name}".replace("_", "-").replace(".", "-")


@dataclass(frozen=True, kw_only=True, slots=True)
class Submitted:
    """An action's form as the engine gets it."""

    role: str | None
    data: dict[str, str]
    comment: str
    values: dict[str, str]
    """Everything the user typed, to show the form again after a refusal."""


def text_values(form: Mapping[str, object]) -> dict[str, str]:
    """The form's text values (a file upload, which no form here has, is ignored)."""
    return {k: v for k, v in form.items() if isinstance(v, str)}


def action_form(workflow: Workflow, form: Mapping[str, object]) -> Submitted:
    """The trigger's data, role and comment from a submitted action form."""
    values = text_values(form)
    data: dict[str, str] = {}
    for name, given in values.items():
        if name in META or not given.strip():
            continue
        spec = workflow.fields.get(name)
        if spec is not None and spec.type is FieldType.DATETIME:
            data[name] = _with_offset(given, ZoneInfo(workflow.timezone))
        else:
            data[name] = given
    return Submitted(
        role=values.get(ROLE) or None,
        data=data,
        comment=values.get(COMMENT, ""),
        values={k: v for k, v in values.items() if k != CSRF},
    )


def _with_offset(value: str, tz: ZoneInfo) -> str:
    """``2021-12-01T10:00`` (a browser's local date-time) as an instant with its offset;
    anything else unchanged, for the engine to refuse with its message."""
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return value
    if parsed.tzinfo is not None:
        return value
    return to_utc(parsed, tz).isoformat()


@dataclass(frozen=True, kw_only=True, slots=True)
class ExtendForm:
    role: str | None
    reason: str
    to: dt.datetime | None
    by: Duration | None
    values: dict[str, str]


class FormError(ValueError):
    """A form value this page cannot read (the message names the input)."""


def extend_form(form: Mapping[str, object], tz: ZoneInfo) -> ExtendForm:
    """A new deadline (a date, and a time of day) or a span (``P14D``), and the reason.

    Giving both or neither is left to the engine, which refuses it with its message.
    """
    values = text_values(form)
    day, time, span = (values.get(k, "").strip() for k in ("to_date", "to_time", "by"))
    to: dt.datetime | None = None
    by: Duration | None = None
    if day:
        try:
            local = dt.datetime.combine(
                dt.date.fromisoformat(day),
                dt.time.fromisoformat(time) if time else dt.time(23, 59),
            )
        except ValueError:
            raise FormError(
                f"the new deadline {day!r} {time!r} is not a date and time; "
                "write YYYY-MM-DD and HH:MM"
            ) from None
        to = to_utc(local, tz)
    if span:
        try:
            by = parse_duration(span)
        except ValueError as exc:
            raise FormError(f"the span: {exc}") from None
    return ExtendForm(
        role=values.get(ROLE) or None,
        reason=values.get("reason", ""),
        to=to,
        by=by,
        values={k: v for k, v in values.items() if k != CSRF},
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ChecklistForm:
    role: str | None
    items: dict[str, tuple[str, str]]
    values: dict[str, str]


def status_name(item: str) -> str:
    return f"status:{item}"


def comment_name(item: str) -> str:
    return f"comment:{item}"


def checklist_form(
    form: Mapping[str, object], recorded: Mapping[str, tuple[str | None, str]]
) -> ChecklistForm:
    """The items whose status or comment the user changed (``recorded``: item ->
    (status, comment) as the case has them). An item without a status is not sent."""
    values = text_values(form)
    items: dict[str, tuple[str, str]] = {}
    for item, (status, comment) in recorded.items():
        new_status = values.get(status_name(item), "").strip()
        new_comment = values.get(comment_name(item), "")
        if not new_status:
            continue
        if (new_status, new_comment.strip()) != (status, comment):
            items[item] = (new_status, new_comment)
    return ChecklistForm(
        role=values.get(ROLE) or None,
        items=items,
        values={k: v for k, v in values.items() if k != CSRF},
    )
