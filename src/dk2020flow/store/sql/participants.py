"""``ParticipantsTx``: organisations and their contacts."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.engine import Connection

from dk2020flow.engine.records import TimerStatus
from dk2020flow.store import tables as t
from dk2020flow.store.port import Contact, Organisation
from dk2020flow.store.rows import to_contact, to_organisation
from dk2020flow.store.sql.base import SqlBase

PENDING = TimerStatus.PENDING.value

ORGANISATION_BY_CODE = select(t.organisations).where(t.organisations.c.code == bindparam("code"))

ORGANISATIONS_OF = select(t.organisations).where(
    t.organisations.c.code.in_(bindparam("codes", expanding=True))
)

CONTACTS_OF_ONE = (
    select(t.contacts)
    .where(t.contacts.c.organisation_code == bindparam("code"))
    .order_by(t.contacts.c.role, t.contacts.c.id)
)
"""One organisation's contacts, by role."""

CONTACTS_OF = (
    select(t.contacts)
    .where(t.contacts.c.organisation_code.in_(bindparam("codes", expanding=True)))
    .order_by(t.contacts.c.organisation_code, t.contacts.c.role, t.contacts.c.id)
)
"""The contacts of a list of organisations, in the order of ``SqlTx.contacts``."""


def organisations(conn: Connection) -> list[Organisation]:
    rows = conn.execute(select(t.organisations).order_by(t.organisations.c.code))
    return [to_organisation(row) for row in rows]


ORGANISATION_BY_CODE_OR_NAME = select(t.organisations).where(
    or_(
        t.organisations.c.code == bindparam("code"),
        t.organisations.c.name.in_(bindparam("names", expanding=True)),
    )
)
"""By the primary key or the unique index on ``name``: the exact spellings asked for."""

ORGANISATION_NAMES = select(t.organisations.c.code, t.organisations.c.name)

_WORD_BREAK = re.compile(r"([\s\-'’/.]+)")
_MAX_SPELLINGS = 64


def name_spellings(name: str) -> list[str]:
    """The ways ``name`` is likely stored, to look up by the index on ``name``: as typed,
    lower, upper and title case, and each word (between spaces, hyphens, apostrophes)
    in lower case, upper case or capitalised ("frankfurt am main" → "Frankfurt am Main",
    "høje-taastrup" → "Høje-Taastrup", "ÆRØ" → "Ærø"). At most 64: a long name gets
    the whole-name spellings only."""
    spellings = dict.fromkeys((name, name.lower(), name.upper(), name.title(), name.capitalize()))
    parts = _WORD_BREAK.split(name)
    words = parts[0::2]
    choices = 1
    for word in words:
        choices *= len({word, word.lower(), word.upper(), word.capitalize()})
    if choices <= _MAX_SPELLINGS:
        found = [""]
        for index, part in enumerate(parts):
            if index % 2:  # a separator, kept as typed
                found = [so_far + part for so_far in found]
                continue
            forms = dict.fromkeys((part, part.lower(), part.capitalize(), part.upper()))
            found = [so_far + form for so_far in found for form in forms]
        spellings.update(dict.fromkeys(found))
    return list(spellings)


def find_organisation(conn: Connection, code_or_name: str) -> Organisation | None:
    """By code (``751``, ``"0751"`` is not a code) or name, case-insensitively
    (``"ærø"`` finds Ærø: the case is folded in Python, SQLite's ``lower()`` knows no Æ).

    One query on the primary key and the unique index on ``name``, for the likely
    spellings of the name (:func:`name_spellings`); only a name in none of them (a miss,
    or one like "McAllen" typed "mcallen") reads the codes and names to fold them all.
    """
    ref = code_or_name.strip()
    if not ref:
        return None
    wanted = ref.casefold()
    rows = list(
        conn.execute(ORGANISATION_BY_CODE_OR_NAME, {"code": ref, "names": name_spellings(ref)})
    )
    by_code = next((row for row in rows if row.code == ref), None)
    if by_code is not None:
        return to_organisation(by_code)
    by_name = next((row for row in rows if row.name.casefold() == wanted), None)
    if by_name is not None:
        return to_organisation(by_name)
    code = next(
        (row.code for row in conn.execute(ORGANISATION_NAMES) if row.name.casefold() == wanted),
        None,
    )
    if code is None:
        return None
    row = conn.execute(ORGANISATION_BY_CODE, {"code": code}).first()
    return to_organisation(row) if row is not None else None


class SqlParticipantsTx(SqlBase):
    """``port.ParticipantsTx`` over the transaction's connection."""

    def organisations(self) -> list[Organisation]:
        return organisations(self._conn)

    def find_organisation(self, code_or_name: str) -> Organisation | None:
        """By code (``751``, ``"0751"`` is not a code) or name, case-insensitively."""
        return find_organisation(self._conn, code_or_name)

    def organisations_for(self, codes: Sequence[str]) -> dict[str, Organisation]:
        """The organisations of these codes in one query, by code (unknown codes absent)."""
        if not codes:
            return {}
        rows = self._conn.execute(ORGANISATIONS_OF, {"codes": list(codes)})
        return {row.code: to_organisation(row) for row in rows}

    def contacts(self, organisation_code: str) -> list[Contact]:
        rows = self._conn.execute(CONTACTS_OF_ONE, {"code": organisation_code})
        return [to_contact(row) for row in rows]

    def contacts_for(self, organisation_codes: Sequence[str]) -> dict[str, list[Contact]]:
        """The contacts of these organisations in one query, by code (as ``contacts``)."""
        found: dict[str, list[Contact]] = {code: [] for code in organisation_codes}
        if found:
            for row in self._conn.execute(CONTACTS_OF, {"codes": list(found)}):
                found[row.organisation_code].append(to_contact(row))
        return found

    def all_contacts(self) -> list[Contact]:
        c = t.contacts.c
        rows = self._conn.execute(select(t.contacts).order_by(c.organisation_code, c.role, c.id))
        return [to_contact(row) for row in rows]

    def replace_participants(
        self,
        organisations: Sequence[Organisation],
        contacts: Sequence[Contact],
        *,
        attributes: Collection[str] | None = None,
    ) -> None:
        """Upsert ``organisations`` by code; replace the contacts of every organisation
        that ``contacts`` names. Organisations are never deleted (cases refer to them).

        ``attributes``: what an update of a known organisation writes (a file without a
        ``titles_*`` column keeps the titles it has); None: all."""
        m = t.organisations.c
        existing = {row.code for row in self._conn.execute(select(m.code))}
        for org in organisations:
            values = {
                "name": org.name,
                "kind": org.kind,
                "country": org.country,
                "subdivision": org.subdivision,
                "region": org.region,
                "group": org.group,
                "language": org.language,
                "titles": dict(org.titles),
            }
            if org.code in existing:
                changed = {k: v for k, v in values.items() if attributes is None or k in attributes}
                self._conn.execute(
                    update(t.organisations).where(m.code == org.code).values(**changed)
                )
            else:
                self._conn.execute(insert(t.organisations).values(code=org.code, **values))
        codes = sorted({contact.organisation_code for contact in contacts})
        if codes:
            self._conn.execute(delete(t.contacts).where(t.contacts.c.organisation_code.in_(codes)))
            self._conn.execute(
                insert(t.contacts),
                [
                    {
                        "organisation_code": c.organisation_code,
                        "role": c.role,
                        "name": c.name,
                        "email": c.email,
                        "language": c.language,
                    }
                    for c in contacts
                ],
            )
