"""The mails a workflow sends, and the checks of their templates (DF060–DF063).

Templates live in one folder per workflow as ``<template>.<lang>.jinja``. Each
template a workflow names must exist in every language it offers and render
with the variables the engine passes for that kind of mail. Rendering is the
renderer's job (``dk2020flow.notify.render``); until it is installed the
check falls back to "the file exists". A language must be one Babel has a locale
for (DF063): the templates' dates and numbers are formatted in it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from dk2020flow.definition.diagnostics import Diagnostic
from dk2020flow.definition.model import (
    MailSpec,
    Workflow,
    babel_knows,
    babel_locale_name,
    unknown_language_hint,
)
from dk2020flow.definition.source import Locator, NodePath

MAX_TEMPLATE_BYTES = 256 * 1024


def language_name(language: str) -> str:
    """The language's name in English (Babel's): ``Danish``, ``French``; the code itself
    when Babel does not know it."""
    if not babel_knows(language):
        return language
    from babel import Locale

    return str(Locale.parse(babel_locale_name(language)).get_language_name("en") or language)


@dataclass(frozen=True)
class TemplateSet:
    sources: Mapping[str, str]
    directory: Path | None
    unreadable: frozenset[str] = frozenset()
    """Files that exist but could not be read (each already reported as DF062)."""

    def display(self, file: str) -> str:
        return str(self.directory / file) if self.directory is not None else file


def template_file(template: str, language: str) -> str:
    return f"{template}.{language}.jinja"


def read_template_dir(directory: Path) -> tuple[TemplateSet, list[Diagnostic]]:
    """Every ``*.jinja`` file under ``directory`` by its relative name; a missing folder is empty."""
    sources: dict[str, str] = {}
    unreadable: set[str] = set()
    problems: list[Diagnostic] = []
    if not directory.is_dir():
        return TemplateSet(sources, directory), problems
    for file in sorted(directory.rglob("*.jinja")):
        name = file.relative_to(directory).as_posix()
        if not file.is_file() or any(part.startswith(".") for part in Path(name).parts):
            continue
        try:
            raw = file.read_bytes()
            if len(raw) > MAX_TEMPLATE_BYTES:
                raise ValueError(f"the template is larger than {MAX_TEMPLATE_BYTES // 1024} kB")
            if b"\x00" in raw:
                raise ValueError("the template is binary, not text")
            sources[name] = raw.decode("utf-8")
        except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            unreadable.add(name)
            problems.append(
                Diagnostic(
                    file=str(file),
                    line=1,
                    column=1,
                    code="DF062",
                    message=f"cannot read the template: {exc}",
                    hint="save templates as UTF-8 text",
                )
            )
    return TemplateSet(sources, directory, frozenset(unreadable)), problems


@dataclass(frozen=True)
class MailUse:
    """One ``mail:`` entry of the workflow, where it sits and what kind of mail it is."""

    spec: MailSpec
    path: NodePath
    kind: str  # a notify.render.MailKind value


def mail_uses(workflow: Workflow) -> Iterator[MailUse]:
    for name, state in workflow.states.items():
        base: NodePath = ("states", name)
        for index, spec in enumerate(state.on_entry.mail):
            yield MailUse(spec, (*base, "on_entry", "mail", index), "state_entry")
        for timer_name, timer in state.timers.items():
            timer_path = (*base, "timers", timer_name)
            for index, spec in enumerate(timer.on_due.mail):
                yield MailUse(spec, (*timer_path, "on_due", "mail", index), "timer")
            for part in ("reminders", "repeat", "escalate"):
                holder = getattr(timer, part)
                if holder is not None:
                    yield MailUse(holder.mail, (*timer_path, part, "mail"), "timer")
    for index, transition in enumerate(workflow.transitions):
        for mail_index, spec in enumerate(transition.mail):
            yield MailUse(spec, ("transitions", index, "mail", mail_index), "transition")
    for cohort_name, cohort in workflow.cohorts.items():
        for event_name, event in cohort.events.items():
            path = ("cohorts", cohort_name, "events", event_name, "mail")
            yield MailUse(event.mail, path, "event")


class _Checker(Protocol):
    def has(self, template: str, language: str) -> bool: ...

    def problems(
        self, template: str, language: str, workflow: Workflow, kind: str
    ) -> list[tuple[str, int | None, str]]: ...


class _ExistsOnly:
    """Used while no renderer is installed: a template is fine if its file exists."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        self.sources = sources

    def has(self, template: str, language: str) -> bool:
        return template_file(template, language) in self.sources

    def problems(
        self, template: str, language: str, workflow: Workflow, kind: str
    ) -> list[tuple[str, int | None, str]]:
        return []


class _RendererChecker:
    def __init__(self, renderer: Any, kinds: Any) -> None:
        self.renderer = renderer
        self.kinds = kinds

    def has(self, template: str, language: str) -> bool:
        return bool(self.renderer.has(template, language))

    def problems(
        self, template: str, language: str, workflow: Workflow, kind: str
    ) -> list[tuple[str, int | None, str]]:
        found = self.renderer.check(template, language, workflow, self.kinds(kind))
        return [(str(p.file), p.line, str(p.message)) for p in found]


def _checker(sources: Mapping[str, str], timezone: str) -> _Checker:
    try:
        render = importlib.import_module("dk2020flow.notify.render")
        renderer, kinds = render.Renderer, render.MailKind
    except (ImportError, AttributeError):
        return _ExistsOnly(sources)
    return _RendererChecker(renderer(sources, timezone=timezone), kinds)


def check_templates(
    workflow: Workflow, templates: TemplateSet, locator: Locator, file: str
) -> list[Diagnostic]:
    """DF060 for a missing language version (once, at its first use), DF061 for render errors,
    DF063 for a language without a locale (its templates are then not checked).

    One mistake, one diagnostic: a file that exists but cannot be read (DF062, reported
    by ``read_template_dir``) is neither missing nor rendered, and an unknown timezone
    (DF050, reported by the validator) does not make every template fail to render.
    """
    problems = _unknown_languages(workflow, locator, file)
    languages = [language for language in workflow.languages if babel_knows(language)]
    uses: dict[str, list[MailUse]] = {}
    for use in mail_uses(workflow):
        uses.setdefault(use.spec.template, []).append(use)
    timezone = _known_timezone(workflow.timezone)
    if timezone != workflow.timezone:
        workflow = workflow.model_copy(update={"timezone": timezone})
    checker = _checker(templates.sources, timezone)
    tainted = _depends_on_unreadable(templates)
    for template, where in uses.items():
        line, column = locator.find((*where[0].path, "template"))
        for language in languages:  # one without a locale is its DF063 alone
            if template_file(template, language) in templates.unreadable:
                continue
            if template_file(template, language) in tainted:  # it uses an unreadable file
                continue
            if not checker.has(template, language):
                expected = templates.display(template_file(template, language))
                times = f" (used {len(where)} times)" if len(where) > 1 else ""
                problems.append(
                    Diagnostic(
                        file=file,
                        line=line,
                        column=column,
                        code="DF060",
                        message=f"template `{template}` has no {language_name(language)} "
                        f"version{times}",
                        hint=f"create {expected} with blocks subject, text and html",
                    )
                )
                continue
            for kind in dict.fromkeys(use.kind for use in where):
                problems += _render_problems(checker, template, language, workflow, kind, templates)
    return problems


def _unknown_languages(workflow: Workflow, locator: Locator, file: str) -> list[Diagnostic]:
    """DF063 for each language of ``languages`` that Babel has no locale for."""
    problems = []
    for index, language in enumerate(workflow.languages):
        if babel_knows(language):
            continue
        line, column = locator.find(("languages", index))
        problems.append(
            Diagnostic(
                file=file,
                line=line,
                column=column,
                code="DF063",
                message=f"Babel has no locale for the language `{language}` (its mail's "
                "dates and numbers are written with one)",
                hint=unknown_language_hint(language),
            )
        )
    return problems


def _depends_on_unreadable(templates: TemplateSet) -> set[str]:
    """The readable files that name an unreadable one (directly, or through another
    file), and every file of a language whose ``_layout`` is among them: rendering them
    would only repeat the unreadable file's DF062."""
    tainted = set(templates.unreadable)
    if not tainted:
        return tainted
    grown = True
    while grown:
        grown = False
        for name, text in templates.sources.items():
            if name not in tainted and any(bad in text for bad in tainted):
                tainted.add(name)
                grown = True
    for layout in [name for name in tainted if name.startswith("_layout.")]:
        language = layout.split(".")[1]
        tainted |= {name for name in templates.sources if name.endswith(f".{language}.jinja")}
    return tainted


def _render_problems(
    checker: _Checker,
    template: str,
    language: str,
    workflow: Workflow,
    kind: str,
    templates: TemplateSet,
) -> list[Diagnostic]:
    try:
        found = checker.problems(template, language, workflow, kind)
    except Exception as exc:  # a renderer bug must not become a traceback here
        found = [(template_file(template, language), None, f"the template check failed: {exc!r}")]
    return [
        Diagnostic(
            file=templates.display(problem_file),
            line=problem_line or 1,
            column=1,
            code="DF061",
            message=f"template `{template}` ({language}, {kind.replace('_', ' ')} mail): {message}",
            hint="templates may use only the variables listed in docs/workflow-format.md",
        )
        for problem_file, problem_line, message in found
        if problem_file not in templates.unreadable  # its DF062 says it all
    ]


def _known_timezone(name: str) -> str:
    """``name`` when it is a timezone, else UTC: an unknown one has its own DF050, and the
    templates are still checked (in some zone) beside it."""
    try:
        ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return "UTC"
    return name
