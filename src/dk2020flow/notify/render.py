"""Rendering mail templates: sandboxed Jinja2, strict about undefined names.

A mail template ``<name>.<lang>.jinja`` has three blocks: ``subject``, ``text``
and ``html``. The same source is compiled twice: once with autoescaping off
(for the subject and the plain-text body) and once with autoescaping on (for
the HTML body), so case data can never inject markup into the HTML part.

If ``_layout.<lang>.jinja`` exists, the output of the ``html`` block is placed
in it as ``body`` (with the rest of the context), unless the block already
starts with ``<!DOCTYPE`` or ``<html``. Other files whose name starts with
``_`` are partials a template may ``{% import %}`` or ``{% include %}``.

The renderer never reads the disk: it is given the template sources (the
definition layer stores them with the workflow version).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import CodeType, TracebackType
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time
from jinja2 import (
    BaseLoader,
    Environment,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.bccache import Bucket, BytecodeCache
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from dk2020flow.definition.model import Workflow
from dk2020flow.errors import Dk2020flowError
from dk2020flow.notify.context import MailKind, sample_context

BLOCKS = ("subject", "text", "html")
LOCALES = {"da": "da_DK", "en": "en_GB"}
_HTML = "html:"
_TEXT = "text:"
_WHITESPACE = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class TemplateProblem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class TemplateRenderError(Dk2020flowError):
    """A template could not be rendered; ``problem`` says where and why."""

    def __init__(self, problem: TemplateProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def template_file(template: str, language: str) -> str:
    return f"{template}.{language}.jinja"


def layout_file(language: str) -> str:
    return f"_layout.{language}.jinja"


# ----------------------------------------------------------------------------- filters


def _to_local(value: Any, zone: ZoneInfo) -> dt.datetime | dt.date:
    if isinstance(value, str):
        text = value.strip()
        try:
            value = dt.datetime.fromisoformat(text) if "T" in text else dt.date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 date or date-time") from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value  # a naive time is already local (as in the workflow file)
        return value.astimezone(zone)
    if isinstance(value, dt.date):
        return value
    raise TypeError(f"expected a date or date-time, got {type(value).__name__}")


@functools.lru_cache(maxsize=4096)
def _formatted_date(day: dt.date, format: str, locale: str) -> str:
    # Babel parses the locale and the pattern on every call; a programme's mail
    # shows the same few dates thousands of times.
    return str(format_date(day, format=format, locale=locale))


@functools.lru_cache(maxsize=4096)
def _formatted_time(moment: dt.time, format: str, locale: str) -> str:
    return str(format_time(moment, format=format, locale=locale))


def _date_filter(locale: str, zone: ZoneInfo) -> Callable[..., str]:
    def date(value: Any, format: str = "long") -> str:
        local = _to_local(value, zone)
        day = local.date() if isinstance(local, dt.datetime) else local
        if type(format) is str and type(day) is dt.date:
            return _formatted_date(day, format, locale)
        return str(format_date(day, format=format, locale=locale))

    return date


def _time_filter(locale: str, zone: ZoneInfo) -> Callable[..., str]:
    def time(value: Any, format: str = "HH:mm") -> str:
        local = _to_local(value, zone)
        if not isinstance(local, dt.datetime):
            raise TypeError("the time filter needs a date-time, not a date")
        moment = local.time()
        if type(format) is str:
            return _formatted_time(moment, format, locale)
        return str(format_time(moment, format=format, locale=locale))

    return time


def _datetime_filter(locale: str, zone: ZoneInfo) -> Callable[..., str]:
    joiner = " kl. " if locale.startswith("da") else " at "
    date = _date_filter(locale, zone)
    time = _time_filter(locale, zone)

    def datetime(value: Any, format: str = "long") -> str:
        local = _to_local(value, zone)
        if not isinstance(local, dt.datetime):
            return date(local, format)
        return date(local, format) + joiner + time(local)

    return datetime


# ----------------------------------------------------------------------------- environment


class _Loader(BaseLoader):
    """Serves ``text:<file>`` and ``html:<file>`` from the sources; ``<file>#<block>``
    is a generated driver that renders one block of ``<file>`` (with its
    top-level imports and assignments, which a bare block function would miss)."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        self.sources = dict(sources)

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        mode, _, rest = template.partition(":")
        if mode not in ("text", "html") or not rest:
            raise TemplateNotFound(template)
        file, _, block = rest.partition("#")
        if block:
            others = "".join(f"{{% block {b} %}}{{% endblock %}}" for b in BLOCKS if b != block)
            return f'{{% extends "{mode}:{file}" %}}{others}', None, lambda: True
        if file not in self.sources:
            raise TemplateNotFound(file)
        return self.sources[file], file, lambda: True


class _MailEnvironment(ImmutableSandboxedEnvironment):
    def getattr(self, obj: Any, attribute: str) -> Any:
        # The context is plain dicts: let ``checklist.items`` mean the key
        # "items", not the dict method of that name.
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def join_path(self, template: str, parent: str) -> str:
        # {% import "_layout.da.jinja" %} inside "html:x.da.jinja" resolves to
        # "html:_layout.da.jinja", so a partial escapes the same way as its caller.
        if template.startswith((_HTML, _TEXT)):
            return template
        mode = _HTML if parent.startswith(_HTML) else _TEXT
        return mode + template


def _autoescape(name: str | None) -> bool:
    return bool(name and name.startswith(_HTML))


class _CompiledCode(BytecodeCache):
    """The compiled code of every template, shared by the renderers of the process.

    Compiling a template costs a hundred renders; the workflow check and the
    service each make a renderer for the same sources. Jinja checks the source's
    checksum, so a changed source is compiled again. Every renderer's environment
    is configured alike, and whether a template is autoescaped is in its name.
    """

    _LIMIT = 4096

    def __init__(self) -> None:
        self._code: dict[str, tuple[str, CodeType]] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        found = self._code.get(bucket.key)
        if found is not None and found[0] == bucket.checksum:
            bucket.code = found[1]

    def dump_bytecode(self, bucket: Bucket) -> None:
        if bucket.code is not None:
            if len(self._code) >= self._LIMIT:
                self._code.clear()
            self._code[bucket.key] = (bucket.checksum, bucket.code)

    def clear(self) -> None:
        self._code.clear()


_CODE = _CompiledCode()


# ----------------------------------------------------------------------------- renderer


class Renderer:
    """Renders the mail templates of one workflow version."""

    def __init__(self, sources: Mapping[str, str], *, timezone: str) -> None:
        self._sources = dict(sources)
        self._zone = ZoneInfo(timezone)
        self._loader = _Loader(self._sources)
        self._envs: dict[str, _MailEnvironment] = {}
        # Compiled templates by (language, name), and the files whose blocks were
        # checked: the sources never change, so each is compiled and checked once
        # (Jinja's own cache would do, but its look-up costs more than a render).
        self._templates: dict[tuple[str, str], Template] = {}
        self._complete: set[tuple[str, str]] = set()

    def _env(self, language: str) -> _MailEnvironment:
        env = self._envs.get(language)
        if env is None:
            locale = LOCALES.get(language, language)
            env = _MailEnvironment(
                loader=self._loader,
                undefined=StrictUndefined,
                autoescape=_autoescape,
                keep_trailing_newline=False,
                trim_blocks=True,
                lstrip_blocks=True,
                auto_reload=False,
                bytecode_cache=_CODE,
            )
            env.filters["date"] = _date_filter(locale, self._zone)
            env.filters["datetime"] = _datetime_filter(locale, self._zone)
            env.filters["time"] = _time_filter(locale, self._zone)
            self._envs[language] = env
        return env

    def has(self, template: str, language: str) -> bool:
        return template_file(template, language) in self._sources

    def render(self, template: str, language: str, context: Mapping[str, Any]) -> RenderedMail:
        """Render one mail; raises :class:`TemplateRenderError` naming file and line."""
        file = template_file(template, language)
        if file not in self._sources:
            raise TemplateRenderError(
                TemplateProblem(file, None, f"no template {file} for language {language!r}")
            )
        try:
            return self._render(file, language, dict(context))
        except Exception as exc:  # a template is outside input: any failure is its problem
            raise TemplateRenderError(_problem(file, exc, self._sources)) from exc

    def _template(self, language: str, name: str) -> Template:
        key = (language, name)
        found = self._templates.get(key)
        if found is None:
            found = self._templates[key] = self._env(language).get_template(name)
        return found

    def _render(self, file: str, language: str, context: dict[str, Any]) -> RenderedMail:
        if (language, file) not in self._complete:
            blocks = self._template(language, _TEXT + file).blocks
            missing = [b for b in BLOCKS if b not in blocks]
            if missing:
                raise _MissingBlocksError(missing)
            self._complete.add((language, file))
        subject = self._template(language, f"{_TEXT}{file}#subject").render(context)
        subject = _WHITESPACE.sub(" ", subject).strip()
        if not subject:
            raise _EmptySubjectError
        text = _tidy_text(self._template(language, f"{_TEXT}{file}#text").render(context))
        body = self._template(language, f"{_HTML}{file}#html").render(context).strip()
        layout = layout_file(language)
        if layout in self._sources and not body[:20].lower().startswith(("<!doctype", "<html")):
            html = self._template(language, _HTML + layout).render(
                {**context, "body": Markup(body), "subject": subject}  # noqa: S704 - escaped already
            )
        else:
            html = body
        return RenderedMail(subject=subject, text=text, html=html.strip() + "\n")

    def check(
        self, template: str, language: str, workflow: Workflow, kind: MailKind
    ) -> list[TemplateProblem]:
        """Problems found by rendering the template with sample data (none: it is fine).

        It renders twice: with a full sample, and with a sparse one where every
        optional variable is missing, so an unguarded ``{{ cohort.title }}``
        is found before a real case meets it.
        """
        file = template_file(template, language)
        if file not in self._sources:
            return [TemplateProblem(file, None, f"the template file {file} is missing")]
        problems: list[TemplateProblem] = []
        for sparse in (False, True):
            context = sample_context(workflow, language, kind, template=template, sparse=sparse)
            try:
                self.render(template, language, context)
            except TemplateRenderError as exc:
                problem = exc.problem
                if sparse and not isinstance(exc.__cause__, TemplateSyntaxError):
                    problem = TemplateProblem(
                        problem.file,
                        problem.line,
                        f"{problem.message} (when optional data is missing: "
                        "guard it with {% if … %})",
                    )
                if problem not in problems:
                    problems.append(problem)
                break
        return problems


class _MissingBlocksError(TemplateError):
    def __init__(self, missing: list[str]) -> None:
        blocks = ", ".join(missing)
        super().__init__(
            f"missing block(s): {blocks}; a mail template needs "
            "{% block subject %}, {% block text %} and {% block html %}"
        )


class _EmptySubjectError(TemplateError):
    def __init__(self) -> None:
        super().__init__("the subject is empty")


def _tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip() + "\n"


def _problem(file: str, exc: BaseException, sources: Mapping[str, str]) -> TemplateProblem:
    if isinstance(exc, TemplateSyntaxError):
        name = exc.name or exc.filename or file
        name = name.split(":", 1)[-1]
        return TemplateProblem(name, exc.lineno, f"syntax error: {exc.message}")
    where, line = _template_frame(exc.__traceback__, sources)
    if isinstance(exc, SecurityError):
        message = f"not allowed in a template: {exc}"
    elif isinstance(exc, UndefinedError):
        message = f"undefined variable: {exc.message}"
    elif isinstance(exc, TemplateNotFound):
        message = f"template not found: {exc.name}"
    else:
        message = str(exc) or type(exc).__name__
    return TemplateProblem(where or file, line, message)


def _template_frame(
    tb: TracebackType | None, sources: Mapping[str, str]
) -> tuple[str | None, int | None]:
    """The innermost traceback frame that belongs to a template file."""
    found: tuple[str | None, int | None] = (None, None)
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name in sources:
            found = (name, tb.tb_lineno)
        tb = tb.tb_next
    return found
