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

WORKFLOW = """\
# A new programme, started with `dk2020flow workflow init`. See docs/workflow-format.md.
# Templates: ../notifications/{name}/<template>.<{choices}>.jinja (docs/templates.md).
{untranslated}
workflow: {name}
version: "0.1"
title:
{title}
timezone: Europe/Copenhagen
languages: [{languages}]
# The participants: `workflow load` adds those of this file the database lacks.
organisations: data/{name}_organisations.csv
links:
  programme: "https://example.dk/{name}"
  help_email: "{name}@example.dk"
  help_name: "{secretariat}"

roles:
  contact_person:
    title: {contact_person}
    receives_mail: true
  secretariat:
    title: {the_secretariat}
    receives_mail: true
    name: {secretariat}
    email: "{name}@example.dk"

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


def starter_workflow(name: str, languages: Sequence[str] = DEFAULT_LANGUAGES) -> str:
    """The workflow file's text, its titles in each of ``languages``."""
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
        secretariat="Sekretariatet" if "da" in languages else "The secretariat",
        **titles,
    )


ORGANISATIONS = """\
code,name,kind,country,region,language,title_da,title_en
751,Aarhus,municipality,DK,Midtjylland,da,Aarhus Kommune,Aarhus Municipality
461,Odense,municipality,DK,Syddanmark,da,Odense Kommune,Odense Municipality
851,Aalborg,municipality,DK,Nordjylland,da,Aalborg Kommune,Aalborg Municipality
"""
"""The starter's data set (docs/data-model.md, "Organisations"): three to replace with
the programme's own."""


def starter_files(name: str, languages: Sequence[str] = DEFAULT_LANGUAGES) -> dict[str, str]:
    """``{"workflow": text, "organisations": CSV text}`` and each template's text by file
    name (``invitation.da.jinja``), in each of ``languages`` (language codes, the first the
    workflow's default)."""
    files = {"workflow": starter_workflow(name, languages), "organisations": ORGANISATIONS}
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
