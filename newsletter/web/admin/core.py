"""What every newsroom page needs: the database, the templates in the user's language,
the stylesheet, the security headers and the error pages."""

from __future__ import annotations

import io
from functools import lru_cache
from gettext import GNUTranslations, NullTranslations
from pathlib import Path
from typing import Any

import jinja2
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Response, current_app, g, redirect, request, session, url_for
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from newsletter.errors import NewsletterError
from newsletter.i18n import package_locale_dir, shipped_templates_dir
from newsletter.settings import Settings
from newsletter.users import LANGUAGES, User
from newsletter.web.auth import csrf_token, load_user
from newsletter.web.subscriber import EXTENSION, Site

DOMAIN = "newsroom"
# nothing from elsewhere; scripts and styles only from our own files, never inline
ADMIN_POLICY = ("default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
                "connect-src 'self'; "
                "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
STYLESHEET = "newsroom.css"
NOTICE = "notice"
MAX_NOTICE = 1000  # characters kept for the next page (the session cookie holds them)


def site() -> Site:
    found = current_app.extensions[EXTENSION]
    assert isinstance(found, Site)
    return found


def sessions() -> sessionmaker[Session]:
    return site().sessions


def settings() -> Settings:
    return site().settings


def templates_dir() -> Path:
    return shipped_templates_dir() / "web" / "admin"


def catalog_path(language: str) -> Path:
    return package_locale_dir() / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=4)
def translations(language: str) -> NullTranslations:
    """The newsroom's catalog for `language`, compiled in memory (no .mo is ever written)."""
    po = catalog_path(language)
    if language == "en" or not po.is_file():
        return NullTranslations()
    with po.open("rb") as source:
        catalog = read_po(source, locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return GNUTranslations(buffer)


@lru_cache(maxsize=4)
def environment(language: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.filters["status_label"] = lambda value: status_label(value, language)
    env.filters["role_label"] = lambda value: role_label(value, language)
    return env


def language() -> str:
    """The interface language: the user's choice, else the browser's among ours."""
    user = g.get("user")
    if isinstance(user, User) and user.language in LANGUAGES:
        return user.language
    return request.accept_languages.best_match(LANGUAGES) or "en"


def gettext(message: str, **values: Any) -> str:
    text = translations(language()).gettext(message)
    return text % values if values else text


def explain(error: NewsletterError) -> str:
    """An error's message in the user's language (English if it has no template)."""
    lang = language()
    return error.text(translations(lang).gettext, lambda term: status_label(term, lang))


def see_other(message: str, endpoint: str, /, **values: Any) -> BaseResponse:
    """Post/Redirect/Get: keep `message` for the next page and send the browser there
    with 303, so that reloading or going back never sends the form again."""
    session[NOTICE] = message[:MAX_NOTICE]
    return redirect(url_for(endpoint, **values), 303)


def take_notice() -> str:
    """The message `see_other` left for this page; shown once (base.html.j2 shows it)."""
    value = session.pop(NOTICE, "")
    return value if isinstance(value, str) else ""


def render(name: str, code: int = 200, /, **context: Any) -> Response:
    lang = language()
    html = environment(lang).get_template(f"{name}.html.j2").render(
        lang=lang, user=g.get("user"), csrf_token=csrf_token(), url_for=url_for,
        notice=take_notice(),
        endpoint=request.endpoint or "", endpoints=frozenset(current_app.view_functions),
        **context)
    return Response(html, code, mimetype="text/html")


def stylesheet() -> Response:
    css = (templates_dir() / "static" / STYLESHEET).read_bytes()
    response = Response(css, 200, mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


def security_headers(response: Response) -> Response:
    # a view may set a stricter or a framing policy of its own (the issue preview's)
    response.headers.setdefault("Content-Security-Policy", ADMIN_POLICY)
    if response.mimetype != "text/css":
        response.headers["Cache-Control"] = "no-store"
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response


def N_(message: str) -> str:
    """Marks a message for the catalog; translated where it is shown."""
    return message


STATUS_CONTEXT = "status"  # the catalog's msgctxt: "Estado: activo" agrees with "estado"
# Every status a page shows, as its label: issues (status, review, review steps), deliveries,
# subscribers (status, list subscriptions, timeline entries), series and their periods.
# The values are the CLI's and the database's; the label is what a person reads.
STATUS_LABELS = {
    # issues
    "draft": N_("draft"), "scheduled": N_("scheduled"), "sending": N_("sending"),
    "paused": N_("paused"), "sent": N_("sent"), "cancelled": N_("cancelled"),
    "deleted": N_("deleted"),
    # review and its steps
    "in_review": N_("in review"), "approved": N_("approved"), "rejected": N_("rejected"),
    "submitted": N_("submitted"), "withdrawn": N_("withdrawn"),
    # deliveries
    "queued": N_("queued"), "deferred": N_("deferred"), "bounced": N_("bounced"),
    "failed": N_("failed"),
    # subscribers, their lists, their timeline
    "pending": N_("pending"), "active": N_("active"), "unsubscribed": N_("unsubscribed"),
    "complained": N_("complained"), "unconfirmed": N_("unconfirmed"),
    "confirmed": N_("confirmed"), "subscribed": N_("subscribed"), "imported": N_("imported"),
    "confirmation-sent": N_("confirmation sent"), "status": N_("status changed"),
    "changed": N_("details changed"), "list-added": N_("added to a list"),
    "list-removed": N_("removed from a list"), "suppressed": N_("suppressed"),
    "unsuppressed": N_("suppression lifted"), "delivery": N_("delivery"),
    "consent": N_("consent"),
    # series and their periods
    "built": N_("built"), "skipped": N_("skipped"),
}


def status_label(value: object, lang: str | None = None) -> str:
    """A status as the reader's language says it (the `status_label` filter of every
    template); a value without a label is shown as it is."""
    text = "" if value is None else str(value)
    label = STATUS_LABELS.get(text)
    if label is None:
        return text
    return translations(lang or language()).pgettext(STATUS_CONTEXT, label)


ROLE_CONTEXT = "role"  # the catalog's msgctxt for the role names
# The roles of users.ROLES as a person reads them (the `role_label` filter); the value is
# what the CLI and the database say.
ROLE_LABELS = {"editor": N_("editor"), "approver": N_("approver"), "admin": N_("admin")}


def role_label(value: object, lang: str | None = None) -> str:
    """A role (users.ROLES) as the reader's language says it (the `role_label` filter of
    every template); a value without a label is shown as it is."""
    text = "" if value is None else str(value)
    label = ROLE_LABELS.get(text)
    if label is None:
        return text
    return translations(lang or language()).pgettext(ROLE_CONTEXT, label)


MESSAGES = {
    400: N_("This form was sent without a valid security token, so nothing was changed. "
            "Reload the page and try again."),
    403: N_("Your role does not allow this page."),
    404: N_("There is no such page."),
    405: N_("This page does not accept that request."),
    413: N_("What was sent is too large."),
}


def error_page(error: HTTPException) -> Response:
    code = error.code or 500
    if "user" not in g:  # refused before the user was read (a missing CSRF token): the
        g.user = _who()  # page still speaks their language
    message = gettext(MESSAGES.get(code, N_("Something went wrong.")))
    return render("error", code, title=str(code), message=message)


def _who() -> User | None:
    try:
        with sessions()() as db:
            user = load_user(db)
            if user is not None:
                db.expunge(user)
    except SQLAlchemyError:  # the refusal still shows, in the browser's language
        return None
    return user
