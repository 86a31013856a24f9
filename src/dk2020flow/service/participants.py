"""Participants: the CSV import format and its row checks (above the store).

Two kinds of file are accepted, told apart by their header line
(docs/data-model.md has the full format):

- organisations: ``code,name`` and any of ``kind,country,subdivision,region,group,
  language`` and ``title_<language>`` (the formal name in that language:
  ``title_da`` "Aarhus Kommune"); ``dk2020_group`` is read as ``group`` (files of
  dk2020flow 0.x);
- contacts: ``organisation,role,name,email[,language]`` where ``organisation``
  is a code or a name (``municipality`` is read as ``organisation``) and
  ``language`` a language code Babel knows (``da``, ``en``, ``de`` …; without
  it, the organisation's language).

Every row is checked and every bad row reported by line number in one
``ParticipantsError``; a file with any bad row imports nothing.
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
from dk2020flow.store.port import Contact, Organisation, ParticipantsTx

if TYPE_CHECKING:
    from _csv import Reader

    from dk2020flow.definition.model import Workflow
    from dk2020flow.notify.context import OrganisationView

LANGUAGE_EXAMPLES = "da, en, de or fr"
ORGANISATION_COLUMNS = ("code", "name")
ORGANISATION_OPTIONAL = ("kind", "country", "subdivision", "region", "group", "language")
TITLE_COLUMN = re.compile(r"^title_([a-z]{2})$")
LEGACY_COLUMNS = {"dk2020_group": "group", "municipality": "organisation"}
"""Column names of dk2020flow 0.x files, read as their new names."""
CONTACT_COLUMNS = ("organisation", "role", "name", "email")
CONTACT_OPTIONAL = ("language",)
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
KIND = re.compile(r"^[a-z][a-z0-9_]*$")
ROLE = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_LENGTH = {
    "name": 200,
    "title": 200,
    "region": 64,
    "group": 64,
    "kind": 64,
    "subdivision": 8,
    "role": 64,
    "contact": 200,
}


@dataclass(frozen=True, kw_only=True, slots=True)
class ParticipantsImported:
    """What ``import_participants`` stored: how many of each."""

    organisations: int
    contacts: int


def import_participants(tx: ParticipantsTx, path: str | Path) -> ParticipantsImported:
    """Check the whole file, then replace the participants it names (all or nothing).

    A known organisation gets the attributes the file has columns for; the others keep
    their values (a file of codes and regions leaves the titles as they were)."""
    parsed = parse_participants_file(path, known=tx.organisations())
    tx.replace_participants(parsed.organisations, parsed.contacts, attributes=parsed.attributes)
    return ParticipantsImported(
        organisations=len(parsed.organisations), contacts=len(parsed.contacts)
    )


def add_new_organisations(tx: ParticipantsTx, path: str | Path) -> int:
    """A workflow's data set (``organisations:``): check the whole file, then add the
    organisations the database does not know yet, by code or by name (those it knows are
    kept as they are, edits included); return how many were added."""
    organisations, contacts = parse_participants_csv(path, known=tx.organisations())
    if contacts:
        raise ParticipantsError(
            str(path), "a workflow's organisations: file lists organisations, not contacts"
        )
    # One known by its code or by its name (another programme's data set may give
    # the same city another code) is the same organisation: kept as it is.
    present = tx.organisations()
    codes = {o.code for o in present}
    names = {o.name.casefold() for o in present}
    new = [o for o in organisations if o.code not in codes and o.name.casefold() not in names]
    if new:
        tx.replace_participants(new, [])
    return len(new)


def _format_help() -> str:
    return (
        "expected an organisations header (code,name[,kind,country,subdivision,region,group,"
        "language,title_<language>]) or a contacts header (organisation,role,name,email"
        "[,language])"
    )


# ------------------------------------------------------------------------ parsing


@dataclass(frozen=True, kw_only=True, slots=True)
class ParsedParticipants:
    """A checked participants file: its organisations or its contacts, and which
    organisation attributes it gives (its columns: ``titles`` for any ``title_*``)."""

    organisations: list[Organisation]
    contacts: list[Contact]
    attributes: frozenset[str]


def parse_participants_csv(
    path: str | Path, *, known: Sequence[Organisation]
) -> tuple[list[Organisation], list[Contact]]:
    """Read and check a participants file; return its organisations and contacts.

    ``known`` are the organisations a contact row may name (by code or name).
    Raises ``ParticipantsError`` listing every bad row when anything is wrong.
    """
    parsed = parse_participants_file(path, known=known)
    return parsed.organisations, parsed.contacts


def parse_participants_file(
    path: str | Path, *, known: Sequence[Organisation]
) -> ParsedParticipants:
    """``parse_participants_csv``, with the attributes the file gives."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ParticipantsError(str(path), f"cannot read the file ({error.strerror})") from error
    return parse_participants_text(data, source=str(path), known=known)


def parse_participants_text(
    data: bytes, *, source: str, known: Sequence[Organisation]
) -> ParsedParticipants:
    """``parse_participants_file`` on the bytes of a file named ``source``."""
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
    columns = [LEGACY_COLUMNS.get(c, c) for c in (name.strip().lower() for name in header)]
    body = rows[1:]
    if not body:
        raise ParticipantsError(source, "the file has a header but no rows")
    parser: _Organisations | _Contacts
    if "code" in columns:
        parser = _Organisations(columns)
    elif "organisation" in columns:
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
    if isinstance(parser, _Organisations):
        given = {"titles" if TITLE_COLUMN.match(c) else c for c in columns}
        return ParsedParticipants(
            organisations=parser.result, contacts=[], attributes=frozenset(given - {"code"})
        )
    return ParsedParticipants(organisations=[], contacts=parser.result, attributes=frozenset())


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
        extra = [c for c in self.columns if not self.allows(c)]
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

    def allows(self, column: str) -> bool:
        return column in (*self.required, *self.optional)

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


class _Organisations(_Parser):
    required = ORGANISATION_COLUMNS
    optional = (*ORGANISATION_OPTIONAL, "title_<language>")

    def __init__(self, columns: list[str]) -> None:
        super().__init__(columns)
        self.result: list[Organisation] = []
        self.codes: dict[str, int] = {}
        self.names: dict[str, int] = {}

    def allows(self, column: str) -> bool:
        return super().allows(column) or bool(TITLE_COLUMN.match(column))

    def row(self, line: int, values: dict[str, str]) -> None:
        code = values["code"]
        code_ok = bool(CODE.match(code))
        if not code:
            self.problem(line, "code is empty")
        elif not code_ok:
            self.problem(
                line,
                "code must be 1 to 32 letters, digits, '.', '_' or '-' (e.g. 751 or "
                f"BE-LEU), got {code!r}",
            )
        elif code in self.codes:
            self.problem(
                line, f"organisation {code} appears twice (also on line {self.codes[code]})"
            )
            code_ok = False
        name = self.text(line, values, "name", limit=MAX_LENGTH["name"])
        if name is not None and name.casefold() in self.names:
            self.problem(
                line,
                f"the name {name!r} appears twice (also on line {self.names[name.casefold()]})",
            )
            name = None
        optional = {
            column: self.text(line, values, column, required=False, limit=MAX_LENGTH[column])
            for column in ("region", "group", "kind", "subdivision")
        }
        kind = optional["kind"]
        if kind and not KIND.match(kind):
            self.problem(
                line, f"kind {kind!r} is not a kind name (lower-case letters, digits and _)"
            )
            optional["kind"] = None
        country, subdivision = self._country(
            line, values.get("country", ""), optional["subdivision"]
        )
        language = values.get("language", "").lower()
        if language and not is_language(language):
            self.problem(
                line,
                "language must be a language code (ISO 639-1, two letters, such as "
                f"{LANGUAGE_EXAMPLES}), got {values['language']!r}",
            )
            language = ""
        titles = {}
        for column in self.columns:
            found = TITLE_COLUMN.match(column)
            title = (
                self.text(line, values, column, required=False, limit=MAX_LENGTH["title"])
                if found
                else None
            )
            if found and title is None:
                code_ok = False
            elif found and title:
                titles[found.group(1)] = title
        if code_ok:
            self.codes[code] = line
        if name is not None:
            self.names[name.casefold()] = line
        texts = [optional[c] for c in ("region", "group", "kind", "subdivision")]
        if code_ok and name is not None and country is not None and None not in texts:
            self.result.append(
                Organisation(
                    code=code,
                    name=name,
                    region=optional["region"] or "",
                    group=optional["group"] or "",
                    kind=optional["kind"] or "",
                    country=country,
                    subdivision=subdivision,
                    language=language,
                    titles=titles,
                )
            )

    def _country(self, line: int, value: str, subdivision: str | None) -> tuple[str | None, str]:
        """The country code ('' when not given) and subdivision, checked against the
        calendars ``holidays`` knows; a None country after a problem."""
        from dk2020flow.definition.calendar import supported_countries

        country = value.upper()
        if not country:
            if subdivision:
                self.problem(line, "subdivision is given without a country")
                return None, ""
            return "", ""
        known = supported_countries()
        if not COUNTRY.match(country) or country not in known:
            self.problem(
                line,
                f"country {value!r} is not an ISO 3166-1 code whose public holidays are "
                "known (e.g. DK, BE, DE, FR)",
            )
            return None, ""
        if not subdivision:
            return country, ""
        spelled = {s.upper(): s for s in known[country]}.get(subdivision.upper())
        if spelled is None:
            offered = ", ".join(known[country]) or "none"
            self.problem(line, f"subdivision {subdivision!r} is not one of {country}'s ({offered})")
            return None, ""
        return country, spelled


class _Contacts(_Parser):
    required = CONTACT_COLUMNS
    optional = CONTACT_OPTIONAL

    def __init__(self, columns: list[str], known: Sequence[Organisation]) -> None:
        super().__init__(columns)
        self.result: list[Contact] = []
        self.by_code = {m.code: m for m in known}
        self.by_name = {m.name.casefold(): m for m in known}
        self.seen: dict[tuple[str, str, str], int] = {}

    def row(self, line: int, values: dict[str, str]) -> None:
        ref = values["organisation"]
        organisation = self.by_code.get(ref) or self.by_name.get(ref.casefold())
        if not ref:
            self.problem(line, "organisation is empty")
        elif organisation is None:
            self.problem(
                line,
                f"unknown organisation {ref!r} (give its code or its name; a new one comes "
                "first, in an organisations file or a workflow's data set: `workflow load`)",
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
        given = "language" in values
        fallback = organisation.language if organisation is not None else ""
        language = (values["language"] if given else fallback).lower() or None
        if language is None and given:
            self.problem(line, f"language is empty (a language code: {LANGUAGE_EXAMPLES})")
        elif language is None and organisation is not None:
            self.problem(
                line,
                f"{organisation.name} has no language: give the contact's in a language "
                f"column ({LANGUAGE_EXAMPLES})",
            )
        elif language is not None and not is_language(language):
            self.problem(
                line,
                "language must be a language code (ISO 639-1, two letters, such as "
                f"{LANGUAGE_EXAMPLES}), got {values.get('language', language)!r}",
            )
            language = None
        if organisation is None or not ROLE.match(role) or name is None or email is None:
            return
        if language is None:
            return
        key = (organisation.code, role, email.casefold())
        if key in self.seen:
            self.problem(
                line, f"{email} is already a {role} of {organisation.name} (line {self.seen[key]})"
            )
            return
        self.seen[key] = line
        self.result.append(
            Contact(
                organisation_code=organisation.code,
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


def sample_of_data_set(workflow: Workflow, organisations_file: Path | None) -> OrganisationView:
    """The organisation a sample context shows: the first of the workflow's data set
    (``organisations:``, at ``LoadedWorkflow.organisations_file``) when it has one that can
    be read, else ``notify.context.sample_organisation``'s neutral example."""
    from dk2020flow.notify.context import OrganisationView, sample_organisation

    if organisations_file is not None:
        try:
            first = next(iter(parse_participants_file(organisations_file, known=()).organisations))
        except (ParticipantsError, StopIteration):
            pass  # the workflow's check reports a bad data set; a sample needs none
        else:
            return OrganisationView(
                code=first.code,
                name=first.name,
                region=first.region,
                kind=first.kind,
                country=first.country,
                group=first.group,
                titles=dict(first.titles),
            )
    return sample_organisation(workflow)
