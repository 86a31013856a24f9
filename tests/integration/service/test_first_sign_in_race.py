"""Two first sign-ins of one contact at the same moment (two tabs, a double click), on
PostgreSQL: both find no account and make one; the unique address makes the second wait for
the first and then refuses its insert. The second must go on with the account the first
made (and send its sign-in mail), not end in a server error."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from dk2020flow.clock import ManualClock
from dk2020flow.service.accounts import contact_account
from dk2020flow.service.core import open_service
from dk2020flow.settings import load_settings
from pgwait import until_waiting_on_a_lock

NOW = dt.datetime(2022, 5, 2, 9, 0, tzinfo=dt.UTC)
ANNA = "anna@aarhus.example.dk"


def test_the_second_of_two_first_sign_ins_uses_the_account_the_first_made(
    pg_url: str, tmp_path: Path
) -> None:
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        f"organisation,role,name,email,language\nAarhus,contact_person,Anna Jensen,{ANNA},da\n",
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

        with service.store.transaction() as tx:
            assert contact_account(tx, ANNA, None, NOW) is not None  # not committed yet
            thread = threading.Thread(target=second)
            thread.start()
            until_waiting_on_a_lock(pg_url, thread)  # the second waits on the unique index
        thread.join(timeout=60)
        [answer] = outcome
        assert isinstance(answer, int), answer  # the sign-in mail's outbox id
        with service.store.read() as tx:
            account = tx.find_user(ANNA)
            assert account is not None and account.kind == "participant"
