"""Rendering an issue: Jinja2 -> MJML -> mjml-python -> premailer -> HTML, plus plain text.

Rendering is pure and runs once per variant (language x country focus); what differs
per recipient is left as placeholders that `personalise` fills in cheaply. Every word of
the email comes from the templates through gettext (`newsletter.i18n`), in an environment
bound to the reader's language (`newsletter.templating`), so concurrent renders in
different languages cannot mix. Templates are checked before their first use, and again
whenever a template or catalog file changes: a broken custom template is refused with
its file and line rather than mailed to thousands.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Any

from newsletter.errors import NewsletterError
from newsletter.ingest.text import split_paragraphs
from newsletter.settings import Settings
from newsletter.templating import (
    HTML_TEMPLATE,
    SUBJECT_TEMPLATE,
    TEXT_TEMPLATE,
    Problem,
    TemplateError,
    environment,
    fingerprint,
    static_problems,
)

UNSUBSCRIBE = "%%UNSUBSCRIBE_URL%%"
PREFERENCES = "%%PREFERENCES_URL%%"
VIEW = "%%VIEW_URL%%"
_PLACEHOLDERS = re.compile("|".join(re.escape(p) for p in (UNSUBSCRIBE, PREFERENCES, VIEW)))
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
    url: str | None = None  # "Read more" links here when set
    id: int | None = None  # the stored item's id, for error messages

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
        """The one spelling users see and type: `es-CR`, `en-regional` (files, tables, URLs)."""
        return f"{self.language}-{self.country or 'regional'}"


@dataclass(frozen=True)
class Logo:
    """The masthead's image: always with its text alternative and its size in CSS pixels,
    so the layout does not jump when images load and says who it is when they do not."""

    url: str
    alt: str
    width: int
    height: int

    def fit(self, room: int) -> tuple[int, int]:
        """Width and height in `room` pixels of width: as set, or scaled down to fit."""
        if self.width <= room:
            return self.width, self.height
        return room, max(1, round(self.height * room / self.width))


@dataclass(frozen=True)
class Sender:
    name: str
    postal_address: str
    logo: Logo | None = None  # None: the masthead is the name alone


def sender_from(settings: Settings) -> Sender:
    logo = None
    if settings.logo_url and settings.logo_width and settings.logo_height:
        logo = Logo(settings.logo_url, settings.logo_alt or settings.sender_name,
                    settings.logo_width, settings.logo_height)
    return Sender(name=settings.sender_name, postal_address=settings.postal_address, logo=logo)


@dataclass(frozen=True)
class Section:
    """A run of items under one heading, which the template words in the reader's language.

    kind: "country" (the reader's country, `country` set), "region" (the rest of the
    region, after a country section) or "all" (the regional order, no heading).
    """

    kind: str
    items: Sequence[ItemView]
    country: str = ""


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
    titles: Mapping[str, str] = field(default_factory=dict)  # per language, over `title`
    intros: Mapping[str, str] = field(default_factory=dict)  # per language; "": every one

    def title_in(self, language: str) -> str:
        """The subject's title for readers of `language` ("" = the default subject line)."""
        return self.titles.get(language) or self.title

    def intro_in(self, language: str) -> list[str]:
        """The introduction's paragraphs for readers of `language` (none: no introduction)."""
        text = self.intros.get(language) or self.intros.get("", "")
        return split_paragraphs(text)


def sections_for(
    items: Sequence[ItemView], variant: Variant, focus: str = "first"
) -> list[Section]:
    """The reader's country first under its own heading, then the rest of the region.

    With focus "only", just the reader's country; "none" (or a reader without a
    country, or a country no item is about) gives everyone the regional order.
    """
    if variant.country and focus != "none":
        mine = [i for i in items if variant.country in i.countries]
        rest = [i for i in items if variant.country not in i.countries]
        if mine:
            sections = [Section("country", mine, variant.country)]
            if rest and focus == "first":
                sections.append(Section("region", rest))
            return sections
    return [Section("all", list(items))]


def _context(
    content: IssueContent, variant: Variant, sender: Sender, view_url: str = ""
) -> dict[str, object]:
    lang = variant.language
    sections = sections_for([i.in_language(lang) for i in content.items], variant, content.focus)
    shown = [item for section in sections for item in section.items]
    return {
        "lang": lang,
        "title": content.title_in(lang),
        # the subject leads with the first item the reader meets in their own language
        # (the From name is the brand); none such: the subject names the period
        "lead": next((item for item in shown if item.language == lang), None),
        "more": max(len(shown) - 1, 0),
        "intro": content.intro_in(lang),
        "sender": sender,
        "date_from": content.date_from,
        "date_to": content.date_to,
        "count": len(content.items),
        "sections": sections,
        "unsubscribe_url": UNSUBSCRIBE,
        "preferences_url": PREFERENCES,
        "view_url": view_url,  # "": no "view in browser" link
    }


def _subject(directory: Path | None, context: Mapping[str, object]) -> str:
    env = environment(directory, str(context["lang"]))
    # one line, whatever the template's layout: a line break in a header is an injection
    return " ".join(env.get_template(SUBJECT_TEMPLATE).render(context).split())


def subject_for(
    content: IssueContent, language: str, sender: Sender, directory: Path | None = None
) -> str:
    """The regional subject line in `language`: the issue's title, else its lead item
    and how many more follow, else its period."""
    return _subject(directory, _context(content, Variant(language), sender))


# mjml's <mj-preview> output: white text, which on a light background is the low-contrast
# text spam filters score (SpamAssassin's HTML_FONT_LOW_CONTRAST)
_MJML_PREVIEW = re.compile(r'(<body\b[^>]*>\s*)<div style="display:none;[^"]*">(.*?)</div>', re.S)
# hidden by every means but colour (mso-hide for Outlook, which ignores display:none) and
# tiny type: a font-size of 0 or 1px on the element that holds text is what spam filters'
# "invisible text" rules look for (SpamAssassin's __FONT_INVIS)
PREHEADER_STYLE = "display:none;max-height:0;max-width:0;opacity:0;overflow:hidden;mso-hide:all"
# after the preheader, invisible characters, so that an inbox's snippet shows the preheader
# and then nothing, rather than running on into "View this email in your browser"
PREHEADER_PADDING = "&zwnj;&nbsp;" * 100


def preheader(compiled: str) -> str:
    """The preheader hidden without low-contrast text, and padded (see PREHEADER_STYLE)."""
    return _MJML_PREVIEW.sub(
        lambda m: f'{m.group(1)}<div style="{PREHEADER_STYLE}">{m.group(2).strip()}'
                  f"{PREHEADER_PADDING}</div>",
        compiled, count=1,
    )


@lru_cache(maxsize=1)
def _premailer() -> Any:
    """premailer, except that an image keeps the width and height attributes MJML gave it.

    premailer turns an inlined style's width into the attribute, and MJML's images are
    `width:100%` of a cell of their size: the logo's width="160" would become "100%",
    and Outlook, which sizes images by the attribute alone, would draw it at its file's
    size. Imported on first use, with mjml: premailer brings requests, lxml and cssutils
    (~15 MB), which commands that never render (an import of subscribers) do not need."""
    import premailer

    class KeepImageSize(premailer.Premailer):  # type: ignore[misc]  # untyped library
        def _style_to_basic_html_attributes(
            self, element: Any, style_content: str, force: bool = False
        ) -> None:
            kept = {name: element.attrib[name] for name in ("width", "height")
                    if element.tag == "img" and name in element.attrib}
            super()._style_to_basic_html_attributes(element, style_content, force)
            element.attrib.update(kept)

    return KeepImageSize


def mjml_to_html(source: str) -> str:
    """Compile MJML and inline its CSS, keeping @media rules and !important intact."""
    inlined: str = _premailer()(
        preheader(compile_mjml(source)),
        strip_important=False,
        keep_style_tags=True,
        allow_network=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()
    # premailer (lxml) drops the doctype; email clients need it for standards mode
    return "<!doctype html>\n" + inlined


def compile_mjml(source: str) -> str:
    from mjml import mjml2html  # imported on first use, as premailer is

    try:
        compiled: str = mjml2html(source, disable_comments=True, fonts={})
    except Exception as exc:  # mjml-python raises a bare exception type
        raise RenderError(f"the MJML template did not compile: {_locate(source, exc)}") from exc
    return compiled


def _locate(source: str, exc: Exception) -> str:
    """mjml-python says "at position 1234:1240": show the rendered line it means."""
    message = str(exc)
    found = re.search(r"position (\d+)", message)
    if not found:
        return message
    offset = int(found.group(1))
    line = source.count("\n", 0, offset) + 1
    text = source.splitlines()[line - 1].strip() if source.splitlines() else ""
    return f"{message} (line {line} of the rendered MJML: {text[:120]})"


def render_variant(
    content: IssueContent,
    variant: Variant,
    sender: Sender,
    directory: Path | None = None,
    view_url: str = "",
) -> Rendered:
    """Subject, HTML and text of one variant.

    `directory` is the template_dir setting (None: the shipped templates). `view_url` is
    the variant's web version, the same for all its readers; "" leaves the "view in
    browser" link out, and VIEW leaves a placeholder for `personalise` to fill.
    """
    check_templates(directory, variant.language)
    try:
        subject, html, text = _render_parts(content, variant, sender, directory, view_url)
    except Exception as exc:
        culprit = _culprit(content, variant, sender, directory)
        if culprit is None:
            raise
        raise RenderError(f"the {variant.label} variant cannot be rendered because of "
                          f"{culprit}: {exc}") from exc
    size = len(html.encode())
    if size > HTML_LIMIT_BYTES:
        raise RenderError(
            f"the {variant.label} HTML is {size:,} bytes; Gmail clips messages over about "
            f"102 KB: move items to another issue or shorten them"
        )
    if size > HTML_WARN_BYTES:
        log.warning("the %s HTML is %s bytes, close to Gmail's clipping limit", variant.label, size)
    return Rendered(subject=subject, html=html, text=text)


def _render_parts(
    content: IssueContent, variant: Variant, sender: Sender, directory: Path | None,
    view_url: str = "",
) -> tuple[str, str, str]:
    env = environment(directory, variant.language)
    context = _context(content, variant, sender, view_url)
    context["subject"] = subject = _subject(directory, context)
    html = mjml_to_html(env.get_template(HTML_TEMPLATE).render(context))
    text = env.get_template(TEXT_TEMPLATE).render(context)
    return subject, html, text


def _culprit(
    content: IssueContent, variant: Variant, sender: Sender, directory: Path | None
) -> str | None:
    """Which item and field make a render fail: each item alone, then each of its fields
    made plain. Only run after a failure, so its cost does not matter."""

    def fails(item: ItemView) -> bool:
        try:
            _render_parts(replace(content, items=[item]), variant, sender, directory)
        except Exception:
            return True
        return False

    for item in content.items:
        shown = item.in_language(variant.language)
        alone = replace(shown, translations={})
        if not fails(alone):
            continue
        name = f"item {item.id} ({shown.title[:60]!r})" if item.id else repr(shown.title[:60])
        plain = {"title": replace(alone, title="title"), "place": replace(alone, place=None),
                 "paragraphs": replace(alone, paragraphs=("paragraph",)),
                 "url": replace(alone, url=None)}
        if fails(replace(alone, title="title", place=None, paragraphs=("paragraph",),
                         url=None)):
            return None  # even a plain item fails: not this item's fault
        for field_name, made_plain in plain.items():
            if not fails(made_plain):
                language = f" ({shown.language} text)" if shown.language != item.language else ""
                return f"{name}, field {field_name}{language}"
        return name
    return None


def personalise(
    rendered: Rendered, *, unsubscribe_url: str, preferences_url: str, view_url: str = ""
) -> Rendered:
    """Fill in one recipient's links: one regex pass per part, microseconds per message.

    `view_url` fills a VIEW placeholder left by `render_variant(..., view_url=VIEW)`.
    """
    links = {UNSUBSCRIBE: unsubscribe_url, PREFERENCES: preferences_url, VIEW: view_url}
    escaped = {key: escape(value) for key, value in links.items()}
    html = _PLACEHOLDERS.sub(lambda m: escaped[m.group()], rendered.html)
    text = _PLACEHOLDERS.sub(lambda m: links[m.group()], rendered.text)
    return Rendered(rendered.subject, html, text)


# --- checking templates before use --------------------------------------------------


def check_templates(directory: Path | None, language: str) -> None:
    """Raise TemplateError naming each file and line at fault; cached until files change."""
    problems = template_problems(directory, language)
    if problems:
        raise TemplateError(problems)


def template_problems(
    directory: Path | None, language: str, *, translations: bool = True
) -> list[Problem]:
    found = _problems(directory, language, fingerprint(directory, language))
    return [p for p in found if translations or p.kind != "translation"]


@lru_cache(maxsize=64)
def _problems(
    directory: Path | None, language: str, _fingerprint: tuple[tuple[str, int], ...]
) -> tuple[Problem, ...]:
    problems, complete = static_problems(directory, language)
    if complete:
        problems += _probe_problems(directory, language)
    return tuple(problems)


# A small issue that takes every branch of the shipped templates: a country section and
# the region, an item in the reader's language and one left in another, a "Read more".
_PROBE_SENDER = Sender("probe-sender", "probe-postal-address")
_PROBE_TEXT = ("probe-title-1", "probe-paragraph-1", "probe-title-2", "probe-paragraph-2")


def _probe(language: str) -> tuple[IssueContent, Variant]:
    other = "es" if language == "en" else "en"
    items = [
        ItemView(date(2019, 10, 10), "probe-title-1", "probe-place", ("probe-paragraph-1",),
                 ("CR",), language=other, url="https://example.org/probe"),
        ItemView(date(2019, 10, 3), "probe-title-2", None, ("probe-paragraph-2",), (),
                 language=language),
    ]
    return IssueContent("", date(2019, 10, 1), date(2019, 10, 31), items), Variant(language, "CR")


@dataclass(frozen=True)
class _Need:
    marker: str  # what the rendered output must contain
    what: str
    hint: str
    near: str  # where in the template it belongs, to point at a line


_FOOTER_NEEDS = (
    _Need(UNSUBSCRIBE, "no unsubscribe link", 'add <a href="{{ unsubscribe_url }}">…</a>: '
          "every issue must let its reader unsubscribe", "footer"),
    _Need(PREFERENCES, "no preferences link", 'add <a href="{{ preferences_url }}">…</a>',
          "footer"),
    _Need(_PROBE_SENDER.postal_address, "no postal address",
          "add {{ sender.postal_address }}: the law requires the sender's postal address",
          "footer"),
    _Need(VIEW, 'no "view in browser" link',
          'add {% if view_url %}<a href="{{ view_url }}">…</a>{% endif %}', "header"),
    *(_Need(t, "item text is missing", "show every item's title and paragraphs: both parts "
            "carry the same content", "items") for t in _PROBE_TEXT),
)
_NEEDS: dict[str, tuple[_Need, ...]] = {
    HTML_TEMPLATE: (
        *_FOOTER_NEEDS,
        _Need("<mj-preview>", "no preheader", "add <mj-preview>…</mj-preview> to <mj-head>",
              "mj-head"),
    ),
    TEXT_TEMPLATE: _FOOTER_NEEDS,
}


def _probe_problems(directory: Path | None, language: str) -> list[Problem]:
    """Render a probe issue and check what each template produced."""
    env = environment(directory, language)
    content, variant = _probe(language)
    context = _context(content, variant, _PROBE_SENDER, VIEW)
    problems: list[Problem] = []
    for name in (SUBJECT_TEMPLATE, HTML_TEMPLATE, TEXT_TEMPLATE):
        template = env.get_template(name)
        try:
            output = template.render(context)
        except Exception as exc:  # any template error: report where it happened
            path, line = _template_frame(exc) or (template.filename or name, None)
            problems.append(Problem(path, line, f"fails to render: {exc}"))
            continue
        where = template.filename or name
        if name == SUBJECT_TEMPLATE:
            context["subject"] = " ".join(output.split())
            if not context["subject"]:
                problems.append(Problem(where, None, "the subject line comes out empty"))
        source = Path(where).read_text(encoding="utf-8") if Path(where).is_file() else ""
        reported: set[str] = set()
        for need in _NEEDS.get(name, ()):
            if need.marker not in output and need.what not in reported:
                reported.add(need.what)
                problems.append(Problem(where, _line_near(source, need.near),
                                        f"{need.what}: {need.hint}"))
        if name == HTML_TEMPLATE:
            problems += _html_problems(where, source, output, language)
    return problems


def _html_problems(where: str, source: str, output: str, language: str) -> list[Problem]:
    if not re.search(rf'<mjml\b[^>]*\blang="{re.escape(language)}"', output):
        return [Problem(where, _line_near(source, "<mjml"),
                        '<mjml> has no lang="{{ lang }}": screen readers need the language')]
    try:
        compile_mjml(output)
    except RenderError as exc:
        return [Problem(where, None, str(exc))]
    return []


def _line_near(source: str, near: str) -> int | None:
    """The line of `{% block near %}` or of `near` itself; else the last line."""
    for pattern in (rf"\{{%-?\s*block\s+{re.escape(near)}\b", re.escape(near)):
        found = re.search(pattern, source)
        if found:
            return source.count("\n", 0, found.start()) + 1
    return source.count("\n") + 1 if source else None


def _template_frame(exc: BaseException) -> tuple[str, int] | None:
    """Jinja rewrites tracebacks so template frames carry the template's file and line."""
    found = None
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith((".j2", ".mjml", ".html", ".txt")):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found
