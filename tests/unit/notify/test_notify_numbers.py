"""The ``number`` filter: a number the mail's language's way, and the EU Mission's mail
that shows a city's inhabitants with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from dk2020flow.definition.model import Workflow
from dk2020flow.notify import MailKind, Renderer, TemplateRenderError, sample_context

ROOT = Path(__file__).resolve().parents[3]


def _mail(text: str) -> str:
    return (
        "{% block subject %}Tal{% endblock %}\n"
        f"{{% block text %}}\n{text}\n{{% endblock %}}\n"
        f"{{% block html %}}\n<p>{text}</p>\n{{% endblock %}}\n"
    )


def _number(value: object, language: str) -> str:
    sources = {f"t.{language}.jinja": _mail("{{ value|number }}")}
    mail = Renderer(sources, timezone="Europe/Brussels").render("t", language, {"value": value})
    shown = mail.text.strip()
    assert f"<p>{shown}</p>" in mail.html
    return shown


@pytest.mark.parametrize(
    ("language", "value", "shown"),
    [
        ("da", 180000, "180.000"),
        ("en", 180000, "180,000"),
        ("de", 1234567, "1.234.567"),
        ("en", 12, "12"),
        ("da", 2.5, "2,5"),
        ("en", " 180000 ", "180,000"),  # a number written as text
        ("en", "-3.25", "-3.25"),
    ],
)
def test_a_number_is_written_the_mails_languages_way(
    language: str, value: object, shown: str
) -> None:
    assert _number(value, language) == shown


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("many", "'many' is not a number"),
        (True, "the number filter needs a number, got bool"),
        ([1], "the number filter needs a number, got list"),
    ],
)
def test_what_is_not_a_number_is_a_problem_naming_the_file_and_line(
    value: object, message: str
) -> None:
    renderer = Renderer({"t.en.jinja": _mail("{{ value|number }}")}, timezone="UTC")
    with pytest.raises(TemplateRenderError) as caught:
        renderer.render("t", "en", {"value": value})
    assert caught.value.problem.file == "t.en.jinja"
    assert caught.value.problem.line == 3
    assert message in caught.value.problem.message


def test_the_eu_missions_mail_shows_the_inhabitants_as_a_number_in_english() -> None:
    data = YAML(typ="safe").load((ROOT / "workflows" / "eu_mission.yaml").read_text("utf-8"))
    workflow = Workflow.model_validate(data)
    folder = ROOT / "notifications" / "eu_mission"
    sources = {path.name: path.read_text("utf-8") for path in folder.glob("*.jinja")}
    renderer = Renderer(sources, timezone=workflow.timezone)
    context = sample_context(workflow, "en", MailKind.STATE_ENTRY, template="eoi_to_evaluate")
    context["case"] = {**context["case"], "data": {"population": 180000}}
    mail = renderer.render("eoi_to_evaluate", "en", context)
    assert "Inhabitants: 180,000" in mail.text
    assert "<td>180,000</td>" in mail.html
    assert "180000" not in mail.text + mail.html
