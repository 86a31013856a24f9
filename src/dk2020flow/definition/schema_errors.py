"""pydantic's validation errors as located diagnostics (DF010–DF013).

pydantic reports a ``loc`` such as ``("states", "invited", "timers", "t", "due",
"at", "datetime")``. The locator finds the nearest node of the YAML for it
(union branch names like ``datetime`` name no node and are skipped); errors
that differ only in their union branch are merged into one diagnostic.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from dk2020flow.definition.diagnostics import Diagnostic
from dk2020flow.definition.model import NAME_PATTERN, Workflow
from dk2020flow.definition.source import Locator, NodePath

_TYPE_HINTS = {
    "string_type": 'write it as text; put quotes around values such as "2020.1" or "08:00"',
    "int_type": "write a whole number",
    "int_parsing": "write a whole number",
    "int_from_float": "write a whole number",
    "bool_type": "write true or false",
    "bool_parsing": "write true or false",
    "dict_type": "write a mapping: one `key: value` per line, indented under this key",
    "model_type": "write a mapping: one `key: value` per line, indented under this key",
    "model_attributes_type": "write a mapping: one `key: value` per line, indented under this key",
    "tuple_type": "write a list: [a, b] or one `- item` per line",
    "list_type": "write a list: [a, b] or one `- item` per line",
    "datetime_type": "write a local date and time such as 2020-08-31T23:59",
    "datetime_parsing": "write a local date and time such as 2020-08-31T23:59",
    "datetime_from_date_parsing": "write a date (2020-08-31) or a date and time (2020-08-31T23:59)",
    "date_from_datetime_parsing": "write a date (2020-08-31) or a date and time (2020-08-31T23:59)",
    "date_parsing": "write a date such as 2020-08-31",
    "date_type": "write a date such as 2020-08-31",
    "too_short": "give at least one entry",
    "string_pattern_mismatch": "names look like contact_person: lower-case letters, digits and _",
    "too_long": "shorten it",
    "string_too_long": "shorten it",
    "string_too_short": "it may not be empty",
    "greater_than_equal": "use a larger number",
    "less_than_equal": "use a smaller number",
}


def schema_diagnostics(exc: ValidationError, locator: Locator, file: str) -> list[Diagnostic]:
    """One diagnostic per located problem, union alternatives merged."""
    merged: dict[tuple[NodePath, str, str], list[str]] = {}
    hints: dict[tuple[NodePath, str, str], str] = {}
    positions: dict[tuple[NodePath, str, str], tuple[int, int]] = {}
    for error in _one_per_mistake(exc.errors(include_url=False)):
        code, use_key, message, hint = _describe(error)
        loc = tuple(error["loc"])
        anchor = _anchor(loc, code)
        real = locator.real_path(anchor)
        where = _dotted(real if code != "DF011" else (*real, loc[-1]))
        group = (real, code, where)
        if group not in merged:
            merged[group] = []
            hints[group] = hint
            positions[group] = locator.find(anchor, key=use_key)
        if message not in merged[group]:
            merged[group].append(message)
    diagnostics = []
    for group, messages in merged.items():
        real, code, where = group
        line, column = positions[group]
        text = "; or ".join(messages)
        diagnostics.append(
            Diagnostic(
                file=file,
                line=line,
                column=column,
                code=code,
                message=f"{where}: {text}" if where else text,
                hint=hints[group],
            )
        )
    return diagnostics


def _one_per_mistake(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """Drop the errors that only repeat another one.

    - "at least 1 item" on a list whose items have errors of their own (pydantic
      counts only the valid items);
    - "missing key `business_days`" beside "unknown key `business_dys`" in the same
      mapping: one misspelt key, reported once (as the unknown key, with its hint).
    """
    locs = [tuple(error["loc"]) for error in errors]
    unknown: dict[tuple[Any, ...], list[str]] = {}
    for error, loc in zip(errors, locs, strict=True):
        if error["type"] == "extra_forbidden":
            unknown.setdefault(loc[:-1], []).append(str(loc[-1]))
    kept = []
    for error, loc in zip(errors, locs, strict=True):
        if error["type"] == "too_short" and any(
            len(other) > len(loc) and other[: len(loc)] == loc for other in locs
        ):
            continue
        if error["type"] == "missing" and difflib.get_close_matches(
            str(loc[-1]), unknown.get(loc[:-1], []), n=1
        ):
            continue
        kept.append(error)
    return kept


def _describe(error: ErrorDetails) -> tuple[str, bool, str, str]:
    """(code, locate at key, message, hint) for one pydantic error."""
    kind = error["type"]
    loc = tuple(error["loc"])
    if kind == "extra_forbidden":
        allowed = allowed_keys(loc[:-1])
        name = str(loc[-1])
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"did you mean `{close[0]}`?" if close else ""
        if allowed:
            hint = (hint + " " if hint else "") + "allowed here: " + ", ".join(allowed)
        return "DF010", True, f"unknown key `{name}`", hint
    if kind == "missing":
        return "DF011", True, f"missing key `{loc[-1]}`", f"add `{loc[-1]}:` here"
    if kind in {"value_error", "assertion_error"}:
        text = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        return "DF013", False, text, "see docs/workflow-format.md for this key"
    hint = _TYPE_HINTS.get(kind, "")
    if (
        kind == "string_pattern_mismatch"
        and (error.get("ctx") or {}).get("pattern") != NAME_PATTERN
    ):
        hint = "see docs/workflow-format.md for the form this value takes"
    return "DF012", loc[-1:] == ("[key]",), _type_message(error), hint


def _type_message(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    shown = _short(error.get("input"))
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == NAME_PATTERN:
        return (
            f"{shown} is not a valid name: use lower-case letters, digits and _, "
            "starting with a letter"
        )
    if kind in {"enum", "literal_error"} and "expected" in ctx:
        return f"{shown} is not one of {ctx['expected']}"
    return f"{error['msg']}, got {shown}"


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _anchor(loc: tuple[Any, ...], code: str) -> tuple[Any, ...]:
    """The path to locate: the key itself for key errors, the parent for a missing key."""
    if loc[-1:] == ("[key]",):
        return loc[:-1]
    if code == "DF011":
        return loc[:-1]
    return loc


def _dotted(path: Sequence[Any]) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) and not isinstance(step, bool) else f".{step}"
    return text.lstrip(".")


def allowed_keys(loc: Sequence[Any]) -> list[str]:
    """The keys the model accepts at ``loc`` (by their YAML names), if it names a model."""
    model = _model_at(loc)
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    current: Any = Workflow
    for step in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {(info.alias or name): info for name, info in current.model_fields.items()}
            if step in fields:
                current = fields[step].annotation
            continue
        origin = get_origin(current)
        if origin is dict:
            current = get_args(current)[1]
        elif origin is tuple:
            current = get_args(current)[0]
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated and pick the model (or container) out of an optional/union type."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in {Union, types.UnionType}:
        members = [_unwrap(a) for a in get_args(annotation) if a is not type(None)]
        for member in members:
            if isinstance(member, type) and issubclass(member, BaseModel):
                return member
        for member in members:
            if get_origin(member) in {dict, tuple}:
                return member
        return members[0] if members else annotation
    return annotation
