"""The public pages, for people we do not know yet: sign up, the archive, its Atom feed.

No login and no cookie. The sign-up form is the one page here that changes anything, and
anyone can reach it, so it is built against subscription bombing (see
`subscribers.signup`): a honeypot field, rate limits per client and per address kept in
the database, no confirmation mail to an address asked for too often, and one answer
page ("check your inbox") for every address: new, pending, subscribed, unsubscribed,
suppressed or rate-limited alike. Only an address that is not one gets the form back.

CSRF: a signed, short-lived form token, issued with the page and bound to the client
(a keyed hash of its IP address), is checked before anything else; a POST whose Origin
header names another site is refused too. Why not the Origin/Referer check with a
SameSite cookie alone: these pages send `Referrer-Policy: no-referrer` (as every page of
ours does), so browsers send no Referer and `Origin: null` with our own form (Chromium
does: a test posts the form from it), which a hostile page can send as well, and a
cookie would be the only cookie a stranger gets from us. A token any server can
fetch would not do on its own either (a hostile page could make its visitors' browsers
post a token fetched by its server, spreading a bombing over their IP addresses): bound
to the client, a token works only from the address that loaded the form. A form left
open for longer than `FORM_MAX_AGE`, or sent from a new address, comes back once with a
fresh token and a plain request to send it again.

The confirmation mail goes out after the answer has been sent (`call_on_close`), so the
time the answer takes does not tell a newcomer from a subscriber either.

Pages use the templates in `templates/web/` (`signup*`, `archive*`) and the email's
gettext catalogs, like the subscriber pages, with the same headers and no script.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import xml.etree.ElementTree as ET
from datetime import datetime

from flask import Flask, Response, abort, request, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import MultiDict

from newsletter.archive import ArchiveEntry, sent_issues
from newsletter.db import transaction, utcnow
from newsletter.templating import environment
from newsletter.web.subscriber import Site, country_choices, own_name
from subscribers.lists import public_lists
from subscribers.signup import (
    DEFAULT_LIMITS,
    Limits,
    SignupRequest,
    consent_version,
    request_signup,
)
from subscribers.validate import InvalidValue, clean_name, normalise_country
from worker.confirmations import ask_to_confirm

FORM_MAX_AGE = 2 * 60 * 60  # seconds a sign-up form stays good
HONEYPOT = "website"  # hidden from people; bots fill it in
ATOM = "http://www.w3.org/2005/Atom"
MAX_FIELD = 320

log = logging.getLogger(__name__)


class Public:
    """The public routes, over the subscriber pages' Site (settings, sessions, pages)."""

    def __init__(self, site: Site, limits: Limits = DEFAULT_LIMITS) -> None:
        self.site = site
        self.limits = limits
        self.forms = URLSafeTimedSerializer(site.settings.secret_key, salt="signup-form")

    # --- helpers ---------------------------------------------------------------------

    def language(self, lang: str | None) -> str:
        """The page language: the one in the path, ?lang=, or the browser's; 404 for a
        language we have no edition in."""
        editions = self.site.settings.languages
        if lang is not None:
            if lang not in editions:
                abort(404)
            return lang
        asked = request.args.get("lang", "")
        return asked if asked in editions else self.site.visitor_language()

    def client(self) -> str:
        return request.remote_addr or ""

    def client_hash(self) -> str:
        key = self.site.settings.secret_key.encode()
        return hmac.new(key, f"form:{self.client()}".encode(), hashlib.sha256).hexdigest()[:32]

    def form_token(self) -> str:
        return self.forms.dumps([self.client_hash(), secrets.token_urlsafe(8)])

    def token_ok(self, token: str) -> bool:
        try:
            value = self.forms.loads(token, max_age=FORM_MAX_AGE)
        except (SignatureExpired, BadSignature):
            return False
        return (isinstance(value, list) and len(value) == 2
                and hmac.compare_digest(str(value[0]), self.client_hash()))

    def foreign_origin(self) -> bool:
        """A POST from a page on another site. An absent Origin (an old browser, a
        program) or "null" (our own pages, under no-referrer) says nothing: the token
        still has to be right."""
        origin = request.headers.get("Origin")
        if origin is None or origin == "null":  # "null": our own no-referrer pages
            return False
        ours = {request.host_url.rstrip("/"),
                self.site.settings.public_base_url.rstrip("/")}
        return origin.rstrip("/") not in {_origin(url) for url in ours}

    def consent(self, lang: str) -> str:
        env = environment(self.site.settings.template_dir, lang)
        return " ".join(env.get_template("web/signup_consent.txt.j2").render().split())

    # --- sign-up -----------------------------------------------------------------------

    def signup(self, lang: str | None = None) -> Response:
        lang = self.language(lang)
        if request.method == "GET":
            return self.signup_page(lang, MultiDict())
        form = request.form
        if self.foreign_origin() or not self.token_ok(form.get("token", "")):
            return self.signup_page(lang, form, 403, problem="expired")
        if form.get(HONEYPOT, ""):
            log.info("sign-up with the honeypot filled in: ignored")
            return self.check_inbox(lang)
        try:
            wanted = self.read_form(form, lang)
        except InvalidValue as exc:
            return self.signup_page(lang, form, 400, problem=exc.field)
        settings = self.site.settings
        person_id: int | None = None
        try:
            with transaction(self.site.sessions) as session:  # request_signup serialises
                person_id = request_signup(
                    session, wanted, client=self.client(), secret=settings.secret_key,
                    now=utcnow(), default_language=settings.default_language,
                    limits=self.limits)
        except InvalidValue as exc:
            return self.signup_page(lang, form, 400, problem=exc.field)
        except IntegrityError:  # the same address, signed up at the same moment
            log.info("sign-up raced another for the same address: nothing to do")
        answer = self.check_inbox(lang)
        if person_id is not None:
            # after the answer has gone out: a mail relay's round trip must not make the
            # answer for a newcomer slower than the one for someone already subscribed
            chosen = person_id
            answer.call_on_close(
                lambda: ask_to_confirm(settings, self.site.sessions, chosen) and None)
        return answer

    def read_form(self, form: MultiDict[str, str], lang: str) -> SignupRequest:
        """The fields, checked; the page's language where the person chose none."""
        editions = self.site.settings.languages
        email = form.get("email", "")[:MAX_FIELD]
        if not email.strip():
            raise InvalidValue("email", email, "is empty")
        language = form.get("language", lang)
        if language not in editions:
            raise InvalidValue("language", language[:40], "is not one of ours")
        country = form.get("country", "")[:MAX_FIELD]
        if country:
            normalise_country(country)
        return SignupRequest(
            email=email, name=clean_name(form.get("name", "")[:MAX_FIELD]),
            language=language, country=country,
            lists=tuple(name[:MAX_FIELD] for name in form.getlist("list")),
            consent_version=consent_version(self.consent(lang)),
        )

    def signup_page(
        self, lang: str, form: MultiDict[str, str], code: int = 200, *, problem: str = ""
    ) -> Response:
        with self.site.sessions() as session:
            offered = [(m.name, m.description) for m in public_lists(session)]
        chosen = set(form.getlist("list"))
        return self.site.page(
            "signup", lang, code, problem=problem, token=self.form_token(),
            honeypot=HONEYPOT, action=request.path,
            email=form.get("email", "")[:MAX_FIELD], name=form.get("name", "")[:200],
            language=form.get("language", lang), country=form.get("country", ""),
            languages=[(code_, own_name(code_)) for code_ in self.site.settings.languages],
            countries=country_choices(lang),
            lists=[(name, description, name in chosen) for name, description in offered],
            consent=self.consent(lang),
            archive_url=url_for("archive_in", lang=lang),
        )

    def check_inbox(self, lang: str) -> Response:
        """The one answer for every address."""
        return self.site.page("signup_done", lang)

    # --- the archive -------------------------------------------------------------------

    def archive(self, lang: str | None = None) -> Response:
        lang = self.language(lang)
        with self.site.sessions() as session:
            entries = sent_issues(session, lang)
        response = self.site.page(
            "archive", lang, entries=[(e, url_for("view", slug=e.slug, label=e.label))
                                      for e in entries],
            feed_url=url_for("archive_feed", lang=lang),
            signup_url=url_for("signup_in", lang=lang),
            editions=[(code, own_name(code), url_for("archive_in", lang=code))
                      for code in self.site.settings.languages],
        )
        response.headers["Cache-Control"] = "public, max-age=300"
        return response

    def feed(self, lang: str) -> Response:
        lang = self.language(lang)
        with self.site.sessions() as session:
            entries = sent_issues(session, lang, limit=50)
        base = self.site.settings.public_base_url.rstrip("/")
        xml = atom_feed(
            entries, base=base, lang=lang, title=f"{self.site.settings.sender_name} ({lang})",
            author=self.site.settings.sender_name,
            self_url=base + url_for("archive_feed", lang=lang),
            alternate_url=base + url_for("archive_in", lang=lang), now=utcnow(),
        )
        response = Response(xml, 200, content_type="application/atom+xml; charset=utf-8")
        response.headers["Cache-Control"] = "public, max-age=300"
        return response


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _stamp(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat() + "Z"


def atom_feed(
    entries: list[ArchiveEntry], *, base: str, lang: str, title: str, author: str,
    self_url: str, alternate_url: str, now: datetime,
) -> bytes:
    """Atom 1.0 (RFC 4287) for one language's archive. `updated` is the newest issue's
    sending time, or `now` for an archive with none."""
    ET.register_namespace("", ATOM)

    def sub(parent: ET.Element, tag: str, text: str | None = None,
            **attributes: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attributes)
        element.text = text
        return element

    feed = ET.Element(f"{{{ATOM}}}feed", {"{http://www.w3.org/XML/1998/namespace}lang": lang})
    sub(feed, "id", alternate_url)
    sub(feed, "title", title)
    sub(feed, "updated", _stamp(entries[0].sent_at if entries else now))
    sub(sub(feed, "author"), "name", author)
    sub(feed, "link", rel="self", type="application/atom+xml", href=self_url)
    sub(feed, "link", rel="alternate", type="text/html", href=alternate_url)
    for entry in entries:
        link = f"{base}/v/{entry.slug}/{entry.label}"
        item = sub(feed, "entry")
        sub(item, "id", link)
        sub(item, "title", entry.subject)
        sub(item, "updated", _stamp(entry.sent_at))
        sub(item, "published", _stamp(entry.sent_at))
        sub(item, "link", rel="alternate", type="text/html", href=link)
    return bytes(ET.tostring(feed, encoding="utf-8", xml_declaration=True))


def register_public(app: Flask, site: Site) -> None:
    """Add the public pages to `app`: /signup, /<lang>/signup, /archive[/<lang>[.atom]]."""
    public = Public(site)
    app.extensions["newsletter.public"] = public
    both = ["GET", "POST"]
    app.add_url_rule("/signup", "signup", public.signup, methods=both)
    app.add_url_rule("/<lang>/signup", "signup_in", public.signup, methods=both)
    app.add_url_rule("/archive", "archive", public.archive, methods=["GET"])
    app.add_url_rule("/archive/<lang>", "archive_in", public.archive, methods=["GET"])
    app.add_url_rule("/archive/<lang>.atom", "archive_feed", public.feed, methods=["GET"])
