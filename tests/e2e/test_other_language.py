"""A programme in French and German (#18): its workflow file and templates written by hand
in a folder of the test's own, validated, loaded and run with the installed command. The
mail each mayor gets is in the mayor's language, its dates written the French or the
German way (Babel's locale), and a language Babel does not know is a located DF063."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from dk2020_data import DK2020_MUNICIPALITIES

from .installed import InstalledCli

WORKFLOW = """\
workflow: fete
version: "1"
title: {fr: "Fête des communes", de: "Gemeindefest"}
timezone: Europe/Paris
calendar: {country: FR}
languages: [fr, de]
links:
  programme: "https://fete.example.eu"
  help_email: "fete@example.eu"
  help_name: "Secrétariat de la fête"
sender: {name: "Fête des communes", email: "fete@example.eu"}
roles:
  mayor:
    title: {fr: Maire, de: Bürgermeister}
    receives_mail: true
  secretariat:
    title: {fr: Secrétariat, de: Sekretariat}
states:
  invited:
    initial: true
    title: {fr: Invitée, de: Eingeladen}
    on_entry:
      mail: {template: invitation, to: mayor}
    timers:
      reply:
        title: {fr: Réponse, de: Antwort}
        due: {at: 2021-12-01T12:00}
        on_due: {trigger: close}
  closed:
    title: {fr: Close, de: Geschlossen}
    terminal: true
transitions:
  - {trigger: close, from: invited, to: closed, roles: secretariat}
"""

TEMPLATES = {
    "fr": """\
{% block subject %}{{ workflow.title }} : invitation de {{ organisation.name }}{% endblock %}
{% block text %}
Madame, Monsieur le {{ recipient.role_title }},

{% if deadline %}Répondez avant le {{ deadline.due_at|datetime }} \
({{ deadline.due_at|date("full") }}).{% endif %}
{% endblock %}
{% block html %}{% if deadline %}<p>Répondez avant le {{ deadline.due_at|date }}.</p>{% endif %}\
{% endblock %}
""",
    "de": """\
{% block subject %}{{ workflow.title }}: Einladung für {{ organisation.name }}{% endblock %}
{% block text %}
Sehr geehrte(r) {{ recipient.role_title }},

{% if deadline %}bitte antworten Sie bis {{ deadline.due_at|datetime }} \
({{ deadline.due_at|date("full") }}).{% endif %}
{% endblock %}
{% block html %}{% if deadline %}<p>Bitte antworten Sie bis {{ deadline.due_at|date }}.</p>\
{% endif %}{% endblock %}
""",
}

CONTACTS = """\
organisation,role,name,email,language
Aarhus,mayor,Jacob Bundsgaard,mayor@aarhus.example.dk,de
Odense,mayor,Peter Rahbæk Juel,mayor@odense.example.dk,fr
Aalborg,mayor,Lasse Frimand Jensen,mayor@aalborg.example.dk,en
"""


def _programme(folder: Path, workflow: str = WORKFLOW) -> Path:
    (folder / "workflows").mkdir(parents=True)
    templates = folder / "notifications" / "fete"
    templates.mkdir(parents=True)
    for language, text in TEMPLATES.items():
        (templates / f"invitation.{language}.jinja").write_text(text, encoding="utf-8")
    path = folder / "workflows" / "fete.yaml"
    path.write_text(workflow, encoding="utf-8")
    return path


@pytest.fixture
def cli(tmp_path: Path) -> InstalledCli:
    run = InstalledCli(tmp_path)
    run.env.update(
        DK2020FLOW_MAIL_TRANSPORT="folder",
        DK2020FLOW_MAIL_FOLDER=str(tmp_path / "mail"),
    )
    return run


def _mails(folder: Path) -> dict[str, EmailMessage]:
    """Every delivered mail, by its To address."""
    found: dict[str, EmailMessage] = {}
    for path in sorted(folder.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        found[message["To"].addresses[0].addr_spec] = message
    return found


def _text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def test_each_mayor_gets_the_mail_in_their_language_with_its_dates(
    cli: InstalledCli, tmp_path: Path
) -> None:
    path = _programme(tmp_path)
    checked = cli("workflow", "validate", str(path))
    assert "ok - fete 1" in checked.stdout and "2 template files" in checked.stdout

    cli("db", "upgrade")
    (tmp_path / "contacts.csv").write_text(CONTACTS, encoding="utf-8")
    cli("orgs", "import", str(DK2020_MUNICIPALITIES))  # the organisations the contacts name
    cli("participants", "import", "contacts.csv")
    cli("workflow", "load", str(path))
    for city in ("Aarhus", "Odense", "Aalborg"):
        cli("case", "open", "fete", city, "--now", "2021-11-02T10:00+01:00")
    cli("scheduler", "run", "--once", "--now", "2021-11-02T10:05+01:00")

    mails = _mails(tmp_path / "mail")
    assert set(mails) == {
        "mayor@aarhus.example.dk",
        "mayor@odense.example.dk",
        "mayor@aalborg.example.dk",
    }
    german = mails["mayor@aarhus.example.dk"]
    assert german["Content-Language"] == "de"
    assert str(german["Subject"]) == "Gemeindefest: Einladung für Aarhus"
    assert "Sehr geehrte(r) Bürgermeister," in _text(german)
    assert "bis 1. Dezember 2021, 12:00 (Mittwoch, 1. Dezember 2021)." in _text(german)

    french = mails["mayor@odense.example.dk"]
    assert french["Content-Language"] == "fr"
    assert str(french["Subject"]) == "Fête des communes : invitation de Odense"
    assert "Madame, Monsieur le Maire," in _text(french)
    assert "avant le 1 décembre 2021, 12:00 (mercredi 1 décembre 2021)." in _text(french)
    html = french.get_body(preferencelist=("html",))
    assert html is not None and "avant le 1 décembre 2021." in str(html.get_content())

    # English is not one of the programme's languages: its first one, French, is used.
    assert mails["mayor@aalborg.example.dk"]["Content-Language"] == "fr"


def test_a_language_babel_does_not_know_is_located(cli: InstalledCli, tmp_path: Path) -> None:
    path = _programme(tmp_path, WORKFLOW.replace("languages: [fr, de]", "languages: [fr, dk]"))
    refused = cli("workflow", "validate", str(path), code=2)
    assert (
        f"{path}:6:17: DF063 Babel has no locale for the language `dk` (its mail's dates and "
        "numbers are written with one) (hint: `dk` is a country code; did you mean the "
        "language `da`?)"
    ) in refused.stderr
    assert "DF060" not in refused.stderr  # no "missing" for the Danish templates it lacks
    assert "1 error" in refused.stderr


def test_init_writes_a_programme_in_the_languages_asked_for(
    cli: InstalledCli, tmp_path: Path
) -> None:
    cli("workflow", "init", "covenant", "new", "--languages", "en,fr")
    workflow = tmp_path / "new" / "workflows" / "covenant.yaml"
    text = workflow.read_text(encoding="utf-8")
    assert "languages: [en, fr]" in text
    assert "title: {en: Contact person, fr: Contact person}" in text
    templates = sorted(p.name for p in (tmp_path / "new" / "notifications" / "covenant").iterdir())
    assert templates == [
        f"{t}.{lang}.jinja"
        for t in ("accepted", "invitation", "overdue", "reminder")
        for lang in ("en", "fr")
    ]
    checked = cli("workflow", "validate", str(workflow))
    assert "8 template files" in checked.stdout

    refused = cli("workflow", "init", "other", "new2", "--languages", "en,xx", code=2)
    assert "Babel has no locale for the language `xx`" in refused.stderr
    assert not (tmp_path / "new2").exists()
