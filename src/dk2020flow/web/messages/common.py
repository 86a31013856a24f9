"""Texts of the layout and of every page: navigation, errors, shared words."""

MESSAGES: dict[str, tuple[str, str]] = {
    "app.name": ("dk2020flow", "dk2020flow"),
    # The programme's name is its workflow's title (service/programme.py): "…_of" when
    # the database holds one workflow, the plain text when it holds several or none.
    "app.tagline": ("Sekretariatets konsol", "The secretariat's console"),
    "app.tagline_of": (
        "Sekretariatets konsol for {programme}",
        "The secretariat's console for {programme}",
    ),
    "nav.main": ("Hovedmenu", "Main menu"),
    "nav.overview": ("Overblik", "Overview"),
    "nav.cases": ("Sager", "Cases"),
    "nav.operations": ("Drift", "Operations"),
    "nav.users": ("Brugere", "Users"),
    "nav.account": ("Min konto", "My account"),
    "nav.sign_in": ("Log ind", "Sign in"),
    "nav.sign_out": ("Log ud", "Sign out"),
    "nav.skip": ("Gå til indhold", "Skip to content"),
    "lang.switch": ("English", "Dansk"),
    "lang.switch_label": ("Read this page in English", "Læs siden på dansk"),
    "footer.accessibility": ("Tilgængelighedserklæring", "Accessibility statement"),
    "footer.about": (
        "dk2020flow fører hver organisation gennem forløbet.",
        "dk2020flow follows every organisation through the programme.",
    ),
    "footer.about_of": (
        "dk2020flow fører hver organisation gennem {programme}.",
        "dk2020flow follows every organisation through {programme}.",
    ),
    "signed_in_as": ("Logget ind som {name}", "Signed in as {name}"),
    "error.title": ("Der skete en fejl", "Something went wrong"),
    "error.not_found": ("Siden findes ikke", "Page not found"),
    "error.not_found_text": (
        "Siden eller sagen findes ikke. Tjek adressen.",
        "The page or case does not exist. Check the address.",
    ),
    "error.forbidden": ("Ingen adgang", "Not allowed"),
    "error.forbidden_text": (
        "Din rolle giver ikke adgang til dette. Spørg en administrator, hvis du mener, det er en fejl.",
        "Your role does not allow this. Ask an administrator if you think this is a mistake.",
    ),
    "error.csrf": ("Formularen er udløbet", "The form has expired"),
    "error.csrf_text": (
        "Af sikkerhedshensyn blev handlingen ikke udført. Gå tilbage, genindlæs siden og prøv igen.",
        "For your security the action was not carried out. Go back, reload the page and try again.",
    ),
    "error.refused": ("Handlingen blev afvist", "The action was refused"),
    "error.server": (
        "Der skete en uventet fejl. Intet blev ændret. Prøv igen, eller kontakt driften.",
        "An unexpected error occurred. Nothing was changed. Try again or contact operations.",
    ),
    "error.back": ("Tilbage til overblikket", "Back to the overview"),
    "accessibility.title": ("Tilgængelighedserklæring", "Accessibility statement"),
    "common.save": ("Gem", "Save"),
    "common.cancel": ("Annuller", "Cancel"),
    "common.confirm": ("Bekræft", "Confirm"),
    "common.yes": ("Ja", "Yes"),
    "common.no": ("Nej", "No"),
    "common.none": ("Ingen", "None"),
    "common.all": ("Alle", "All"),
    # A participant when the workflow names none (its `participant:` key names it).
    "common.participant": ("Organisation", "Organisation"),
    "common.loading": ("Henter …", "Loading …"),
}
