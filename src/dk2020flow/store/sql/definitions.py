"""``DefinitionsTx``: workflow definitions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from sqlalchemy import insert, select

from dk2020flow.engine.records import TimerStatus
from dk2020flow.errors import NotFoundError
from dk2020flow.store import tables as t
from dk2020flow.store.port import StoredDefinition
from dk2020flow.store.rows import to_definition
from dk2020flow.store.sql.base import SqlBase

PENDING = TimerStatus.PENDING.value


class SqlDefinitionsTx(SqlBase):
    """``port.DefinitionsTx`` over the transaction's connection."""

    def save_definition(
        self,
        *,
        name: str,
        version_label: str,
        content_hash: str,
        source_text: str,
        templates: Mapping[str, str],
        source_path: str,
        now: dt.datetime,
        implied_defaults: Mapping[str, str | None] | None = None,
    ) -> tuple[StoredDefinition, bool]:
        """Store a definition unless the same content is stored; return it and whether it is new.

        ``implied_defaults`` are the defaults the text was parsed with for the keys it
        leaves unsaid (``definition.loader.current_defaults()``); a text stored before
        keeps the ones it was stored with, and so its meaning."""
        d = t.definitions.c
        row = self._conn.execute(
            select(t.definitions).where(d.name == name, d.content_hash == content_hash)
        ).first()
        if row is not None:
            return to_definition(row), False
        new_id = self._conn.execute(
            insert(t.definitions)
            .values(
                name=name,
                version_label=version_label,
                content_hash=content_hash,
                source_text=source_text,
                templates=dict(templates),
                source_path=source_path,
                loaded_at=now,
                implied_defaults=dict(implied_defaults or {}),
            )
            .returning(d.id)
        ).scalar_one()
        return self.definition(new_id), True

    def definition(self, definition_id: int) -> StoredDefinition:
        row = self._conn.execute(
            select(t.definitions).where(t.definitions.c.id == definition_id)
        ).first()
        if row is None:
            raise NotFoundError(f"there is no workflow definition with id {definition_id}")
        return to_definition(row)

    def latest_definition(self, name: str) -> StoredDefinition | None:
        d = t.definitions.c
        row = self._conn.execute(
            select(t.definitions).where(d.name == name).order_by(d.id.desc()).limit(1)
        ).first()
        return None if row is None else to_definition(row)

    def definitions(self) -> list[StoredDefinition]:
        d = t.definitions.c
        rows = self._conn.execute(select(t.definitions).order_by(d.name, d.id))
        return [to_definition(row) for row in rows]
