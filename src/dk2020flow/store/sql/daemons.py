"""``DaemonsTx``: the daemons' heartbeats."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from dk2020flow.engine.records import TimerStatus
from dk2020flow.store import tables as t
from dk2020flow.store.port import DaemonInfo
from dk2020flow.store.sql.base import SqlBase

PENDING = TimerStatus.PENDING.value


class SqlDaemonsTx(SqlBase):
    """``port.DaemonsTx`` over the transaction's connection."""

    def heartbeat(self, info: DaemonInfo) -> None:
        """Insert or update the daemon's row."""
        values = {
            "id": info.id,
            "host": info.host,
            "pid": info.pid,
            "started_at": info.started_at,
            "last_tick_at": info.last_tick_at,
            "last_seen_at": info.last_seen_at,
            "stopped_at": info.stopped_at,
            "stats": dict(info.stats),
        }
        insert_fn = postgresql.insert if self._conn.dialect.name == "postgresql" else sqlite.insert
        stmt = insert_fn(t.daemons).values(**values)
        self._conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["id"], set_={k: v for k, v in values.items() if k != "id"}
            )
        )

    def daemons(self) -> list[DaemonInfo]:
        """Every daemon that ever beat, most recently seen first."""
        d = t.daemons.c
        rows = self._conn.execute(select(t.daemons).order_by(d.last_seen_at.desc(), d.id))
        return [
            DaemonInfo(
                id=row.id,
                host=row.host,
                pid=row.pid,
                started_at=row.started_at,
                last_tick_at=row.last_tick_at,
                last_seen_at=row.last_seen_at,
                stopped_at=row.stopped_at,
                stats=dict(row.stats),
            )
            for row in rows
        ]
