"""Staff accounts and sign-in over a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import re
from dataclasses import replace
from pathlib import Path

import pytest

from dk2020flow.clock import ManualClock
from dk2020flow.errors import NotFoundError
from dk2020flow.notify.transports import FolderTransport
from dk2020flow.runtime.delivery import adeliver_message
from dk2020flow.service import Service
from dk2020flow.service.accounts import (
    MAX_CODE_ATTEMPTS,
    SIGN_IN_TEMPLATE,
    AccountInputError,
    Accounts,
    RateLimit,
    RateLimitedError,
    SignInError,
    digest,
)
from dk2020flow.settings import Settings
from dk2020flow.store import tables as t
from dk2020flow.store.port import (
    BODY_REMOVED_NOTE,
    ONE_TIME_SECRET_TEMPLATES,
    NewMail,
    OutboxMessage,
    OutboxStatus,
)
from dk2020flow.store.repository import SqlStore

START = dt.datetime(2021, 3, 1, 9, 0, tzinfo=dt.UTC)
BASE = "https://console.example.dk"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def accounts(store: SqlStore, clock: ManualClock) -> Accounts:
    return Accounts(Service(store, clock=clock))


def sign_in_mails(store: SqlStore) -> list[OutboxMessage]:
    with store.read() as tx:
        return [m for m in tx.outbox(limit=1000) if m.template == "sign_in"]


def link_token(mail: OutboxMessage) -> str:
    found = re.search(r"/sign-in/link\?token=([\w-]+)", mail.text)
    assert found, mail.text
    return found.group(1)


def mail_code(mail: OutboxMessage) -> str:
    found = re.search(r"\b([A-Z2-9]{4}-[A-Z2-9]{4})\b", mail.text)
    assert found, mail.text
    return found.group(1)


def test_add_list_and_disable(accounts: Accounts) -> None:
    added = accounts.add_user(
        "  Mette.Hansen@KL.example.dk ", "Mette  Hansen", ["secretariat", "admin"], actor="t"
    )
    assert added.email == "mette.hansen@kl.example.dk"
    assert added.name == "Mette Hansen"
    assert added.roles == ("secretariat", "admin")
    assert added.active and added.disabled_at is None
    assert added.language == "en"  # no workflow loaded: English
    assert [u.email for u in accounts.list_users()] == ["mette.hansen@kl.example.dk"]

    gone = accounts.disable_user("METTE.HANSEN@kl.example.dk", actor="t")
    assert not gone.active
    assert gone.disabled_at == START
    with pytest.raises(NotFoundError, match=r"no account for nobody@example\.dk"):
        accounts.disable_user("nobody@example.dk", actor="t")
    # Adding the address again enables it, with the new roles.
    again = accounts.add_user("mette.hansen@kl.example.dk", "Mette", ["read_only"], actor="t")
    assert again.id == added.id and again.active and again.roles == ("read_only",)


@pytest.mark.parametrize(
    ("email", "name", "roles", "language", "field", "words"),
    [
        ("not-an-address", "A", ["admin"], "da", "email", "'not-an-address' is not valid"),
        ("a@example.dk", "A", ["Mayor"], "da", "roles", "role 'Mayor' is not a role name"),
        ("a@example.dk", "A", [], "da", "roles", "at least one role"),
        ("a@example.dk", "  ", ["admin"], "da", "name", "name is empty"),
        ("a@example.dk", "A", ["admin"], "DE", "language", "language 'DE' is not a language code"),
        ("a@example.dk", "A", ["admin"], "xx", "language", "language 'xx' is not a language code"),
    ],
)
def test_bad_input_names_the_field_and_changes_nothing(
    accounts: Accounts,
    email: str,
    name: str,
    roles: list[str],
    language: str,
    field: str,
    words: str,
) -> None:
    with pytest.raises(AccountInputError, match=words) as raised:
        accounts.add_user(email, name, roles, actor="t", language=language)
    assert raised.value.field == field
    assert raised.value.exit_code == 2
    assert accounts.list_users() == []


def test_an_address_has_one_account(accounts: Accounts) -> None:
    accounts.add_user("a@example.dk", "A", ["admin"], actor="t")
    with pytest.raises(AccountInputError, match=r"already an account for a@example\.dk"):
        accounts.add_user("A@example.dk", "B", ["admin"], actor="t")


def test_the_link_signs_in_once_and_only_hashes_are_stored(
    accounts: Accounts, store: SqlStore
) -> None:
    accounts.add_user("anna@example.dk", "Anna", ["follow_up"], actor="t", language="en")
    message_id = accounts.request_sign_in("Anna@example.dk", client="10.0.0.1", base_url=BASE)
    [mail] = sign_in_mails(store)
    assert mail.id == message_id
    assert mail.to == (("Anna", "anna@example.dk"),)
    assert mail.language == "en" and mail.subject == "Sign in to dk2020flow"
    assert mail.status is OutboxStatus.PENDING
    assert mail.text.count(f"{BASE}/sign-in/link?token=") == 1
    token, code = link_token(mail), mail_code(mail)
    assert code in mail.text and "15 minutes" in mail.text

    with store.read() as tx:
        stored = tx._conn.execute(t.sign_in_tokens.select()).one()
    assert stored.token_hash == digest(token) and token not in stored.token_hash
    assert stored.code_hash == digest(code.replace("-", ""))

    assert accounts.link_problem(token) is None  # looking consumes nothing
    cookie, user = accounts.sign_in_with_link(token, client="10.0.0.1", user_agent="Firefox")
    assert user.email == "anna@example.dk" and user.roles == ("follow_up",)
    assert accounts.session_user(cookie, START) == user
    with store.read() as tx:
        session = tx._conn.execute(t.web_sessions.select()).one()
    assert session.token_hash == digest(cookie) and session.method == "link"

    with pytest.raises(SignInError) as reused:
        accounts.sign_in_with_link(token, client="10.0.0.1", user_agent="Firefox")
    assert reused.value.problem == "used"
    # The code of a used link is void too.
    with pytest.raises(SignInError):
        accounts.sign_in_with_code("anna@example.dk", code, client="x", user_agent="")


def test_an_expired_or_forged_link_signs_no_one_in(
    accounts: Accounts, store: SqlStore, clock: ManualClock
) -> None:
    accounts.add_user("anna@example.dk", "Anna", ["follow_up"], actor="t")
    accounts.request_sign_in("anna@example.dk", client="c", base_url=BASE)
    token = link_token(sign_in_mails(store)[0])
    with pytest.raises(SignInError) as forged:
        accounts.sign_in_with_link(token[:-2] + "xx", client="c", user_agent="")
    assert forged.value.problem == "unknown"
    clock.advance(dt.timedelta(minutes=15))
    assert accounts.link_problem(token) == "expired"
    with pytest.raises(SignInError) as expired:
        accounts.sign_in_with_link(token, client="c", user_agent="")
    assert expired.value.problem == "expired"


def test_the_code_signs_in_on_another_device(accounts: Accounts, store: SqlStore) -> None:
    accounts.add_user("anna@example.dk", "Anna", ["approver"], actor="t")
    accounts.request_sign_in("anna@example.dk", client="c", base_url=BASE)
    mail = sign_in_mails(store)[0]
    typed = mail_code(mail).lower().replace("-", " ")
    cookie, user = accounts.sign_in_with_code(
        "anna@example.dk", typed, client="phone", user_agent="Safari"
    )
    assert user.roles == ("approver",)
    assert [s.method for s in accounts.sessions(user.user_id)] == ["code"]
    with pytest.raises(SignInError):  # the link went with the code
        accounts.sign_in_with_link(link_token(mail), client="c", user_agent="")
    assert accounts.session_user(cookie, START) is not None


def test_wrong_codes_void_the_link(accounts: Accounts, store: SqlStore) -> None:
    accounts.add_user("anna@example.dk", "Anna", ["approver"], actor="t")
    roomy = Accounts(accounts.service, rate_limit=RateLimit(per_address=100, per_client=100))
    roomy.request_sign_in("anna@example.dk", client="c", base_url=BASE)
    mail = sign_in_mails(store)[0]
    for _ in range(MAX_CODE_ATTEMPTS):
        with pytest.raises(SignInError) as wrong:
            roomy.sign_in_with_code("anna@example.dk", "AAAA-AAAA", client="c", user_agent="")
        assert wrong.value.problem == "wrong_code"
    with pytest.raises(SignInError):
        roomy.sign_in_with_code("anna@example.dk", mail_code(mail), client="c", user_agent="")


def test_unknown_and_disabled_addresses_get_no_mail(accounts: Accounts, store: SqlStore) -> None:
    accounts.add_user("gone@example.dk", "Gone", ["admin"], actor="t")
    accounts.disable_user("gone@example.dk", actor="t")
    assert accounts.request_sign_in("nobody@example.dk", client="c", base_url=BASE) is None
    assert accounts.request_sign_in("gone@example.dk", client="c", base_url=BASE) is None
    assert accounts.request_sign_in("not an address", client="c", base_url=BASE) is None
    assert sign_in_mails(store) == []


def test_rate_limits_per_address_and_per_client(accounts: Accounts, clock: ManualClock) -> None:
    accounts.add_user("anna@example.dk", "Anna", ["admin"], actor="t")
    for _ in range(5):
        accounts.request_sign_in("anna@example.dk", client="c1", base_url=BASE)
    with pytest.raises(RateLimitedError):
        accounts.request_sign_in("anna@example.dk", client="c2", base_url=BASE)
    # Another address from the same client is still served ...
    accounts.request_sign_in("other@example.dk", client="c1", base_url=BASE)
    # ... until the client has asked 20 times.
    for n in range(14):
        accounts.request_sign_in(f"x{n}@example.dk", client="c1", base_url=BASE)
    with pytest.raises(RateLimitedError):
        accounts.request_sign_in("y@example.dk", client="c1", base_url=BASE)
    clock.advance(dt.timedelta(minutes=15, seconds=1))
    assert accounts.request_sign_in("anna@example.dk", client="c1", base_url=BASE) is not None


def test_sessions_expire_are_revocable_and_end_with_the_account(
    accounts: Accounts, store: SqlStore, clock: ManualClock
) -> None:
    accounts.add_user("anna@example.dk", "Anna", ["secretariat"], actor="t")
    first = accounts.open_session("anna@example.dk", method="test", client="c", user_agent="A")
    second = accounts.open_session("anna@example.dk", method="test", client="c", user_agent="B")
    user = accounts.session_user(first, START)
    assert user is not None
    assert [s.user_agent for s in accounts.sessions(user.user_id)] == ["B", "A"]

    # last_seen is written at most once a minute.
    accounts.session_user(first, START + dt.timedelta(seconds=30))
    assert accounts.sessions(user.user_id)[1].last_seen_at == START
    accounts.session_user(first, START + dt.timedelta(seconds=61))
    assert accounts.sessions(user.user_id)[1].last_seen_at == START + dt.timedelta(seconds=61)

    second_id = accounts.sessions(user.user_id)[0].id
    accounts.revoke_session(user.user_id, second_id)
    assert accounts.session_user(second, START) is None
    with pytest.raises(NotFoundError):
        accounts.revoke_session(user.user_id + 1, user.session_id)  # not theirs

    assert accounts.session_user(first, START + dt.timedelta(hours=12)) is None  # expired
    accounts.sign_out(first)
    assert accounts.session_user(first, START) is None

    third = accounts.open_session("anna@example.dk", method="test", client="c", user_agent="C")
    accounts.disable_user("anna@example.dk", actor="t")
    assert accounts.session_user(third, START) is None
    with pytest.raises(NotFoundError):
        accounts.open_session("anna@example.dk", method="test", client="c", user_agent="C")
    assert accounts.session_user("forged", START) is None


def test_one_sign_in_mail_is_delivered_by_id(
    accounts: Accounts, store: SqlStore, tmp_path: Path
) -> None:
    """What the web does after a request: that one message, now, not the daemon's batch."""
    accounts.add_user("anna@example.dk", "Anna", ["admin"], actor="t")
    with store.transaction() as tx:  # another message, due, that must not go out with it
        [other] = tx.queue_mail([replace(_mail_of(), template="other")])
    message_id = accounts.request_sign_in("anna@example.dk", client="c", base_url=BASE)
    assert message_id is not None
    folder = tmp_path / "outbox"

    def deliver(row_id: int) -> int:
        done = asyncio.run(
            adeliver_message(
                store,
                FolderTransport(folder),
                row_id,
                now=START,
                settings=Settings(),
                rng=random.Random(1),
                sender=("dk2020flow", "noreply@example.dk"),
            )
        )
        return done.sent

    assert deliver(message_id) == 1
    assert deliver(message_id) == 0  # sent already: nothing claimed
    with store.read() as tx:
        sent, waiting = tx.outbox_message(message_id), tx.outbox_message(other)
    assert sent is not None and sent.status is OutboxStatus.SENT
    assert waiting is not None and waiting.status is OutboxStatus.PENDING
    assert len(list(folder.glob("*.eml"))) == 1


def _mail_of() -> NewMail:
    """A due message to sit in the outbox beside the sign-in mail."""
    return NewMail(
        case_id=None,
        template="x",
        language="da",
        to=(("B", "b@example.dk"),),
        cc=(),
        subject="s",
        text="t",
        html="<p>t</p>",
        ics=None,
        not_before=START,
        created_at=START,
        urgent=True,
    )


def test_a_sent_sign_in_mail_keeps_no_link_in_the_outbox(
    accounts: Accounts, store: SqlStore
) -> None:
    """The link and code are in the database only while the mail waits to go out."""
    assert SIGN_IN_TEMPLATE in ONE_TIME_SECRET_TEMPLATES
    accounts.add_user("anna@example.dk", "Anna", ["admin"], actor="t")
    first = accounts.request_sign_in("anna@example.dk", client="c", base_url=BASE)
    second = accounts.request_sign_in("anna@example.dk", client="c", base_url=BASE)
    with store.transaction() as tx:
        [other] = tx.queue_mail([replace(_mail_of(), template="other")])
    assert first is not None and second is not None
    with store.read() as tx:
        waiting = tx.outbox_message(first)
    assert waiting is not None and "/sign-in/link?token=" in waiting.text  # not sent yet
    with store.transaction() as tx:
        tx.mark_sent(first, START)
        tx.mark_sent_many([(second, ""), (other, "")], START)
    with store.read() as tx:
        rows = [tx.outbox_message(i) for i in (first, second, other)]
    assert [r.text if r else None for r in rows] == [BODY_REMOVED_NOTE, BODY_REMOVED_NOTE, "t"]
    assert [r.html if r else None for r in rows] == [
        BODY_REMOVED_NOTE,
        BODY_REMOVED_NOTE,
        "<p>t</p>",
    ]


def test_an_account_without_a_language_gets_the_programmes(store: SqlStore) -> None:
    """The loaded workflow's first language (DK2020's Danish), English before any is
    loaded: nothing assumes Danish (#18)."""
    service = Service(store, clock=ManualClock(START))
    before = service.accounts.add_user("first@example.org", "First", ["admin"], actor="t")
    assert before.language == "en"
    service.load_workflow(Path(__file__).resolve().parents[3] / "workflows" / "dk2020.yaml")
    after = service.accounts.add_user("second@example.org", "Second", ["secretariat"], actor="t")
    assert after.language == "da"
