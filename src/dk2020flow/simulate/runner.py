"""Run a programme on a simulated clock, through the real service, scheduler and mail code.

``run_simulation`` opens the cases through ``Service.open_case``, then moves a
``ManualClock`` from one instant to the next: the next instant is the earlier
of the next participant action (drawn from the behaviour profile) and the
next due work of the database (``Service.next_due_at``). At each instant it

1. fires every due timer with ``Service.fire_due`` (the daemon's code path),
2. takes the participant actions due then with ``Service.fire`` / ``check``,
3. delivers the outbox with ``runtime.delivery.adeliver_batch`` (the body of
   ``deliver_batch``, on one event loop kept for the run) into a folder of
   ``.eml`` files (``FolderTransport``) when ``out_dir`` asks for them, or else
   with ``RecordingTransport``, which records each mail as sent without
   rendering its MIME bytes (the outbox and its counts are the same),

and reads the new events of the log to learn which cases entered a state, so
their next action can be drawn. There is no model of the programme beside
the engine: what happens is what the engine decided.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
import io
import os
import random
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formataddr
from pathlib import Path
from typing import Any

from dk2020flow.bundled import own_profile
from dk2020flow.clock import ManualClock
from dk2020flow.definition.model import text_in
from dk2020flow.engine.decide import documents_needed
from dk2020flow.engine.machine import CompiledWorkflow
from dk2020flow.errors import Dk2020flowError, RefusedError
from dk2020flow.service import Service, filetypes
from dk2020flow.settings import Settings
from dk2020flow.simulate import draws
from dk2020flow.simulate.problems import find_problems
from dk2020flow.simulate.profile import (
    Action,
    Behaviour,
    BehaviourError,
    OpenRule,
    check_against,
    default_behaviour,
    load_behaviour,
)
from dk2020flow.simulate.result import (
    Problem,
    ProblemKind,
    SimulationResult,
    Summary,
    TimelineEntry,
)
from dk2020flow.store.port import Contact, EventLine, Organisation

Progress = Callable[[float, str], None]
"""Called as the clock moves: (fraction of the period done, what is happening)."""

MAX_DISPATCH_ROUNDS = 50
SIM_ACTOR = "simulation"


@dataclass(slots=True)
class _Case:
    id: int
    organisation: Organisation
    rng: random.Random
    state: str
    cohort: str | None
    entered_at: dt.datetime
    closed: bool = False
    visits: Counter[str] = field(default_factory=Counter)
    memory: dict[str, Any] = field(default_factory=dict)
    planned: int = 0
    """Actions still planned for the current visit."""

    @property
    def visit(self) -> tuple[str, int]:
        return self.state, self.visits[self.state]


@dataclass(frozen=True, slots=True)
class _Plan:
    case_id: int
    visit: tuple[str, int]
    action: Action


@dataclass(slots=True)
class _Run:
    service: Service
    clock: ManualClock
    wf: CompiledWorkflow
    behaviour: Behaviour
    profile_source: str
    seed: int
    cases: dict[int, _Case] = field(default_factory=dict)
    queue: list[tuple[dt.datetime, int, _Plan]] = field(default_factory=list)
    sequence: int = 0
    last_event: int = 0
    notes: list[TimelineEntry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    actions: int = 0
    refusals: int = 0
    instants: int = 0
    dispatch_errors: list[str] = field(default_factory=list)


def run_simulation(
    workflow_path: Path,
    *,
    start: dt.datetime | dt.date,
    end: dt.datetime | dt.date,
    participants_csv: Path | None = None,
    behaviour: Path | Behaviour | None = None,
    seed: int = 0,
    out_dir: Path | None = None,
    db_url: str | None = None,
    progress: Progress | None = None,
    public_url: str | None = None,
) -> SimulationResult:
    """Simulate the programme of ``workflow_path`` from ``start`` to ``end``.

    Without ``db_url`` the run uses a throwaway SQLite database, deleted
    afterwards; with it (``dk2020flow demo``) the database is kept. Mail is
    written to ``out_dir`` as ``.eml`` files (a throwaway folder when None).
    Raises ``BehaviourError`` (exit 2) for a profile that does not fit the
    workflow, and the definition's own errors for a bad workflow file.
    """
    wall = time.perf_counter()
    with _database(db_url) as (url, scratch):
        from dk2020flow.service import open_service, upgrade_database

        start_at, end_at = _instant(start, end=False), _instant(end, end=True)
        if end_at <= start_at:
            raise BehaviourError(f"the period ends ({end_at:%Y-%m-%d}) before it starts")
        upgrade_database(url)
        clock = ManualClock(start_at)
        settings = Settings(database_url=url)
        if public_url and settings.public_url is None:  # the mails' links (docs/portal.md)
            settings = settings.model_copy(update={"public_url": public_url})
        service = open_service(url, clock=clock, settings=settings)
        store = service.store
        try:
            stored, _ = service.load_workflow(Path(workflow_path))
            wf = service.compiled_latest(stored.name)
            start_at, end_at = (
                _instant(start, end=False, tz=wf.tz),
                _instant(end, end=True, tz=wf.tz),
            )
            clock.set(start_at)
            profile, source = _behaviour(behaviour, Path(workflow_path), stored.name)
            check_against(profile, wf.workflow, source=source)
            run = _Run(
                service=service,
                clock=clock,
                wf=wf,
                behaviour=profile,
                profile_source=source,
                seed=seed,
            )
            mail_dir = scratch / "outbox"
            mail_dir.mkdir(parents=True, exist_ok=True)
            participants = _participants(run, participants_csv)
            _add_contacts(run, participants)
            with store.read() as tx:
                run.last_event = tx.last_event_id()
            _open_cases(run, participants, start_at)
            # One event loop for the whole run's deliveries (asyncio.run per batch
            # would make and tear down one for each).
            with asyncio.Runner() as loop_runner:
                # Mail nobody asked to see is not rendered (the outbox counts are the same).
                deliver = _deliverer(
                    store, settings, mail_dir if out_dir is not None else None, seed, loop_runner
                )
                _loop(run, start_at, end_at, deliver, progress)
            if out_dir is not None:
                _move_mail(mail_dir, out_dir)
            result = _result(run, seed, start_at, end_at, db_url, out_dir, wall)
        finally:
            service.close()
    return result


# ----------------------------------------------------------------------------- setup


def _scratch_root() -> str | None:
    """Memory-backed storage when the system has it: a simulation commits thousands of
    times, and fsync on a disk would dominate its run time."""
    shm = Path("/dev/shm")  # noqa: S108 - a scratch folder made by mkdtemp inside it
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


@contextlib.contextmanager
def _database(db_url: str | None) -> Iterator[tuple[str, Path]]:
    """(URL to simulate in, scratch folder).

    A SQLite target is simulated in a scratch copy and written back at the end
    (one file copy instead of an fsync per change); other databases are used
    directly.
    """
    with tempfile.TemporaryDirectory(prefix="dk2020flow-sim-", dir=_scratch_root()) as scratch:
        path = Path(scratch)
        work = path / "simulation.db"
        target = sqlite_file(db_url) if db_url else None
        if db_url and target is None:
            yield db_url, path
            return
        if target is not None and target.exists():
            _copy_sqlite(target, work)
        yield f"sqlite:///{work}", path
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            _copy_sqlite(work, target)


def _copy_sqlite(source: Path, target: Path) -> None:
    """Copy a SQLite database with SQLite's online backup (the WAL included)."""
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def _move_mail(source: Path, target: Path) -> None:
    """The delivered .eml files into ``target`` (written to scratch first: no fsync per file).

    A rename where both are on one file system; otherwise the bytes are copied
    (``shutil.move`` would also copy times and permissions, file by file, for
    thousands of files), and the scratch folder is removed afterwards anyway.
    """
    target.mkdir(parents=True, exist_ok=True)
    same_device = source.stat().st_dev == target.stat().st_dev
    for file in source.glob("*.eml"):
        if same_device:
            os.replace(file, target / file.name)
        else:
            (target / file.name).write_bytes(file.read_bytes())


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL (None for other databases and in-memory SQLite)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _instant(value: dt.datetime | dt.date, *, end: bool, tz: Any = None) -> dt.datetime:
    """``value`` as an instant in ``tz`` (the workflow's zone); UTC before the workflow is
    loaded (the first check of the period, made again in the workflow's zone)."""
    from zoneinfo import ZoneInfo

    from dk2020flow.localtime import to_utc

    zone = tz or ZoneInfo("UTC")
    if isinstance(value, dt.datetime):
        return to_utc(value, zone) if value.tzinfo is None else value.astimezone(dt.UTC)
    moment = dt.time(23, 59, 59) if end else dt.time(0, 0)
    return to_utc(dt.datetime.combine(value, moment), zone)


def _behaviour(
    given: Path | Behaviour | None, workflow_path: Path, workflow: str
) -> tuple[Behaviour, str]:
    """The profile given, else the workflow's own (next to its file, as the shipped
    programmes have); a copy of the shipped ``DEFAULT_WORKFLOW`` without one uses its."""
    if isinstance(given, Behaviour):
        return given, f"profile {given.profile!r}"
    if given is not None:
        return load_behaviour(Path(given)), str(given)
    own = own_profile(workflow_path, workflow)
    if own.is_file():
        return load_behaviour(own), str(own)
    built_in = default_behaviour()
    if workflow != built_in.workflow:
        raise BehaviourError(
            f"no behaviour profile for workflow {workflow!r}: write one "
            f"(`dk2020flow simulate --print-behaviour` prints the {built_in.workflow} one to "
            "start from) "
            f"and pass it with --behaviour, or put it at {own}"
        )
    return built_in, f"the shipped {built_in.workflow} profile"


def _participants(run: _Run, csv_path: Path | None) -> list[Organisation]:
    from dk2020flow.service.participants import parse_participants_csv

    store = run.service.store
    with store.read() as tx:
        known = tx.organisations()
    if csv_path is None:
        return sorted(known, key=lambda m: m.code)
    organisations, contacts = parse_participants_csv(csv_path, known=known)
    with store.transaction() as tx:
        tx.replace_participants(organisations, contacts)
        known = tx.organisations()
    if organisations:
        codes = {m.code for m in organisations}
        return sorted((m for m in known if m.code in codes), key=lambda m: m.code)
    return sorted(known, key=lambda m: m.code)


def _variables(run: _Run, organisation: Organisation, **extra: str) -> dict[str, str]:
    return {
        "organisation": organisation.name,
        "municipality": organisation.name,  # the name profiles written before 0006 use
        "code": organisation.code,
        "slug": draws.slug(organisation.name),
        "region": organisation.region,
        "region_slug": draws.slug(organisation.region),
        "group": organisation.group,
        **extra,
    }


def _add_contacts(run: _Run, participants: list[Organisation]) -> None:
    """Contacts from the profile's templates, for every role a participant has none in."""
    templates = run.behaviour.contacts
    if not templates:
        return
    store = run.service.store
    with store.transaction() as tx:
        replacement: list[Contact] = []
        for organisation in participants:
            existing = tx.contacts(organisation.code)
            roles = {c.role for c in existing}
            added = [
                Contact(
                    organisation_code=organisation.code,
                    role=role,
                    name=draws.fill(spec.name, _variables(run, organisation)),
                    email=draws.fill(spec.email, _variables(run, organisation)),
                    language=spec.language_for(run.wf.workflow),
                )
                for role, spec in templates.items()
                if role not in roles
            ]
            if added:
                replacement.extend([*existing, *added])
        if replacement:
            tx.replace_participants([], replacement)


def _open_rule(run: _Run, organisation: Organisation) -> OpenRule | None:
    for rule in run.behaviour.open:
        if _matches(rule.groups, rule.organisations, organisation):
            return rule
    return None


def _matches(groups: tuple[str, ...], names: tuple[str, ...], organisation: Organisation) -> bool:
    if groups and organisation.group not in groups:
        return False
    return not names or organisation.name in names or organisation.code in names


def _open_cases(run: _Run, participants: list[Organisation], now: dt.datetime) -> None:
    service, wf = run.service, run.wf
    for organisation in participants:
        rng = draws.case_rng(run.seed, organisation.code)
        rule = _open_rule(run, organisation)
        if rule is not None and rule.skip:
            continue
        state: str | None = None
        if rule is not None and isinstance(rule.state, str):
            state = rule.state
        elif rule is not None and isinstance(rule.state, dict) and rule.state:
            weights = rule.state
            names = list(weights)
            state = rng.choices(names, weights=[weights[n] for n in names])[0]
        variables = _variables(run, organisation, date=_local_date(run, now))
        role = rule.role if rule else None
        try:
            snapshot = service.open_case(
                wf.workflow.workflow,
                organisation.code,
                actor=draws.fill(rule.actor, variables) if rule else SIM_ACTOR,
                role=role,
                cohort=rule.cohort if rule else None,
                state=state if state != wf.workflow.initial_state else None,
                reason=draws.fill(rule.reason, variables) if rule else "",
                data=draws.data_values(rule.data, variables, rng) if rule else None,
                now=now,
            )
        except Dk2020flowError as exc:
            _problem(
                run,
                ProblemKind.REFUSED,
                f"opening {organisation.name}'s case failed: {exc}",
                "fix the profile's `open` rules or the workflow",
                organisation.name,
            )
            continue
        run.cases[snapshot.id or 0] = _Case(
            id=snapshot.id or 0,
            organisation=organisation,
            rng=rng,
            state=snapshot.state,
            cohort=snapshot.cohort,
            entered_at=now,
        )
    _sync(run)


# ----------------------------------------------------------------------------- the loop


def _deliverer(
    store: Any, settings: Settings, folder: Path | None, seed: int, loop_runner: asyncio.Runner
) -> Callable[[dt.datetime], int]:
    """Delivery of the outbox: into ``folder`` as ``.eml`` files, or, without one,
    recorded as sent without writing (or rendering) any message."""
    from dk2020flow.notify.transports import FolderTransport, MailSettings, RecordingTransport
    from dk2020flow.runtime.delivery import adeliver_batch

    mail = MailSettings()
    sender = formataddr((mail.mail_sender_name, mail.mail_sender))
    transport = FolderTransport(folder) if folder is not None else RecordingTransport()
    rng = random.Random(seed)

    def deliver(now: dt.datetime) -> int:
        total = 0
        while True:
            result = loop_runner.run(
                adeliver_batch(store, transport, now=now, settings=settings, rng=rng, sender=sender)
            )
            total += result.sent
            if result.claimed < settings.mail_batch_size:
                return total

    return deliver


def _loop(
    run: _Run,
    start: dt.datetime,
    end: dt.datetime,
    deliver: Callable[[dt.datetime], int],
    progress: Progress | None,
) -> None:
    now = start
    span = (end - start).total_seconds()
    timers_at, mail_at = _next_work(run)
    while True:
        busy = False
        if timers_at is not None and timers_at <= now:
            busy = _dispatch(run, now) or busy
        busy = _act(run, now) or busy
        if busy or (mail_at is not None and mail_at <= now):
            deliver(now)
        run.instants += 1
        if progress is not None:
            progress(min(1.0, (now - start).total_seconds() / span), f"{now:%Y-%m-%d}")
        timers_at, mail_at = _next_work(run)
        following = min(
            [t for t in (timers_at, mail_at) if t is not None]
            + ([run.queue[0][0]] if run.queue else []),
            default=None,
        )
        if following is None or following > end:
            break
        now = max(following, now + dt.timedelta(seconds=1))
        run.clock.set(now)
    run.clock.set(end)
    if progress is not None:
        progress(1.0, f"{end:%Y-%m-%d}")


def _next_work(run: _Run) -> tuple[dt.datetime | None, dt.datetime | None]:
    """When the next timer is due and the next mail is to go (None: nothing waits)."""
    with run.service.store.read() as tx:
        return tx.next_work()


def _dispatch(run: _Run, now: dt.datetime) -> bool:
    """Fire every due timer (as the daemon does); True when something fired."""
    fired = False
    for _ in range(MAX_DISPATCH_ROUNDS):
        result = run.service.fire_due(now)
        run.dispatch_errors.extend(result.errors)
        if result.total == 0:
            break
        fired = True
    if fired:
        _sync(run)
    return fired


def _act(run: _Run, now: dt.datetime) -> bool:
    """Take the participant actions due at ``now``; True when one was taken."""
    acted = False
    while run.queue and run.queue[0][0] <= now:
        _, _, plan = heapq.heappop(run.queue)
        case = run.cases.get(plan.case_id)
        if case is None or case.closed or case.visit != plan.visit:
            continue  # the case moved on (a timer, another action) before this one
        case.planned -= 1
        _take(run, case, plan.action, now)
        acted = True
    if acted:
        _sync(run)
    return acted


def _take(run: _Run, case: _Case, action: Action, now: dt.datetime) -> None:
    service, wf = run.service, run.wf
    role_title = text_in(
        wf.workflow.roles[action.role].title, wf.workflow.default_language, action.role
    )
    variables = _variables(
        run,
        case.organisation,
        date=_local_date(run, now),
        visit=str(case.visits[case.state]),
        cohort=case.cohort or "",
        role=action.role,
        role_title=role_title,
        state=case.state,
    )
    actor = draws.fill(action.actor, variables)
    ref = f"#{case.id}"
    trigger = action.trigger
    try:
        if action.screening is not None:
            trigger = _screen(run, case, action, actor, ref, now)
        # The action's data is for its own trigger: a screening's `otherwise` (asking for
        # a revision) takes none.
        data = (
            draws.data_values(action.data, variables, case.rng) if trigger == action.trigger else {}
        )
        _hand_in(run, case, trigger, actor, action.role, now)
        snapshot = service.fire(
            ref,
            trigger,
            actor=actor,
            role=action.role,
            data=data,
            comment=draws.fill(action.comment, variables),
            workflow=wf.workflow.workflow,
            now=now,
        )
        case.cohort = snapshot.cohort
        run.actions += 1
    except RefusedError as exc:
        run.refusals += 1
        _note(run, now, case, "refused", f"{trigger} by {action.role} refused: {exc}")
        _problem(
            run,
            ProblemKind.REFUSED,
            f"{trigger} by {action.role} in {case.state!r} was refused: {exc}",
            "the behaviour expected this to work: check the transition's roles, "
            "required fields and guards, or the profile's data",
            case.organisation.name,
        )
    except Dk2020flowError as exc:
        run.refusals += 1
        _note(run, now, case, "failed", f"{trigger} failed: {exc}")
        _problem(
            run,
            ProblemKind.MAIL_FAILED,
            f"{trigger} in {case.state!r} failed: {exc}",
            "a template does not render for this case: fix it and "
            "`dk2020flow workflow validate` the file",
            case.organisation.name,
        )


def _hand_in(run: _Run, case: _Case, trigger: str, actor: str, role: str, now: dt.datetime) -> None:
    """Upload a small synthetic file for each document the trigger needs, as the person
    acting would before firing it: a document is checked like any other, and the engine
    refuses a person's trigger without it (docs/documents.md)."""
    definition = run.wf.workflow
    for name in documents_needed(run.wf, case.state, trigger):
        kind = definition.documents[name].types[0]
        title = text_in(definition.documents[name].title, definition.default_language, name)
        run.service.documents.attach(
            f"#{case.id}",
            name,
            io.BytesIO(filetypes.sample(kind, f"{case.organisation.name}: {title}")),
            filename=f"{name}.{filetypes.EXTENSIONS[kind]}",
            actor=actor,
            role=role,
            workflow=definition.workflow,
            now=now,
        )


SCREENING_COMMENTS = {
    "da": ("Ikke relevant her", "Skal uddybes i den reviderede udgave"),
    "en": ("Not relevant here", "To be expanded in the revised version"),
}
"""A simulated reviewer's comments (not applicable, to revise), in the workflow's first
language (English when there are none in it)."""


def _screen(run: _Run, case: _Case, action: Action, actor: str, ref: str, now: dt.datetime) -> str:
    """Record the checklist item by item; return the trigger that follows."""
    spec = action.screening
    assert spec is not None
    checklist = run.wf.workflow.checklists[spec.checklist]
    rng = case.rng
    memory_key = f"screening:{spec.checklist}"
    if memory_key not in case.memory:
        case.memory[memory_key] = {
            "revisions": draws.count(spec.revisions, rng),
            "not_applicable": sorted(
                item
                for item, p in spec.not_applicable.items()
                if item in checklist.items and rng.random() < p
            ),
        }
    memory = case.memory[memory_key]
    revising = case.visits[case.state] <= memory["revisions"]
    items: dict[str, tuple[str, str]] = {}
    candidates = [i for i in checklist.items if i not in memory["not_applicable"]]
    short: set[str] = set()
    if revising and candidates:
        low, high = spec.short_items
        wanted = min(len(candidates), rng.randint(min(low, high), max(low, high)))
        weights = [spec.difficulty.get(i, 1.0) for i in candidates]
        while len(short) < wanted:
            short.add(rng.choices(candidates, weights=weights)[0])
    not_applicable, to_revise = SCREENING_COMMENTS.get(
        run.wf.workflow.default_language, SCREENING_COMMENTS["en"]
    )
    for item in checklist.items:
        if item in memory["not_applicable"]:
            items[item] = ("not_applicable", not_applicable)
        elif item in short:
            status = "not_met" if rng.random() < spec.not_met_share else "partly_met"
            items[item] = (status, to_revise)
        else:
            items[item] = ("met", "")
    run.service.check(
        ref,
        spec.checklist,
        items,
        actor=actor,
        role=action.role,
        workflow=run.wf.workflow.workflow,
        now=now,
    )
    return spec.otherwise if revising else action.trigger


def _sync(run: _Run) -> None:
    """Read the new events of the log; plan the next actions of cases that entered a state."""
    entered: dict[int, tuple[str, dt.datetime]] = {}
    with run.service.store.read() as tx:
        new = tx.report_events(after_id=run.last_event)
    for line in new:
        run.last_event = line.id
        case = run.cases.get(line.case_id)
        if case is None:
            continue
        if line.kind == "opened" or (line.to_state and line.to_state != line.from_state):
            state = line.to_state or case.state
            case.visits[state] += 1
            entered[line.case_id] = (state, line.at)
    for case_id, (state, at) in entered.items():
        case = run.cases[case_id]
        case.state, case.entered_at = state, at
        case.closed = run.wf.workflow.states[state].terminal
        case.planned = 0
        if not case.closed:
            _plan(run, case)


def _plan(run: _Run, case: _Case) -> None:
    spec = run.behaviour.states.get(case.state)
    if spec is None:
        return
    chosen: list[Action] = []
    for action in spec.choose:
        if _applies(action, case) and case.rng.random() < action.probability:
            chosen.append(action)
            break
    chosen.extend(a for a in spec.each if _applies(a, case) and case.rng.random() < a.probability)
    for action in chosen:
        at = _when(run, case, action)
        if at is None:
            _problem(
                run,
                ProblemKind.REFUSED,
                f"{action.trigger} in {case.state!r} counts from a cohort date, "
                "but the case has no cohort",
                "count from `entered` or give the case a cohort",
                case.organisation.name,
            )
            continue
        run.sequence += 1
        case.planned += 1
        heapq.heappush(run.queue, (at, run.sequence, _Plan(case.id, case.visit, action)))


def _applies(action: Action, case: _Case) -> bool:
    if not _matches(action.groups, action.organisations, case.organisation):
        return False
    if action.cohorts and case.cohort not in action.cohorts:
        return False
    visit = case.visits[case.state]
    if action.visits == "first" and visit != 1:
        return False
    return not (action.visits == "later" and visit == 1)


def _when(run: _Run, case: _Case, action: Action) -> dt.datetime | None:
    wf, rng = run.wf, case.rng
    if action.at is not None:
        day = draws.window_day(action.at, rng)
        instant = _instant(dt.datetime.combine(day, dt.time(12, 0)), end=False, tz=wf.tz)
    else:
        assert action.after is not None
        cohort = wf.workflow.cohorts.get(case.cohort) if case.cohort else None
        base = draws.anchor_instant(
            action.after.from_, entered_at=case.entered_at, cohort=cohort, tz=wf.tz
        )
        if base is None:
            return None
        instant = base + dt.timedelta(days=draws.days(action.after, rng))
    if action.office_hours:
        instant = draws.office_instant(instant, rng, wf.calendar, wf.tz)
    if instant <= case.entered_at:
        # Drawn before the case entered the state: act one to five days after it did.
        instant = case.entered_at + dt.timedelta(days=rng.uniform(1, 5))
        if action.office_hours:
            instant = draws.office_instant(instant, rng, wf.calendar, wf.tz)
    return instant


# ----------------------------------------------------------------------------- results


def _local_date(run: _Run, now: dt.datetime) -> str:
    return now.astimezone(run.wf.tz).date().isoformat()


def _note(run: _Run, now: dt.datetime, case: _Case, kind: str, text: str) -> None:
    run.notes.append(
        TimelineEntry(
            at=now,
            case_id=case.id,
            organisation=case.organisation.name,
            kind=kind,
            text=text,
            state=case.state,
        )
    )


def _problem(run: _Run, kind: ProblemKind, message: str, hint: str, organisation: str) -> None:
    run.problems.append(Problem(kind=kind, message=message, hint=hint, cases=(organisation,)))


def _result(
    run: _Run,
    seed: int,
    start: dt.datetime,
    end: dt.datetime,
    db_url: str | None,
    out_dir: Path | None,
    wall: float,
) -> SimulationResult:
    workflow = run.wf.workflow
    with run.service.store.read() as tx:
        lines = tx.report_events(workflow=workflow.workflow)
        mail = tx.report_outbox_counts(workflow=workflow.workflow)
    timeline = sorted(
        [*(_entry(line) for line in lines), *run.notes],
        key=lambda e: (e.at, e.case_id or 0),
    )
    by_state: Counter[str] = Counter()
    by_cohort: Counter[str] = Counter()
    by_cohort_state: dict[str, Counter[str]] = {}
    for case in run.cases.values():
        cohort = case.cohort or "none"
        by_state[case.state] += 1
        by_cohort[cohort] += 1
        by_cohort_state.setdefault(cohort, Counter())[case.state] += 1
    pending_plans = {plan.case_id for _, _, plan in run.queue if _live(run, plan)}
    with run.service.store.read() as tx:
        problems = find_problems(
            run.wf,
            tx,
            open_cases={
                c.id: (c.organisation.name, c.state) for c in run.cases.values() if not c.closed
            },
            planned=pending_plans,
            dispatch_errors=run.dispatch_errors,
            earlier=run.problems,
        )
    summary = Summary(
        cases=len(run.cases),
        by_state=dict(sorted(by_state.items(), key=lambda kv: list(workflow.states).index(kv[0]))),
        by_cohort=dict(sorted(by_cohort.items())),
        by_cohort_state={k: dict(v) for k, v in sorted(by_cohort_state.items())},
        mail=mail,
        actions=run.actions,
        refusals=run.refusals,
        timer_firings=sum(1 for line in lines if line.kind == "timer"),
        instants=run.instants,
        wall_seconds=round(time.perf_counter() - wall, 2),
    )
    return SimulationResult(
        workflow=workflow.workflow,
        version=workflow.version,
        profile=run.behaviour.profile,
        seed=seed,
        start=start,
        end=end,
        db_url=db_url,
        out_dir=out_dir,
        timezone=workflow.timezone,
        timeline=timeline,
        summary=summary,
        problems=problems,
    )


def _live(run: _Run, plan: _Plan) -> bool:
    case = run.cases.get(plan.case_id)
    return case is not None and not case.closed and case.visit == plan.visit


def _entry(line: EventLine) -> TimelineEntry:
    return TimelineEntry(
        at=line.at,
        case_id=line.case_id,
        organisation=line.organisation_name,
        kind=line.kind,
        text=describe_event(line),
        state=line.to_state or line.from_state or "",
    )


def describe_event(line: EventLine) -> str:
    """One line for a person: what this event of the log means."""
    kind = line.kind
    who = f" by {line.actor}" + (f" ({line.role})" if line.role else "") if line.actor else ""
    if kind == "opened":
        text = f"opened in {line.to_state}{who}"
        return f"{text}: {line.comment}" if line.comment else text
    if kind == "transition":
        return f"{line.trigger}: {line.from_state} → {line.to_state}{who}"
    if kind == "timer":
        timer = line.data.get("timer", line.trigger or "")
        what = line.data.get("kind", "")
        index = line.data.get("index") or ""
        text = f"timer {timer} {what}{f' {index}' if index else ''}".rstrip()
        return f"{text}: {line.comment}" if line.comment else text
    if kind == "document":
        filename = line.data.get("filename", "")
        return f"document {line.trigger} uploaded{who}" + (f": {filename}" if filename else "")
    if kind == "checklist":
        items = line.data.get("items", {})
        counts = Counter(str(v.get("status", "")) for v in items.values() if isinstance(v, dict))
        summary = ", ".join(
            f"{n} {status.replace('_', ' ')}" for status, n in sorted(counts.items())
        )
        return f"{line.trigger} recorded{who}: {summary}"
    text = f"{kind.replace('_', ' ')}" + (f" {line.trigger}" if line.trigger else "") + who
    return f"{text}: {line.comment}" if line.comment else text
