"""Texts of the participant's own data (``web/routes/privacy.py``, "My data")."""

MESSAGES: dict[str, tuple[str, str]] = {
    "privacy.title": ("Mine data", "My data"),
    "privacy.link": ("Se de data, vi har om dig", "See the data we keep about you"),
    "privacy.intro": (
        "Her er alle de personoplysninger, programmet har om dig ({email}), og hvem der har "
        "set dem. Du kan hente det hele som en fil.",
        "This is all the personal data the programme keeps about you ({email}), and who "
        "looked at it. You can download all of it as one file.",
    ),
    "privacy.download": ("Hent mine data (JSON)", "Download my data (JSON)"),
    "privacy.contacts": ("Dine kontaktoplysninger", "Your contact details"),
    "privacy.contacts.none": ("Ingen kontaktrækker.", "No contact rows."),
    "privacy.role": ("Rolle", "Role"),
    "privacy.name": ("Navn", "Name"),
    "privacy.email": ("E-mail", "E-mail"),
    "privacy.language": ("Sprog", "Language"),
    "privacy.account": ("Din konto", "Your account"),
    "privacy.account.none": ("Ingen konto.", "No account."),
    "privacy.account.created": ("Oprettet", "Created"),
    "privacy.account.kind": ("Type", "Kind"),
    "privacy.sessions": ("Dine login-sessioner", "Your sessions"),
    "privacy.sessions.none": ("Ingen aktive sessioner.", "No active sessions."),
    "privacy.session.created": ("Startet", "Started"),
    "privacy.session.last_seen": ("Sidst set", "Last seen"),
    "privacy.session.device": ("Browser", "Browser"),
    "privacy.session.expires": ("Udløber", "Expires"),
    "privacy.mail": ("Mail sendt til dig", "Mail sent to you"),
    "privacy.mail.none": ("Ingen mail.", "No mail."),
    "privacy.mail.subject": ("Emne", "Subject"),
    "privacy.mail.status": ("Status", "Status"),
    "privacy.mail.created": ("Skrevet", "Written"),
    "privacy.events": ("Det, du har gjort i sagerne", "What you did on the cases"),
    "privacy.events.none": ("Ingen handlinger.", "No actions."),
    "privacy.event.case": ("Sag", "Case"),
    "privacy.event.at": ("Tidspunkt", "When"),
    "privacy.event.what": ("Handling", "Action"),
    "privacy.access": ("Hvem har set dine data", "Who looked at your data"),
    "privacy.access.intro": (
        "Hver visning af dine sager og af disse sider er logget: hvem, hvornår og hvordan. "
        "Ændringer står i sagernes historik.",
        "Every view of your cases and of these pages is logged: who, when and how. "
        "Changes are in the cases' history.",
    ),
    "privacy.access.none": ("Ingen har set dem endnu.", "Nobody has looked at them yet."),
    "privacy.access.at": ("Tidspunkt", "When"),
    "privacy.access.who": ("Hvem", "Who"),
    "privacy.access.what": ("Hvad", "What"),
    "privacy.access.via": ("Hvordan", "How"),
    "privacy.what.case": ("sag #{case}", "case #{case}"),
    "privacy.what.my_data": ("dine data", "your data"),
    "privacy.action.read": ("set", "viewed"),
    "privacy.action.export": ("hentet", "downloaded"),
    "privacy.kind.staff": ("sekretariatet", "the secretariat"),
    "privacy.kind.participant": ("deltager", "participant"),
    "privacy.kind.token": ("API-nøgle", "API token"),
    "privacy.kind.cli": ("kommandolinjen", "command line"),
    "privacy.forget": (
        "Vil du glemmes? Skriv til sekretariatet: dine kontaktoplysninger og din konto "
        "slettes, og sagernes historik viser ”(glemt person)” i stedet for dit navn.",
        "Want to be forgotten? Write to the secretariat: your contact details and account "
        "are deleted, and the cases' history shows “(forgotten person)” in place of your name.",
    ),
}
