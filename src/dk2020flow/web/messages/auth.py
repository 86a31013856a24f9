"""Texts of the sign-in pages, the account page and the users' administration."""

MESSAGES: dict[str, tuple[str, str]] = {
    # sign-in
    "auth.sign_in.title": ("Log ind", "Sign in"),
    "auth.sign_in.intro": (
        "Skriv din e-mailadresse. Vi sender dig et link, som logger dig ind, og en kode til "
        "at logge ind på en anden enhed.",
        "Enter your e-mail address. We will send you a link that signs you in, and a code for "
        "signing in on another device.",
    ),
    "auth.email": ("E-mailadresse", "E-mail address"),
    "auth.send_link": ("Send link", "Send link"),
    "auth.check_mail.title": ("Tjek din e-mail", "Check your e-mail"),
    "auth.check_mail.text": (
        "Hvis {email} har en konto, har vi sendt et link til at logge ind. Linket virker i "
        "{minutes} minutter og kun én gang.",
        "If {email} has an account, we have sent it a link to sign in. The link works for "
        "{minutes} minutes and only once.",
    ),
    "auth.code.heading": ("Log ind med koden fra mailen", "Sign in with the code from the mail"),
    "auth.code.intro": (
        "Har du mailen på en anden enhed? Skriv koden fra mailen her.",
        "Is the mail on another device? Enter the code from the mail here.",
    ),
    "auth.code": ("Kode", "Code"),
    "auth.code.hint": ("8 tegn, fx ABCD-EFGH", "8 characters, e.g. ABCD-EFGH"),
    "auth.code.submit": ("Log ind", "Sign in"),
    "auth.other_address": ("Brug en anden adresse", "Use another address"),
    "auth.link.title": ("Log ind på dk2020flow", "Sign in to dk2020flow"),
    "auth.link.text": (
        "Tryk på knappen for at logge ind. Linket kan kun bruges én gang.",
        "Press the button to sign in. The link can be used only once.",
    ),
    "auth.link.submit": ("Log ind", "Sign in"),
    "auth.problem.unknown.title": ("Linket virker ikke", "The link does not work"),
    "auth.problem.unknown": (
        "Linket til at logge ind er ikke gyldigt. Bed om et nyt link.",
        "The sign-in link is not valid. Ask for a new link.",
    ),
    "auth.problem.expired.title": ("Linket er udløbet", "The link has expired"),
    "auth.problem.expired": (
        "Linket til at logge ind er udløbet. Bed om et nyt link.",
        "The sign-in link has expired. Ask for a new link.",
    ),
    "auth.problem.used.title": ("Linket er brugt", "The link has been used"),
    "auth.problem.used": (
        "Linket til at logge ind er allerede brugt. Bed om et nyt link.",
        "The sign-in link has been used already. Ask for a new link.",
    ),
    "auth.problem.wrong_code": (
        "Koden er forkert eller udløbet. Tjek koden, eller bed om et nyt link.",
        "The code is wrong or has expired. Check it, or ask for a new link.",
    ),
    "auth.new_link": ("Bed om et nyt link", "Ask for a new link"),
    "auth.limited.title": ("For mange forsøg", "Too many attempts"),
    "auth.limited": (
        "Der har været for mange forsøg på at logge ind. Vent {minutes} minutter, og prøv igen.",
        "There have been too many attempts to sign in. Wait {minutes} minutes and try again.",
    ),
    "auth.error_prefix": ("Fejl:", "Error:"),
    # the account page
    "account.title": ("Min konto", "My account"),
    "account.details": ("{name}, {email}", "{name}, {email}"),
    "account.roles": ("Roller: {roles}", "Roles: {roles}"),
    "account.sessions": ("Dine logins", "Your sessions"),
    "account.sessions.caption": (
        "Browsere, hvor du er logget ind",
        "Browsers where you are signed in",
    ),
    "account.created": ("Logget ind", "Signed in"),
    "account.last_seen": ("Sidst set", "Last seen"),
    "account.device": ("Enhed", "Device"),
    "account.method": ("Måde", "Method"),
    "account.expires": ("Udløber", "Expires"),
    "account.action": ("Handling", "Action"),
    "account.this_one": ("Denne browser", "This browser"),
    "account.revoke": ("Log ud", "Sign out"),
    "account.revoke_label": ("Log ud af login fra {when}", "Sign out the session from {when}"),
    "account.revoked": ("Login afsluttet.", "Session ended."),
    "account.method.link": ("link", "link"),
    "account.method.code": ("kode", "code"),
    # users' administration
    "users.title": ("Brugere", "Users"),
    "users.caption": ("Konti i dk2020flow", "Accounts in dk2020flow"),
    "users.name": ("Navn", "Name"),
    "users.email": ("E-mail", "E-mail"),
    "users.roles": ("Roller", "Roles"),
    "users.language": ("Sprog", "Language"),
    "users.status": ("Status", "Status"),
    "users.created": ("Oprettet", "Created"),
    "users.action": ("Handling", "Action"),
    "users.active": ("Aktiv", "Active"),
    "users.disabled": ("Deaktiveret {when}", "Disabled {when}"),
    "users.disable": ("Deaktiver", "Disable"),
    "users.disable_label": ("Deaktiver {email}", "Disable {email}"),
    "users.you": ("dig", "you"),
    "users.add": ("Opret bruger", "Add a user"),
    "users.add.submit": ("Opret", "Add"),
    "users.add.roles_hint": ("Vælg mindst én rolle.", "Choose at least one role."),
    "users.added": (
        "{email} er oprettet og kan nu logge ind med sin e-mailadresse.",
        "{email} has been added and can now sign in with their e-mail address.",
    ),
    "users.disabled_done": (
        "{email} er deaktiveret og logget ud overalt.",
        "{email} has been disabled and signed out everywhere.",
    ),
    "users.lang.da": ("Dansk", "Danish"),
    "users.lang.en": ("Engelsk", "English"),
    "users.lang.programme": ("Programmets sprog", "The programme's language"),
    "users.role.admin": ("Administrator", "Administrator"),
    "users.role.read_only": ("Kun læse", "Read only"),
}
