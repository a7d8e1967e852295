"""The subscriber-facing web app: one-click unsubscribe, preferences, double opt-in
confirmation, issues on the web.

Every personal link was signed by `subscribers.tokens` and mailed to one person, so the
token is the credential: no login, no cookie, no CSRF token. RFC 8058 asks exactly that
of the one-click POST, and it must answer without a redirect; a GET never changes
anything, because mail scanners fetch the links in every message they inspect. A link
that does not verify gets the same "not valid" page whether or not an address exists.

Pages are the Jinja templates in `templates/web/`, rendered with the email's gettext
catalogs (`newsletter.templating.environment`) in the subscriber's language. They load
nothing from elsewhere and run no script, and the headers say so (Content-Security-Policy),
keep the token out of Referer headers and out of caches.
"""

from __future__ import annotations

import gettext
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import pycountry
from flask import Flask, Response, abort, request, url_for
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from newsletter import geo
from newsletter.db import transaction
from newsletter.errors import NewsletterError
from newsletter.i18n import language_name
from newsletter.issues import SLUG
from newsletter.models import Issue, IssueVariant
from newsletter.render import Rendered, personalise
from newsletter.settings import DEV_SECRET, Settings
from newsletter.templating import environment
from subscribers.countries import fold
from subscribers.models import Subscriber
from subscribers.people import confirm, lists_of, unsubscribe, update_subscriber
from subscribers.tokens import make_token, read_token, token_id
from subscribers.validate import InvalidValue, best_edition

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_EDITION = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")  # a language tag, as in Variant.label
EXTENSION = "newsletter"  # app.extensions[EXTENSION]: the Site, for its engine and settings
MAX_BODY_BYTES = 64 * 1024
# our own pages: inline CSS only, nothing fetched, no script, no framing, forms to us only
PAGE_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
               "base-uri 'none'; frame-ancestors 'none'")
# the web copy of an issue: the email's inline CSS and remote images, still no script
VIEW_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
               "form-action 'none'; base-uri 'none'; frame-ancestors 'none'")

log = logging.getLogger(__name__)


class WebConfigError(NewsletterError):
    """Settings the web app must not run with."""


def check_settings(settings: Settings) -> None:
    """Refuse the development secret anywhere but on this machine: with it, anyone could
    sign an unsubscribe link for any subscriber id."""
    host = urlsplit(settings.public_base_url).hostname or ""
    if settings.secret_key == DEV_SECRET and host not in LOCAL_HOSTS:
        raise WebConfigError(
            "NEWSLETTER_SECRET_KEY is the development default, so anyone could forge "
            f"unsubscribe and preference links for {settings.public_base_url}: set it to a "
            "long random value (the one the workers sign links with)"
        )


def _unsubscribe_way() -> str:
    """one-click (RFC 8058: a mail program's POST) or link (the page's button), for the
    person's history; a body too large to read still unsubscribes."""
    try:
        one_click = request.form.get("List-Unsubscribe") == "One-Click"
    except HTTPException:
        one_click = False
    return "one-click" if one_click else "link"


def masked(email: str) -> str:
    """'a***@example.org': enough for people to recognise their address, not to learn it."""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}"


@lru_cache(maxsize=8)
def country_choices(language: str) -> tuple[tuple[str, str], ...]:
    """Every ISO 3166-1 country as (code, name in `language`), in alphabetical order.

    The region's own table names its countries the way the email does; pycountry's
    catalogs name the rest.
    """
    iso = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language],
                              fallback=True)
    regional = {c.code for c in geo.COUNTRIES}
    choices = []
    for country in pycountry.countries:
        code = str(country.alpha_2)
        if code in regional:
            name = geo.country_name(code, language)
        else:
            name = iso.gettext(str(getattr(country, "common_name", country.name)))
        choices.append((code, name))
    return tuple(sorted(choices, key=lambda choice: fold(choice[1])))


def own_name(language: str) -> str:
    """A language in its own words ('Español', 'Français'): what its speakers look for."""
    name = language_name(language, language)
    return name[:1].upper() + name[1:]


def list_changes(
    current: Sequence[tuple[str, str]], checked: set[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(lists to add, lists to remove) from the form's checkboxes.

    Only real changes: a list awaiting confirmation that stays checked stays unconfirmed.
    """
    add = tuple(name for name, status in current
                if status == "unsubscribed" and name in checked)
    remove = tuple(name for name, status in current
                   if status != "unsubscribed" and name not in checked)
    return add, remove


@dataclass(frozen=True)
class Site:
    """The routes, bound to one settings object and one sessionmaker."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]

    # --- helpers ---------------------------------------------------------------------

    def page(self, name: str, lang: str, code: int = 200, /, **context: Any) -> Response:
        """templates/web/<name>.html.j2 in `lang`, with the HTTP status `code`; a person whose
        language has no edition reads the nearest one (`best_edition`)."""
        lang = best_edition(lang, self.settings.languages, self.settings.default_language)
        env = environment(self.settings.template_dir, lang)
        html = env.get_template(f"web/{name}.html.j2").render(
            lang=lang, sender=self.settings.sender_name, **context
        )
        return Response(html, code, mimetype="text/html")

    def visitor_language(self) -> str:
        """The browser's preferred language among ours, for pages that know nobody."""
        found = request.accept_languages.best_match(self.settings.languages)
        return found or self.settings.default_language

    def person(self, session: Session, token: str, purpose: str) -> Subscriber:
        """The subscriber a token was made for, or a 404 that says nothing about why.

        The token is checked against the row its id names, with that row's salt: a link
        mailed to someone whose id now belongs to someone else does not verify.
        """
        subscriber_id = token_id(token)
        person = None if subscriber_id is None else session.get(Subscriber, subscriber_id)
        if person is None or read_token(self.settings.secret_key, token, purpose,
                                        person.token_salt) != person.id:
            abort(404)
        return person

    def token(self, person: Subscriber, purpose: str) -> str:
        return make_token(self.settings.secret_key, person.id, purpose, person.token_salt)

    # --- routes --------------------------------------------------------------------

    def unsubscribe_form(self, token: str) -> Response:
        """GET: say who would be unsubscribed, and ask. Changes nothing."""
        with self.sessions() as session:
            person = self.person(session, token, "unsubscribe")
            return self.page(
                "unsubscribe", person.language, address=masked(person.email),
                action=url_for("unsubscribe", token=token),
                preferences_url=url_for("preferences", token=self.token(person, "preferences")),
            )

    def unsubscribe(self, token: str) -> Response:
        """POST (RFC 8058 one-click, or the form): unsubscribe from everything. Idempotent;
        the body (`List-Unsubscribe=One-Click` or nothing) is not needed to act."""
        with transaction(self.sessions) as session:
            person = self.person(session, token, "unsubscribe")
            unsubscribe(session, person.email, how=_unsubscribe_way(), by="subscriber")
            language, address = person.language, masked(person.email)
        log.info("subscriber %s unsubscribed on the web", person.id)
        return self.page("unsubscribed", language, address=address)

    def confirm_form(self, token: str) -> Response:
        """GET of a double opt-in link: a button that posts back. Confirms nothing."""
        with self.sessions() as session:
            person = self.person(session, token, "confirm")
            return self.page("confirm", person.language, address=masked(person.email),
                             action=url_for("confirm", token=token))

    def confirm(self, token: str) -> Response:
        """POST: confirm the subscription (idempotent) and say so, without a redirect."""
        with transaction(self.sessions) as session:
            person = confirm(session, self.person(session, token, "confirm").id,
                             by="subscriber")
            person_id, status = person.id, person.status
            language, address = person.language, masked(person.email)
        log.info("subscriber %s confirmed on the web (now %s)", person_id, status)
        return self.page("confirmed", language, address=address, status=status)

    def preferences(self, token: str) -> Response:
        """GET shows the form; POST saves it and shows it again (400 with the reason)."""
        saved, problem = False, ""
        if request.method == "POST":
            try:
                with transaction(self.sessions) as session:
                    self.save(session, self.person(session, token, "preferences"), request.form)
                saved = True
            except InvalidValue as exc:
                problem = exc.field
        with self.sessions() as session:
            person = self.person(session, token, "preferences")
            return self.page(
                "preferences", person.language, 400 if problem else 200,
                saved=saved, problem=problem, address=masked(person.email),
                status=person.status, language=person.language, country=person.country or "",
                languages=[(code, own_name(code)) for code in self.settings.languages]
                + ([] if person.language in self.settings.languages
                   else [(person.language, own_name(person.language))]),
                countries=country_choices(best_edition(
                    person.language, self.settings.languages, self.settings.default_language)),
                lists=[(name, status != "unsubscribed") for name, status
                       in lists_of(session, person.id)],
                action=url_for("preferences", token=token),
                unsubscribe_action=url_for("unsubscribe", token=self.token(person, "unsubscribe")),
            )

    def save(self, session: Session, person: Subscriber, form: MultiDict[str, str]) -> None:
        s = self.settings
        add: tuple[str, ...] = ()
        remove: tuple[str, ...] = ()
        if "lists-shown" in form:  # a post without the form's lists leaves them alone
            checked = set(form.getlist("list"))
            add, remove = list_changes(lists_of(session, person.id), checked)
        update_subscriber(
            session, person.email, default_language=s.default_language,
            language=form.get("language"), country=form.get("country"),
            add_lists=add, remove_lists=remove, by="subscriber",
        )

    def view(self, slug: str, label: str) -> Response:
        """The web copy of a variant: the same for all its readers, so the personal links
        in it are replaced by one to a page saying where the personal ones are."""
        # the label is Variant.label: the language is a tag that may hold hyphens itself
        # (pt-BR-regional, zh-Hant-TW), so the focus is what follows the last one
        language, _, focus = label.rpartition("-")
        country = "" if focus == "regional" else focus
        if country and not (len(country) == 2 and country.isascii() and country.isupper()):
            abort(404)
        # only names we could have made reach the database (PostgreSQL refuses a NUL)
        if not (SLUG.fullmatch(slug) and _EDITION.fullmatch(language)):
            abort(404)
        with self.sessions() as session:
            row = session.scalar(
                select(IssueVariant)
                .join(Issue, Issue.id == IssueVariant.issue_id)
                .where(Issue.slug == slug, IssueVariant.language == language,
                       IssueVariant.country == country)
            )
        if row is None:
            abort(404)
        neutral = url_for("about_links", lang=language)
        html = personalise(Rendered(row.subject, row.html, row.text), unsubscribe_url=neutral,
                           preferences_url=neutral, view_url=request.path).html
        response = Response(html, 200, mimetype="text/html")
        response.headers["Content-Security-Policy"] = VIEW_POLICY
        response.headers["Cache-Control"] = "public, max-age=300"
        return response

    def about_links(self) -> Response:
        asked = request.args.get("lang", "")
        language = asked if asked in self.settings.languages else self.visitor_language()
        response = self.page("links", language)
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response

    def healthz(self) -> Response:
        try:
            with self.sessions() as session:
                session.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            log.warning("health check: the database does not answer: %s", exc)
            return Response("database unavailable\n", 503, mimetype="text/plain")
        return Response("ok\n", 200, mimetype="text/plain")

    def error_page(self, error: HTTPException) -> Response:
        if error.code == 404:
            return self.page("not_found", self.visitor_language(), 404)
        return Response(error.get_body(), error.code or 500, mimetype="text/html")


def secure_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", PAGE_POLICY)
    headers.setdefault("Cache-Control", "no-store")
    headers["Referrer-Policy"] = "no-referrer"  # a token must never leave in a Referer
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Robots-Tag"] = "noindex"
    return response


def register(app: Flask, site: Site) -> None:
    """The subscriber pages' routes, on the app `newsletter.web.app.create_app` builds."""
    app.add_url_rule("/u/<token>", "unsubscribe_form", site.unsubscribe_form, methods=["GET"])
    app.add_url_rule("/u/<token>", "unsubscribe", site.unsubscribe, methods=["POST"])
    app.add_url_rule("/c/<token>", "confirm_form", site.confirm_form, methods=["GET"])
    app.add_url_rule("/c/<token>", "confirm", site.confirm, methods=["POST"])
    app.add_url_rule("/p/<token>", "preferences", site.preferences, methods=["GET", "POST"])
    app.add_url_rule("/v/<slug>/<label>", "view", site.view, methods=["GET"])
    app.add_url_rule("/links", "about_links", site.about_links, methods=["GET"])
    app.add_url_rule("/healthz", "healthz", site.healthz, methods=["GET"])
    app.register_error_handler(HTTPException, site.error_page)
    app.after_request(secure_headers)

