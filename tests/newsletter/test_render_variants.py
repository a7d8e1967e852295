"""The project's sample issue in four variants: (es, CR), (es, SV), (en, BZ), (en, regional).

Every string is in the reader's language, checked two ways: each text node's language
(the nearest lang attribute) is the language its words are in, and once the item texts
and the values put into the templates are taken out, nothing but the catalog's
translated template strings is left. Dates follow the language, the reader's country
comes first, item text is escaped (<, & and quotes), and an item without a translation is
shown in its own language and marked so in the reader's ("(en inglés)").
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from datetime import date
from html.parser import HTMLParser

import pytest
from babel.messages.pofile import read_po

from newsletter import geo
from newsletter.cli.demo import sample_items_text
from newsletter.i18n import format_date, language_name, package_locale_dir, po_path
from newsletter.ingest.model import ParsedItem
from newsletter.ingest.text import parse_text
from newsletter.render import (
    IssueContent,
    ItemText,
    ItemView,
    Rendered,
    Sender,
    Variant,
    personalise,
    render_variant,
)
from newsletter.templating import used_messages

SENDER = Sender(name="Boletín Regional", postal_address="Apartado 123-1000, San José, Costa Rica")
UNSUBSCRIBE = "https://news.example.org/u/7.c2lnbmF0dXJl?a=1&b=2"
PREFERENCES = "https://news.example.org/p/7.c2lnbmF0dXJl"
VIEW = "https://news.example.org/issues/2019-10/{label}"
# an attribute with every character that needs escaping in one
READ_MORE = 'https://example.org/noticias?id=3&lang=es&q="conecta"&t=\'x\'<y>'

SV_ES = ItemText(
    'La campaña "Conectá & Avanzá" abre una línea de texto para <jóvenes> que viajan',
    "San Salvador, El Salvador",
    ("Una campaña llamada 'Conectá & Avanzá' responde las preguntas de los jóvenes sobre "
     'viajes seguros, becas y empleos: "¡pregunte!", dice su lema.',
     "Los primeros volantes mostraban la etiqueta <b> junto al número por un error de "
     "imprenta; los voluntarios los corrigieron a mano."),
)
CR_ES = ItemText(
    "Un estudio describe las necesidades de las familias nicaragüenses en pueblos del norte",
    "San José",
    ("Una encuesta a 600 hogares de pueblos fronterizos halló que la mayoría alquila una "
     "sola habitación y depende del trabajo informal.",),
)
TRANSLATED = {"SV": SV_ES, "CR": CR_ES}
VARIANTS = [Variant("es", "CR"), Variant("es", "SV"), Variant("en", "BZ"), Variant("en")]
HEADINGS = {"es": ("En {country}", "En la región"), "en": ("In {country}", "Across the region")}


def item_view(parsed: ParsedItem) -> ItemView:
    """A sample item as the renderer gets it; the SV and CR items also have Spanish text."""
    code = next((c for c in TRANSLATED if c in parsed.countries[:1]), None)
    return ItemView(
        parsed.published, parsed.title, parsed.place, parsed.paragraphs, parsed.countries,
        parsed.language, {"es": TRANSLATED[code]} if code else {},
        url=READ_MORE if code == "SV" else None,
    )


SAMPLE = [item_view(p) for p in parse_text(sample_items_text(), "sample-items.txt")]
CONTENT = IssueContent("", date(2019, 9, 1), date(2019, 10, 31), SAMPLE)


class Page(HTMLParser):
    """The visible text nodes of an HTML document, each with its language (nearest lang)."""

    VOID = {"br", "img", "meta", "hr", "input", "link", "area", "base", "col", "source", "wbr"}

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.nodes: list[tuple[str, str]] = []
        self.links: dict[str, str] = {}  # link text -> href
        self._stack: list[tuple[str, str]] = []
        self._href: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a":
            self._href = values.get("href") or ""
        if tag not in self.VOID:
            inherited = self._stack[-1][1] if self._stack else ""
            self._stack.append((tag, values.get("lang") or inherited))

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            if self._stack.pop()[0] == tag:
                break
        if tag == "a":
            self._href = None

    def handle_data(self, data: str) -> None:
        if any(t in ("style", "title", "script", "head") for t, _ in self._stack):
            return
        if data.strip():
            self.nodes.append((data, self._stack[-1][1] if self._stack else ""))
            if self._href is not None:
                self.links[data.strip()] = self._href

    @property
    def text(self) -> str:
        return squash(" ".join(t for t, _ in self.nodes))


def squash(text: str) -> str:
    return " ".join(text.split())


def shown(item: ItemView, language: str) -> ItemView:
    return item.in_language(language)


def rendered_variant(variant: Variant) -> Rendered:
    return personalise(
        render_variant(CONTENT, variant, SENDER, view_url=VIEW.format(label=variant.label)),
        unsubscribe_url=UNSUBSCRIBE, preferences_url=PREFERENCES,
    )


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda v: v.label)
def case(request: pytest.FixtureRequest) -> tuple[Variant, Rendered, Page]:
    variant: Variant = request.param
    rendered = rendered_variant(variant)
    return variant, rendered, Page(rendered.html)


# --- the language of every string ---------------------------------------------------


def template_fragments(language: str) -> list[str]:
    """The words of every template string as this language's reader gets them."""
    used = {msgid for _, _, msgid in used_messages(None)}
    if language == "en":
        strings: list[str] = []
        for msgid in used:
            strings.append(msgid)
        # the plural form, from any catalog (msgid_plural is the same everywhere)
        catalog = read_po(io.BytesIO(po_path(package_locale_dir(), "es").read_bytes()))
        strings += [m.id[1] for m in catalog if isinstance(m.id, tuple) and m.id[0] in used]
    else:
        catalog = read_po(io.BytesIO(po_path(package_locale_dir(), language).read_bytes()))
        strings = []
        for message in catalog:
            key = message.id if isinstance(message.id, str) else message.id[0]
            if key in used:
                strings += [message.string] if isinstance(message.string, str) \
                    else list(message.string)
    return [f.strip() for s in strings for f in re.split(r"%\(\w+\)s", s) if f.strip()]


def inserted_values(variant: Variant) -> list[str]:
    """What the renderer puts into template strings and the page: items, names, dates."""
    lang = variant.language
    values = [SENDER.name, SENDER.postal_address, UNSUBSCRIBE, PREFERENCES,
              VIEW.format(label=variant.label), READ_MORE, language_name("en", lang)]
    if variant.country:
        values.append(geo.country_name(variant.country, lang))
    for day in (CONTENT.date_from, CONTENT.date_to, *(i.published for i in SAMPLE)):
        values.append(format_date(day, lang))
    for item in SAMPLE:
        text = shown(item, lang)
        values += [text.title, *(text.paragraphs), *([text.place] if text.place else [])]
    return values


def leftover(text: str, removals: Iterable[str]) -> str:
    rest = squash(text).casefold()
    for value in sorted({squash(v).casefold() for v in removals}, key=len, reverse=True):
        rest = rest.replace(value, " ")
    return squash(rest)


def test_nothing_but_translated_template_strings_and_content(
    case: tuple[Variant, Rendered, Page],
) -> None:
    variant, rendered, page = case
    removals = [*inserted_values(variant), *template_fragments(variant.language)]
    for part, text in (("HTML", page.text), ("text", rendered.text)):
        rest = leftover(text, removals)
        assert not re.search(r"[^\W\d_]", rest), (
            f"{variant.label} {part} part has words that are neither content nor a "
            f"{variant.language} template string: {rest!r}"
        )


def test_other_languages_template_strings_do_not_appear(
    case: tuple[Variant, Rendered, Page],
) -> None:
    variant, rendered, page = case
    other = "en" if variant.language == "es" else "es"
    mine = {f.casefold() for f in template_fragments(variant.language)}
    content = leftover(page.text, inserted_values(variant))
    text_content = leftover(rendered.text, inserted_values(variant))
    foreign = [f for f in template_fragments(other)
               if len(f) > 3 and f.casefold() not in mine
               and (f.casefold() in content or f.casefold() in text_content)]
    assert foreign == []


def test_every_text_node_carries_the_language_it_is_written_in(
    case: tuple[Variant, Rendered, Page],
) -> None:
    variant, _, page = case
    lang = variant.language
    untranslated = [shown(i, lang) for i in SAMPLE if shown(i, lang).language != lang]
    source_text = {squash(s) for i in untranslated
                   for s in (i.title, *i.paragraphs, f"{i.place}." if i.place else "") if s}
    wrong = []
    for data, node_lang in page.nodes:
        expected = "en" if squash(data) in source_text else lang
        if re.search(r"[^\W\d_]", data) and node_lang != expected:
            wrong.append((squash(data)[:60], node_lang, expected))
    assert wrong == []
    assert re.search(rf'<html lang="{lang}"', rendered_variant(variant).html)


# --- dates, subject, order ----------------------------------------------------------

DATE_FORMS = {
    "es": (r"\b\d{1,2} de (?:septiembre|octubre) de 2019\b", "14 de octubre de 2019"),
    "en": (r"\b\d{1,2} (?:September|October) 2019\b", "14 October 2019"),
}
# the lead item the reader meets first, in their language, shortened at a word past 70
# characters, and how many more follow (the sender is the From name, not the subject's)
SUBJECTS = {
    "es-CR": "Un estudio describe las necesidades de las familias nicaragüenses en… y 9 "
             "noticias más",
    "es-SV": 'La campaña "Conectá & Avanzá" abre una línea de texto para <jóvenes>… y 9 '
             "noticias más",
    "en-BZ": "Teachers discuss how to welcome children who change schools across…, and 9 more",
    "en-regional": "Mobile health teams reach families resting at shelters near the…, and 9 "
                   "more",
}


def test_dates_and_subject_in_the_readers_language(case: tuple[Variant, Rendered, Page]) -> None:
    variant, rendered, page = case
    lang = variant.language
    pattern, example = DATE_FORMS[lang]
    other_pattern, _ = DATE_FORMS["en" if lang == "es" else "es"]
    for text in (page.text, rendered.text):
        found = re.findall(pattern, squash(text))
        assert example in found
        # one per item, plus the window twice (masthead; the HTML's preheader repeats it)
        assert len(found) >= len(SAMPLE) + 2
        assert not re.search(other_pattern, squash(text))
    assert rendered.subject == SUBJECTS[variant.label]
    assert rendered.subject.startswith(expected_order(variant)[1 if variant.country else 0][:60])


def expected_order(variant: Variant) -> list[str]:
    """Headings and titles in the order the reader should meet them."""
    lang = variant.language
    titles = [shown(i, lang).title for i in SAMPLE]
    if not variant.country:
        return titles
    mine = [shown(i, lang).title for i in SAMPLE if variant.country in i.countries]
    rest = [t for t in titles if t not in mine]
    country, region = HEADINGS[lang]
    return [country.format(country=geo.country_name(variant.country, lang)), *mine, region,
            *rest]


def test_items_in_order_with_the_readers_country_first(
    case: tuple[Variant, Rendered, Page],
) -> None:
    variant, rendered, page = case
    order = expected_order(variant)
    for text in (page.text, squash(rendered.text)):
        folded = text.casefold()  # the text part shows headings in capitals
        positions = [folded.find(squash(s).casefold()) for s in order]
        assert -1 not in positions, [s for s, p in zip(order, positions, strict=True) if p < 0]
        assert positions == sorted(positions)
    if not variant.country:
        assert "Across the region" not in page.text and "In " not in page.text.split("·")[0]


# --- escaping -----------------------------------------------------------------------


def test_item_text_is_escaped_in_text_and_attributes() -> None:
    for variant in (Variant("es", "SV"), Variant("en")):
        rendered = rendered_variant(variant)
        item = shown(SAMPLE[2], variant.language)
        page = Page(rendered.html)
        # the page shows exactly the characters of the item, tags included as text
        assert squash(item.title) in page.text
        for paragraph in item.paragraphs:
            assert squash(paragraph) in page.text
            assert squash(paragraph) in squash(rendered.text)
        # ...because the markup has them escaped, never as tags
        assert "<b>" not in rendered.html and "<jóvenes>" not in rendered.html
        assert "&lt;b&gt;" in rendered.html and "&amp; Avanz" in rendered.html
        # an attribute value survives every special character
        read_more = "Leer más" if variant.language == "es" else "Read more"
        assert page.links[read_more] == READ_MORE
        assert f"{read_more}: {READ_MORE}" in rendered.text
        # the per-recipient links are escaped in HTML and literal in text
        assert page.links["Cancelar la suscripción" if variant.language == "es"
                          else "Unsubscribe"] == UNSUBSCRIBE
        assert 'href="https://news.example.org/u/7.c2lnbmF0dXJl?a=1&amp;b=2"' in rendered.html


# --- the fallback marking -----------------------------------------------------------


def test_untranslated_items_are_marked_in_the_readers_language(
    case: tuple[Variant, Rendered, Page],
) -> None:
    variant, rendered, page = case
    lang = variant.language
    marker = "(en inglés)" if lang == "es" else "(in English)"
    for item in SAMPLE:
        view = shown(item, lang)
        after_title = page.text.split(squash(view.title), 1)[1][:40].lstrip()
        # in the text part, the title is underlined with dashes
        text_after = squash(rendered.text).split(squash(view.title), 1)[1][:120].lstrip(" -")
        if view.language != lang:
            assert after_title.startswith(marker) and text_after.startswith(marker)
        else:
            assert marker not in after_title and marker not in text_after
    if lang == "en":
        assert "(in " not in page.text and "(in " not in rendered.text
    else:
        marked = page.text.count(marker)
        assert marked == len(SAMPLE) - len(TRANSLATED) == squash(rendered.text).count(marker)
