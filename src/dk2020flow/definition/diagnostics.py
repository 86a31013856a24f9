"""Located problems in a workflow file, and their stable codes.

Every problem the loader or the validator finds is a ``Diagnostic`` with a
file, a 1-based line and column, a code from ``CODES`` and a hint. The codes
are stable: docs/diagnostics.md documents each one, and scripts may match on
them. Never renumber a code; retire it and add a new one instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from dk2020flow.errors import Dk2020flowError


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


CODES: dict[str, str] = {
    # reading the file
    "DF001": "the file cannot be read",
    "DF002": "the file is too large",
    "DF003": "the file is not UTF-8 text",
    "DF004": "the file is empty",
    "DF005": "YAML syntax error",
    "DF006": "duplicate key",
    "DF007": "aliases expand too far or nesting is too deep",
    "DF008": "the document is not a mapping",
    "DF009": "a YAML value or key the format does not use",
    # the schema
    "DF010": "unknown key",
    "DF011": "missing key",
    "DF012": "wrong type or value",
    "DF013": "a rule of the format is broken",
    # references and the state graph
    "DF020": "not exactly one initial state",
    "DF021": "unknown state",
    "DF022": "unknown role",
    "DF023": "mail to a role that does not receive mail",
    "DF024": "unknown field",
    "DF025": "unknown cohort",
    "DF026": "unknown checklist",
    "DF027": "unknown trigger",
    "DF028": "the timer's trigger is not valid from its state",
    "DF029": "unreachable state",
    "DF030": "a state with no way out",
    "DF031": "a transition leaves a terminal state",
    "DF032": "ambiguous transitions",
    "DF033": "nobody can fire the transition",
    "DF034": "a role both records and answers a checklist",
    # values and types
    "DF040": "a value of the wrong type for its field",
    "DF041": "all_true names a field that is not boolean",
    "DF042": "a date anchor names a field that is not a date",
    "DF043": "an automatic transition waits for a field nothing sets",
    # time
    "DF050": "unknown timezone",
    "DF051": "a span that must be positive is not",
    "DF052": "a date outside the plausible range",
    "DF053": "an event outside its cohort's dates",
    "DF054": "a cohort date timer on a state a case may reach without a cohort",
    "DF055": "unknown calendar country",
    "DF056": "unknown calendar subdivision",
    "DF057": "Danish optional days on another country's calendar",
    # documents
    "DF070": "unknown document",
    "DF071": "unknown document type",
    "DF072": "a size limit that cannot be read or is out of range",
    "DF073": "nobody may upload the document",
    "DF074": "a role that fires the transition may not upload a document it needs",
    # templates
    "DF060": "template missing",
    "DF061": "template does not render",
    "DF062": "template file unreadable",
    "DF063": "a language Babel has no locale for",
    "DF064": "the organisations file is missing",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnostic:
    """One problem, located in a file (line and column count from 1)."""

    file: str
    line: int
    column: int
    code: str
    message: str
    hint: str = ""
    severity: Severity = Severity.ERROR

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown diagnostic code {self.code}")

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        level = "warning: " if self.severity is Severity.WARNING else ""
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{self.file}:{self.line}:{self.column}: {self.code} {level}{self.message}{hint}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = str(self.severity)
        data["title"] = CODES[self.code]
        return data


def sort_key(diagnostic: Diagnostic) -> tuple[str, int, int, str]:
    return (diagnostic.file, diagnostic.line, diagnostic.column, diagnostic.code)


class DefinitionError(Dk2020flowError):
    """A workflow file (or one of its templates) has errors; ``diagnostics`` lists all problems.

    Exit status 2 (invalid input), for every command that reads a workflow file.
    """

    exit_code = 2

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(sorted(diagnostics, key=sort_key))
        errors = [d for d in self.diagnostics if d.is_error]
        first = str(errors[0]) if errors else "no errors"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(first + more)

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)
