"""The link to the case in mail (``case_link``, ``parts.case_link``): shown when set, and
nothing at all (no line, no gap, no button) when the mail carries none."""

from __future__ import annotations

import pytest

from dk2020flow.definition.model import Workflow
from dk2020flow.notify import Renderer
from dk2020flow.notify.context import SAMPLE_CASE_LINK, MailKind, sample_context

ASKING = {
    "application_reminder": MailKind.TIMER,
    "application_changes_requested": MailKind.TRANSITION,
    "plan_reminder": MailKind.TIMER,
    "revision_requested": MailKind.STATE_ENTRY,
    "review_request": MailKind.STATE_ENTRY,
    "escalation": MailKind.TIMER,
}


@pytest.mark.parametrize("language", ["da", "en"])
@pytest.mark.parametrize("template", sorted(ASKING))
def test_a_mail_that_asks_to_act_carries_the_link(
    renderer: Renderer, workflow: Workflow, template: str, language: str
) -> None:
    context = sample_context(workflow, language, ASKING[template], template=template)
    assert context["case_link"] == SAMPLE_CASE_LINK
    mail = renderer.render(template, language, context)
    line = {"da": "Her kan du se sagen og handle på den", "en": "See the case and act on it here"}
    assert f"{line[language]}: {SAMPLE_CASE_LINK}\n" in mail.text
    assert f'<a href="{SAMPLE_CASE_LINK}"' in mail.html
    assert ("Åbn sagen" if language == "da" else "Open the case") in mail.html


@pytest.mark.parametrize("language", ["da", "en"])
@pytest.mark.parametrize("template", sorted(ASKING))
def test_without_a_link_the_mail_says_nothing_of_one(
    renderer: Renderer, workflow: Workflow, template: str, language: str
) -> None:
    full = sample_context(workflow, language, ASKING[template], template=template)
    mail = renderer.render(template, language, {**full, "case_link": ""})
    assert "sign-in/case" not in mail.text + mail.html
    assert "Her kan du se sagen" not in mail.text and "See the case" not in mail.text
    assert "\n\n\n" not in mail.text
    sparse = sample_context(workflow, language, ASKING[template], template=template, sparse=True)
    assert sparse["case_link"] == ""


def test_the_template_check_accepts_the_variable(renderer: Renderer, workflow: Workflow) -> None:
    for template, kind in ASKING.items():
        for language in ("da", "en"):
            assert renderer.check(template, language, workflow, kind) == []
