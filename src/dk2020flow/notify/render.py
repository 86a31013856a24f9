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
takes a quick path that gives the same bytes in two passes instead of four:
it is parsed once and compiled once per mode with the blocks that mode
never shows left out, the subject and text come from one text-mode pass
(the top-level code runs once, and the two blocks are cut out of its
output), and the HTML body from one HTML-mode pass. Anything else (a
template that extends another, nested blocks, ``self``, ``super()``,
``namespace()``/``joiner()``/``cycler()``, which could carry state from one
block to the next), and every render that fails, goes the long way: one
generated ``{% extends %}`` driver per block, so an error is reported exactly
as before, with file and line.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import re
from collections.abc import Callable, Iterator, Mapping, MutableMapping
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
    nodes,
)
from jinja2.bccache import Bucket, BytecodeCache
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import internalcode
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
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # The sources never change: a loaded template is kept in a plain dict
        # ({% import %} asks for its partial on every render, and Jinja's LRU
        # cache costs more than a small render).
        self._loaded: dict[str, Template] = {}

    @internalcode
    def _load_template(self, name: str, globals: MutableMapping[str, Any] | None) -> Template:
        if globals:
            return super()._load_template(name, globals)
        found = self._loaded.get(name)
        if found is None:
            found = self._loaded[name] = super()._load_template(name, globals)
        return found

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


def _quick_trees(source: nodes.Template) -> tuple[nodes.Template, nodes.Template] | None:
    """The text-mode and HTML-mode trees of a mail template, or None if it needs the long way.

    The text tree keeps the subject and text blocks and empties the html block;
    the HTML tree the other way round. Jinja's optimizer rewrites expressions in
    place, so the two trees share no node: the HTML tree gets copies of
    everything outside the blocks.
    """
    blocks = {node.name: node for node in source.body if isinstance(node, nodes.Block)}
    if set(blocks) != set(BLOCKS) or any(
        block.scoped or block.required for block in blocks.values()
    ):
        return None
    found_blocks = 0
    for node in source.find_all(_WATCHED):
        if isinstance(node, nodes.Name):
            if node.name in _STATEFUL_NAMES:
                return None
        elif isinstance(node, nodes.Block):
            found_blocks += 1  # nested blocks are counted here, and not above
        else:  # {% extends %}, {% set ns.x %}, {% autoescape %}
            return None
    if found_blocks != len(BLOCKS):
        return None

    def emptied(block: nodes.Block) -> nodes.Block:
        empty = copy.copy(block)
        empty.body = []
        return empty

    keep: dict[int, Any] = {id(source.environment): source.environment}
    text_body: list[nodes.Node] = []
    html_body: list[nodes.Node] = []
    for node in source.body:
        if isinstance(node, nodes.Block):
            in_html = node.name == "html"
            text_body.append(emptied(node) if in_html else node)
            html_body.append(node if in_html else emptied(node))
        else:
            text_body.append(node)
            html_body.append(copy.deepcopy(node, keep))
    text, html = copy.copy(source), copy.copy(source)
    text.body, html.body = text_body, html_body
    return text, html


class _QuickCode:
    """The quick-path code of each mail template, shared by the renderers of the process.

    By file name: the source it was compiled from, and the text-mode and
    HTML-mode code (None when the template takes the long way).
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
            trees = _quick_trees(env._parse(source, _TEXT + file, file))
            if trees is not None:
                code = (
                    env._compile(env._generate(trees[0], _TEXT + file, file), file),
                    env._compile(env._generate(trees[1], _HTML + file, file), file),
                )
        except Exception:  # the long way reports it, with file and line
            code = None
        if len(self._code) >= self._LIMIT:
            self._code.clear()
        self._code[file] = (source, code)
        return code

    def clear(self) -> None:
        self._code.clear()


_QUICK = _QuickCode()


class _Mark(str):
    """An empty piece of output that marks where a block's output is.

    Equal only to itself, so ``list.index`` finds it among the pieces."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def __hash__(self) -> int:
        return id(self)


_SUBJECT_MARK, _TEXT_MARK = _Mark(), _Mark()


def _marked(
    block: Callable[[Context], Iterator[str]], mark: _Mark
) -> Callable[[Context], Iterator[str]]:
    """The block's output as one piece, after ``mark``."""

    def marked(context: Context) -> Iterator[str]:
        yield mark
        yield "".join(block(context))

    return marked


def _find(pieces: list[str], mark: _Mark) -> int:
    index = pieces.index(mark)
    if pieces[index] is not mark:  # an empty Markup piece compares equal: take the long way
        raise LookupError("block mark not found")
    return index


@dataclass(frozen=True, slots=True)
class _Quick:
    """One mail template, ready for the quick path in one language."""

    env: _MailEnvironment
    text: Template
    html: Template
    text_blocks: dict[str, Callable[[Context], Iterator[str]]]
    globals: dict[str, Any]
    """The environment's globals (the templates' globals add none)."""


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
                text = env.template_class.from_code(env, code[0], globals)
                html = env.template_class.from_code(env, code[1], globals)
                blocks = dict(text.blocks)
                blocks["subject"] = _marked(blocks["subject"], _SUBJECT_MARK)
                blocks["text"] = _marked(blocks["text"], _TEXT_MARK)
                found = _Quick(env, text, html, blocks, dict(globals))
            self._quick[key] = found
        return found if isinstance(found, _Quick) else None

    def _render(self, file: str, language: str, context: Mapping[str, Any]) -> RenderedMail:
        quick = self._quick_for(language, file)
        if quick is not None:
            try:
                return self._render_quick(quick, language, context)
            except Exception:  # noqa: S110 - the long way below reports it as ever
                pass
        return self._render_passes(file, language, dict(context))

    def _render_quick(
        self, quick: _Quick, language: str, context: Mapping[str, Any]
    ) -> RenderedMail:
        env = quick.env
        # The context as Template.render would make it (globals under the
        # variables), made once and shared by the passes: they only read it.
        parent = dict(quick.globals, **context)
        text_template = quick.text
        pieces = list(
            text_template.root_render_func(
                Context(env, parent, text_template.name, quick.text_blocks)
            )
        )
        # Each part is the whole output with the other block's piece left out
        # (the marks themselves are empty).
        at_subject, at_text = _find(pieces, _SUBJECT_MARK), _find(pieces, _TEXT_MARK)
        subject = "".join(pieces[:at_text]) + "".join(pieces[at_text + 2 :])
        subject = _WHITESPACE.sub(" ", subject).strip()
        if not subject:
            raise _EmptySubjectError
        text = _tidy_text("".join(pieces[:at_subject]) + "".join(pieces[at_subject + 2 :]))
        html_template = quick.html
        body = "".join(
            html_template.root_render_func(
                Context(env, parent, html_template.name, html_template.blocks)
            )
        ).strip()
        layout = layout_file(language)
        if layout in self._sources and not body[:20].lower().startswith(("<!doctype", "<html")):
            frame = self._template(language, _HTML + layout)
            values = dict(parent)
            values["body"] = Markup(body)  # noqa: S704 - escaped already
            values["subject"] = subject
            html = "".join(frame.root_render_func(Context(env, values, frame.name, frame.blocks)))
        else:
            html = body
        return RenderedMail(subject=subject, text=text, html=html.strip() + "\n")

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
