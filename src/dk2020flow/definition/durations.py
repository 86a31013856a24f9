"""ISO 8601 durations with calendar months and years.

pydantic reads ``P1M`` as 30 days; a deadline "18 months after the round
starts" must land on the same day of the month, so durations here keep their
calendar parts and are added with ``dateutil.relativedelta``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from dateutil.relativedelta import relativedelta
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

_PATTERN = re.compile(
    r"^(?P<sign>-)?P(?!$)"
    r"(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)
JSON_PATTERN = r"^-?P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$"
_MAX_PART = 100_000


@dataclass(frozen=True, slots=True)
class Duration:
    """A calendar-aware span: years and months are calendar units, the rest exact."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0
    text: str = ""

    @property
    def delta(self) -> relativedelta:
        return relativedelta(
            years=self.years,
            months=self.months,
            days=self.days,
            hours=self.hours,
            minutes=self.minutes,
            seconds=self.seconds,
        )

    @property
    def is_negative(self) -> bool:
        return self.text.startswith("-")

    def approximate(self) -> dt.timedelta:
        """An exact length for ordering and windows (a month counts 30 days, a year 365)."""
        return dt.timedelta(
            days=self.years * 365 + self.months * 30 + self.days,
            hours=self.hours,
            minutes=self.minutes,
            seconds=self.seconds,
        )

    def has_clock_part(self) -> bool:
        return bool(self.hours or self.minutes or self.seconds)

    def __str__(self) -> str:
        return self.text

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate,
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": JSON_PATTERN,
            "description": "ISO 8601 duration, e.g. P14D, P1M, P18M, PT2H",
        }


def _validate(value: Any) -> Duration:
    if isinstance(value, Duration):
        return value
    if not isinstance(value, str):
        raise ValueError(f"a duration is an ISO 8601 text such as P14D or P1M, got {value!r}")
    return parse_duration(value)


def parse_duration(text: str) -> Duration:
    """Parse ``P1Y2M3DT4H5M6S`` / ``P2W`` / ``-P3D``; raise ValueError with a hint."""
    match = _PATTERN.match(text.strip())
    if not match:
        raise ValueError(
            f"{text!r} is not an ISO 8601 duration; write e.g. P14D (14 days), "
            "P1M (one calendar month), PT2H (two hours)"
        )
    parts = {k: int(v) if v else 0 for k, v in match.groupdict().items() if k != "sign"}
    if any(v > _MAX_PART for v in parts.values()):
        raise ValueError(f"{text!r} is too long a duration")
    sign = -1 if match.group("sign") else 1
    return Duration(
        years=sign * parts["years"],
        months=sign * parts["months"],
        days=sign * (parts["days"] + 7 * parts["weeks"]),
        hours=sign * parts["hours"],
        minutes=sign * parts["minutes"],
        seconds=sign * parts["seconds"],
        text=text.strip(),
    )


def negate(duration: Duration) -> Duration:
    text = duration.text[1:] if duration.text.startswith("-") else "-" + duration.text
    return Duration(
        years=-duration.years,
        months=-duration.months,
        days=-duration.days,
        hours=-duration.hours,
        minutes=-duration.minutes,
        seconds=-duration.seconds,
        text=text,
    )
