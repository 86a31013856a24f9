"""Two first sign-ins of one contact at the same moment (two tabs, a double click), on
PostgreSQL: both find no account and make one; the unique address makes the second wait for
the first and then refuses its insert. The second must go on with the account the first
made (and send its sign-in mail), not end in a server error."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import psycopg

from dk2020flow.clock import ManualClock
from dk2020flow.service.accounts import contact_account
from dk2020flow.service.core import open_service
from dk2020flow.settings import load_settings

NOW = dt.datetime(2022, 5, 2, 9, 0, tzinfo=dt.UTC)
ANNA = "anna@aarhus.example.dk"


def test_the_second_of_two_first_sign_ins_uses_the_account_the_first_made(
    pg_url: str, tmp_path: Path
) -> None:
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        f"municipality,role,name,email,language\nAarhus,contact_person,Anna Jensen,{ANNA},da\n",
        encoding="utf-8",
    )
    with open_service(pg_url, clock=ManualClock(NOW), settings=load_settings()) as service:
        service.import_participants(contacts)
        outcome: list[object] = []

        def second() -> None:
            try:
                outcome.append(
                    service.accounts.request_sign_in(
                        ANNA, client="tab-2", base_url="http://127.0.0.1:8020"
                    )
                )
            except Exception as exc:
                outcome.append(exc)

        database = pg_url.rsplit("/", 1)[1]
        admin = pg_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0]
        with service.store.transaction() as tx:
            assert contact_account(tx, ANNA, None, NOW) is not None  # not committed yet
            thread = threading.Thread(target=second)
            thread.start()
            # Autocommit: in a transaction pg_stat_activity would be read once, then kept.
            with psycopg.connect(admin + "/postgres", autocommit=True) as watch:
                while thread.is_alive():  # until the second waits on the unique index
                    waiting = watch.execute(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = %s AND wait_event_type = 'Lock'",
                        (database,),
                    ).fetchone()
                    if waiting and waiting[0]:
                        break
                    time.sleep(0.01)
        thread.join(timeout=60)
        [answer] = outcome
        assert isinstance(answer, int), answer  # the sign-in mail's outbox id
        with service.store.read() as tx:
            account = tx.find_user(ANNA)
            assert account is not None and account.kind == "participant"
