"""Behaviour profiles: what the participants of a simulated programme do, and when.

A profile is a YAML (or JSON) file. For every state of the workflow it lists
the actions participants take once a case has entered that state:

- ``choose``: the actions are tried in order; each rolls its dice
  (``probability``) and the first that succeeds is the one the case takes.
  "Decline with probability 0.3, else join" is ``decide_decline`` with 0.3
  followed by ``decide_participate`` with 1.0.
- ``each``: every action rolls its own dice and is planned independently
  (C40's approval and the council's adoption, in either order).

Each action names the trigger, the role that fires it, the delay (a
distribution in days after entering the state or after a cohort date, or an
absolute window of dates), and the data it carries; text values are
templates (``{organisation}``, ``{slug}``, ``{date}`` …). The file format is
documented in docs/simulation-and-reports.md.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dk2020flow.definition.model import Workflow, is_language
from dk2020flow.definition.source import read_yaml
from dk2020flow.errors import Dk2020flowError

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
Anchor = Literal["entered", "cohort.application_deadline", "cohort.start", "cohort.planned_end"]


class BehaviourError(Dk2020flowError):
    """A behaviour profile that cannot be used: the message names the file, line and problem."""

    exit_code = 2


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Delay(_Frozen):
    """Days after an anchor: ``entered`` (the case entered the state) or a cohort date."""

    from_: Anchor = Field(default="entered", alias="from")
    distribution: Literal["fixed", "uniform", "triangular", "lognormal", "exponential"] = "fixed"
    days: float | None = None
    min: float | None = None
    max: float | None = None
    mode: float | None = None
    median: float | None = Field(default=None, gt=0)
    sigma: float | None = Field(default=None, ge=0)
    mean: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _parameters(self) -> Delay:
        need: dict[str, tuple[str, ...]] = {
            "fixed": ("days",),
            "uniform": ("min", "max"),
            "triangular": ("min", "mode", "max"),
            "lognormal": ("median", "sigma"),
            "exponential": ("mean",),
        }
        missing = [p for p in need[self.distribution] if getattr(self, p) is None]
        if missing:
            raise ValueError(f"a {self.distribution} delay needs {', '.join(missing)}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.distribution == "triangular" and not (
            (self.min or 0) <= (self.mode or 0) <= (self.max or 0)
        ):
            raise ValueError("a triangular delay needs min <= mode <= max")
        return self


class Window(_Frozen):
    """An absolute window of local dates: "most councils decide in August"."""

    between: tuple[dt.date, dt.date]
    distribution: Literal["uniform", "triangular"] = "uniform"
    mode: dt.date | None = None

    @model_validator(mode="after")
    def _order(self) -> Window:
        first, last = self.between
        if first > last:
            raise ValueError(f"the window starts ({first}) after it ends ({last})")
        if self.distribution == "triangular":
            if self.mode is None:
                raise ValueError("a triangular window needs a mode (the most likely date)")
            if not first <= self.mode <= last:
                raise ValueError(f"the mode {self.mode} is outside the window")
        return self


class Count(_Frozen):
    """A whole number drawn per case: the number of revision rounds, for instance."""

    distribution: Literal["fixed", "uniform", "geometric"] = "fixed"
    n: int | None = Field(default=None, ge=0)
    p: float | None = Field(default=None, gt=0, le=1)
    min: int = Field(default=0, ge=0)
    max: int = Field(default=10, ge=0, le=100)

    @model_validator(mode="after")
    def _parameters(self) -> Count:
        if self.distribution == "fixed" and self.n is None:
            raise ValueError("a fixed count needs n")
        if self.distribution == "geometric" and self.p is None:
            raise ValueError("a geometric count needs p (the chance of stopping after each round)")
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Screening(_Frozen):
    """Record a checklist item by item before the trigger, with revision rounds.

    On the case's visits 1..R to the state (R drawn from ``revisions`` once per
    case) some items fall short and ``otherwise`` fires instead of the action's
    trigger; on visit R+1 every item is met (or not applicable) and the
    action's own trigger fires.
    """

    checklist: Name
    revisions: Count
    otherwise: Name
    short_items: tuple[int, int] = (1, 4)
    """How many items fall short in a revision round (uniform between the two)."""
    difficulty: dict[str, float] = Field(default_factory=dict)
    """Relative weight of an item falling short (default 1)."""
    not_met_share: float = Field(default=0.3, ge=0, le=1)
    """Of the short items, the share that is not met (the rest is partly met)."""
    not_applicable: dict[str, float] = Field(default_factory=dict)
    """Chance per item that it does not apply to the organisation (decided once per case)."""


DataValue = str | int | float | bool | None | dict[str, Any]

_ORGANISATIONS = AliasChoices("organisations", "municipalities")
"""``municipalities:`` is what profiles written before organisations call the key."""


class Action(_Frozen):
    trigger: Name
    role: Name
    actor: str = "{role_title}, {organisation}"
    probability: float = Field(default=1.0, ge=0, le=1)
    groups: tuple[str, ...] = ()
    """Only organisations in these groups (the data set's `group` column; empty: all)."""
    organisations: tuple[str, ...] = Field(default=(), validation_alias=_ORGANISATIONS)
    """Only these organisations, by name or code (empty: all)."""
    cohorts: tuple[str, ...] = ()
    """Only cases in these cohorts (empty: all)."""
    visits: Literal["any", "first", "later"] = "any"
    """Only on the first visit to the state, only on later ones, or any."""
    after: Delay | None = None
    at: Window | None = None
    office_hours: bool = True
    """Act on a business day between 09:00 and 16:00 local time."""
    data: dict[Name, DataValue] = Field(default_factory=dict)
    comment: str = ""
    screening: Screening | None = None

    @model_validator(mode="after")
    def _when(self) -> Action:
        if (self.after is None) == (self.at is None):
            raise ValueError("give exactly one of `after` (a delay) or `at` (a window of dates)")
        return self


class StateBehaviour(_Frozen):
    choose: tuple[Action, ...] = ()
    each: tuple[Action, ...] = ()


class ContactTemplate(_Frozen):
    name: str
    email: str
    language: str = "da"
    """The contact's language (a language code Babel knows). When the profile gives none,
    :meth:`language_for` is the workflow's first language (``da`` for DK2020)."""

    @field_validator("language")
    @classmethod
    def _a_language(cls, value: str) -> str:
        if not is_language(value):
            raise ValueError(
                f"{value!r} is not a language code: write two lower-case letters "
                "(ISO 639-1) Babel knows, such as da, en, de or fr"
            )
        return value

    def language_for(self, workflow: Workflow) -> str:
        """The language given, else the workflow's first (its default)."""
        return self.language if "language" in self.model_fields_set else workflow.default_language


class OpenRule(_Frozen):
    groups: tuple[str, ...] = ()
    organisations: tuple[str, ...] = Field(default=(), validation_alias=_ORGANISATIONS)
    skip: bool = False
    """Do not open a case for these participants."""
    state: Name | dict[Name, float] | None = None
    """The state to open in (default: the initial state), or weights of several."""
    cohort: Name | None = None
    reason: str = ""
    role: Name | None = None
    """The role that opens the case (default: none, the engine itself)."""
    actor: str = "simulation"
    data: dict[Name, DataValue] = Field(default_factory=dict)


class Behaviour(_Frozen):
    profile: str = Field(min_length=1, max_length=100)
    workflow: Name
    description: str = ""
    contacts: dict[Name, ContactTemplate] = Field(default_factory=dict)
    """Contacts created for every participant that has none in the role."""
    open: tuple[OpenRule, ...] = ()
    states: dict[Name, StateBehaviour] = Field(default_factory=dict)


# ----------------------------------------------------------------------------- loading


def parse_behaviour(text: str, source: str) -> Behaviour:
    """A profile from YAML or JSON text; ``BehaviourError`` naming file:line for any problem."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BehaviourError(
                f"{source}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}"
            ) from None
        locate: Any = None
    else:
        document = read_yaml(text, source)
        if document.diagnostics or document.data is None:
            first = document.diagnostics[0] if document.diagnostics else None
            where = f"{source}:{first.line}:{first.column}" if first else source
            what = first.message if first else "the file is not a mapping"
            raise BehaviourError(f"{where}: {what}")
        data = document.data
        locate = document.locator
    if not isinstance(data, Mapping):
        raise BehaviourError(
            f"{source}: a behaviour profile is a mapping (profile:, workflow:, states:)"
        )
    try:
        return Behaviour.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors()[:10]:
            path = tuple(error["loc"])
            where = source
            if locate is not None:
                line, column = locate.find(path)
                where = f"{source}:{line}:{column}"
            dotted = ".".join(str(p) for p in path) or "(top)"
            lines.append(f"{where}: {dotted}: {error['msg']}")
        more = len(exc.errors()) - 10
        if more > 0:
            lines.append(f"… and {more} more")
        raise BehaviourError("\n".join(lines)) from None


def load_behaviour(path: Path) -> Behaviour:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BehaviourError(f"{path}: cannot read the behaviour file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise BehaviourError(f"{path}: the behaviour file is not UTF-8 text") from None
    return parse_behaviour(text, str(path))


DEFAULT_WORKFLOW = "dk2020"
"""The shipped workflow whose profile a copy of it without its own falls back to."""


def default_profile_path() -> Path:
    """The profile shipped beside the DK2020 workflow (``workflows/behaviour/dk2020.yaml``)."""
    from dk2020flow.bundled import own_profile, workflow_path

    return own_profile(workflow_path(DEFAULT_WORKFLOW), DEFAULT_WORKFLOW)


def default_behaviour() -> Behaviour:
    """The DK2020 profile shipped with dk2020flow (``default_profile_path``)."""
    return load_behaviour(default_profile_path())


def check_against(behaviour: Behaviour, workflow: Workflow, *, source: str) -> None:
    """Refuse a profile that names states, triggers, roles, fields or cohorts the workflow lacks."""
    problems: list[str] = []
    if behaviour.workflow != workflow.workflow:
        problems.append(
            f"the profile is for workflow {behaviour.workflow!r}, not {workflow.workflow!r}"
        )

    def data_fields(where: str, data: Mapping[str, Any]) -> None:
        for name in data:
            if name not in workflow.fields:
                problems.append(f"{where}: data field {name!r} is not a field of the workflow")

    for role in behaviour.contacts:
        if role not in workflow.roles:
            problems.append(f"contacts.{role}: no such role")
    for number, rule in enumerate(behaviour.open, start=1):
        where = f"open[{number}]"
        states = [rule.state] if isinstance(rule.state, str) else list(rule.state or {})
        problems.extend(f"{where}: no state {s!r}" for s in states if s not in workflow.states)
        if rule.cohort and rule.cohort not in workflow.cohorts:
            problems.append(f"{where}: no cohort {rule.cohort!r}")
        if rule.role is not None and rule.role not in workflow.roles:
            problems.append(f"{where}: no role {rule.role!r}")
        data_fields(where, rule.data)
    for state_name, spec in behaviour.states.items():
        if state_name not in workflow.states:
            problems.append(f"states.{state_name}: the workflow has no such state")
            continue
        for kind, actions in (("choose", spec.choose), ("each", spec.each)):
            for number, action in enumerate(actions, start=1):
                where = f"states.{state_name}.{kind}[{number}] ({action.trigger})"
                triggers = [action.trigger]
                if action.screening is not None:
                    triggers.append(action.screening.otherwise)
                    if action.screening.checklist not in workflow.checklists:
                        problems.append(f"{where}: no checklist {action.screening.checklist!r}")
                for trigger in triggers:
                    found = [
                        t
                        for t in workflow.transitions_named(trigger)
                        if state_name in workflow.sources(t)
                    ]
                    if not found:
                        problems.append(
                            f"{where}: trigger {trigger!r} is not valid from {state_name!r}"
                        )
                    elif found[0].roles and action.role not in found[0].roles:
                        problems.append(
                            f"{where}: role {action.role!r} may not fire {trigger!r} "
                            f"(allowed: {', '.join(found[0].roles)})"
                        )
                if action.role not in workflow.roles:
                    problems.append(f"{where}: no role {action.role!r}")
                problems.extend(
                    f"{where}: no cohort {c!r}" for c in action.cohorts if c not in workflow.cohorts
                )
                data_fields(where, action.data)
    if problems:
        raise BehaviourError(f"{source} does not fit the workflow: " + "; ".join(problems))
