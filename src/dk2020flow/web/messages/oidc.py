"""Texts of the sign-in by OpenID Connect (single sign-on)."""

MESSAGES: dict[str, tuple[str, str]] = {
    "oidc.button": ("Log ind med {name}", "Sign in with {name}"),
    "oidc.or": (
        "Har din organisation single sign-on, kan du logge ind med den:",
        "If your organisation has single sign-on, you can sign in with it:",
    ),
    "oidc.back": ("Til login-siden", "To the sign-in page"),
    "oidc.problem.state.title": ("Login blev afbrudt", "The sign-in was interrupted"),
    "oidc.problem.state": (
        "Svaret fra {provider} hører ikke til et login, der er begyndt her, eller det er for "
        "gammelt. Prøv at logge ind igen.",
        "The answer from {provider} belongs to no sign-in begun here, or it is too old. "
        "Try signing in again.",
    ),
    "oidc.problem.denied.title": ("Login blev ikke gennemført", "The sign-in was not completed"),
    "oidc.problem.denied": (
        "{provider} loggede dig ikke ind (du afbrød, eller adgang blev nægtet).",
        "{provider} did not sign you in (you cancelled, or access was refused).",
    ),
    "oidc.problem.provider.title": (
        "Login-tjenesten svarer ikke",
        "The sign-in service does not answer",
    ),
    "oidc.problem.provider": (
        "{provider} kan ikke nås lige nu. Prøv igen senere, eller log ind med et link på e-mail.",
        "{provider} cannot be reached now. Try again later, or sign in with a link by e-mail.",
    ),
    "oidc.problem.token.title": ("Login blev afvist", "The sign-in was refused"),
    "oidc.problem.token": (
        "Svaret fra {provider} kunne ikke godkendes, så ingen er logget ind. Prøv igen.",
        "The answer from {provider} could not be verified, so nobody was signed in. Try again.",
    ),
    "oidc.problem.email.title": ("Ingen e-mailadresse", "No e-mail address"),
    "oidc.problem.email": (
        "{provider} oplyste ikke din e-mailadresse, og den skal vi bruge for at finde din konto.",
        "{provider} did not give your e-mail address, which is needed to find your account.",
    ),
    "oidc.problem.unverified.title": ("E-mailadressen er ikke bekræftet", "Unverified address"),
    "oidc.problem.unverified": (
        "{provider} har ikke bekræftet din e-mailadresse. Bekræft den der, eller log ind med "
        "et link på e-mail.",
        "{provider} has not verified your e-mail address. Verify it there, or sign in with "
        "a link by e-mail.",
    ),
    "oidc.problem.unknown.title": ("Adressen kendes ikke", "The address is not known"),
    "oidc.problem.unknown": (
        "{address} har ingen konto her og står ikke som kontakt i programmet. Spørg "
        "sekretariatet, hvis du skal have adgang.",
        "{address} has no account here and is not a contact of the programme. Ask the "
        "secretariat if you need access.",
    ),
    "oidc.problem.subject.title": ("Kontoen hører til en anden", "The account is someone else's"),
    "oidc.problem.subject": (
        "Kontoen for {address} er knyttet til en anden identitet hos {provider}. Log ind med "
        "et link på e-mail, eller spørg sekretariatet.",
        "The account of {address} is linked to another identity at {provider}. Sign in with "
        "a link by e-mail, or ask the secretariat.",
    ),
}
