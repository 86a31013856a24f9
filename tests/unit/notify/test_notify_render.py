"""The renderer: sandbox, strictness, escaping, filters, and the problems check() reports."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dk2020flow.definition.model import Workflow
from dk2020flow.notify import (
    MailKind,
    Renderer,
    TemplateProblem,
    TemplateRenderError,
    sample_context,
)

CPH = ZoneInfo("Europe/Copenhagen")


def _mail(subject: str = "Hej", text: str = "x", html: str = "<p>x</p>") -> str:
    return (
        f"{{% block subject %}}{subject}{{% endblock %}}\n"
        f"{{% block text %}}\n{text}\n{{% endblock %}}\n"
        f"{{% block html %}}\n{html}\n{{% endblock %}}\n"
    )


def _renderer(**templates: str) -> Renderer:
    return Renderer(
        {f"{name}.da.jinja": src for name, src in templates.items()}, timezone="Europe/Copenhagen"
    )


def _context(workflow: Workflow, **changes: Any) -> dict[str, Any]:
    context = sample_context(workflow, "da", MailKind.STATE_ENTRY)
    for key, value in changes.items():
        section, _, field = key.partition("__")
        context[section] = {**context[section], field: value}
    return context


def test_html_part_escapes_case_data_and_text_part_does_not(workflow: Workflow) -> None:
    renderer = _renderer(
        t=_mail(text="{{ organisation.name }}", html="<p>{{ organisation.name }}</p>")
    )
    evil = '<script>alert("x")</script> & Co'
    mail = renderer.render("t", "da", _context(workflow, organisation__name=evil))
    assert "<script>" not in mail.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in mail.html
    assert mail.text.strip() == evil


def test_shipped_layout_escapes_case_data(renderer: Renderer, workflow: Workflow) -> None:
    context = sample_context(workflow, "da", MailKind.STATE_ENTRY, template="invitation")
    evil = {**context["organisation"], "title": "<b onmouseover=x>Aarhus</b>"}
    context["organisation"] = context["municipality"] = evil  # DK2020's templates' name
    context["case"] = {**context["case"], "reference": "<img src=x>"}
    mail = renderer.render("invitation", "da", context)
    assert "<b onmouseover" not in mail.html
    assert "<img src=x>" not in mail.html
    assert "&lt;b onmouseover=x&gt;Aarhus&lt;/b&gt;" in mail.html
    assert "<b onmouseover=x>Aarhus</b>" in mail.text


def test_partials_escape_in_html_mode(workflow: Workflow) -> None:
    renderer = Renderer(
        {
            "t.da.jinja": '{% import "_p.da.jinja" as p %}'
            + _mail(text="{{ p.name(recipient) }}", html="{{ p.name(recipient) }}"),
            "_p.da.jinja": "{% macro name(r) %}{{ r.name }}{% endmacro %}",
        },
        timezone="Europe/Copenhagen",
    )
    context = _context(workflow, recipient__name="<i>Mette</i>")
    mail = renderer.render("t", "da", context)
    assert "&lt;i&gt;Mette&lt;/i&gt;" in mail.html
    assert mail.text.strip() == "<i>Mette</i>"


def test_subject_is_one_line_even_with_line_breaks_in_case_data(workflow: Workflow) -> None:
    renderer = _renderer(t=_mail(subject="Til {{ organisation.name }}\n  om   DK2020"))
    context = _context(workflow, organisation__name="Aarhus\r\nBcc: evil@example.com")
    mail = renderer.render("t", "da", context)
    assert mail.subject == "Til Aarhus Bcc: evil@example.com om DK2020"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("due|date", "31. august 2020"),
        ("due|datetime", "31. august 2020 kl. 23:59"),
        ("due|time", "23:59"),
        ("due|date('full')", "mandag den 31. august 2020"),
        ("due|date('short')", "31.08.2020"),
        ("winter|datetime", "26. november 2020 kl. 10:00"),
        ("'2020-08-27'|date", "27. august 2020"),
        ("day|date", "1. maj 2021"),
    ],
)
def test_danish_date_filters_convert_utc_to_copenhagen(
    workflow: Workflow, expression: str, expected: str
) -> None:
    renderer = _renderer(t=_mail(text="{{ " + expression + " }}"))
    context = _context(workflow)
    # 21:59 UTC is 23:59 in Copenhagen in summer (CEST, +2); 09:00 UTC is 10:00 in winter (+1).
    context["due"] = dt.datetime(2020, 8, 31, 21, 59, tzinfo=dt.UTC)
    context["winter"] = dt.datetime(2020, 11, 26, 9, 0, tzinfo=dt.UTC)
    context["day"] = dt.date(2021, 5, 1)
    assert renderer.render("t", "da", context).text.strip() == expected


def test_english_date_filters(workflow: Workflow) -> None:
    renderer = Renderer(
        {"t.en.jinja": _mail(text="{{ due|date }} | {{ due|datetime }} | {{ due|date('full') }}")},
        timezone="Europe/Copenhagen",
    )
    context = sample_context(workflow, "en", MailKind.STATE_ENTRY)
    context["due"] = dt.datetime(2020, 8, 31, 21, 59, tzinfo=dt.UTC)
    assert renderer.render("t", "en", context).text.strip() == (
        "31 August 2020 | 31 August 2020 at 23:59 | Monday, 31 August 2020"
    )


@pytest.mark.parametrize(
    ("source", "line", "message"),
    [
        ("{{ ''.__class__ }}", 5, "not allowed in a template"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", 5, "not allowed in a template"),
        ("{{ case.data.clear() }}", 5, "not allowed in a template"),
        ("{{ cohorts.append(1) }}", 5, "not allowed in a template"),
        ("{{ lipsum.__globals__ }}", 5, "not allowed in a template"),
        ("{{ nope }}", 5, "undefined variable: 'nope' is undefined"),
        ("{{ case.nope }}", 5, "undefined variable"),
        ("{% if %}", 5, "syntax error"),
        ("{{ 'not a date'|date }}", 5, "not an ISO 8601 date"),
        ("{{ 1 / 0 }}", 5, "division by zero"),
    ],
)
def test_check_reports_problems_with_file_and_line(
    workflow: Workflow, source: str, line: int, message: str
) -> None:
    renderer = _renderer(bad=_mail(text="\n\n" + source))
    problems = renderer.check("bad", "da", workflow, MailKind.STATE_ENTRY)
    assert len(problems) == 1
    problem = problems[0]
    assert problem.file == "bad.da.jinja"
    assert problem.line == line, problem
    assert message in problem.message, problem
    with pytest.raises(TemplateRenderError) as raised:
        renderer.render("bad", "da", sample_context(workflow, "da", MailKind.STATE_ENTRY))
    assert str(raised.value).startswith(f"bad.da.jinja:{line}: ")


def test_check_reports_missing_blocks_and_empty_subject(workflow: Workflow) -> None:
    renderer = _renderer(
        noblock="{% block subject %}Hej{% endblock %}{% block text %}x{% endblock %}",
        empty=_mail(subject="  {% if false %}x{% endif %} "),
    )
    [missing] = renderer.check("noblock", "da", workflow, MailKind.STATE_ENTRY)
    assert "missing block(s): html" in missing.message
    [empty] = renderer.check("empty", "da", workflow, MailKind.STATE_ENTRY)
    assert empty.message == "the subject is empty"


def test_check_reports_a_missing_file(workflow: Workflow) -> None:
    assert _renderer().check("gone", "da", workflow, MailKind.TIMER) == [
        TemplateProblem("gone.da.jinja", None, "the template file gone.da.jinja is missing")
    ]


def test_check_finds_unguarded_optional_variables(workflow: Workflow) -> None:
    renderer = _renderer(
        unguarded=_mail(text="{{ cohort.title }}"),
        guarded=_mail(text="{% if cohort %}{{ cohort.title }}{% endif %}"),
        data=_mail(text="{{ case.data.plan_url }}"),
        data_ok=_mail(text="{{ case.data.get('plan_url', '') }}"),
    )
    [problem] = renderer.check("unguarded", "da", workflow, MailKind.STATE_ENTRY)
    assert problem.line == 3
    assert "when optional data is missing" in problem.message
    assert renderer.check("guarded", "da", workflow, MailKind.STATE_ENTRY) == []
    assert renderer.check("data", "da", workflow, MailKind.STATE_ENTRY) != []
    assert renderer.check("data_ok", "da", workflow, MailKind.STATE_ENTRY) == []


def test_syntax_error_in_a_partial_names_the_partial(workflow: Workflow) -> None:
    renderer = Renderer(
        {
            "t.da.jinja": '{% import "_p.da.jinja" as p %}' + _mail(),
            "_p.da.jinja": "{% macro x() %}\n{% for %}\n{% endmacro %}",
        },
        timezone="Europe/Copenhagen",
    )
    [problem] = renderer.check("t", "da", workflow, MailKind.STATE_ENTRY)
    assert problem.file == "_p.da.jinja"
    assert problem.line == 2


def test_top_level_set_is_visible_in_every_block(workflow: Workflow) -> None:
    renderer = _renderer(
        t="{% set who = 'Aarhus' %}"
        + _mail(subject="{{ who }}", text="{{ who }}", html="{{ who }}")
    )
    mail = renderer.render("t", "da", _context(workflow))
    assert (mail.subject, mail.text.strip()) == ("Aarhus", "Aarhus")
    assert mail.html.strip() == "Aarhus"


def test_layout_wraps_the_html_block_unless_it_is_a_whole_document(workflow: Workflow) -> None:
    layout = "<html><title>{{ subject }}</title><body>{{ body }}</body></html>"
    renderer = Renderer(
        {
            "_layout.da.jinja": layout,
            "part.da.jinja": _mail(subject="S & T", html="<p>{{ organisation.name }}</p>"),
            "whole.da.jinja": _mail(html="<!DOCTYPE html><html><p>own</p></html>"),
        },
        timezone="Europe/Copenhagen",
    )
    context = _context(workflow, organisation__name="A<b")
    part = renderer.render("part", "da", context)
    assert part.html.strip() == "<html><title>S &amp; T</title><body><p>A&lt;b</p></body></html>"
    assert renderer.render("whole", "da", context).html.strip() == (
        "<!DOCTYPE html><html><p>own</p></html>"
    )


def test_has_and_dict_keys_win_over_dict_methods(renderer: Renderer, workflow: Workflow) -> None:
    assert renderer.has("invitation", "da")
    assert not renderer.has("invitation", "de")
    checklist = _renderer(
        t=_mail(text="{{ checklist.items|length }} {{ checklist['items'][0].id }}")
    )
    context = sample_context(workflow, "da", MailKind.STATE_ENTRY, template="screening_request")
    assert checklist.render("t", "da", context).text.strip() == "16 P1.1"


def test_render_of_missing_template_is_a_clear_error(
    renderer: Renderer, workflow: Workflow
) -> None:
    with pytest.raises(TemplateRenderError, match=r"no template nope\.da\.jinja"):
        renderer.render("nope", "da", sample_context(workflow, "da", MailKind.TIMER))


# ----------------------------------------------------------------------------- one pass per mode
#
# A plain template (three blocks side by side) is rendered in two passes, one
# per mode; anything else, and every failing render, takes one pass per block.
# Both must give the same bytes and report the same problems.


def _both_ways(renderer: Renderer, template: str, context: dict[str, Any]) -> list[Any]:
    """The mail (or the problem) the quick path and the long way give."""
    file = f"{template}.da.jinja"
    results: list[Any] = []
    for way in ("quick", "long"):
        try:
            if way == "quick":
                quick = renderer._quick_for("da", file)
                assert quick is not None, f"{file} takes the long way"
                results.append(renderer._render_quick(quick, "da", context))
            else:
                results.append(renderer._render_passes(file, "da", dict(context)))
        except Exception as exc:  # compared below
            results.append(type(exc).__name__)
    return results


def test_shipped_templates_take_the_quick_path_and_give_the_same_mail(
    renderer: Renderer, workflow: Workflow, sources: dict[str, str]
) -> None:
    names = sorted({name.split(".")[0] for name in sources if not name.startswith("_")})
    for language in workflow.languages:
        for name in names:
            file = f"{name}.{language}.jinja"
            quick = renderer._quick_for(language, file)
            assert quick is not None, f"{file} takes the long way"
            for kind in MailKind:
                for sparse in (False, True):
                    context = sample_context(workflow, language, kind, template=name, sparse=sparse)
                    try:
                        expected: Any = renderer._render_passes(file, language, dict(context))
                    except Exception as exc:  # sparse samples may fail
                        expected = type(exc).__name__
                    try:
                        got: Any = renderer._render_quick(quick, language, context)
                    except Exception as exc:  # compared below
                        got = type(exc).__name__
                    assert got == expected, (file, kind, sparse)


@pytest.mark.parametrize(
    "source",
    [
        # text outside the blocks is in every part (then tidied away, or not)
        "Før\n" + _mail(subject="S", text="T", html="H") + "Efter {{ organisation.name }}",
        # blocks in any order; a set between blocks is seen only by later blocks
        "{% block html %}<p>{{ x is defined }}</p>{% endblock %}{% set x = 1 %}"
        "{% block text %}{{ x }}{% endblock %}{% block subject %}{{ x }}{% endblock %}",
        "{% block text %}{{ x is defined }}{% endblock %}{% set x = 1 %}"
        "{% block subject %}{{ x }}{% endblock %}{% block html %}{{ x }}{% endblock %}",
        # top-level macros and assignments, run once for subject and text
        "{% macro m(s) %}<{{ s }}>{% endmacro %}{% set who = organisation.name ~ '&' %}"
        + _mail(subject="{{ m(who) }}", text="{{ m(who) }}", html="{{ m(who) }}"),
        # a constant folded differently in each mode
        '{% set c = "a<b"|replace("<", "&") %}'
        + _mail(subject="{{ c }}", text="{{ c ~ ('<'|e) }}", html="{{ c }}{{ '<'|e }}"),
        _mail(subject="{{ '' }}x", text="{{ '' }}{{ '' }}", html="{{ ''|safe }}"),
    ],
)
def test_quick_path_gives_what_the_long_way_gives(workflow: Workflow, source: str) -> None:
    renderer = _renderer(t=source)
    quick, long = _both_ways(renderer, "t", _context(workflow, organisation__name="<A&B>"))
    assert quick == long
    assert renderer.render("t", "da", _context(workflow, organisation__name="<A&B>")) == long


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # self.<block>() renders the other blocks empty, as before
        (_mail(subject="S{{ self.text() }}", text="T{{ self.subject() }}", html="H"), ("S", "T")),
        # a namespace set in one block is not seen by the next
        (
            "{% set ns = namespace(n=0) %}"
            + _mail(subject="{% set ns.n = ns.n + 1 %}{{ ns.n }}", text="{{ ns.n }}"),
            ("1", "0"),
        ),
        # a joiner starts afresh in every block
        (
            "{% set j = joiner('+') %}" + _mail(subject="{{ j() }}a", text="{{ j() }}b"),
            ("a", "b"),
        ),
        # nested blocks
        (_mail(text="{% block inner %}I{% endblock %}"), ("Hej", "I")),
    ],
)
def test_templates_that_could_share_state_take_the_long_way(
    workflow: Workflow, source: str, expected: tuple[str, str]
) -> None:
    renderer = _renderer(t=source)
    assert renderer._quick_for("da", "t.da.jinja") is None
    mail = renderer.render("t", "da", _context(workflow))
    assert (mail.subject, mail.text.strip()) == expected


def test_a_partial_holding_a_joiner_sends_every_template_the_long_way(workflow: Workflow) -> None:
    renderer = Renderer(
        {
            "t.da.jinja": '{% import "_p.da.jinja" as p %}'
            + _mail(subject="S{{ p.j() }}", text="T{{ p.j() }}", html="H{{ p.j() }}"),
            "_p.da.jinja": "{% set j = joiner('+') %}",
        },
        timezone="Europe/Copenhagen",
    )
    assert renderer._quick_for("da", "t.da.jinja") is None
    # The partial's module is made once per mode, so its joiner carries on from
    # block to block and render to render.
    first, second = (renderer.render("t", "da", _context(workflow)) for _ in range(2))
    assert (first.subject, first.text.strip(), first.html.strip()) == ("S", "T+", "H")
    assert (second.subject, second.text.strip(), second.html.strip()) == ("S+", "T+", "H+")


@pytest.mark.parametrize(
    ("source", "line", "message"),
    [
        # an error after the subject block is reported for the subject, as before
        (_mail(text="{{ nope_text }}") + "\n{{ nope_after }}", 9, "'nope_after' is undefined"),
        # with the text block first, the subject's error is still the one reported
        (
            "{% block text %}{{ nope_text }}{% endblock %}\n"
            "{% block subject %}{{ nope_subject }}{% endblock %}\n"
            "{% block html %}x{% endblock %}",
            2,
            "'nope_subject' is undefined",
        ),
        (_mail(html="{{ nope_html }}"), 6, "'nope_html' is undefined"),
        (_mail(html="{% for %}"), 6, "syntax error"),
    ],
)
def test_problems_are_reported_as_the_long_way_reports_them(
    workflow: Workflow, source: str, line: int, message: str
) -> None:
    renderer = _renderer(t=source)
    with pytest.raises(TemplateRenderError) as raised:
        renderer.render("t", "da", _context(workflow))
    problem = raised.value.problem
    assert (problem.file, problem.line) == ("t.da.jinja", line), problem
    assert message in problem.message


def test_a_template_changed_under_the_same_name_is_compiled_again(workflow: Workflow) -> None:
    first = _renderer(t=_mail(subject="Første"))
    second = _renderer(t=_mail(subject="Anden"))
    assert first.render("t", "da", _context(workflow)).subject == "Første"
    assert second.render("t", "da", _context(workflow)).subject == "Anden"
    assert first.render("t", "da", _context(workflow)).subject == "Første"
