"""The greeting names a recipient once: a contact whose name is a title is not titled twice
(issue 15, point 12: "Kære borgmester Borgmesteren i København")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from dk2020flow.definition.model import Workflow
from dk2020flow.notify import MailKind, RecipientView, Renderer, sample_context, template_kinds

from .conftest import ROOT

WORKFLOWS = ("dk2020", "status_reports")


def _load(name: str) -> tuple[Workflow, Renderer]:
    data = YAML(typ="safe").load((ROOT / "workflows" / f"{name}.yaml").read_text("utf-8"))
    workflow = Workflow.model_validate(data)
    folder: Path = ROOT / "notifications" / name
    sources = {path.name: path.read_text("utf-8") for path in folder.glob("*.jinja")}
    return workflow, Renderer(sources, timezone=workflow.timezone)


_LOADED = {name: _load(name) for name in WORKFLOWS}
_USES = [
    (name, template, kind)
    for name in WORKFLOWS
    for template, kinds in sorted(template_kinds(_LOADED[name][0]).items())
    for kind in sorted(kinds)
]
_TWICE = re.compile(r"(?i)\b(borgmester|mayor)\b[ ,]+(the )?\1")

TITLE_NAMES = ["Borgmesteren i København", "Borgmester, København Kommune", "The Mayor of Aarhus"]


@pytest.mark.parametrize("language", ["da", "en"])
@pytest.mark.parametrize("name", TITLE_NAMES)
@pytest.mark.parametrize(
    ("workflow", "template", "kind"), _USES, ids=[f"{w}-{t}-{k}" for w, t, k in _USES]
)
def test_a_mayor_named_by_title_is_not_titled_twice(
    workflow: str, template: str, kind: MailKind, language: str, name: str
) -> None:
    definition, renderer = _LOADED[workflow]
    mayor = RecipientView(name=name, email="borgmester@koebenhavn.example.dk", role="mayor")
    context = sample_context(definition, language, kind, template=template, recipient=mayor)
    mail = renderer.render(template, language, context)
    for part in (mail.subject, mail.text, mail.html):
        assert not _TWICE.search(part), part[:300]


@pytest.mark.parametrize("workflow", WORKFLOWS)
@pytest.mark.parametrize(
    ("language", "name", "greeting"),
    [
        ("da", "Borgmesteren i København", "Kære borgmester,"),
        ("en", "Borgmesteren i København", "Dear Mayor,"),
        ("da", "Sophie Hæstorp Andersen", "Kære borgmester Sophie Hæstorp Andersen,"),
        ("en", "Sophie Hæstorp Andersen", "Dear Mayor Sophie Hæstorp Andersen,"),
    ],
)
def test_the_greeting_of_a_mayor(workflow: str, language: str, name: str, greeting: str) -> None:
    definition, renderer = _LOADED[workflow]
    template = "invitation" if workflow == "dk2020" else "farewell"
    mayor = RecipientView(name=name, email="borgmester@koebenhavn.example.dk", role="mayor")
    kind = next(iter(template_kinds(definition)[template]))
    context = sample_context(definition, language, kind, template=template, recipient=mayor)
    mail = renderer.render(template, language, context)
    assert mail.text.splitlines()[0] == greeting


@pytest.mark.parametrize(
    ("name", "role", "is_title"),
    [
        ("Borgmesteren i København", "mayor", True),
        ("The Mayor of Aarhus", "mayor", True),
        ("Jacob Bundsgaard", "mayor", False),
        ("", "mayor", False),
        ("Kontaktperson for DK2020", "contact_person", True),
        ("Mette Lindholm", "contact_person", False),
    ],
)
def test_the_context_says_whether_the_name_is_a_title(name: str, role: str, is_title: bool) -> None:
    definition, _ = _LOADED["dk2020"]
    recipient = RecipientView(name=name, email="x@aarhus.example.dk", role=role)
    context = sample_context(
        definition, "da", MailKind.STATE_ENTRY, template="invitation", recipient=recipient
    )
    assert context["recipient"]["name_is_title"] is is_title
