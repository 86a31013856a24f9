"""Waiting, in a test, until another thread's PostgreSQL statement waits on a lock (a real
signal from the server, not a sleep): the moment a race test lets the first transaction
commit."""

from __future__ import annotations

import threading
import time

import psycopg


def until_waiting_on_a_lock(pg_url: str, thread: threading.Thread) -> None:
    """Return once a session of ``pg_url``'s database waits on a lock, or ``thread`` ended
    (pytest-timeout bounds the wait)."""
    database = pg_url.rsplit("/", 1)[1]
    admin = pg_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0]
    # Autocommit: in a transaction pg_stat_activity would be read once, then kept.
    with psycopg.connect(admin + "/postgres", autocommit=True) as watch:
        while thread.is_alive():
            waiting = watch.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = %s AND wait_event_type = 'Lock'",
                (database,),
            ).fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.01)
