"""Reading a YAML document with the position of every node.

The round-trip loader of ruamel.yaml records where each mapping key, mapping
value and sequence item starts. ``read_yaml`` turns the document into plain
Python data (dicts, lists, str, int, float, bool, None; dates stay text for
the model to parse) and a
``Locator`` that maps a path such as ``("states", "invited", "timers")`` back
to a line and column. Everything that can go wrong with the bytes or the
YAML becomes a ``Diagnostic`` (DF002–DF009), never an exception.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from ruamel.yaml.nodes import ScalarNode

from dk2020flow.definition.diagnostics import Diagnostic

MAX_BYTES = 2 * 1024 * 1024
MAX_NODES = 100_000
"""Nodes visited after expanding aliases: a few hundred times a large real workflow."""
MAX_DEPTH = 64

Key = str | int | float | bool | None | dt.date
NodePath = tuple[Any, ...]
Position = tuple[int, int]


@dataclass(frozen=True)
class Locator:
    """Lines and columns (from 1) of the nodes of one document."""

    values: dict[NodePath, Position] = field(default_factory=dict)
    keys: dict[NodePath, Position] = field(default_factory=dict)

    def real_path(self, path: Sequence[Any]) -> NodePath:
        """The longest prefix of ``path`` that exists, skipping elements that name no node.

        Model paths may hold steps the YAML lacks: ``mail: {…}`` stands for a list of
        one mail (index 0), and pydantic adds union branch names such as ``str``.
        """
        real: NodePath = ()
        for step in path:
            candidate = (*real, step)
            if _hashable(step) and candidate in self.values:
                real = candidate
        return real

    def find(self, path: Sequence[Any], *, key: bool = False) -> Position:
        """Where the node at ``path`` (or its nearest existing ancestor) starts.

        With ``key=True`` a mapping entry is located at its key rather than its value.
        """
        real = self.real_path(path)
        if key and real in self.keys:
            return self.keys[real]
        return self.values.get(real, (1, 1))

    def pruned(self, removed: Iterable[NodePath], lists: Iterable[NodePath]) -> Locator:
        """The positions after the nodes at ``removed`` are deleted from the document.

        ``lists`` are the paths of the lists that lose items: the items after a
        removed one move up, so their paths (and those of their children) change.
        """
        gone = set(removed)
        list_paths = set(lists)
        shifted: dict[NodePath, list[int]] = {}
        for path in gone:
            if path[:-1] in list_paths and isinstance(path[-1], int):
                shifted.setdefault(path[:-1], []).append(path[-1])
        for indexes in shifted.values():
            indexes.sort()

        def moved(path: NodePath) -> NodePath | None:
            new: list[Any] = []
            for depth, step in enumerate(path):
                if path[: depth + 1] in gone:
                    return None
                indexes = shifted.get(path[:depth])
                if indexes is not None and isinstance(step, int):
                    new.append(step - bisect.bisect_left(indexes, step))
                else:
                    new.append(step)
            return tuple(new)

        result = Locator()
        for source, target in ((self.values, result.values), (self.keys, result.keys)):
            for path, position in source.items():
                new_path = moved(path)
                if new_path is not None:
                    target[new_path] = position
        return result


def _hashable(step: Any) -> bool:
    try:
        hash(step)
    except TypeError:
        return False
    return True


@dataclass
class Document:
    """The outcome of reading: data and positions, or the diagnostics that stopped it."""

    data: dict[str, Any] | None
    locator: Locator
    diagnostics: list[Diagnostic]


def decode(
    raw: bytes, file: str, *, size: int | None = None
) -> tuple[str | None, list[Diagnostic]]:
    """UTF-8 text from bytes, or DF002/DF003/DF004.

    ``size`` is the whole file's size when only its first ``MAX_BYTES + 1`` bytes were
    read (so DF002 shows the real size).
    """
    if len(raw) > MAX_BYTES:
        total = max(size or 0, len(raw))
        return None, [
            _diag(
                file,
                1,
                1,
                "DF002",
                f"the file is {total / 1024 / 1024:.1f} MB; a workflow file may be at most 2 MB",
                "is this the right file? A whole programme fits in well under 100 kB",
            )
        ]
    if b"\x00" in raw:
        line, column = _byte_position(raw, raw.index(b"\x00"))
        return None, [
            _diag(
                file,
                line,
                column,
                "DF003",
                "the file is binary (it contains NUL bytes), not YAML text",
                "save the workflow as plain UTF-8 text",
            )
        ]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, column = _byte_position(raw, exc.start)
        return None, [
            _diag(
                file,
                line,
                column,
                "DF003",
                f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} here)",
                "save the file as UTF-8; editors call it 'UTF-8' or 'Unicode (UTF-8)'",
            )
        ]
    return text, []


def read_yaml(text: str, file: str) -> Document:
    """Parse ``text`` into plain data and a locator; refuse what a workflow file cannot be."""
    if not text.strip():
        return _failed(file, 1, 1, "DF004", "the file is empty", "start with `workflow: <name>`")
    too_deep = _flow_too_deep(text)
    if too_deep is not None:
        return _failed(
            file,
            *_offset_position(text, too_deep),
            "DF007",
            f"brackets are nested more than {MAX_DEPTH} levels deep",
            "close the [ and { you open; a workflow needs only a few levels",
        )
    try:
        root = _yaml().load(text)
    except DuplicateKeyError as exc:
        line, column = _mark(exc)
        return _failed(
            file,
            line,
            column,
            "DF006",
            _first_line(exc.problem) or "duplicate key",
            "each key may appear once in a mapping: merge the two entries or rename one",
        )
    except MarkedYAMLError as exc:
        line, column = _mark(exc)
        problem = _first_line(exc.problem) or _first_line(exc.context) or "invalid YAML"
        return _failed(file, line, column, "DF005", problem, _syntax_hint(problem))
    except YAMLError as exc:  # ReaderError: a control character the YAML reader refuses
        line, column = _offset_position(text, getattr(exc, "position", 0) or 0)
        return _failed(
            file,
            line,
            column,
            "DF003",
            _first_line(str(exc)) or "unreadable character",
            "remove control characters; the file should be plain text",
        )
    except (IndexError, ValueError):
        # ruamel.yaml's number resolver takes `+_` (a sign and underscores) for an integer
        # and fails converting it: say which value, not a traceback.
        found = _NOT_A_NUMBER.search(text)
        where = _offset_position(text, found.start(1)) if found else (1, 1)
        value = found.group(1) if found else "a value"
        return _failed(
            file,
            *where,
            "DF005",
            f"`{value}` reads as a number but is not one",
            f"quote it ('{value}') if it is text, or write the number's digits",
        )
    except RecursionError:
        return _failed(
            file,
            1,
            1,
            "DF007",
            "the document is nested too deeply to read",
            f"a workflow needs at most {MAX_DEPTH} levels",
        )
    if root is None:
        return _failed(
            file, 1, 1, "DF004", "the file has no content", "start with `workflow: <name>`"
        )
    inside = _alias_inside_its_node(text)
    if inside is not None:
        return _failed(
            file,
            *inside[1],
            "DF007",
            f"the alias *{inside[0]} is inside the node &{inside[0]} it names "
            "(it would contain itself)",
            "an alias (*name) must not point into the mapping or list that contains it",
        )
    if not isinstance(root, dict):
        return _failed(
            file,
            *_node_position(root),
            "DF008",
            f"the document is a {_kind(root)}, but a workflow file is a mapping of keys",
            "start with `workflow: <name>`, `version: …`, `title: …` on their own lines",
        )
    return _Converter(file).run(root)


def _flow_too_deep(text: str) -> int | None:
    """Offset of the first ``[``/``{`` nested deeper than MAX_DEPTH, skipping quotes and comments.

    ruamel's scanner slows down with the square of the bracket depth (a few thousand
    ``[`` take seconds), so such a document is refused before it is parsed. Brackets
    inside plain texts are counted too; that only matters with dozens left open.
    """
    depth = 0
    offset = 0
    previous = "\n"
    while offset < len(text):
        char = text[offset]
        if char in "\"'" and previous in " \t\n[{,:":
            closing = text.find(char, offset + 1)
            offset = len(text) if closing < 0 else closing
        elif char == "#" and previous in " \t\n":
            newline = text.find("\n", offset)
            offset = len(text) if newline < 0 else newline
            char = "\n"
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return offset
        elif char in "]}":
            depth = max(depth - 1, 0)
        previous = char
        offset += 1
    return None


_ANCHOR = re.compile(r"(?:^|[\s\[{,:-])&[^\s,\[\]{}]", re.MULTILINE)
_ALIAS = re.compile(r"(?:^|[\s\[{,:-])\*[^\s,\[\]{}]", re.MULTILINE)


def _alias_inside_its_node(text: str) -> tuple[str, Position] | None:
    """The first alias that sits inside the mapping or list its anchor names, and where.

    ruamel reads such an alias as an empty value (None), which would surface as a
    misleading type error; the parser's events show it plainly.
    """
    if not (_ANCHOR.search(text) and _ALIAS.search(text)):
        return None  # no anchor and alias: no second pass over the text
    open_anchors: list[str | None] = []
    for event in _yaml().parse(text):
        if isinstance(event, MappingStartEvent | SequenceStartEvent):
            open_anchors.append(event.anchor)
        elif isinstance(event, MappingEndEvent | SequenceEndEvent):
            open_anchors.pop()
        elif isinstance(event, AliasEvent) and event.anchor in open_anchors:
            mark = event.start_mark
            return str(event.anchor), (int(mark.line) + 1, int(mark.column) + 1)
    return None


class _TextTimestamps(RoundTripConstructor):
    """Reads YAML timestamps (``2020-08-31``, ``2020-08-31 09:00``) as their text.

    ruamel would build ``date``/``datetime`` objects itself and fail with a bare
    ValueError on ``2021-02-29``; as text, the model parses them and an impossible
    date becomes a located diagnostic (DF012) like any other wrong value.
    """


def _timestamp_as_text(constructor: RoundTripConstructor, node: ScalarNode) -> str:
    return str(constructor.construct_scalar(node))


_TextTimestamps.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


_NOT_A_NUMBER = re.compile(r"(?:^|[\s:\[,{])([-+]_+|[-+]?0[bxo]_+|[-+]?\._+)(?=$|[\s,\]}#])", re.M)
"""A plain value ruamel.yaml's resolver takes for a number and cannot convert (``+_``,
``0x_``, ``._``): a sign or prefix with underscores and no digit."""


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Constructor = _TextTimestamps
    yaml.allow_duplicate_keys = False
    return yaml


class _Converter:
    """Walks the round-trip tree into plain data, recording positions, within budgets."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.locator = Locator()
        self.diagnostics: list[Diagnostic] = []
        self.visited = 0

    def run(self, root: dict[Any, Any]) -> Document:
        self.locator.values[()] = (1, 1)
        try:
            data = self._node(root, (), 0)
        except _TooBigError as exc:
            line, column = exc.position
            return _failed(self.file, line, column, "DF007", exc.message, exc.hint)
        if self.diagnostics:
            return Document(None, self.locator, self.diagnostics)
        return Document(data, self.locator, [])

    def _node(self, node: Any, path: NodePath, depth: int) -> Any:
        self.visited += 1
        if self.visited > MAX_NODES:
            raise _TooBigError(
                self.locator.values.get(path, (1, 1)),
                "the document expands to too many values (aliases used as a bomb?)",
                "use fewer anchors and aliases (&name / *name); write the values out",
            )
        if depth > MAX_DEPTH:
            raise _TooBigError(
                self.locator.values.get(path, (1, 1)),
                f"the document is nested more than {MAX_DEPTH} levels deep "
                "(an alias that refers to itself?)",
                "an alias (*name) must not point into the mapping or list that contains it",
            )
        if isinstance(node, dict):
            return self._mapping(node, path, depth)
        if isinstance(node, list):
            return self._sequence(node, path, depth)
        return self._scalar(node, path)

    def _mapping(self, node: dict[Any, Any], path: NodePath, depth: int) -> dict[Any, Any]:
        own = self.locator.values.get(path, (1, 1))
        result: dict[Any, Any] = {}
        for raw_key, value in node.items():
            key_pos = _lc(node, "key", raw_key, own)
            key = _plain_scalar(raw_key)
            if key is _UNSUPPORTED:
                self._unsupported(key_pos, "a key must be plain text, not a list or mapping")
                continue
            child = (*path, key)
            self.locator.keys[child] = key_pos
            self.locator.values[child] = _lc(node, "value", raw_key, key_pos)
            result[key] = self._node(value, child, depth + 1)
        return result

    def _sequence(self, node: list[Any], path: NodePath, depth: int) -> list[Any]:
        own = self.locator.values.get(path, (1, 1))
        result: list[Any] = []
        for index, value in enumerate(node):
            child = (*path, index)
            self.locator.values[child] = _lc(node, "item", index, own)
            result.append(self._node(value, child, depth + 1))
        return result

    def _scalar(self, node: Any, path: NodePath) -> Any:
        value = _plain_scalar(node)
        if value is _UNSUPPORTED:
            tag = getattr(getattr(node, "tag", None), "value", None) or type(node).__name__
            self._unsupported(
                self.locator.values.get(path, (1, 1)),
                f"a value of YAML type {tag} is not used in workflow files",
            )
            return None
        return value

    def _unsupported(self, position: Position, message: str) -> None:
        self.diagnostics.append(
            _diag(
                self.file,
                *position,
                "DF009",
                message,
                "use plain text, numbers, true/false, dates, lists and mappings; no YAML tags",
            )
        )


class _Unsupported:
    pass


_UNSUPPORTED = _Unsupported()


def _plain_scalar(value: Any) -> Any:
    """ruamel's scalar subclasses as plain Python values, or ``_UNSUPPORTED``."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dt.datetime):
        return dt.datetime(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            tzinfo=value.tzinfo,
        )
    if isinstance(value, dt.date):
        return dt.date(value.year, value.month, value.day)
    return _UNSUPPORTED


class _TooBigError(Exception):
    def __init__(self, position: Position, message: str, hint: str) -> None:
        super().__init__(message)
        self.position = position
        self.message = message
        self.hint = hint


def _lc(node: Any, kind: str, key: Any, default: Position) -> Position:
    """1-based position of a key/value/item from ruamel's line-column data."""
    lc = getattr(node, "lc", None)
    try:
        line, column = getattr(lc, kind)(key)
    except (AttributeError, KeyError, IndexError, TypeError):
        return default
    return int(line) + 1, int(column) + 1


def _node_position(node: Any) -> Position:
    lc = getattr(node, "lc", None)
    line, column = getattr(lc, "line", None), getattr(lc, "col", None)
    if isinstance(line, int) and isinstance(column, int):
        return line + 1, column + 1
    return 1, 1


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "single text"
    return f"single value ({type(value).__name__})"


def _mark(exc: MarkedYAMLError) -> Position:
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return 1, 1
    return int(mark.line) + 1, int(mark.column) + 1


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _syntax_hint(problem: str) -> str:
    if "'\\t'" in problem or "\t" in problem:
        return "indent with spaces, not tabs"
    if "mapping values are not allowed" in problem:
        return "put quotes around a text that contains ': ' or start a new line for a nested key"
    if "found character" in problem and "`" in problem:
        return "put quotes around texts that start with a backquote or @"
    return "check the indentation and quotes on this line and the one before"


def _byte_position(raw: bytes, offset: int) -> Position:
    line = raw.count(b"\n", 0, offset) + 1
    start = raw.rfind(b"\n", 0, offset) + 1
    return line, offset - start + 1


def _offset_position(text: str, offset: int) -> Position:
    line = text.count("\n", 0, offset) + 1
    start = text.rfind("\n", 0, offset) + 1
    return line, offset - start + 1


def _diag(file: str, line: int, column: int, code: str, message: str, hint: str) -> Diagnostic:
    return Diagnostic(file=file, line=line, column=column, code=code, message=message, hint=hint)


def _failed(file: str, line: int, column: int, code: str, message: str, hint: str) -> Document:
    return Document(None, Locator(), [_diag(file, line, column, code, message, hint)])
