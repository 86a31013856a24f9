"""Participants: the CSV import format and its row checks (above the store).

Two kinds of file are accepted, told apart by their header line
(docs/data-model.md has the full format):

- municipalities: ``code,name,region[,dk2020_group]``
- contacts: ``municipality,role,name,email[,language]`` where ``municipality``
  is a code or a name and ``language`` a language code Babel knows (``da``, ``en``,
  ``de`` …; ``da`` without the column).

Every row is checked and every bad row reported by line number in one
``ParticipantsError``; a file with any bad row imports nothing. The store keeps
only the shipped municipalities (``store/participants.py``) and
``replace_participants``.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from email_validator import EmailNotValidError, validate_email

from dk2020flow.definition.model import is_language
from dk2020flow.store.errors import ParticipantsError, RowProblem
from dk2020flow.store.participants import default_municipalities
from dk2020flow.store.port import Contact, Municipality, ParticipantsTx

if TYPE_CHECKING:
    from _csv import Reader

LANGUAGE_EXAMPLES = "da, en, de or fr"
MUNICIPALITY_COLUMNS = ("code", "name", "region")
MUNICIPALITY_OPTIONAL = ("dk2020_group",)
CONTACT_COLUMNS = ("municipality", "role", "name", "email")
CONTACT_OPTIONAL = ("language",)
CODE = re.compile(r"^\d{3}$")
ROLE = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_LENGTH = {"name": 100, "region": 64, "dk2020_group": 64, "role": 64, "contact": 200}


@dataclass(frozen=True, kw_only=True, slots=True)
class ParticipantsImported:
    """What ``import_participants`` stored: how many of each."""

    municipalities: int
    contacts: int


def import_participants(tx: ParticipantsTx, path: str | Path) -> ParticipantsImported:
    """Check the whole file, then replace the participants it names (all or nothing)."""
    municipalities, contacts = parse_participants_csv(path, known=tx.municipalities())
    tx.replace_participants(municipalities, contacts)
    return ParticipantsImported(municipalities=len(municipalities), contacts=len(contacts))


def _format_help() -> str:
    return (
        "expected a municipalities header (code,name,region[,dk2020_group]) "
        "or a contacts header (municipality,role,name,email[,language])"
    )


# ------------------------------------------------------------------------ parsing


def parse_participants_csv(
    path: str | Path, *, known: Sequence[Municipality] | None = None
) -> tuple[list[Municipality], list[Contact]]:
    """Read and check a participants file; return its municipalities and contacts.

    ``known`` are the municipalities a contact row may name (by code or name);
    by default the shipped ones. Raises ``ParticipantsError`` listing every bad
    row when anything is wrong.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ParticipantsError(str(path), f"cannot read the file ({error.strerror})") from error
    return parse_participants_text(
        data, source=str(path), known=default_municipalities() if known is None else known
    )


def parse_participants_text(
    data: bytes, *, source: str, known: Sequence[Municipality]
) -> tuple[list[Municipality], list[Contact]]:
    """``parse_participants_csv`` on the bytes of a file named ``source``."""
    text = _decode(data, source)
    delimiter = (
        ";" if text.split("\n", 1)[0].count(";") > text.split("\n", 1)[0].count(",") else ","
    )
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        rows = _numbered_rows(reader)
    except csv.Error as error:
        raise ParticipantsError(
            source, f"line {reader.line_num}: not valid CSV ({error})"
        ) from error
    if not rows:
        raise ParticipantsError(source, f"the file is empty: {_format_help()}")
    header_line, header = rows[0]
    columns = [name.strip().lower() for name in header]
    body = rows[1:]
    if not body:
        raise ParticipantsError(source, "the file has a header but no rows")
    parser: _Municipalities | _Contacts
    if "code" in columns:
        parser = _Municipalities(columns)
    elif "municipality" in columns:
        parser = _Contacts(columns, known)
    else:
        raise ParticipantsError(
            source, f"line {header_line}: unknown header {','.join(header)!r}: {_format_help()}"
        )
    if parser.check_header(header_line):
        for line, row in body:
            values = parser.fields(line, row)
            if values is not None:
                parser.row(line, values)
    if parser.problems:
        raise ParticipantsError(source, parser.problems)
    if isinstance(parser, _Municipalities):
        return parser.result, []
    return [], parser.result


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        byte = data[error.start]
        raise ParticipantsError(
            source,
            f"the file is not UTF-8 text (line {line} has the byte 0x{byte:02X}): "
            'save it as "CSV UTF-8" and import it again',
        ) from error


def _numbered_rows(reader: Reader) -> list[tuple[int, list[str]]]:
    """Rows with the line each starts on; blank lines are skipped."""
    rows: list[tuple[int, list[str]]] = []
    start = 1
    for row in reader:
        if any(field.strip() for field in row):
            rows.append((start, row))
        start = reader.line_num + 1
    return rows


class _Parser:
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self.problems: list[RowProblem] = []

    def check_header(self, line: int) -> bool:
        missing = [c for c in self.required if c not in self.columns]
        extra = [c for c in self.columns if c not in (*self.required, *self.optional)]
        repeated = sorted({c for c in self.columns if self.columns.count(c) > 1})
        if missing:
            self.problem(
                line, f"missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}"
            )
        if extra:
            allowed = ", ".join((*self.required, *self.optional))
            self.problem(
                line,
                f"unknown column{'s' if len(extra) > 1 else ''}: "
                f"{', '.join(repr(c) for c in extra)} (allowed: {allowed})",
            )
        if repeated:
            self.problem(line, f"repeated column: {', '.join(repeated)}")
        return not (missing or extra or repeated)

    def problem(self, line: int, message: str) -> None:
        self.problems.append(RowProblem(line, message))

    def fields(self, line: int, row: list[str]) -> dict[str, str] | None:
        if len(row) != len(self.columns):
            self.problem(
                line,
                f"expected {len(self.columns)} fields ({','.join(self.columns)}), found {len(row)}",
            )
            return None
        return {name: value.strip() for name, value in zip(self.columns, row, strict=True)}

    def text(
        self,
        line: int,
        values: dict[str, str],
        column: str,
        *,
        required: bool = True,
        limit: int = 200,
    ) -> str | None:
        value = values.get(column, "")
        if not value:
            if required:
                self.problem(line, f"{column} is empty")
                return None
            return ""
        bad = [ch for ch in value if unicodedata.category(ch) in ("Cc", "Zl", "Zp")]
        if bad:
            self.problem(
                line,
                f"{column} contains a control character ({', '.join(repr(c) for c in bad[:3])}): "
                "line breaks and tabs are not allowed in names",
            )
            return None
        if len(value) > limit:
            self.problem(line, f"{column} is longer than {limit} characters")
            return None
        return value


class _Municipalities(_Parser):
    required = MUNICIPALITY_COLUMNS
    optional = MUNICIPALITY_OPTIONAL

    def __init__(self, columns: list[str]) -> None:
        super().__init__(columns)
        self.result: list[Municipality] = []
        self.codes: dict[str, int] = {}
        self.names: dict[str, int] = {}

    def row(self, line: int, values: dict[str, str]) -> None:
        code = values["code"]
        code_ok = bool(CODE.match(code))
        if not code:
            self.problem(line, "code is empty")
        elif not code_ok:
            self.problem(line, f"code must be 3 digits (e.g. 101), got {code!r}")
        elif code in self.codes:
            self.problem(
                line, f"municipality {code} appears twice (also on line {self.codes[code]})"
            )
            code_ok = False
        name = self.text(line, values, "name", limit=MAX_LENGTH["name"])
        if name is not None and name.casefold() in self.names:
            self.problem(
                line,
                f"the name {name!r} appears twice (also on line {self.names[name.casefold()]})",
            )
            name = None
        region = self.text(line, values, "region", limit=MAX_LENGTH["region"])
        group = self.text(
            line, values, "dk2020_group", required=False, limit=MAX_LENGTH["dk2020_group"]
        )
        if code_ok:
            self.codes[code] = line
        if name is not None:
            self.names[name.casefold()] = line
        if code_ok and name is not None and region is not None and group is not None:
            self.result.append(Municipality(code=code, name=name, region=region, group=group))


class _Contacts(_Parser):
    required = CONTACT_COLUMNS
    optional = CONTACT_OPTIONAL

    def __init__(self, columns: list[str], known: Sequence[Municipality]) -> None:
        super().__init__(columns)
        self.result: list[Contact] = []
        self.by_code = {m.code: m for m in known}
        self.by_name = {m.name.casefold(): m for m in known}
        self.seen: dict[tuple[str, str, str], int] = {}

    def row(self, line: int, values: dict[str, str]) -> None:
        ref = values["municipality"]
        municipality = self.by_code.get(ref) or self.by_name.get(ref.casefold())
        if not ref:
            self.problem(line, "municipality is empty")
        elif municipality is None:
            self.problem(
                line,
                f"unknown municipality {ref!r} (give its 3-digit code or its name; "
                "import it in a municipalities file first if it is new)",
            )
        role = values["role"]
        if not role:
            self.problem(line, "role is empty")
        elif not ROLE.match(role) or len(role) > MAX_LENGTH["role"]:
            self.problem(
                line,
                f"role {role!r} is not a role name (lower-case letters, digits and _, "
                "as in the workflow file, e.g. contact_person)",
            )
        name = self.text(line, values, "name", limit=MAX_LENGTH["contact"])
        email = self._email(line, values["email"])
        language = values.get("language", "da").lower() or None
        if language is None:
            self.problem(line, f"language is empty (a language code: {LANGUAGE_EXAMPLES})")
        elif not is_language(language):
            self.problem(
                line,
                "language must be a language code (ISO 639-1, two letters, such as "
                f"{LANGUAGE_EXAMPLES}), got {values['language']!r}",
            )
            language = None
        if municipality is None or not ROLE.match(role) or name is None or email is None:
            return
        if language is None:
            return
        key = (municipality.code, role, email.casefold())
        if key in self.seen:
            self.problem(
                line, f"{email} is already a {role} of {municipality.name} (line {self.seen[key]})"
            )
            return
        self.seen[key] = line
        self.result.append(
            Contact(
                municipality_code=municipality.code,
                role=role,
                name=name,
                email=email,
                language=language,
            )
        )

    def _email(self, line: int, value: str) -> str | None:
        if not value:
            self.problem(line, "email is empty")
            return None
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as error:
            self.problem(line, f"email {value!r} is not a valid address: {error}")
            return None
