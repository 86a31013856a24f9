"""Languages beyond Danish and English (#18): a programme, a contact or a simulated contact
may have any language Babel has a locale for; an unknown one is located (DF013 for its
form, DF063 for a code Babel does not know), and the mail's dates are written in it."""

from __future__ import annotations

import datetime as dt
import itertools
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from babel import Locale, UnknownLocaleError
from definition_helpers import HELLO

from dk2020_data import dk2020_municipalities
from dk2020flow.definition import DefinitionError, load_workflow_text
from dk2020flow.definition.model import (
    Workflow,
    babel_knows,
    babel_locale_name,
    is_language,
    language_shape_problem,
)
from dk2020flow.definition.schema_export import workflow_schema
from dk2020flow.definition.starter import starter_files
from dk2020flow.definition.template_check import language_name
from dk2020flow.notify import MailKind, Renderer, sample_context
from dk2020flow.service.participants import parse_participants_csv
from dk2020flow.simulate.profile import parse_behaviour
from dk2020flow.store.errors import ParticipantsError

MINI = """workflow: mini
version: "1"
title: {fr: Mini, de: Mini}
roles:
  clerk: {receives_mail: true}
languages: LANGUAGES
states:
  open:
    initial: true
    on_entry:
      mail: {template: hello, to: clerk}
  done: {terminal: true}
transitions:
  - {trigger: finish, from: open, to: done, roles: clerk}
"""


def _mini(languages: str) -> str:
    return MINI.replace("LANGUAGES", languages)


def _problems(text: str, templates: dict[str, str]) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        load_workflow_text(text, "wf.yaml", templates=templates)
    return [str(d) for d in caught.value.diagnostics]


def _parses(code: str) -> bool:
    try:
        Locale.parse(code)
    except (UnknownLocaleError, ValueError):
        return False
    return True


def test_a_language_is_two_lower_case_letters_babel_has_a_locale_for() -> None:
    for letters in itertools.product(string.ascii_lowercase, repeat=2):
        code = "".join(letters)
        assert babel_knows(code) is _parses(code), code
    assert is_language("de") and is_language("fr") and is_language("da")
    for wrong in ("DE", "De", "de_DE", "deu", "d", "", " de", "de\n", None, 7, "xx", "dk"):
        assert not is_language(wrong), wrong


def test_danish_and_english_keep_their_locales_and_others_are_their_own() -> None:
    assert [babel_locale_name(code) for code in ("da", "en", "de", "fr")] == [
        "da_DK",
        "en_GB",
        "de",
        "fr",
    ]
    assert [language_name(code) for code in ("da", "en", "fr", "xx")] == [
        "Danish",
        "English",
        "French",
        "xx",
    ]


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("de", None),
        ("DE", "write the language `DE` in lower case: `de`"),
        ("english", "`english` is not a language code: write two lower-case letters"),
        ("de_DE", "`de_DE` is not a language code"),
    ],
)
def test_the_form_of_a_language_code(code: str, problem: str | None) -> None:
    found = language_shape_problem(code)
    assert found == problem if problem is None else found is not None and problem in found


def test_a_programme_in_french_and_german_validates_with_its_templates() -> None:
    templates = {"hello.fr.jinja": HELLO, "hello.de.jinja": HELLO}
    loaded = load_workflow_text(_mini("[fr, de]"), "wf.yaml", templates=templates)
    assert loaded.workflow.languages == ("fr", "de")
    assert loaded.workflow.default_language == "fr"


def test_every_language_needs_its_templates_named_in_english() -> None:
    found = _problems(_mini("[fr, de, nb]"), {"hello.fr.jinja": HELLO})
    assert [p.split(": ", 1)[1] for p in found] == [
        "DF060 template `hello` has no German version "
        "(hint: create hello.de.jinja with blocks subject, text and html)",
        "DF060 template `hello` has no Norwegian Bokmål version "
        "(hint: create hello.nb.jinja with blocks subject, text and html)",
    ]


def test_a_code_babel_does_not_know_is_df063_at_the_code_and_its_templates_are_not_checked() -> (
    None
):
    found = _problems(_mini("[fr, dk, xx]"), {"hello.fr.jinja": HELLO})
    assert found == [
        "wf.yaml:6:17: DF063 Babel has no locale for the language `dk` (its mail's dates and "
        "numbers are written with one) (hint: `dk` is a country code; did you mean the "
        "language `da`?)",
        "wf.yaml:6:21: DF063 Babel has no locale for the language `xx` (its mail's dates and "
        "numbers are written with one) (hint: write an ISO 639-1 code Babel has a locale for, "
        "such as da, en, de, fr or nl)",
    ]


def test_a_badly_written_code_is_df013_at_the_code_and_the_templates_wait() -> None:
    found = _problems(_mini("[fr, FR, français]"), {})
    assert found == [
        "wf.yaml:6:17: DF013 languages[1]: write the language `FR` in lower case: `fr` "
        "(hint: see docs/workflow-format.md for this key)",
        "wf.yaml:6:21: DF013 languages[2]: `français` is not a language code: write two "
        "lower-case letters (ISO 639-1), such as da, en, de or fr "
        "(hint: see docs/workflow-format.md for this key)",
    ]
    twice = _problems(_mini("[fr, de, fr]"), {})
    assert twice == [
        "wf.yaml:6:12: DF013 languages: the language `fr` is listed twice "
        "(hint: see docs/workflow-format.md for this key)"
    ]


def test_a_texts_keys_are_language_codes_one_diagnostic_for_one_mistake() -> None:
    text = _mini("[fr, de]").replace("title: {fr: Mini, de: Mini}", "title: {fr: Mini, DE: Mini}")
    templates = {"hello.fr.jinja": HELLO, "hello.de.jinja": HELLO}
    assert _problems(text, templates) == [
        "wf.yaml:3:8: DF013 title: write the language `DE` in lower case: `de` (a text's keys "
        "are languages: {da: …, en: …}) (hint: see docs/workflow-format.md for this key)"
    ]


def test_the_json_schema_follows_the_model() -> None:
    schema = workflow_schema()
    languages = schema["properties"]["languages"]
    assert languages["default"] == ["da", "en"]
    assert languages["items"]["pattern"] == "^[a-z]{2}$"
    title = schema["properties"]["title"]["anyOf"]
    assert {"type": "string"} in title
    (mapping,) = [branch for branch in title if branch.get("type") == "object"]
    assert mapping["propertyNames"] == {"pattern": "^[a-z]{2}$"}
    # Every text of the format is typed the same way, wherever it sits.
    texts = list(_texts(schema))
    assert len(texts) > 10
    assert all(t["propertyNames"] == {"pattern": "^[a-z]{2}$"} for t in texts)


def _texts(node: object) -> Iterator[dict[str, Any]]:
    """The mapping branch of every ``Text`` (text, or text by language) in the schema."""
    if isinstance(node, dict):
        branches = node.get("anyOf", [])
        if {"type": "string"} in branches:
            for branch in branches:
                if branch.get("additionalProperties") == {"type": "string"}:
                    yield branch
        for value in node.values():
            yield from _texts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _texts(value)


def test_the_mails_dates_are_in_its_language() -> None:
    workflow = Workflow.model_validate(
        {
            "workflow": "mini",
            "version": "1",
            "title": "Mini",
            "timezone": "Europe/Paris",
            "languages": ["fr", "de", "da", "en"],
            "roles": {"clerk": {"receives_mail": True}},
            "states": {"open": {"initial": True}},
        }
    )
    source = (
        "{% block subject %}{{ when|date }}{% endblock %}"
        "{% block text %}{{ when|datetime }} | {{ when|date('full') }} | "
        "{{ when|datetime('short') }}{% endblock %}"
        "{% block html %}{% endblock %}"
    )
    languages = ("fr", "de", "da", "en")
    renderer = Renderer({f"t.{lang}.jinja": source for lang in languages}, timezone="Europe/Paris")
    when = dt.datetime(2021, 12, 1, 11, 30, tzinfo=dt.UTC)
    written = {}
    for language in languages:
        context = sample_context(workflow, language, MailKind.STATE_ENTRY)
        mail = renderer.render("t", language, {**context, "when": when})
        written[language] = (mail.subject, mail.text.strip())
    assert written == {
        "fr": (
            "1 décembre 2021",
            "1 décembre 2021, 12:30 | mercredi 1 décembre 2021 | 01/12/2021 12:30",
        ),
        "de": (
            "1. Dezember 2021",
            "1. Dezember 2021, 12:30 | Mittwoch, 1. Dezember 2021 | 01.12.21, 12:30",
        ),
        "da": (
            "1. december 2021",
            "1. december 2021 kl. 12:30 | onsdag den 1. december 2021 | 01.12.2021 kl. 12:30",
        ),
        "en": (
            "1 December 2021",
            "1 December 2021 at 12:30 | Wednesday, 1 December 2021 | 01/12/2021 at 12:30",
        ),
    }


def test_init_writes_a_valid_programme_in_any_languages() -> None:
    for languages in (("en", "fr"), ("de",), ("da", "en"), ("fr", "da")):
        files = starter_files("covenant", languages)
        workflow = files.pop("workflow")
        assert files.pop("organisations").startswith("code,name,kind,country,")
        assert sorted(files) == sorted(
            f"{t}.{lang}.jinja"
            for t in ("invitation", "reminder", "overdue", "accepted")
            for lang in languages
        )
        loaded = load_workflow_text(workflow, "covenant.yaml", templates=files)
        assert loaded.workflow.languages == languages
    french = starter_files("covenant", ("en", "fr"))
    assert "# The fr texts (titles and templates) are the English ones" in french["workflow"]
    assert french["invitation.fr.jinja"].startswith("{# The English text, to translate into `fr`.")
    assert (
        "Dear {{ recipient.name }}\n\n{{ organisation.title }} is invited."
        in (french["invitation.en.jinja"])
    )


def test_a_contact_of_any_language_is_imported(tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text(
        "organisation,role,name,email,language\n"
        "751,mayor,Anne,anne@aarhus.example.dk,de\n"
        "461,mayor,Bo,bo@odense.example.dk,FR\n"
        "101,mayor,Cai,cai@kk.example.dk,da\n",
        encoding="utf-8",
    )
    _, contacts = parse_participants_csv(path, known=dk2020_municipalities())
    assert [c.language for c in contacts] == ["de", "fr", "da"]
    path.write_text(
        "organisation,role,name,email,language\n"
        "751,mayor,Anne,anne@aarhus.example.dk,dk\n"
        "461,mayor,Bo,bo@odense.example.dk,\n",
        encoding="utf-8",
    )
    with pytest.raises(ParticipantsError) as caught:
        parse_participants_csv(path, known=dk2020_municipalities())
    assert [(p.line, p.message) for p in caught.value.problems] == [
        (
            2,
            "language must be a language code (ISO 639-1, two letters, such as da, en, de "
            "or fr), got 'dk'",
        ),
        (3, "language is empty (a language code: da, en, de or fr)"),
    ]


PROFILE = """\
profile: test
workflow: mini
contacts:
  clerk: {name: "Clerk of {organisation}", email: "clerk@{slug}.example.eu"LANGUAGE}
"""


def test_a_simulated_contact_speaks_the_workflows_first_language_unless_told() -> None:
    workflow = load_workflow_text(
        _mini("[fr, de]"),
        "wf.yaml",
        templates={"hello.fr.jinja": HELLO, "hello.de.jinja": HELLO},
    ).workflow
    unsaid = parse_behaviour(PROFILE.replace("LANGUAGE", ""), "p.yaml").contacts["clerk"]
    assert unsaid.language_for(workflow) == "fr"
    said = parse_behaviour(PROFILE.replace("LANGUAGE", ", language: de"), "p.yaml")
    assert said.contacts["clerk"].language_for(workflow) == "de"
    with pytest.raises(Exception, match="'xx' is not a language code") as caught:
        parse_behaviour(PROFILE.replace("LANGUAGE", ", language: xx"), "p.yaml")
    assert "p.yaml:4:" in str(caught.value)
