"""``ApiTx``: REST API tokens and the idempotency keys of their changes.

Secrets arrive hashed (``service/tokens.py`` hashes them). An idempotency key is
claimed (inserted) first thing in the transaction of its change and answered at its
end, so the unique ``(token_id, key)`` serialises two requests with one key: the
second waits for the first's transaction, then finds its answer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row

from dk2020flow.errors import NotFoundError
from dk2020flow.store import tables as t
from dk2020flow.store.port import ApiToken, StoredIdempotencyKey
from dk2020flow.store.sql.base import SqlBase

_t = t.api_tokens.c
_i = t.idempotency_keys.c


def _token(row: Row[Any]) -> ApiToken:
    return ApiToken(
        id=row.id,
        name=row.name,
        roles=tuple(row.roles or ()),
        hint=row.hint,
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def _key(row: Row[Any]) -> StoredIdempotencyKey:
    return StoredIdempotencyKey(
        id=row.id,
        token_id=row.token_id,
        key=row.key,
        fingerprint=row.fingerprint,
        case_id=row.case_id,
        status_code=row.status_code,
        response=dict(row.response or {}),
        created_at=row.created_at,
    )


# Every column but the secret's hash: nothing read here could authenticate anyone.
TOKEN_COLUMNS = [column for column in t.api_tokens.columns if column.name != "secret_hash"]


class SqlApiTx(SqlBase):
    """``port.ApiTx`` over the transaction's connection."""

    def _insert(self) -> Any:
        """The dialect's INSERT, which has ON CONFLICT DO NOTHING."""
        dialect = self._conn.dialect.name
        return postgresql.insert if dialect == "postgresql" else sqlite.insert

    # ------------------------------------------------------------------ tokens

    def insert_api_token(
        self,
        *,
        name: str,
        roles: Sequence[str],
        secret_hash: str,
        hint: str,
        created_by: str,
        now: dt.datetime,
        expires_at: dt.datetime | None,
    ) -> ApiToken | None:
        row = self._conn.execute(
            self._insert()(t.api_tokens)
            .values(
                name=name,
                roles=list(roles),
                secret_hash=secret_hash,
                hint=hint,
                created_by=created_by,
                created_at=now,
                expires_at=expires_at,
                revoked_at=None,
                last_used_at=None,
            )
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(*TOKEN_COLUMNS)
        ).first()
        return None if row is None else _token(row)

    def api_tokens(self) -> list[ApiToken]:
        rows = self._conn.execute(select(*TOKEN_COLUMNS).order_by(_t.name))
        return [_token(row) for row in rows]

    def find_api_token(self, name: str) -> ApiToken | None:
        row = self._conn.execute(select(*TOKEN_COLUMNS).where(_t.name == name)).first()
        return None if row is None else _token(row)

    def api_token_by_hash(self, secret_hash: str) -> ApiToken | None:
        row = self._conn.execute(
            select(*TOKEN_COLUMNS).where(_t.secret_hash == secret_hash)
        ).first()
        return None if row is None else _token(row)

    def revoke_api_token(self, token_id: int, at: dt.datetime) -> ApiToken:
        self._conn.execute(
            update(t.api_tokens)
            .where(_t.id == token_id, _t.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        row = self._conn.execute(select(*TOKEN_COLUMNS).where(_t.id == token_id)).first()
        if row is None:
            raise NotFoundError(f"there is no API token {token_id}")
        return _token(row)

    def touch_api_token(self, token_id: int, at: dt.datetime) -> None:
        self._conn.execute(update(t.api_tokens).where(_t.id == token_id).values(last_used_at=at))

    # ------------------------------------------------------------------ idempotency keys

    def claim_idempotency_key(
        self, *, token_id: int, key: str, fingerprint: str, now: dt.datetime
    ) -> int | None:
        key_id = self._conn.execute(
            self._insert()(t.idempotency_keys)
            .values(
                token_id=token_id,
                key=key,
                fingerprint=fingerprint,
                case_id=None,
                status_code=0,
                response={},
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["token_id", "key"])
            .returning(_i.id)
        ).scalar()
        return None if key_id is None else int(key_id)

    def idempotency_key(self, token_id: int, key: str) -> StoredIdempotencyKey | None:
        row = self._conn.execute(
            select(t.idempotency_keys).where(_i.token_id == token_id, _i.key == key)
        ).first()
        return None if row is None else _key(row)

    def finish_idempotency_key(
        self, key_id: int, *, case_id: int, status_code: int, response: Mapping[str, Any]
    ) -> None:
        self._conn.execute(
            update(t.idempotency_keys)
            .where(_i.id == key_id)
            .values(case_id=case_id, status_code=status_code, response=dict(response))
        )

    def release_idempotency_key(self, key_id: int) -> None:
        self._conn.execute(delete(t.idempotency_keys).where(_i.id == key_id))

    def purge_idempotency_keys(
        self, before: dt.datetime | None, *, token_id: int | None = None
    ) -> int:
        stmt = delete(t.idempotency_keys)
        if before is not None:
            stmt = stmt.where(_i.created_at < before)
        if token_id is not None:
            stmt = stmt.where(_i.token_id == token_id)
        return int(self._conn.execute(stmt).rowcount or 0)
