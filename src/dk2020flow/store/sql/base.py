"""The base of every ``Sql<Concern>Tx``: one SQLAlchemy connection inside one transaction."""

from __future__ import annotations

from sqlalchemy.engine import Connection


class SqlBase:
    """Holds the transaction's connection; the concerns' mixins run their statements on it.

    Each mixin can stand alone on a connection (``db.upgrade`` seeds the organisations
    through ``SqlParticipantsTx`` alone); ``repository.SqlTx`` composes all of them.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
