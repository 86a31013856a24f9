"""``AccountsTx``: users, sign-in links, web sessions and sign-in rate limits."""

from __future__ import annotations

from dk2020flow.store.sql.base import SqlBase


class SqlAccountsTx(SqlBase):
    """``port.AccountsTx`` over the transaction's connection."""
