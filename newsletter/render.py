"""Rendering an issue: Jinja2 -> MJML -> mjml-python -> premailer -> HTML, plus plain text.

Rendering is pure and runs once per variant (language x country focus); what differs
per recipient is left as placeholders that `personalise` fills in cheaply. Templates
translate with `_()`, passed in the context (not installed on the shared environment,
so concurrent renders in different languages cannot mix).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from functools import lru_cache
from html import escape
from importlib.resources import files
from pathlib import Path

import jinja2
import premailer
from mjml import mjml2html

from newsletter import geo
from newsletter.errors import NewsletterError
from newsletter.i18n import format_date, gettext_for, language_name
from newsletter.settings import Settings

UNSUBSCRIBE = "%%UNSUBSCRIBE_URL%%"
PREFERENCES = "%%PREFERENCES_URL%%"
HTML_WARN_BYTES = 90_000
HTML_LIMIT_BYTES = 100_000  # Gmail clips messages at about 102 KB

log = logging.getLogger(__name__)


class RenderError(NewsletterError):
    """A template or its output is unusable."""


@dataclass(frozen=True)
class ItemText:
    """An item's words in one language."""

    title: str
    place: str | None
    paragraphs: Sequence[str]


@dataclass(frozen=True)
class ItemView:
    published: date
    title: str
    place: str | None
    paragraphs: Sequence[str]
    countries: Sequence[str]
    language: str = "en"  # the language of title/place/paragraphs
    translations: Mapping[str, ItemText] = field(default_factory=dict)

    def in_language(self, language: str) -> ItemView:
        """The item as a reader of `language` sees it: translated, or else the source text."""
        text = self.translations.get(language)
        if language == self.language or text is None:
            return self
        return replace(self, title=text.title, place=text.place, paragraphs=text.paragraphs,
                       language=language, translations={})


@dataclass(frozen=True)
class Variant:
    language: str
    country: str = ""  # "" = no country focus: the regional order

    @property
    def label(self) -> str:
        return f"{self.language}-{self.country or 'regional'}"


@dataclass(frozen=True)
class Sender:
    name: str
    postal_address: str


def sender_from(settings: Settings) -> Sender:
    return Sender(name=settings.sender_name, postal_address=settings.postal_address)


@dataclass(frozen=True)
class Section:
    heading: str | None
    items: Sequence[ItemView]


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


FOCUS_POLICIES = ("first", "only", "none")


@dataclass(frozen=True)
class IssueContent:
    title: str  # "" = the default subject line in each language
    date_from: date
    date_to: date
    items: Sequence[ItemView]
    focus: str = "first"  # first: the reader's country first; only: just it; none: regional


def sections_for(
    items: Sequence[ItemView], variant: Variant, language: str, focus: str = "first"
) -> list[Section]:
    """The reader's country first under its own heading, then the rest of the region.

    With focus "only", just the reader's country; "none" (or a reader without a
    country, or a country no item is about) gives everyone the regional order.
    """
    _ = gettext_for(language)
    if variant.country and focus != "none":
        mine = [i for i in items if variant.country in i.countries]
        rest = [i for i in items if variant.country not in i.countries]
        if mine:
            name = geo.country_name(variant.country, language)
            sections = [Section(_("In %(country)s") % {"country": name}, mine)]
            if rest and focus == "first":
                sections.append(Section(_("Across the region"), rest))
            return sections
    return [Section(None, list(items))]


def subject_for(content: IssueContent, language: str, sender: Sender) -> str:
    if content.title:
        return content.title
    _ = gettext_for(language)
    return _("%(sender)s: news from %(start)s to %(end)s") % {
        "sender": sender.name,
        "start": format_date(content.date_from, language),
        "end": format_date(content.date_to, language),
    }


def template_dir() -> Path:
    return Path(str(files("templates")))


@lru_cache(maxsize=8)
def environment(directory: Path | None = None) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory or template_dir())),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("mjml.j2", "html.j2"), default_for_string=True
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def _context(content: IssueContent, variant: Variant, sender: Sender) -> dict[str, object]:
    lang = variant.language
    _ = gettext_for(lang)
    subject = subject_for(content, lang, sender)
    return {
        "_": _,
        "lang": lang,
        "subject": subject,
        "sender": sender,
        "period": _("News from %(start)s to %(end)s")
        % {
            "start": format_date(content.date_from, lang),
            "end": format_date(content.date_to, lang),
        },
        "count": len(content.items),
        "sections": sections_for(
            [i.in_language(lang) for i in content.items], variant, lang, content.focus
        ),
        "language_name": lambda code: language_name(code, lang),
        "format_date": lambda d: format_date(d, lang),
        "unsubscribe_url": UNSUBSCRIBE,
        "preferences_url": PREFERENCES,
    }


def mjml_to_html(source: str) -> str:
    """Compile MJML and inline its CSS, keeping @media rules and !important intact."""
    try:
        compiled = mjml2html(source, disable_comments=True, fonts={})
    except Exception as exc:  # mjml-python raises a bare exception type
        raise RenderError(f"the MJML template did not compile: {exc}") from exc
    inlined: str = premailer.Premailer(
        compiled,
        strip_important=False,
        keep_style_tags=True,
        allow_network=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()
    # premailer (lxml) drops the doctype; email clients need it for standards mode
    return "<!doctype html>\n" + inlined


def render_variant(
    content: IssueContent,
    variant: Variant,
    sender: Sender,
    directory: Path | None = None,
) -> Rendered:
    env = environment(directory)
    context = _context(content, variant, sender)
    html = mjml_to_html(env.get_template("newsletter.mjml.j2").render(context))
    text = env.get_template("newsletter.txt.j2").render(context)
    size = len(html.encode())
    if size > HTML_LIMIT_BYTES:
        raise RenderError(
            f"the {variant.label} HTML is {size:,} bytes; Gmail clips messages over about "
            f"102 KB: move items to another issue or shorten them"
        )
    if size > HTML_WARN_BYTES:
        log.warning("the %s HTML is %s bytes, close to Gmail's clipping limit", variant.label, size)
    return Rendered(subject=subject_for(content, variant.language, sender), html=html, text=text)


def personalise(rendered: Rendered, *, unsubscribe_url: str, preferences_url: str) -> Rendered:
    """Fill in one recipient's links: plain string replacement, microseconds per message."""
    html = rendered.html.replace(UNSUBSCRIBE, escape(unsubscribe_url)).replace(
        PREFERENCES, escape(preferences_url)
    )
    text = rendered.text.replace(UNSUBSCRIBE, unsubscribe_url).replace(PREFERENCES, preferences_url)
    return Rendered(rendered.subject, html, text)
