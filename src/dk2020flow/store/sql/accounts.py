"""``AccountsTx``: users, sign-in links, web sessions and sign-in rate limits.

Tokens and codes arrive hashed (``service/accounts.py`` hashes them): nothing here
could sign anyone in if the database were read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from dk2020flow.errors import ConflictError, NotFoundError
from dk2020flow.store import tables as t
from dk2020flow.store.port import Contact, SessionInfo, SessionUser, SignInToken, UserInfo
from dk2020flow.store.sql.base import SqlBase

_u = t.users.c
_k = t.sign_in_tokens.c
_s = t.web_sessions.c
_a = t.sign_in_attempts.c
_c = t.contacts.c

ATTEMPTS_KEPT = dt.timedelta(days=1)
"""Sign-in attempts older than this are deleted when their key is counted again."""


def _user(row: Row[Any]) -> UserInfo:
    return UserInfo(
        id=row.id,
        email=row.email,
        name=row.name,
        roles=tuple(row.roles or ()),
        language=row.language,
        active=bool(row.active),
        created_at=row.created_at,
        disabled_at=row.disabled_at,
        kind=row.kind,
    )


def _token(row: Row[Any]) -> SignInToken:
    return SignInToken(
        id=row.id,
        user_id=row.user_id,
        code_hash=row.code_hash,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        code_attempts=row.code_attempts,
    )


def _session(row: Row[Any]) -> SessionInfo:
    return SessionInfo(
        id=row.id,
        user_id=row.user_id,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        expires_at=row.expires_at,
        user_agent=row.user_agent,
        client=row.client,
        method=row.method,
    )


SESSION_USER = (
    select(
        _s.id.label("session_id"),
        _s.last_seen_at,
        _u.id.label("user_id"),
        _u.email,
        _u.name,
        _u.roles,
        _u.language,
        _u.kind,
    )
    .select_from(t.web_sessions.join(t.users, _u.id == _s.user_id))
    .where(_u.active.is_(True), _s.revoked_at.is_(None))
)

SESSION_BY_TOKEN = SESSION_USER.where(
    _s.token_hash == bindparam("token_hash", type_=_s.token_hash.type),
    _s.expires_at > bindparam("now", type_=_s.expires_at.type),
)
"""A live session's user by the cookie's hash: built once (every request asks it)."""


class SqlAccountsTx(SqlBase):
    """``port.AccountsTx`` over the transaction's connection."""

    # ------------------------------------------------------------------ users

    def find_user(self, email: str) -> UserInfo | None:
        row = self._conn.execute(select(t.users).where(_u.email == email)).first()
        return None if row is None else _user(row)

    def user(self, user_id: int) -> UserInfo | None:
        row = self._conn.execute(select(t.users).where(_u.id == user_id)).first()
        return None if row is None else _user(row)

    def users(self, kind: str = "staff") -> list[UserInfo]:
        rows = self._conn.execute(select(t.users).where(_u.kind == kind).order_by(_u.email))
        return [_user(row) for row in rows]

    def insert_user(
        self,
        *,
        email: str,
        name: str,
        kind: str,
        roles: Sequence[str],
        language: str,
        now: dt.datetime,
    ) -> UserInfo:
        make = (
            insert(t.users)
            .values(
                email=email,
                name=name,
                kind=kind,
                roles=list(roles),
                organisation_code=None,
                language=language,
                active=True,
                created_at=now,
                disabled_at=None,
                oidc_subject=None,
            )
            .returning(*t.users.columns)
        )
        try:
            # A savepoint: another transaction may make the same address's account between
            # the caller's look-up and here (PostgreSQL); the unique address refuses the
            # second, a conflict the caller can answer without losing its transaction.
            with self._conn.begin_nested():
                row = self._conn.execute(make).one()
        except IntegrityError:
            raise ConflictError(f"an account for {email} was made at the same time") from None
        return _user(row)

    def enable_user(
        self, user_id: int, *, name: str, roles: Sequence[str], language: str
    ) -> UserInfo:
        return self._set_user(
            user_id, name=name, roles=list(roles), language=language, active=True, disabled_at=None
        )

    def disable_user(self, user_id: int, at: dt.datetime) -> UserInfo:
        user = self._set_user(user_id, active=False, disabled_at=at)
        self._conn.execute(
            update(t.web_sessions)
            .where(_s.user_id == user_id, _s.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        self._conn.execute(
            update(t.sign_in_tokens)
            .where(_k.user_id == user_id, _k.used_at.is_(None))
            .values(used_at=at)
        )
        return user

    def oidc_subject(self, user_id: int) -> str | None:
        found = self._conn.execute(select(_u.oidc_subject).where(_u.id == user_id)).scalar()
        return None if found is None else str(found)

    def bind_oidc_subject(self, user_id: int, subject: str) -> bool:
        owner = self._conn.execute(select(_u.id).where(_u.oidc_subject == subject)).scalar()
        if owner is not None:
            return int(owner) == user_id
        try:
            # A savepoint: another transaction may bind the subject between the SELECT and
            # here (PostgreSQL); the unique index refuses the second, a conflict.
            with self._conn.begin_nested():
                bind = update(t.users).where(_u.id == user_id).values(oidc_subject=subject)
                self._conn.execute(bind)
        except IntegrityError:
            raise ConflictError(
                "the OpenID Connect subject was bound to another account at the same time"
            ) from None
        return True

    def _set_user(self, user_id: int, **values: Any) -> UserInfo:
        row = self._conn.execute(
            update(t.users).where(_u.id == user_id).values(**values).returning(*t.users.columns)
        ).first()
        if row is None:
            raise NotFoundError(f"there is no user {user_id}")
        return _user(row)

    # ------------------------------------------------------------------ sign-in links

    def insert_sign_in_token(
        self,
        *,
        user_id: int,
        token_hash: str,
        code_hash: str,
        now: dt.datetime,
        expires_at: dt.datetime,
    ) -> int:
        return int(
            self._conn.execute(
                insert(t.sign_in_tokens)
                .values(
                    user_id=user_id,
                    token_hash=token_hash,
                    code_hash=code_hash,
                    created_at=now,
                    expires_at=expires_at,
                    used_at=None,
                    code_attempts=0,
                )
                .returning(_k.id)
            ).scalar_one()
        )

    def sign_in_token(self, token_hash: str) -> SignInToken | None:
        row = self._conn.execute(
            select(t.sign_in_tokens).where(_k.token_hash == token_hash)
        ).first()
        return None if row is None else _token(row)

    def open_sign_in_tokens(self, user_id: int, now: dt.datetime) -> list[SignInToken]:
        rows = self._conn.execute(
            select(t.sign_in_tokens)
            .where(_k.user_id == user_id, _k.used_at.is_(None), _k.expires_at > now)
            .order_by(_k.id.desc())
        )
        return [_token(row) for row in rows]

    def use_sign_in_token(self, token_id: int, at: dt.datetime) -> bool:
        result = self._conn.execute(
            update(t.sign_in_tokens)
            .where(_k.id == token_id, _k.used_at.is_(None))
            .values(used_at=at)
        )
        return bool(result.rowcount == 1)

    def count_code_attempt(self, token_id: int) -> int:
        return int(
            self._conn.execute(
                update(t.sign_in_tokens)
                .where(_k.id == token_id)
                .values(code_attempts=_k.code_attempts + 1)
                .returning(_k.code_attempts)
            ).scalar_one()
        )

    # ------------------------------------------------------------------ sessions

    def insert_session(
        self,
        *,
        user_id: int,
        token_hash: str,
        now: dt.datetime,
        expires_at: dt.datetime,
        user_agent: str,
        client: str,
        method: str,
    ) -> int:
        return int(
            self._conn.execute(
                insert(t.web_sessions)
                .values(
                    user_id=user_id,
                    token_hash=token_hash,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=expires_at,
                    revoked_at=None,
                    user_agent=user_agent,
                    client=client,
                    method=method,
                )
                .returning(_s.id)
            ).scalar_one()
        )

    def session_user(
        self, token_hash: str, now: dt.datetime
    ) -> tuple[SessionUser, dt.datetime] | None:
        row = self._conn.execute(SESSION_BY_TOKEN, {"token_hash": token_hash, "now": now}).first()
        if row is None:
            return None
        user = SessionUser(
            user_id=row.user_id,
            session_id=row.session_id,
            email=row.email,
            name=row.name,
            roles=tuple(row.roles or ()),
            language=row.language,
            kind=row.kind,
        )
        return user, row.last_seen_at

    def touch_session(self, session_id: int, at: dt.datetime) -> None:
        self._conn.execute(
            update(t.web_sessions).where(_s.id == session_id).values(last_seen_at=at)
        )

    def sessions_of(self, user_id: int, now: dt.datetime) -> list[SessionInfo]:
        rows = self._conn.execute(
            select(t.web_sessions)
            .where(_s.user_id == user_id, _s.revoked_at.is_(None), _s.expires_at > now)
            .order_by(_s.id.desc())
        )
        return [_session(row) for row in rows]

    def revoke_session(self, user_id: int, session_id: int, at: dt.datetime) -> bool:
        result = self._conn.execute(
            update(t.web_sessions)
            .where(_s.id == session_id, _s.user_id == user_id, _s.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return bool(result.rowcount == 1)

    def revoke_session_token(self, token_hash: str, at: dt.datetime) -> None:
        self._conn.execute(
            update(t.web_sessions)
            .where(_s.token_hash == token_hash, _s.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    # ------------------------------------------------------------------ rate limits

    def count_sign_in_attempts(self, key: str, since: dt.datetime) -> int:
        return int(
            self._conn.execute(
                select(func.count()).where(_a.key == key, _a.at > since)
            ).scalar_one()
        )

    def record_sign_in_attempt(self, keys: Sequence[str], at: dt.datetime) -> None:
        if not keys:
            return
        self._conn.execute(
            delete(t.sign_in_attempts).where(_a.key.in_(list(keys)), _a.at < at - ATTEMPTS_KEPT)
        )
        self._conn.execute(insert(t.sign_in_attempts), [{"key": key, "at": at} for key in keys])

    # ------------------------------------------------------------------ participants (portal)

    def contacts_with_email(self, email: str) -> list[Contact]:
        rows = self._conn.execute(
            select(t.contacts)
            .where(func.lower(_c.email) == email.lower())
            .order_by(_c.organisation_code, _c.role, _c.id)
        )
        return [
            Contact(
                organisation_code=row.organisation_code,
                role=row.role,
                name=row.name,
                email=row.email,
                language=row.language,
            )
            for row in rows
        ]
