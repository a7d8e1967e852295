"""Rendering: Jinja2 -> MJML -> HTML + text, escaping, premailer settings, country focus."""

from __future__ import annotations

import logging
import re
from datetime import date
from html.parser import HTMLParser

import pytest

from newsletter.render import (
    HTML_LIMIT_BYTES,
    HTML_WARN_BYTES,
    PREFERENCES,
    UNSUBSCRIBE,
    VIEW,
    IssueContent,
    ItemView,
    RenderError,
    Sender,
    Variant,
    personalise,
    render_variant,
    sections_for,
)

SENDER = Sender(name="Boletín Regional", postal_address="Apartado 123-1000, San José, Costa Rica")


def item(title: str, day: int, countries: tuple[str, ...], *paragraphs: str,
         place: str | None = None) -> ItemView:
    return ItemView(date(2019, 10, day), title, place, paragraphs or ("Body.",), countries)


ITEMS = [
    item("Shelters in Panama", 14, ("PA",), "Teams visit shelters.", place="Panama City"),
    item("Campaign <b>Conectá</b> & friends", 8, ("SV",),
         'It said "<Conectá>" & more <script>alert(1)</script>.', "Second paragraph.",
         place="San Salvador, El Salvador"),
    item("Study in Costa Rica", 3, ("CR", "NI"), "Families settle in towns.", place="San José"),
    item("Regional meeting", 2, (), "Officials met."),
]
CONTENT = IssueContent("", date(2019, 10, 1), date(2019, 10, 31), ITEMS)


class _Text(HTMLParser):
    """Collects the visible text of an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "title", "script"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title", "script"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)

    def text(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.parts))


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return parser.text()


@pytest.fixture(scope="module")
def es_cr() -> tuple[str, str, str]:
    r = render_variant(CONTENT, Variant("es", "CR"), SENDER)
    return r.subject, r.html, r.text


def test_html_is_a_complete_responsive_document(es_cr: tuple[str, str, str]) -> None:
    _, html, _ = es_cr
    assert html.startswith("<!doctype html>")
    assert '<html lang="es"' in html
    # premailer kept the media queries and their !important (columns need them on desktop)
    assert "@media only screen and (min-width:480px)" in html
    assert re.search(r"@media[^{]*max-width: ?480px\)\s*\{[^}]*!important", html)
    assert 'role="presentation"' in html
    # CSS got inlined into style attributes
    assert re.search(r'<h2 style="[^"]*color: ?#0b3c5d', html)
    assert "fonts.googleapis" not in html


def test_item_text_is_escaped_never_markup(es_cr: tuple[str, str, str]) -> None:
    _, html, text = es_cr
    assert "<script>" not in html and "<b>Conectá" not in html
    assert "&lt;b&gt;Conectá&lt;/b&gt; &amp; friends" in html
    shown = visible_text(html)
    assert "Campaign <b>Conectá</b> & friends" in shown
    assert 'It said "<Conectá>" & more <script>alert(1)</script>.' in shown
    # the text part carries the characters as they are
    assert 'It said "<Conectá>" & more <script>alert(1)</script>.' in " ".join(text.split())


def test_country_first_with_localised_headings(es_cr: tuple[str, str, str]) -> None:
    subject, html, text = es_cr
    shown = visible_text(html)
    assert shown.index("En Costa Rica") < shown.index("Study in Costa Rica")
    assert shown.index("Study in Costa Rica") < shown.index("En la región")
    assert shown.index("En la región") < shown.index("Shelters in Panama")
    assert shown.index("Shelters in Panama") < shown.index("Regional meeting")
    assert "3 de octubre de 2019" in shown
    # no item is in Spanish: the subject names the period, all of it in Spanish
    assert subject == "Noticias del 1 de octubre de 2019 al 31 de octubre de 2019"
    assert text.index("EN COSTA RICA") < text.index("Study in Costa Rica") < text.index(
        "EN LA REGIÓN") < text.index("Shelters in Panama")


def test_regional_variant_keeps_newest_first_without_headings() -> None:
    r = render_variant(CONTENT, Variant("en"), SENDER)
    shown = visible_text(r.html)
    positions = [shown.index(i.title) for i in ITEMS]
    assert positions == sorted(positions)
    assert "In Panama" not in shown and "Across the region" not in shown
    assert "14 October 2019" in shown
    assert r.subject == "Shelters in Panama, and 3 more"


def test_dateline_and_paragraphs_survive_in_both_parts() -> None:
    r = render_variant(CONTENT, Variant("en"), SENDER)
    shown = visible_text(r.html)
    assert "San Salvador, El Salvador. It said" in shown
    assert "Second paragraph." in shown
    paragraphs = r.text.split("\n\n")
    assert any(p.startswith("San Salvador, El Salvador. It said") for p in paragraphs)
    assert "Second paragraph." in paragraphs
    assert all(len(line) <= 72 for line in r.text.splitlines() if " " in line)


def test_footer_has_address_and_links_to_fill_per_recipient() -> None:
    r = render_variant(CONTENT, Variant("en"), SENDER)
    for part in (r.html, r.text):
        assert SENDER.postal_address in part
        assert UNSUBSCRIBE in part and PREFERENCES in part
    p = personalise(r, unsubscribe_url="https://x.org/u/1.a?b=1&c=2",
                    preferences_url="https://x.org/p/1.b")
    assert UNSUBSCRIBE not in p.html and PREFERENCES not in p.text
    assert 'href="https://x.org/u/1.a?b=1&amp;c=2"' in p.html
    assert "Unsubscribe: https://x.org/u/1.a?b=1&c=2" in p.text
    assert "Update your preferences: https://x.org/p/1.b" in p.text


def test_country_without_items_gets_the_regional_order() -> None:
    assert [s.kind for s in sections_for(ITEMS, Variant("en", "MX"))] == ["all"]
    focused = sections_for(ITEMS, Variant("en", "NI"))
    assert [(s.kind, s.country) for s in focused] == [("country", "NI"), ("region", "")]
    assert [i.title for i in focused[0].items] == ["Study in Costa Rica"]
    shown = visible_text(render_variant(CONTENT, Variant("en", "NI"), SENDER).html)
    assert shown.index("In Nicaragua") < shown.index("Study in Costa Rica") < shown.index(
        "Across the region") < shown.index("Shelters in Panama")


@pytest.mark.parametrize(("focus", "kinds"), [("only", ["country"]), ("none", ["all"])])
def test_focus_only_and_none(focus: str, kinds: list[str]) -> None:
    sections = sections_for(ITEMS, Variant("es", "CR"), focus)
    assert [s.kind for s in sections] == kinds
    content = IssueContent("", date(2019, 10, 1), date(2019, 10, 31), ITEMS, focus=focus)
    shown = visible_text(render_variant(content, Variant("es", "CR"), SENDER).html)
    assert ("Shelters in Panama" in shown) == (focus == "none")
    assert ("En Costa Rica" in shown) == (focus == "only")


def test_view_in_browser_link_when_the_caller_knows_the_url() -> None:
    without = render_variant(CONTENT, Variant("es"), SENDER)
    assert "Ver este correo en el navegador" not in without.html + without.text
    url = "https://news.example.org/issues/2019-10/es-regional?a=1&b=2"
    direct = render_variant(CONTENT, Variant("es"), SENDER, view_url=url)
    assert 'href="https://news.example.org/issues/2019-10/es-regional?a=1&amp;b=2"' in direct.html
    assert f"Ver este correo en el navegador: {url}" in direct.text
    # or left as a placeholder, filled per message
    later = render_variant(CONTENT, Variant("es"), SENDER, view_url=VIEW)
    assert VIEW in later.html and VIEW in later.text
    filled = personalise(later, unsubscribe_url="u", preferences_url="p", view_url=url)
    assert VIEW not in filled.html + filled.text
    same = personalise(direct, unsubscribe_url="u", preferences_url="p")
    assert (same.html, same.text) == (filled.html, filled.text)


def test_explicit_title_is_the_subject_in_every_language() -> None:
    content = IssueContent("October news", date(2019, 10, 1), date(2019, 10, 31), ITEMS)
    assert render_variant(content, Variant("es"), SENDER).subject == "October news"


def test_warns_close_to_gmails_limit(caplog: pytest.LogCaptureFixture) -> None:
    # 18 long items land between the two thresholds (about 93 KB)
    big = [item(f"Item {n}", 1 + n % 28, (), "word " * 400) for n in range(18)]
    content = IssueContent("", date(2019, 10, 1), date(2019, 10, 31), big)
    with caplog.at_level(logging.WARNING, logger="newsletter.render"):
        r = render_variant(content, Variant("en"), SENDER)
    assert HTML_WARN_BYTES < len(r.html.encode()) <= HTML_LIMIT_BYTES
    assert "close to Gmail's clipping limit" in caplog.text


def test_refuses_html_that_gmail_would_clip() -> None:
    huge = [item(f"Item {n}", 1 + n % 28, (), "word " * 400) for n in range(60)]
    content = IssueContent("", date(2019, 10, 1), date(2019, 10, 31), huge)
    with pytest.raises(RenderError, match="Gmail clips"):
        render_variant(content, Variant("en"), SENDER)
    assert HTML_LIMIT_BYTES == 100_000
