"""Words of the email in each supported language.

A small in-code catalog for the template's handful of strings. Templates call
`_()` through Jinja's i18n extension, so moving to gettext `.po` catalogs changes
this module only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

CATALOG: dict[str, dict[str, str]] = {
    "es": {
        "In %(country)s": "En %(country)s",
        "Across the region": "En la región",
        "News from %(start)s to %(end)s": "Noticias del %(start)s al %(end)s",
        "%(sender)s: news from %(start)s to %(end)s": (
            "%(sender)s: noticias del %(start)s al %(end)s"
        ),
        "Unsubscribe": "Cancelar la suscripción",
        "Update your preferences": "Cambiar sus preferencias",
        "You receive this email because you subscribed to %(sender)s.": (
            "Recibe este correo porque se suscribió a %(sender)s."
        ),
        "%(count)s news items": "%(count)s noticias",
        "(in %(language)s)": "(en %(language)s)",
    },
    "fr": {
        "In %(country)s": "Au %(country)s",
        "Across the region": "Dans la région",
        "News from %(start)s to %(end)s": "Actualités du %(start)s au %(end)s",
        "%(sender)s: news from %(start)s to %(end)s": (
            "%(sender)s : actualités du %(start)s au %(end)s"
        ),
        "Unsubscribe": "Se désabonner",
        "Update your preferences": "Modifier vos préférences",
        "You receive this email because you subscribed to %(sender)s.": (
            "Vous recevez ce courriel car vous êtes abonné·e à %(sender)s."
        ),
        "%(count)s news items": "%(count)s actualités",
        "(in %(language)s)": "(en %(language)s)",
    },
}

MONTHS: dict[str, tuple[str, ...]] = {
    "en": (
        "January", "February", "March", "April", "May", "June", "July",
        "August", "September", "October", "November", "December",
    ),
    "es": (
        "enero", "febrero", "marzo", "abril", "mayo", "junio", "julio",
        "agosto", "septiembre", "octubre", "noviembre", "diciembre",
    ),
    "fr": (
        "janvier", "février", "mars", "avril", "mai", "juin", "juillet",
        "août", "septembre", "octobre", "novembre", "décembre",
    ),
}  # fmt: skip


def gettext_for(language: str) -> Callable[[str], str]:
    table = CATALOG.get(language, {})
    return lambda message: table.get(message, message)


def format_date(value: date, language: str) -> str:
    """'10 October 2019', '10 de octubre de 2019', '10 octobre 2019'."""
    month = MONTHS.get(language, MONTHS["en"])[value.month - 1]
    if language == "es":
        return f"{value.day} de {month} de {value.year}"
    return f"{value.day} {month} {value.year}"


def language_name(code: str, in_language: str) -> str:
    """'inglés' for ('en', 'es'): a language's name in the reader's language."""
    try:
        from babel import Locale

        return str(Locale.parse(in_language).languages.get(code, code))
    except (ValueError, LookupError):
        return code
