"""The errors the store raises, under the project's root ``Dk2020flowError``.

Driver errors (``sqlalchemy.exc.OperationalError`` and friends) never reach
the user: ``db.translate_error`` turns them into one of these, with a message
that says what happened and what to do, and chains the original.
"""

from __future__ import annotations

from dataclasses import dataclass

from dk2020flow.errors import Dk2020flowError, StorageError, StorageUnavailableError


class StoreError(StorageError):
    """A database operation failed."""


class DatabaseUnavailableError(StoreError, StorageUnavailableError):
    """The database cannot be reached or opened (server down, wrong URL, missing directory)."""


class DatabaseBusyError(StoreError, StorageUnavailableError):
    """Another process held the database lock for longer than the busy timeout."""


class DatabaseReadOnlyError(StoreError):
    """The database (or the file system under it) refuses writes."""


class DiskFullError(StoreError):
    """The disk or the database's quota is full."""


class NaiveDatetimeError(StoreError, ValueError):
    """A naive datetime was handed to the store: every stored time must be timezone-aware."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One bad row of an imported file."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class ParticipantsError(Dk2020flowError):
    """A participants file was refused; nothing of it was imported.

    ``problems`` lists every bad row by line number (line 1 is the header).
    """

    def __init__(self, path: str, problems: list[RowProblem] | str) -> None:
        self.path = path
        self.problems: list[RowProblem] = (
            [RowProblem(0, problems)] if isinstance(problems, str) else list(problems)
        )
        super().__init__(self._message())

    def _message(self) -> str:
        if len(self.problems) == 1 and self.problems[0].line == 0:
            return f"{self.path}: {self.problems[0].message}; nothing was imported"
        count = len(self.problems)
        head = (
            f"{self.path}: {count} bad row{'s' if count != 1 else ''}, nothing was imported "
            "(fix them and import the file again):"
        )
        return "\n".join([head, *(f"  {p}" for p in self.problems)])
