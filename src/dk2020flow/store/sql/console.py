"""``ConsoleTx``: the cases table's pages, saved views and bulk runs."""

from __future__ import annotations

from dk2020flow.store.sql.base import SqlBase


class SqlConsoleTx(SqlBase):
    """``port.ConsoleTx`` over the transaction's connection."""
