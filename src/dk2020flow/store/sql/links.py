"""``LinksTx``: the keys that sign the case links in milestone mail (``service/links.py``).

One table, ``link_keys``; the newest row is the key in force. Every daemon and web
worker reads it from the database, so they agree without a shared file. The first
key is made on first need with a fixed id (1) and ``ON CONFLICT DO NOTHING``: two
processes that both find none make one key between them.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from dk2020flow.store import tables as t
from dk2020flow.store.sql.base import SqlBase

_l = t.link_keys.c

_CURRENT = select(_l.id, _l.secret).order_by(_l.id.desc()).limit(1)


class SqlLinksTx(SqlBase):
    """``port.LinksTx`` over the transaction's connection."""

    def link_key(self) -> tuple[int, str] | None:
        """(id, hex secret) of the key in force, or None while there is none."""
        row = self._conn.execute(_CURRENT).first()
        return None if row is None else (int(row.id), str(row.secret))

    def ensure_link_key(self, secret: str, now: dt.datetime) -> tuple[int, str]:
        """The key in force; ``secret`` becomes the first key when there is none yet."""
        found = self.link_key()
        if found is not None:
            return found
        values = {"id": 1, "secret": secret, "created_at": now}
        if self._conn.dialect.name == "postgresql":
            self._conn.execute(
                postgresql.insert(t.link_keys).values(values).on_conflict_do_nothing()
            )
        else:
            self._conn.execute(sqlite.insert(t.link_keys).values(values).on_conflict_do_nothing())
        found = self.link_key()
        assert found is not None
        return found

    def add_link_key(self, secret: str, now: dt.datetime) -> int:
        """A new key in force (rotation): links signed by the older ones stop working."""
        newest = self._conn.execute(select(func.max(_l.id))).scalar()
        key_id = int(newest or 0) + 1
        self._conn.execute(insert(t.link_keys).values(id=key_id, secret=secret, created_at=now))
        return key_id
