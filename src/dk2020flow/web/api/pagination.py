"""Opaque cursors for keyset pagination.

A cursor is the sort key of the last item of a page (``CaseKeysetPage.last_key``: the
organisation's name and the case's id, or the case's deadline …) together with a
fingerprint of the filter and sort it was made for, as URL-safe base64 of a little
JSON. It is not an offset: the next page starts strictly after that key, so a page
costs the same wherever it is and a walk over the pages meets each item once.

A cursor is checked as any other input: one made for another filter or sort, or one
that does not decode, is refused with 422 naming ``cursor``; the values it carries are
checked for their kind and range before they reach a query.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from dk2020flow.store.port import KeyValue
from dk2020flow.web.api.problems import ApiProblem
from dk2020flow.web.api.schemas import FieldProblem

MAX_CURSOR = 2000
MAX_TEXT = 300
MAX_ID = 2**31 - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def fingerprint(query: Mapping[str, object]) -> str:
    """What a cursor is bound to: the filter and sort (not the page size)."""
    text = json.dumps(query, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode(key: Sequence[KeyValue], bound_to: str) -> str:
    parts: list[list[Any]] = []
    for value in key:
        if value is None:
            parts.append(["n"])
        elif isinstance(value, dt.datetime):
            parts.append(["t", value.isoformat()])
        elif isinstance(value, int) and not isinstance(value, bool):
            parts.append(["i", value])
        else:
            parts.append(["s", str(value)])
    raw = json.dumps({"q": bound_to, "k": parts}, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def invalid(detail: str) -> ApiProblem:
    return ApiProblem(
        422,
        f"cursor: {detail}; start again without a cursor",
        kind="invalid-request",
        errors=[FieldProblem(field="cursor", message=detail, location="query")],
    )


def decode(cursor: str, bound_to: str) -> tuple[KeyValue, ...]:
    """The key a cursor carries (``ApiProblem`` 422 when it is not one of ours, or was
    made for another filter or sort)."""
    if len(cursor) > MAX_CURSOR:
        raise invalid("it is too long to be one this API made")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found = json.loads(raw.decode())
    except (binascii.Error, ValueError):
        raise invalid("it is not one this API made") from None
    if not isinstance(found, dict) or not isinstance(found.get("k"), list):
        raise invalid("it is not one this API made")
    if found.get("q") != bound_to:
        raise invalid("it was made for another filter or sort")
    return tuple(_value(part) for part in found["k"])


def _value(part: object) -> KeyValue:
    if not isinstance(part, list) or not part or part[0] not in ("n", "t", "i", "s"):
        raise invalid("it is not one this API made")
    tag = part[0]
    if tag == "n" and len(part) == 1:
        return None
    if len(part) != 2:
        raise invalid("it is not one this API made")
    value = part[1]
    if tag == "i" and isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= MAX_ID:
            return value
    elif tag == "s" and isinstance(value, str):
        if len(value) <= MAX_TEXT and not _CONTROL.search(value):
            return value
    elif tag == "t" and isinstance(value, str) and len(value) <= 40:
        try:
            instant = dt.datetime.fromisoformat(value)
        except ValueError:
            raise invalid("it is not one this API made") from None
        if instant.tzinfo is not None and 1900 <= instant.year <= 2200:
            return instant
    raise invalid("it is not one this API made")
