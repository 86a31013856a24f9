"""The starting point ``dk2020flow workflow init NAME DIR`` writes: a small, valid programme.

One case per organisation: it is invited, submits an application (reminded 5
business days before the deadline, and the secretariat told when it is 3
business days late), and the secretariat accepts it. Every template the
workflow names exists in each of its languages (Danish and English unless
``--languages`` says otherwise), so the result validates as it is and is ready
to be edited. A language other than Danish and English starts from the English
texts, marked to be translated.
"""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_LANGUAGES = ("da", "en")
DEFAULT_TIMEZONE = "UTC"

WORKFLOW = """\
# A new programme, started with `dk2020flow workflow init`. See docs/workflow-format.md.
# Templates: ../notifications/{name}/<template>.<{choices}>.jinja (docs/templates.md).
{untranslated}
workflow: {name}
version: "0.1"
title:
{title}
# The IANA zone local dates and times are read in (e.g. Europe/Brussels, America/Toronto).
timezone: {timezone}
{calendar}
languages: [{languages}]
# The participants: `workflow load` adds those of this file the database lacks.
organisations: data/{name}_organisations.csv
links:
  programme: "https://example.org/{name}"
  help_email: "{name}@example.org"
  help_name: "{secretariat}"

roles:
  contact_person:
    title: {contact_person}
    receives_mail: true
  secretariat:
    title: {the_secretariat}
    receives_mail: true
    name: {secretariat}
    email: "{name}@example.org"

fields:
  application_url: {{type: url, title: {application}}}

states:
  invited:
    initial: true
    title: {invited}
    on_entry:
      mail: {{template: invitation, to: contact_person}}
    timers:
      reply:
        description: The application is due 20 business days after the invitation.
        due: {{business_days: 20, time: "12:00"}}
        reminders:
          before: [{{business_days: 5}}]
          mail: {{template: reminder, to: contact_person}}
        escalate:
          after: {{business_days: 3}}
          to: secretariat
          mail: {{template: overdue, to: secretariat}}
  applied:
    title: {applied}
  accepted:
    title: {accepted}
    terminal: true
  withdrawn:
    title: {withdrawn}
    terminal: true

transitions:
  - trigger: apply
    from: invited
    to: applied
    roles: [contact_person, secretariat]
    requires: [application_url]
  - trigger: accept
    from: applied
    to: accepted
    roles: secretariat
    mail: {{template: accepted, to: contact_person}}
  - trigger: withdraw
    from: [invited, applied]
    to: withdrawn
    roles: [contact_person, secretariat]
"""

_TITLES = {
    "contact_person": ("Kontaktperson", "Contact person"),
    "the_secretariat": ("Sekretariatet", "The secretariat"),
    "application": ("Ansøgning", "Application"),
    "invited": ("Inviteret", "Invited"),
    "applied": ("Ansøgt", "Applied"),
    "accepted": ("Optaget", "Accepted"),
    "withdrawn": ("Trukket tilbage", "Withdrawn"),
}
"""The workflow's titles, in Danish and English."""

_MAILS = {
    "invitation": (
        (
            "Invitation til {{ title }} – {{ organisation.name }}",
            "Invitation: {{ title }} – {{ organisation.name }}",
        ),
        (
            "Kære {{ recipient.name }}\n\n{{ organisation.title }} er inviteret. "
            "Send ansøgningen via {{ links.programme }}.",
            "Dear {{ recipient.name }}\n\n{{ organisation.title }} is invited. "
            "Send the application via {{ links.programme }}.",
        ),
    ),
    "reminder": (
        ("Påmindelse – {{ organisation.name }}", "Reminder – {{ organisation.name }}"),
        (
            "Kære {{ recipient.name }}\n\nHusk ansøgningen fra {{ organisation.title }}.",
            "Dear {{ recipient.name }}\n\nPlease remember the application from "
            "{{ organisation.title }}.",
        ),
    ),
    "overdue": (
        (
            "Ansøgning mangler – {{ organisation.name }}",
            "Application overdue – {{ organisation.name }}",
        ),
        (
            "{{ organisation.title }} har ikke sendt ansøgningen (sag {{ case.reference }}).",
            "{{ organisation.title }} has not sent its application (case {{ case.reference }}).",
        ),
    ),
    "accepted": (
        ("Optaget – {{ organisation.name }}", "Accepted – {{ organisation.name }}"),
        (
            "Kære {{ recipient.name }}\n\n{{ organisation.title }} er optaget.",
            "Dear {{ recipient.name }}\n\n{{ organisation.title }} is accepted.",
        ),
    ),
}

_TRANSLATE = "{{# The English text, to translate into `{language}`. #}}\n"

_TEMPLATE = """\
{{% block subject %}}{subject}{{% endblock %}}

{{% block text %}}
{text}

{{{{ links.help_name }}}}
{{% endblock %}}

{{% block html %}}
<p>{html}</p>
<p>{{{{ links.help_name }}}}</p>
{{% endblock %}}
"""


def _in(language: str, texts: tuple[str, str]) -> str:
    """The Danish text in Danish, else the English one (to translate, in another language)."""
    return texts[0] if language == "da" else texts[1]


def _untranslated(languages: Sequence[str]) -> list[str]:
    return [language for language in languages if language not in DEFAULT_LANGUAGES]


def _calendar(country: str | None) -> str:
    """The ``calendar:`` lines: the country's public holidays, or a comment saying what to
    write (without one, weekends are the only closed days)."""
    if country is not None:
        return f"calendar:\n  country: {country}"
    return (
        "# Business days are weekdays; for a country's public holidays write its ISO code\n"
        "# (one the `holidays` package knows), e.g.\n"
        "# calendar:\n"
        "#   country: DE"
    )


def starter_workflow(
    name: str,
    languages: Sequence[str] = DEFAULT_LANGUAGES,
    *,
    timezone: str = DEFAULT_TIMEZONE,
    country: str | None = None,
) -> str:
    """The workflow file's text, its titles in each of ``languages``, in ``timezone`` and
    on ``country``'s calendar (None: weekends only)."""
    others = _untranslated(languages)
    note = (
        f"# The {', '.join(others)} texts (titles and templates) are the English ones: "
        "translate them.\n"
        if others
        else ""
    )
    titles = {
        key: "{" + ", ".join(f"{lang}: {_in(lang, texts)}" for lang in languages) + "}"
        for key, texts in _TITLES.items()
    }
    programme = ("Nyt program ({name})", "New programme ({name})")
    return WORKFLOW.format(
        name=name,
        choices="|".join(languages),
        untranslated=note,
        title="\n".join(
            f'  {lang}: "{_in(lang, programme).format(name=name)}"' for lang in languages
        ),
        languages=", ".join(languages),
        timezone=timezone,
        calendar=_calendar(country),
        secretariat="Sekretariatet" if "da" in languages else "The secretariat",
        **titles,
    )


EXAMPLE_ORGANISATIONS = (
    ("EX-1", "Northtown", "North"),
    ("EX-2", "Riverside", "South"),
    ("EX-3", "Hillcrest", "South"),
)
"""(code, name, region) of the starter's three made-up organisations."""


def starter_organisations(languages: Sequence[str], country: str | None = None) -> str:
    """The starter's data set (docs/data-model.md, "Organisations"): three example
    organisations to replace with the programme's own, in ``country`` ('' without one),
    speaking the first of ``languages``."""
    titles = ",".join(f"title_{language}" for language in languages)
    lines = [f"code,name,kind,country,region,language,{titles}"]
    for code, name, region in EXAMPLE_ORGANISATIONS:
        named = ",".join(f"{name} (example)" for _ in languages)
        lines.append(f"{code},{name},organisation,{country or ''},{region},{languages[0]},{named}")
    return "\n".join(lines) + "\n"


def starter_files(
    name: str,
    languages: Sequence[str] = DEFAULT_LANGUAGES,
    *,
    timezone: str = DEFAULT_TIMEZONE,
    country: str | None = None,
) -> dict[str, str]:
    """``{"workflow": text, "organisations": CSV text}`` and each template's text by file
    name (``invitation.da.jinja``), in each of ``languages`` (language codes, the first the
    workflow's default), in ``timezone`` and on ``country``'s calendar (None: weekends only)."""
    files = {
        "workflow": starter_workflow(name, languages, timezone=timezone, country=country),
        "organisations": starter_organisations(languages, country),
    }
    for template, (subjects, texts) in _MAILS.items():
        for language in languages:
            subject = _in(language, subjects).replace("{{ title }}", name)
            text = _in(language, texts)
            html = text.replace("\n\n", "</p>\n<p>")
            source = _TEMPLATE.format(subject=subject, text=text, html=html)
            if language not in DEFAULT_LANGUAGES:
                source = _TRANSLATE.format(language=language) + source
            files[f"{template}.{language}.jinja"] = source
    return files
