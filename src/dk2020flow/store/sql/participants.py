"""``ParticipantsTx``: municipalities and their contacts."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection

from dk2020flow.engine.records import TimerStatus
from dk2020flow.store import tables as t
from dk2020flow.store.port import Contact, Municipality
from dk2020flow.store.rows import to_contact, to_municipality
from dk2020flow.store.sql.base import SqlBase

PENDING = TimerStatus.PENDING.value

MUNICIPALITY_BY_CODE = select(t.municipalities).where(t.municipalities.c.code == bindparam("code"))

CONTACTS_OF_ONE = (
    select(t.contacts)
    .where(t.contacts.c.municipality_code == bindparam("code"))
    .order_by(t.contacts.c.role, t.contacts.c.id)
)
"""One municipality's contacts, by role."""

CONTACTS_OF = (
    select(t.contacts)
    .where(t.contacts.c.municipality_code.in_(bindparam("codes", expanding=True)))
    .order_by(t.contacts.c.municipality_code, t.contacts.c.role, t.contacts.c.id)
)
"""The contacts of a list of municipalities, in the order of ``SqlTx.contacts``."""


def municipalities(conn: Connection) -> list[Municipality]:
    rows = conn.execute(select(t.municipalities).order_by(t.municipalities.c.code))
    return [to_municipality(row) for row in rows]


def find_municipality(conn: Connection, code_or_name: str) -> Municipality | None:
    """By code (``751``, ``"0751"`` is not a code) or name, case-insensitively."""
    ref = code_or_name.strip()
    row = conn.execute(MUNICIPALITY_BY_CODE, {"code": ref}).first()
    if row is not None:
        return to_municipality(row)
    # 98 rows: fold case in Python (SQLite's lower() knows no Æ, Ø, Å).
    wanted = ref.casefold()
    for municipality in municipalities(conn):
        if municipality.name.casefold() == wanted:
            return municipality
    return None


class SqlParticipantsTx(SqlBase):
    """``port.ParticipantsTx`` over the transaction's connection."""

    def municipalities(self) -> list[Municipality]:
        return municipalities(self._conn)

    def find_municipality(self, code_or_name: str) -> Municipality | None:
        """By code (``751``, ``"0751"`` is not a code) or name, case-insensitively."""
        return find_municipality(self._conn, code_or_name)

    def contacts(self, municipality_code: str) -> list[Contact]:
        rows = self._conn.execute(CONTACTS_OF_ONE, {"code": municipality_code})
        return [to_contact(row) for row in rows]

    def contacts_for(self, municipality_codes: Sequence[str]) -> dict[str, list[Contact]]:
        """The contacts of these municipalities in one query, by code (as ``contacts``)."""
        found: dict[str, list[Contact]] = {code: [] for code in municipality_codes}
        if found:
            for row in self._conn.execute(CONTACTS_OF, {"codes": list(found)}):
                found[row.municipality_code].append(to_contact(row))
        return found

    def all_contacts(self) -> list[Contact]:
        c = t.contacts.c
        rows = self._conn.execute(select(t.contacts).order_by(c.municipality_code, c.role, c.id))
        return [to_contact(row) for row in rows]

    def replace_participants(
        self, municipalities: Sequence[Municipality], contacts: Sequence[Contact]
    ) -> None:
        """Upsert ``municipalities`` by code; replace the contacts of every municipality
        that ``contacts`` names. Municipalities are never deleted (cases refer to them)."""
        m = t.municipalities.c
        existing = {row.code for row in self._conn.execute(select(m.code))}
        for mun in municipalities:
            values = {"name": mun.name, "region": mun.region, "dk2020_group": mun.group}
            if mun.code in existing:
                self._conn.execute(
                    update(t.municipalities).where(m.code == mun.code).values(**values)
                )
            else:
                self._conn.execute(insert(t.municipalities).values(code=mun.code, **values))
        codes = sorted({contact.municipality_code for contact in contacts})
        if codes:
            self._conn.execute(delete(t.contacts).where(t.contacts.c.municipality_code.in_(codes)))
            self._conn.execute(
                insert(t.contacts),
                [
                    {
                        "municipality_code": c.municipality_code,
                        "role": c.role,
                        "name": c.name,
                        "email": c.email,
                        "language": c.language,
                    }
                    for c in contacts
                ],
            )
