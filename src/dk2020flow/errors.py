"""The exception tree of dk2020flow.

Every error the project raises on purpose is a ``Dk2020flowError``; the CLI
turns one into a line on stderr and an exit code. Anything else reaching the
user as a traceback is a bug.
"""

from __future__ import annotations

from enum import StrEnum


class Dk2020flowError(Exception):
    """Root of every error dk2020flow raises on purpose."""

    exit_code = 1


class StorageError(Dk2020flowError):
    """The database failed the operation (the store's errors, store/errors.py): not the
    caller's fault. Layers above the service see them by this type alone."""


class StorageUnavailableError(StorageError):
    """The database cannot be reached or is busy for now: worth trying again later."""


class RefusalReason(StrEnum):
    """Which check refused a change."""

    UNKNOWN_TRIGGER = "unknown_trigger"
    INVALID_FROM_STATE = "invalid_from_state"
    INVALID_STATE = "invalid_state"
    ROLE = "role"
    GUARD = "guard"
    MISSING_DATA = "missing_data"
    INVALID_DATA = "invalid_data"


class RefusedError(Dk2020flowError):
    """A change was refused: not valid from the state, a guard failed, a role or data is wrong.

    ``fields``: for a refusal about data, the case-data fields it is about (by name, in
    the order the message names them), and ``"comment"`` for the comment; empty when it
    is about no field. The API's ``errors`` list is made from it, never from the message.
    """

    exit_code = 3

    def __init__(
        self, reason: RefusalReason, message: str, *, fields: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.fields = fields


class ConflictError(Dk2020flowError):
    """A concurrent change won: reload the case and try again."""

    exit_code = 4


class PreconditionFailedError(ConflictError):
    """The case is not at the version the caller read (``If-Match``): nothing was changed.

    Reload the case (its current version is ``current_version``) and decide again."""

    def __init__(self, message: str, *, case_id: int, expected: int, current: int) -> None:
        super().__init__(message)
        self.case_id = case_id
        self.expected_version = expected
        self.current_version = current


class IdempotencyKeyReusedError(Dk2020flowError):
    """An ``Idempotency-Key`` sent again with another request (another case, trigger or
    body) than the one it was first used for: refused, nothing was changed."""

    exit_code = 2

    def __init__(self, key: str) -> None:
        super().__init__(
            f"the Idempotency-Key {quoted(key)} was used already for another request "
            "(another case, trigger or body); send a new key with a new request "
            "(nothing was changed)"
        )
        self.key = key


class NotFoundError(Dk2020flowError):
    """A case, workflow or definition version that does not exist."""


class SchemaBehindError(Dk2020flowError):
    """The database schema is older than this release: run the migrations first."""

    exit_code = 5


class DeliveryError(Dk2020flowError):
    """A message could not be delivered (the transport said no)."""


ECHO_LIMIT = 60  # characters of a user's input quoted back in an error (docs/reliability.md)


def quoted(value: str, limit: int = ECHO_LIMIT) -> str:
    """``value`` as an error message quotes it: ``repr``, cut to ``limit`` characters with
    its length, so that a 5,000-character argument does not fill the screen."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value):,} characters)"
