"""Texts of the page a case link in a mail opens (``/sign-in/case``, docs/portal.md)."""

MESSAGES: dict[str, tuple[str, str]] = {
    "case_link.title": ("Åbn sagen", "Open the case"),
    "case_link.text": (
        "Linket fra mailen logger dig ind som {email} og åbner sagen. Tryk på knappen for at "
        "fortsætte.",
        "The link from the mail signs you in as {email} and opens the case. Press the button "
        "to go on.",
    ),
    "case_link.submit": ("Log ind og åbn sagen", "Sign in and open the case"),
    "case_link.unknown.title": ("Linket virker ikke", "The link does not work"),
    "case_link.unknown": (
        "Linket til sagen er ikke gyldigt (længere). Log ind med din e-mailadresse.",
        "The link to the case is not valid (any more). Sign in with your e-mail address.",
    ),
}
