"""The starting point ``dk2020flow workflow init NAME DIR`` writes: a small, valid programme.

One case per municipality: it is invited, submits an application (reminded 5
business days before the deadline, and the secretariat told when it is 3
business days late), and the secretariat accepts it. Every template the
workflow names exists in Danish and English, so the result validates as it is
and is ready to be edited.
"""

from __future__ import annotations

WORKFLOW = """\
# A new programme, started with `dk2020flow workflow init`. See docs/workflow-format.md.
# Templates: ../notifications/{name}/<template>.<da|en>.jinja (docs/templates.md).

workflow: {name}
version: "0.1"
title:
  da: "Nyt program ({name})"
  en: "New programme ({name})"
timezone: Europe/Copenhagen
languages: [da, en]
links:
  programme: "https://example.dk/{name}"
  help_email: "{name}@example.dk"
  help_name: "Sekretariatet"

roles:
  contact_person:
    title: {{da: Kontaktperson, en: Contact person}}
    receives_mail: true
  secretariat:
    title: {{da: Sekretariatet, en: The secretariat}}
    receives_mail: true
    name: Sekretariatet
    email: "{name}@example.dk"

fields:
  application_url: {{type: url, title: {{da: Ansøgning, en: Application}}}}

states:
  invited:
    initial: true
    title: {{da: Inviteret, en: Invited}}
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
    title: {{da: Ansøgt, en: Applied}}
  accepted:
    title: {{da: Optaget, en: Accepted}}
    terminal: true
  withdrawn:
    title: {{da: Trukket tilbage, en: Withdrawn}}
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

_MAILS = {
    "invitation": (
        (
            "Invitation til {{ title }} – {{ municipality.name }}",
            "Invitation: {{ title }} – {{ municipality.name }}",
        ),
        (
            "Kære {{ recipient.name }}\\n\\n{{ municipality.title }} er inviteret. "
            "Send ansøgningen via {{ links.programme }}.",
            "Dear {{ recipient.name }}\\n\\n{{ municipality.title }} is invited. "
            "Send the application via {{ links.programme }}.",
        ),
    ),
    "reminder": (
        ("Påmindelse – {{ municipality.name }}", "Reminder – {{ municipality.name }}"),
        (
            "Kære {{ recipient.name }}\\n\\nHusk ansøgningen fra {{ municipality.title }}.",
            "Dear {{ recipient.name }}\\n\\nPlease remember the application from "
            "{{ municipality.title }}.",
        ),
    ),
    "overdue": (
        (
            "Ansøgning mangler – {{ municipality.name }}",
            "Application overdue – {{ municipality.name }}",
        ),
        (
            "{{ municipality.title }} har ikke sendt ansøgningen (sag {{ case.reference }}).",
            "{{ municipality.title }} has not sent its application (case {{ case.reference }}).",
        ),
    ),
    "accepted": (
        ("Optaget – {{ municipality.name }}", "Accepted – {{ municipality.name }}"),
        (
            "Kære {{ recipient.name }}\\n\\n{{ municipality.title }} er optaget.",
            "Dear {{ recipient.name }}\\n\\n{{ municipality.title }} is accepted.",
        ),
    ),
}

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


def starter_files(name: str) -> dict[str, str]:
    """``{"workflow": text}`` and each template's text by file name (``invitation.da.jinja``)."""
    files = {"workflow": WORKFLOW.format(name=name)}
    for template, (subjects, texts) in _MAILS.items():
        for index, language in enumerate(("da", "en")):
            subject = subjects[index].replace("{{ title }}", name)
            text = texts[index]
            html = text.replace("\\n\\n", "</p>\\n<p>")
            files[f"{template}.{language}.jinja"] = _TEMPLATE.format(
                subject=subject, text=text, html=html
            )
    return files
