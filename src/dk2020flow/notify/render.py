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

How a mail is rendered: the subject and the text body are each what the
template gives with every other block empty (text outside the blocks
included, then tidied), and so is the HTML body. A template made only of
the three blocks side by side, with imports and assignments around them,
takes a quick path that gives the same bytes in two passes instead of three,
through Jinja's public API: it is parsed once (``Environment.parse``) and
compiled once per mode (``Environment.compile``) with the blocks that mode
never shows left out; the subject and text come from one text-mode
``Template.render`` (the top-level code runs once, and the two blocks, put
between marks, are cut out of its output), and the HTML body from one
HTML-mode render. Anything else (a template that extends another, nested blocks,
``self``, ``super()``, ``namespace()``/``joiner()``/``cycler()``, which could
carry state from one block to the next) goes the long way: one generated
``{% extends %}`` driver per block. A quick render that fails is logged and
rendered again the long way, so an error is reported exactly as before, with
file and line.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import CodeType, TracebackType
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time
from babel.numbers import format_decimal
from jinja2 import (
    BaseLoader,
    Environment,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    nodes,
)
from jinja2.bccache import Bucket, BytecodeCache
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from dk2020flow.definition.model import BABEL_LOCALES, Workflow, babel_locale_name
from dk2020flow.errors import Dk2020flowError
from dk2020flow.notify.context import MailKind, OrganisationView, sample_context

BLOCKS = ("subject", "text", "html")
LOCALES = BABEL_LOCALES
"""A mail's dates are in its language's Babel locale: these, else the language's code."""
JOINERS = {"da": " kl. ", "en": " at "}
"""Between the date and the time of ``datetime`` (31. august 2020 kl. 23:59); another
language joins them as its locale's date-time pattern does (31 août 2020, 23:59)."""
_HTML = "html:"
_TEXT = "text:"
_WHITESPACE = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n{3,}")
logger = logging.getLogger(__name__)


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
    joiner = JOINERS.get(locale.partition("_")[0])
    date = _date_filter(locale, zone)
    time = _time_filter(locale, zone)

    def datetime(value: Any, format: str = "long") -> str:
        local = _to_local(value, zone)
        if not isinstance(local, dt.datetime):
            return date(local, format)
        if joiner is not None:
            return date(local, format) + joiner + time(local)
        pattern = _datetime_pattern(locale, format if type(format) is str else "long")
        return pattern.replace("{1}", date(local, format)).replace("{0}", time(local))

    return datetime


@functools.lru_cache(maxsize=4096, typed=True)  # 1 and 1.0 are one key otherwise
def _formatted_number(value: int | float, locale: str) -> str:
    return str(format_decimal(value, locale=locale))


def _number_filter(locale: str) -> Callable[..., str]:
    def number(value: Any) -> str:
        """A number the mail's language's way: ``180.000`` in Danish, ``180,000`` in
        English (the digits of an ``integer`` field, or of text that holds a number)."""
        if isinstance(value, str):
            text = value.strip()
            try:
                value = int(text) if text.lstrip("+-").isdigit() else float(text)
            except ValueError:
                raise ValueError(f"{value!r} is not a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"the number filter needs a number, got {type(value).__name__}")
        return _formatted_number(value, locale)

    return number


@functools.lru_cache(maxsize=256)
def _datetime_pattern(locale: str, format: str) -> str:
    """The locale's way of putting a date ({1}) and a time ({0}) together: the pattern of
    ``format`` (``long``, ``medium`` …), the ``long`` one for a pattern of the template's
    own; Babel's quotes are dropped (``{1} 'à' {0}``), as ``format_datetime`` does."""
    patterns = Locale.parse(locale).datetime_formats
    found = patterns.get(format) or patterns.get("long") or "{1} {0}"
    return str(found).replace("'", "")


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


# ----------------------------------------------------------------------------- quick path


_STATEFUL_NAMES = frozenset({"self", "super", "namespace", "joiner", "cycler"})
"""Names that would let one block see another, or carry state from one to the next."""
_STATEFUL_TEXT = re.compile(r"\b(?:namespace|joiner|cycler)\b")
"""The same in any other file: a partial's module is made once and kept, so a
joiner or namespace it holds carries state from one render to the next."""
_WATCHED = (nodes.Name, nodes.Block, nodes.Extends, nodes.NSRef, nodes.EvalContextModifier)
_SUBJECT_MARK = "\x1e\ue000dk2020flow-subject\ue000\x1e"
_TEXT_MARK = "\x1e\ue000dk2020flow-text\ue000\x1e"
"""Put around the subject and the text block's output in the quick text-mode
template, to cut them out of its one pass (a render whose output holds them
already goes the long way)."""


def _blocks_are_independent(source: nodes.Template) -> bool:
    """Whether a mail template is three blocks side by side that cannot see one
    another (then one pass gives what one pass per block gives)."""
    blocks = {node.name: node for node in source.body if isinstance(node, nodes.Block)}
    if set(blocks) != set(BLOCKS) or any(
        block.scoped or block.required for block in blocks.values()
    ):
        return False
    found_blocks = 0
    for node in source.find_all(_WATCHED):
        if isinstance(node, nodes.Name):
            if node.name in _STATEFUL_NAMES:
                return False
        elif isinstance(node, nodes.Block):
            found_blocks += 1  # nested blocks are counted here, and not above
        else:  # {% extends %}, {% set ns.x %}, {% autoescape %}
            return False
    return found_blocks == len(BLOCKS)


def _quick_trees(source: nodes.Template) -> tuple[nodes.Template, nodes.Template]:
    """The text-mode and HTML-mode trees of a mail template whose blocks are independent.

    The text tree keeps the subject and text blocks (between marks) and empties
    the html block; the HTML tree the other way round. Jinja's optimizer rewrites
    expressions in place, so the two trees share no node: the HTML tree gets
    copies of everything outside the blocks.
    """

    def emptied(block: nodes.Block) -> nodes.Block:
        empty = copy.copy(block)
        empty.body = []
        return empty

    def marked(block: nodes.Block, mark: str) -> nodes.Block:
        found = copy.copy(block)
        found.body = [
            nodes.Output([nodes.TemplateData(mark)]),
            *block.body,
            nodes.Output([nodes.TemplateData(mark)]),
        ]
        return found

    keep: dict[int, Any] = {id(source.environment): source.environment}
    marks = {"subject": _SUBJECT_MARK, "text": _TEXT_MARK}
    text_body: list[nodes.Node] = []
    html_body: list[nodes.Node] = []
    for node in source.body:
        if isinstance(node, nodes.Block):
            in_html = node.name == "html"
            text_body.append(emptied(node) if in_html else marked(node, marks[node.name]))
            html_body.append(node if in_html else emptied(node))
        else:
            text_body.append(node)
            html_body.append(copy.deepcopy(node, keep))
    text, html = copy.copy(source), copy.copy(source)
    text.body, html.body = text_body, html_body
    return text, html


class _QuickCode:
    """The quick-path code of each mail template, shared by the renderers of the
    process (the workflow check and the service each make one for the same sources).

    By file name: the source it was compiled from, and the text-mode and
    HTML-mode code (None when the template takes the long way). Made with Jinja's
    public API: ``Environment.parse``, the ``nodes`` of its extension API, and
    ``Environment.compile``.
    """

    _LIMIT = 2048

    def __init__(self) -> None:
        self._code: dict[str, tuple[str, tuple[CodeType, CodeType] | None]] = {}

    def get(self, env: Environment, file: str, source: str) -> tuple[CodeType, CodeType] | None:
        found = self._code.get(file)
        if found is not None and found[0] == source:
            return found[1]
        code: tuple[CodeType, CodeType] | None = None
        try:
            tree = env.parse(source, _TEXT + file, file)
            if _blocks_are_independent(tree):
                text, html = _quick_trees(tree)
                code = (
                    env.compile(text, _TEXT + file, file),
                    env.compile(html, _HTML + file, file),
                )
        except TemplateSyntaxError as exc:  # the long way reports it, with file and line
            logger.debug("%s takes the long way: %s", file, exc)
            code = None
        if len(self._code) >= self._LIMIT:
            self._code.clear()
        self._code[file] = (source, code)
        return code

    def clear(self) -> None:
        self._code.clear()


_QUICK = _QuickCode()


class _MarksLostError(LookupError):
    """The quick pass's output does not hold its marks once each (case data held one)."""


def _cut(output: str, mark: str) -> tuple[str, str, str]:
    """``output`` before the first ``mark``, between it and the second, and after."""
    before, found, rest = output.partition(mark)
    inside, found_again, after = rest.partition(mark)
    if not found or not found_again or mark in after:
        raise _MarksLostError(mark)
    return before, inside, after


@dataclass(frozen=True, slots=True)
class _Quick:
    """One mail template, ready for the quick path in one language: the text-mode
    template (subject and text between marks, html empty) and the HTML-mode one
    (the html block only)."""

    text: Template
    html: Template


_NOT_QUICK = object()


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
        self._quick: dict[tuple[str, str], _Quick | object] = {}
        self._stateful: frozenset[str] | None = None

    def _env(self, language: str) -> _MailEnvironment:
        env = self._envs.get(language)
        if env is None:
            locale = babel_locale_name(language)
            env = _MailEnvironment(
                loader=self._loader,
                undefined=StrictUndefined,
                autoescape=_autoescape,
                keep_trailing_newline=False,
                trim_blocks=True,
                lstrip_blocks=True,
                auto_reload=False,
                # The sources never change: every loaded template stays in Jinja's
                # cache (a plain dict when unbounded; {% import %} asks for its
                # partial on every render, and the LRU bookkeeping costs more than
                # a small render).
                cache_size=-1,
                bytecode_cache=_CODE,
            )
            env.filters["date"] = _date_filter(locale, self._zone)
            env.filters["datetime"] = _datetime_filter(locale, self._zone)
            env.filters["time"] = _time_filter(locale, self._zone)
            env.filters["number"] = _number_filter(locale)
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
            return self._render(file, language, context)
        except Exception as exc:  # a template is outside input: any failure is its problem
            raise TemplateRenderError(_problem(file, exc, self._sources)) from exc

    def _template(self, language: str, name: str) -> Template:
        key = (language, name)
        found = self._templates.get(key)
        if found is None:
            found = self._templates[key] = self._env(language).get_template(name)
        return found

    def _quick_for(self, language: str, file: str) -> _Quick | None:
        key = (language, file)
        found = self._quick.get(key)
        if found is None:
            if self._stateful is None:
                self._stateful = frozenset(
                    name for name, source in self._sources.items() if _STATEFUL_TEXT.search(source)
                )
            env = self._env(language)
            found = _NOT_QUICK
            code = None if self._stateful - {file} else _QUICK.get(env, file, self._sources[file])
            if code is not None:
                globals = env.make_globals(None)
                found = _Quick(
                    text=env.template_class.from_code(env, code[0], globals),
                    html=env.template_class.from_code(env, code[1], globals),
                )
            self._quick[key] = found
        return found if isinstance(found, _Quick) else None

    def _render(self, file: str, language: str, context: Mapping[str, Any]) -> RenderedMail:
        quick = self._quick_for(language, file)
        if quick is not None:
            try:
                return self._render_quick(quick, language, context)
            except _MarksLostError:
                logger.warning(
                    "%s: the rendered mail holds the quick path's marks; rendered the long way",
                    file,
                )
            except Exception as exc:  # the long way renders it again and reports the problem
                logger.info(
                    "%s: the quick render failed (%s: %s); rendering the long way, "
                    "which reports it",
                    file,
                    type(exc).__name__,
                    exc,
                )
        return self._render_passes(file, language, dict(context))

    def _render_quick(
        self, quick: _Quick, language: str, context: Mapping[str, Any]
    ) -> RenderedMail:
        """Subject and text from one text-mode pass, the HTML body from one HTML-mode
        pass: the same mail as :meth:`_render_passes` (for a template whose blocks
        are independent), in two passes instead of three."""
        output = quick.text.render(context)
        # Each part is the whole output with the other block's part left out.
        before, _, after = _cut(output, _TEXT_MARK)
        subject = _WHITESPACE.sub(" ", "".join(_cut(before + after, _SUBJECT_MARK))).strip()
        if not subject:
            raise _EmptySubjectError
        before, _, after = _cut(output, _SUBJECT_MARK)
        text = _tidy_text("".join(_cut(before + after, _TEXT_MARK)))
        return self._finish(language, context, subject, text, quick.html.render(context))

    def _render_passes(self, file: str, language: str, context: dict[str, Any]) -> RenderedMail:
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
        body = self._template(language, f"{_HTML}{file}#html").render(context)
        return self._finish(language, context, subject, text, body)

    def _finish(
        self, language: str, context: Mapping[str, Any], subject: str, text: str, body: str
    ) -> RenderedMail:
        """The mail, its HTML body placed in the layout (if any, and if it is not a
        whole page already)."""
        body = body.strip()
        layout = layout_file(language)
        if layout in self._sources and not body[:20].lower().startswith(("<!doctype", "<html")):
            html = self._template(language, _HTML + layout).render(
                {**context, "body": Markup(body), "subject": subject}  # noqa: S704 - escaped already
            )
        else:
            html = body
        return RenderedMail(subject=subject, text=text, html=html.strip() + "\n")

    def check(
        self,
        template: str,
        language: str,
        workflow: Workflow,
        kind: MailKind,
        *,
        organisation: OrganisationView | None = None,
    ) -> list[TemplateProblem]:
        """Problems found by rendering the template with sample data (none: it is fine),
        for ``organisation`` (default: a neutral example; ``service.participants.sample_of_data_set`` gives
        the workflow's first from its data set).

        It renders twice: with a full sample, and with a sparse one where every
        optional variable is missing, so an unguarded ``{{ cohort.title }}``
        is found before a real case meets it.
        """
        file = template_file(template, language)
        if file not in self._sources:
            return [TemplateProblem(file, None, f"the template file {file} is missing")]
        problems: list[TemplateProblem] = []
        for sparse in (False, True):
            context = sample_context(
                workflow,
                language,
                kind,
                template=template,
                sparse=sparse,
                organisation=organisation,
            )
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
