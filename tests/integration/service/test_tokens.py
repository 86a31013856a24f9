"""REST API tokens over a real store (SQLite and PostgreSQL): created with a secret shown
once and kept as a hash, listed, revoked, authenticated while neither revoked nor expired."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from dk2020flow.clock import ManualClock
from dk2020flow.errors import NotFoundError
from dk2020flow.service import Service
from dk2020flow.service.tokens import (
    IDEMPOTENCY_KEYS_KEPT,
    TOUCH_EVERY,
    TokenInputError,
    Tokens,
)
from dk2020flow.store import tables as t
from dk2020flow.store.repository import SqlStore

ROOT = Path(__file__).resolve().parents[3]
MINI = ROOT / "tests" / "data" / "mini" / "workflows" / "mini.yaml"
START = dt.datetime(2021, 3, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def tokens(store: SqlStore, clock: ManualClock) -> Tokens:
    service = Service(store, clock=clock)
    service.load_workflow(MINI)
    return service.tokens


def token_rows(store: SqlStore) -> list[dict[str, object]]:
    with store.read() as tx:
        return [dict(row._mapping) for row in tx.connection.execute(select(t.api_tokens))]


def key_count(store: SqlStore) -> int:
    with store.read() as tx:
        return int(
            tx.connection.execute(select(func.count()).select_from(t.idempotency_keys)).scalar_one()
        )


def add_key(store: SqlStore, token_id: int, key: str, at: dt.datetime) -> None:
    """An answered Idempotency-Key of ``token_id`` as ``Service._change`` leaves it."""
    with store.transaction() as tx:
        tx.connection.execute(
            insert(t.idempotency_keys).values(
                token_id=token_id,
                key=key,
                fingerprint="f" * 64,
                case_id=None,
                status_code=200,
                response={"ok": True},
                created_at=at,
            )
        )


def test_the_secret_is_shown_once_and_kept_as_a_hash(tokens: Tokens, store: SqlStore) -> None:
    created = tokens.create(
        "kl-dashboard", ["secretariat", "read_only"], created_by="mette", expires_at=None
    )
    assert re.fullmatch(r"dkf_[A-Za-z0-9_-]{43}", created.secret)
    token = created.token
    assert token.name == "kl-dashboard"
    assert token.roles == ("secretariat", "read_only")
    assert token.hint == created.secret[:8]
    assert token.created_by == "mette" and token.created_at == START
    assert token.expires_at is None and token.revoked_at is None and token.last_used_at is None

    (row,) = token_rows(store)
    assert row["secret_hash"] == hashlib.sha256(created.secret.encode()).hexdigest()
    assert created.secret not in repr(row)  # only the hash and the 8-character hint
    assert tokens.list() == [token]
    assert created.secret not in repr(tokens.list()) and "secret=" not in repr(tokens.list())

    again = tokens.create("other", ["secretariat"], created_by="mette")
    assert again.secret != created.secret


def test_a_token_may_hold_the_roles_of_a_loaded_workflow(tokens: Tokens) -> None:
    # mini's contact_person is no staff role, but a token may act in it.
    token = tokens.create("portal", ["contact_person"], created_by="t", every_case=True).token
    assert token.roles == ("contact_person",)


def test_a_participant_role_on_every_case_must_be_asked_for(tokens: Tokens) -> None:
    # Tokens cannot be bound to one organisation yet: a contact person's role on every
    # organisation's case is refused unless asked for, and nothing is created.
    with pytest.raises(TokenInputError, match="every-case"):
        tokens.create("portal", ["contact_person"], created_by="t")
    assert tokens.list() == []


@pytest.mark.parametrize(
    ("name", "roles", "expires_in", "field", "message"),
    [
        ("  ", ["admin"], None, "name", "the token's name is empty"),
        ("x" * 101, ["admin"], None, "name", "too long (101 > 100 characters)"),
        ("kl dashboard", ["admin"], None, "name", "may have letters, digits"),
        (
            "ok",
            ["mayor"],
            None,
            "role",
            "role 'mayor' is not one of: admin, read_only, contact_person, secretariat",
        ),
        ("ok", [], None, "role", "at least one role"),
        ("ok", ["admin"], dt.timedelta(0), "expires", "is not in the future"),
        ("ok", ["admin"], -dt.timedelta(days=1), "expires", "is not in the future"),
    ],
)
def test_bad_input_names_the_field_and_creates_nothing(
    tokens: Tokens,
    store: SqlStore,
    name: str,
    roles: list[str],
    expires_in: dt.timedelta | None,
    field: str,
    message: str,
) -> None:
    expires_at = START + expires_in if expires_in is not None else None
    with pytest.raises(TokenInputError, match=re.escape(message)) as raised:
        tokens.create(name, roles, created_by="t", expires_at=expires_at)
    assert raised.value.field == field
    assert token_rows(store) == []


def test_a_name_is_taken_for_good(tokens: Tokens, store: SqlStore) -> None:
    tokens.create("kl", ["secretariat"], created_by="t")
    tokens.revoke("kl")
    with pytest.raises(TokenInputError, match="already a token named 'kl'") as raised:
        tokens.create("kl", ["secretariat"], created_by="t")
    assert raised.value.field == "name"
    assert len(token_rows(store)) == 1


def test_authenticate_while_neither_revoked_nor_expired(tokens: Tokens, clock: ManualClock) -> None:
    created = tokens.create(
        "region", ["secretariat"], created_by="t", expires_at=START + dt.timedelta(days=2)
    )
    found = tokens.authenticate(created.secret, START)
    assert found is not None and found.name == "region"
    assert tokens.authenticate(created.secret[:-1] + "x", START) is None
    assert tokens.authenticate("dkf_" + "A" * 43, START) is None
    assert tokens.authenticate("", START) is None
    assert tokens.authenticate(created.secret.removeprefix("dkf_"), START) is None
    # Expired at its expiry instant, not a moment later.
    almost = START + dt.timedelta(days=2) - dt.timedelta(seconds=1)
    assert tokens.authenticate(created.secret, almost) is not None
    assert tokens.authenticate(created.secret, START + dt.timedelta(days=2)) is None

    other = tokens.create("ops", ["secretariat"], created_by="t")
    assert tokens.authenticate(other.secret, START) is not None
    clock.advance(dt.timedelta(minutes=5))
    revoked = tokens.revoke("ops")
    assert revoked.revoked_at == clock.now()
    assert tokens.authenticate(other.secret, clock.now()) is None
    assert tokens.authenticate(other.secret, START) is None  # revoked is revoked, whatever the time


def test_last_used_is_written_at_most_once_a_minute(tokens: Tokens, store: SqlStore) -> None:
    created = tokens.create("dash", ["read_only"], created_by="t")

    def stored_last_used() -> object:
        (row,) = token_rows(store)
        return row["last_used_at"]

    first = tokens.authenticate(created.secret, START)
    assert first is not None and first.last_used_at == START
    assert stored_last_used() == START
    soon = tokens.authenticate(created.secret, START + TOUCH_EVERY - dt.timedelta(seconds=1))
    assert soon is not None and soon.last_used_at == START
    assert stored_last_used() == START  # not written again within the minute
    later = START + TOUCH_EVERY
    assert tokens.authenticate(created.secret, later) is not None
    assert stored_last_used() == later


def test_revoke_unknown_and_twice(tokens: Tokens, clock: ManualClock) -> None:
    with pytest.raises(NotFoundError, match="no API token named 'nope'"):
        tokens.revoke("nope")
    tokens.create("kl", ["secretariat"], created_by="t")
    first = tokens.revoke("kl")
    clock.advance(dt.timedelta(hours=1))
    again = tokens.revoke("kl")
    assert again.revoked_at == first.revoked_at == START
    assert tokens.list() == [first]


def test_old_idempotency_keys_are_purged(tokens: Tokens, store: SqlStore) -> None:
    used = tokens.create("used", ["secretariat"], created_by="t")
    idle = tokens.create("idle", ["secretariat"], created_by="t").token
    gone = tokens.create("gone", ["secretariat"], created_by="t").token
    old = START - IDEMPOTENCY_KEYS_KEPT - dt.timedelta(minutes=1)
    fresh = START - dt.timedelta(days=1)
    for token in (used.token, idle, gone):
        add_key(store, token.id, "old", old)
        add_key(store, token.id, "fresh", fresh)
    assert key_count(store) == 6

    # A token's own old keys go when it is next used (its last_used_at is written) …
    assert tokens.authenticate(used.secret, START) is not None
    assert key_count(store) == 5
    # … a revoked token's keys at once (it can never send them again) …
    tokens.revoke("gone")
    assert key_count(store) == 3
    # … and everyone's old ones by the purge (`dk2020flow tokens purge-keys`).
    assert tokens.purge_idempotency_keys() == 1
    with store.read() as tx:
        left = tx.connection.execute(select(t.idempotency_keys.c.key)).scalars().all()
    assert sorted(left) == ["fresh", "fresh"]
    assert tokens.purge_idempotency_keys(kept=dt.timedelta(hours=1)) == 2


def test_a_role_with_a_shared_mailbox_acts_for_the_programme(store: SqlStore) -> None:
    """The EU Mission's Mission Platform (a shared mailbox, on every case alike) is no
    participant: a token may hold it without --every-case; a city's coordinator still
    needs it asked for (#18)."""
    service = Service(store, clock=ManualClock(START))
    service.load_workflow(ROOT / "workflows" / "eu_mission.yaml")
    made = service.tokens.create("platform", ["mission_platform"], created_by="t").token
    assert made.roles == ("mission_platform",)
    with pytest.raises(TokenInputError, match="every-case"):
        service.tokens.create("city", ["city_coordinator"], created_by="t")
