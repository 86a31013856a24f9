"""Every template the DK2020 workflow names renders, in Danish and English, wherever it is sent."""

from __future__ import annotations

import re

import pytest

from dk2020flow.definition.model import Workflow
from dk2020flow.notify import (
    MailKind,
    Renderer,
    sample_context,
    template_kinds,
)
from dk2020flow.service.participants import sample_of_data_set

from .conftest import ROOT, load_sources, load_workflow

_WORKFLOW = load_workflow()
_FIRST_MUNICIPALITY = sample_of_data_set(
    _WORKFLOW, ROOT / "workflows" / "data" / "dk2020_municipalities.csv"
)
"""København: the first of DK2020's data set."""
_USES = sorted(
    (template, kind) for template, kinds in template_kinds(_WORKFLOW).items() for kind in kinds
)


def test_every_template_named_by_the_workflow_exists_in_both_languages() -> None:
    names = set(re.findall(r"template:\s*([a-z0-9_]+)", _ROOT_YAML()))
    sources = load_sources()
    assert len(names) == 32
    assert names == set(template_kinds(_WORKFLOW))
    missing = [
        f"{name}.{lang}.jinja"
        for name in sorted(names)
        for lang in _WORKFLOW.languages
        if f"{name}.{lang}.jinja" not in sources
    ]
    assert missing == []


def _ROOT_YAML() -> str:
    from .conftest import ROOT

    return (ROOT / "workflows" / "dk2020.yaml").read_text("utf-8")


@pytest.mark.parametrize("language", ["da", "en"])
@pytest.mark.parametrize(("template", "kind"), _USES, ids=[f"{t}-{k}" for t, k in _USES])
def test_template_passes_check(
    renderer: Renderer, workflow: Workflow, template: str, kind: MailKind, language: str
) -> None:
    assert renderer.check(template, language, workflow, kind) == []


@pytest.mark.parametrize("language", ["da", "en"])
@pytest.mark.parametrize("sparse", [False, True], ids=["full", "sparse"])
@pytest.mark.parametrize(("template", "kind"), _USES, ids=[f"{t}-{k}" for t, k in _USES])
def test_template_renders_a_real_mail(
    renderer: Renderer,
    workflow: Workflow,
    template: str,
    kind: MailKind,
    language: str,
    sparse: bool,
) -> None:
    context = sample_context(
        workflow, language, kind, template=template, sparse=sparse, organisation=_FIRST_MUNICIPALITY
    )
    mail = renderer.render(template, language, context)
    assert mail.subject
    assert "\n" not in mail.subject
    assert "\r" not in mail.subject
    assert len(mail.subject) < 160
    organisation = "København Kommune" if language == "da" else "København Municipality"
    assert organisation in mail.text
    assert organisation in mail.html
    assert mail.html.startswith("<!DOCTYPE html>")
    assert f'lang="{language}"' in mail.html
    assert "dk2020-101" in mail.text or "dk2020-101" in mail.html
    # No template leaks Jinja syntax or Python reprs into the mail.
    for part in (mail.subject, mail.text, mail.html):
        assert "{{" not in part
        assert "{%" not in part
        assert "None" not in part
        assert "Undefined" not in part
    assert "\n\n\n" not in mail.text
    if kind is MailKind.EVENT:
        assert context["event"]["title"] in mail.text


@pytest.mark.parametrize(("template", "kind"), _USES, ids=[f"{t}-{k}" for t, k in _USES])
def test_danish_mails_are_danish(
    renderer: Renderer, workflow: Workflow, template: str, kind: MailKind
) -> None:
    mail = renderer.render(template, "da", sample_context(workflow, "da", kind, template=template))
    words = re.findall(r"[a-zæøå]+", mail.text.lower())
    english = {"the", "and", "your", "please", "deadline", "dear", "regards"}
    assert not english & set(words), english & set(words)
    assert {"og", "i"} & set(words)


def test_deadline_in_danish_date_format(renderer: Renderer, workflow: Workflow) -> None:
    context = sample_context(workflow, "da", MailKind.TIMER, template="decision_reminder")
    mail = renderer.render("decision_reminder", "da", context)
    assert "31. august 2020 kl. 23:59" in mail.text
    assert mail.subject.endswith("senest 31. august 2020")
    english = renderer.render(
        "decision_reminder",
        "en",
        sample_context(workflow, "en", MailKind.TIMER, template="decision_reminder"),
    )
    assert "31 August 2020 at 23:59" in english.text


def test_event_invitation_shows_weekday_and_time_span(
    renderer: Renderer, workflow: Workflow
) -> None:
    context = sample_context(workflow, "da", MailKind.EVENT, template="event_invitation")
    mail = renderer.render("event_invitation", "da", context)
    assert "torsdag den 26. november 2020 kl. 10:00–16:00" in mail.text
    assert mail.subject == "Invitation: Startkonference for runde 1, 26. november 2020"


def test_event_reminder_and_cancellation_say_so(renderer: Renderer, workflow: Workflow) -> None:
    context = sample_context(workflow, "da", MailKind.EVENT, template="event_invitation")
    reminder = dict(context, event={**context["event"], "reminder": True})
    assert renderer.render("event_invitation", "da", reminder).subject.startswith("Påmindelse:")
    cancelled = dict(context, event={**context["event"], "cancelled": True})
    mail = renderer.render("event_invitation", "da", cancelled)
    assert mail.subject.startswith("Aflyst:")
    assert "aflyse" in mail.text


def test_revision_mail_lists_only_requirements_not_met(
    renderer: Renderer, workflow: Workflow
) -> None:
    context = sample_context(workflow, "da", MailKind.STATE_ENTRY, template="revision_requested")
    mail = renderer.render("revision_requested", "da", context)
    assert "P1.3 Mål for reduktion, tilpasning og sideeffekter: delvist opfyldt" in mail.text
    assert "P1.1" not in mail.text


def test_revision_reminder_before_and_after_the_deadline(
    renderer: Renderer, workflow: Workflow
) -> None:
    context = sample_context(workflow, "da", MailKind.TIMER, template="revision_reminder")
    assert context["deadline"]["overdue"] is False
    before = renderer.render("revision_reminder", "da", context)
    assert before.subject.startswith("Påmindelse:")
    late = dict(context, deadline={**context["deadline"], "overdue": True})
    after = renderer.render("revision_reminder", "da", late)
    assert "Vi mangler stadig" in after.subject
