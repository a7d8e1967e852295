"""The message itself (issue 11, part 6): what spam filters and inboxes make of it.

A preheader hidden without low-contrast text and padded so the inbox snippet ends with
it; SpamAssassin (offline rules) scores every language's message 0; subject lines lead
with the content; light and dark colour schemes both keep text readable (4.5:1); a logo
with its text alternative and size, or none.
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import lxml.html
import pytest
from lxml.cssselect import CSSSelector

from newsletter.cli.demo import sample_items_text
from newsletter.ingest.text import parse_text
from newsletter.render import (
    PREHEADER_PADDING,
    IssueContent,
    ItemText,
    ItemView,
    Logo,
    Sender,
    Variant,
    personalise,
    render_variant,
    sender_from,
    subject_for,
)
from newsletter.settings import load_settings
from tests.system_packages import apt_packages, install_command, locate
from worker.mime import Headers, build_message, issue_key, message_id

SENDER = Sender("Boletín Regional", "Apartado 123-1000, San José, Costa Rica")
VIEW = "https://news.example.org/issues/2019-10/{label}"
ZWNJ_NBSP = "\u200c\u00a0"


def item(title: str, day: int, countries: tuple[str, ...] = (), language: str = "en",
         es: str | None = None, url: str | None = None) -> ItemView:
    translations = {"es": ItemText(es, None, ("Párrafo.",))} if es else {}
    return ItemView(date(2019, 10, day), title, None, ("Paragraph.",), countries, language,
                    translations, url=url)


ITEMS = [
    item("Shelters in Panama open their doors", 14, ("PA",), es="Albergues en Panamá abren"),
    item("Study in Costa Rica", 8, ("CR",), es="Estudio en Costa Rica"),
    item("Regional meeting", 3, (), url="https://example.org/meeting"),
]
CONTENT = IssueContent("", date(2019, 10, 1), date(2019, 10, 31), ITEMS,
                       intros={"": "Welcome to this issue."})


def page(variant: Variant, sender: Sender = SENDER, content: IssueContent = CONTENT) -> str:
    rendered = render_variant(content, variant, sender, view_url=VIEW.format(label=variant.label))
    return personalise(rendered, unsubscribe_url="https://news.example.org/u/1.a",
                       preferences_url="https://news.example.org/p/1.a").html


def styles(element: lxml.html.HtmlElement) -> dict[str, str]:
    declarations = (d.partition(":") for d in (element.get("style") or "").split(";"))
    return {name.strip().lower(): value.strip().lower() for name, _, value in declarations
            if value.strip()}


# --- the preheader ------------------------------------------------------------------


def preheader_of(html: str) -> lxml.html.HtmlElement:
    body = lxml.html.document_fromstring(html).body
    first = body[0]
    assert first.tag == "div" and not len(first), "the preheader is the body's first element"
    return first


@pytest.mark.parametrize("language", ["en", "es", "fr"])
def test_preheader_is_hidden_by_layout_not_by_low_contrast_text(language: str) -> None:
    preheader = preheader_of(page(Variant(language)))
    style = styles(preheader)
    assert style["display"] == "none"
    assert style["max-height"] in ("0", "0px") and style["overflow"] == "hidden"
    assert style["mso-hide"] == "all" and style["opacity"] == "0"
    # no colour of its own (white on the light grey page was 1.13:1, HTML_FONT_LOW_CONTRAST),
    # and no 0/1px type, which spam filters read as hidden text (__FONT_INVIS)
    assert "color" not in style and "font-size" not in style


def test_preheader_is_padded_so_the_snippet_stops_after_it() -> None:
    html = page(Variant("en"))
    text = preheader_of(html).text_content()
    words = "News from 1 October 2019 to 31 October 2019 · 3 news items"
    assert text == words + ZWNJ_NBSP * 100
    assert PREHEADER_PADDING == "&zwnj;&nbsp;" * 100
    # an inbox shows about 90 to 140 characters of snippet: the padding fills more than
    # that before the first visible words ("View this email in your browser") come
    assert len(text) - len(words) >= 200
    assert html.index(words) < html.index("View this email in your browser")


def sample_messages() -> dict[str, bytes]:
    """The demo's issue as mailed: one message per language (a country variant for es)."""
    items = [ItemView(p.published, p.title, p.place, p.paragraphs, p.countries, p.language)
             for p in parse_text(sample_items_text(), "sample-items.txt")]
    content = IssueContent("", date(2019, 9, 1), date(2019, 10, 31), items)
    sender = sender_from(load_settings())
    key = issue_key("s" * 32, 3, datetime(2019, 10, 1, tzinfo=UTC))
    messages = {}
    for number, variant in enumerate([Variant("en"), Variant("es", "CR"), Variant("fr", "HT")]):
        rendered = render_variant(content, variant, sender,
                                  view_url=VIEW.format(label=variant.label))
        rendered = personalise(rendered, unsubscribe_url="https://news.example.org/u/7.abc",
                               preferences_url="https://news.example.org/p/7.abc")
        headers = Headers(sender.name, "news@example.org", "Ana", "ana@example.com",
                          message_id("2019-10", number + 1, "example.org", key),
                          "newsletter.example.org", "https://news.example.org/u/7.abc")
        messages[variant.label] = build_message(
            rendered, headers, when=datetime(2019, 10, 31, tzinfo=UTC))
    return messages


def test_spamassassin_scores_every_language_zero(tmp_path: Path) -> None:
    program = locate("spamassassin")
    if program is None:
        pytest.fail("spamassassin not found: install it with "
                    f"`{install_command(apt_packages(['spamassassin']))}` (Debian/Ubuntu)")
    messages = sample_messages()
    mbox = b"".join(b"From news@example.org Thu Oct 31 00:00:00 2019\n"
                    + m.replace(b"\r\n", b"\n") + b"\n" for m in messages.values())
    # offline rules only, no Bayes, nothing learnt, preferences under tmp_path (SpamAssassin
    # itself still makes ~/.spamassassin of the user it runs as, its global state dir)
    result = subprocess.run(
        [program, "--local", "--mbox", "--nocreate-prefs", "--prefspath",
         str(tmp_path / "user_prefs"), "--cf", "use_bayes 0",
         "--cf", "bayes_auto_learn 0", "--cf", "use_auto_welcomelist 0"],
        input=mbox, capture_output=True, timeout=180, env={"HOME": str(tmp_path),
                                                           "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    output = result.stdout.decode(errors="replace")
    verdicts = re.findall(r"^X-Spam-Status: \w+, score=(-?[\d.]+) required=[\d.]+ "
                          r"tests=(.*?) autolearn", output, re.M | re.S)
    assert len(verdicts) == len(messages), output[-3000:]
    for label, (score, tests) in zip(messages, verdicts, strict=True):
        rules = re.split(r"[,\s]+", tests.strip())
        assert float(score) < 1.0, (label, score, rules)
        assert float(score) <= 0.0, (label, score, rules)  # as measured: 0.0 in every language
        assert "HTML_FONT_LOW_CONTRAST" not in rules, label
        assert not [r for r in rules if "INVIS" in r], (label, rules)


# --- the subject line -----------------------------------------------------------------


@pytest.mark.parametrize(("variant", "subject"), [
    (Variant("en"), "Shelters in Panama open their doors, and 2 more"),
    (Variant("es"), "Albergues en Panamá abren y 2 noticias más"),
    # a country variant leads with the reader's country, as its body does
    (Variant("es", "CR"), "Estudio en Costa Rica y 2 noticias más"),
    (Variant("en", "CR"), "Study in Costa Rica, and 2 more"),
])
def test_subject_leads_with_what_the_reader_meets_first(variant: Variant, subject: str) -> None:
    rendered = render_variant(CONTENT, variant, SENDER)
    assert rendered.subject == subject
    assert SENDER.name not in rendered.subject  # the From name says who it is from


def test_subject_counts_what_the_variant_shows() -> None:
    one = IssueContent("", date(2019, 10, 1), date(2019, 10, 31), ITEMS[:1])
    assert render_variant(one, Variant("es"), SENDER).subject == "Albergues en Panamá abren"
    two = IssueContent("", date(2019, 10, 1), date(2019, 10, 31), ITEMS[:2])
    assert render_variant(two, Variant("es"), SENDER).subject == (
        "Albergues en Panamá abren y 1 noticia más")
    assert render_variant(two, Variant("es", "CR"), SENDER).subject == (
        "Estudio en Costa Rica y 1 noticia más")
    assert subject_for(two, "en", SENDER) == "Shelters in Panama open their doors, and 1 more"
    # focus "only": a CR reader gets the one CR item, so nothing "more"
    only = IssueContent("", date(2019, 10, 1), date(2019, 10, 31), ITEMS, focus="only")
    assert render_variant(only, Variant("en", "CR"), SENDER).subject == "Study in Costa Rica"


def test_the_subject_is_in_the_readers_language() -> None:
    """The lead is the first item in the reader's language; with none, the period: a
    subject line cannot mark a title in another language as such (WCAG 3.1.2)."""
    untranslated = item("Shelters in Haiti", 20, ("HT",))
    content = IssueContent("", date(2019, 10, 1), date(2019, 10, 31), [untranslated, *ITEMS])
    assert render_variant(content, Variant("es", "HT"), SENDER).subject == (
        "Albergues en Panamá abren y 3 noticias más")  # Haiti's item is still in English
    assert render_variant(content, Variant("en", "HT"), SENDER).subject == (
        "Shelters in Haiti, and 3 more")
    french = item("Réunion à Port-au-Prince", 2, ("HT",), language="fr")
    content = IssueContent("", date(2019, 10, 1), date(2019, 10, 31), [*ITEMS, french])
    assert render_variant(content, Variant("fr"), SENDER).subject == (
        "Réunion à Port-au-Prince et 3 autres actualités")
    assert render_variant(CONTENT, Variant("fr"), SENDER).subject == (
        "Actualités du 1er octobre 2019 au 31 octobre 2019")
    two = IssueContent("", date(2019, 10, 1), date(2019, 10, 31), [ITEMS[0], french])
    assert render_variant(two, Variant("fr"), SENDER).subject == (
        "Réunion à Port-au-Prince et 1 autre actualité")


def test_a_long_lead_title_is_shortened_at_a_word() -> None:
    long = ("Mobile health teams reach families resting at shelters near the Darién border "
            "after a week of rain")
    content = IssueContent("", date(2019, 10, 1), date(2019, 10, 31), [item(long, 4), *ITEMS])
    subject = render_variant(content, Variant("en"), SENDER).subject
    assert subject == ("Mobile health teams reach families resting at shelters near the…, "
                       "and 3 more")


def test_editors_titles_still_win_per_language() -> None:
    content = IssueContent("October news", date(2019, 10, 1), date(2019, 10, 31), ITEMS,
                           titles={"es": "Noticias de octubre"})
    assert render_variant(content, Variant("es", "CR"), SENDER).subject == "Noticias de octubre"
    assert render_variant(content, Variant("en"), SENDER).subject == "October news"
    assert render_variant(content, Variant("fr"), SENDER).subject == "October news"


def test_an_issue_without_items_is_named_by_its_period() -> None:
    empty = IssueContent("", date(2019, 10, 1), date(2019, 10, 31), [])
    assert render_variant(empty, Variant("es"), SENDER).subject == (
        "Noticias del 1 de octubre de 2019 al 31 de octubre de 2019")


# --- colour schemes -----------------------------------------------------------------


def luminance(colour: str) -> float:
    hexa = colour.lstrip("#")
    if len(hexa) == 3:
        hexa = "".join(c * 2 for c in hexa)
    channels = [int(hexa[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(one: str, other: str) -> float:
    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def dark_rules(html: str) -> list[tuple[str, dict[str, str]]]:
    """The (selector, declarations) of the @media (prefers-color-scheme: dark) block."""
    start = re.search(r"@media\s*\(prefers-color-scheme:\s*dark\)\s*\{", html)
    assert start is not None, "no dark-mode styles"
    depth, position = 1, start.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(html[position], 0)
        position += 1
    rules = []
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", html[start.end():position - 1]):
        declarations = {}
        for declaration in body.split(";"):
            name, _, value = declaration.partition(":")
            if value.strip():
                assert "!important" in value, f"{selectors.strip()}: {declaration.strip()} " \
                                              "cannot beat the inlined light colours"
                declarations[name.strip()] = value.replace("!important", "").strip()
        for selector in selectors.split(","):
            rules.append((selector.strip(), declarations))
    return rules


def text_colours(html: str, scheme: str) -> list[tuple[str, str, str]]:
    """(text, colour, background) of every visible text in the body under `scheme`."""
    document = lxml.html.document_fromstring(html)
    overrides: dict[tuple[object, str], str] = {}
    if scheme == "dark":
        for selector, declarations in dark_rules(html):
            for element in CSSSelector(selector)(document):
                for name, value in declarations.items():
                    overrides[(element, name)] = value

    def resolved(element: lxml.html.HtmlElement, name: str) -> str:
        for node in (element, *element.iterancestors()):
            style = styles(node)
            value = (overrides.get((node, name)) or style.get(name)
                     or (style.get("background") if name == "background-color" else None)
                     or (node.get("bgcolor") if name == "background-color" else None))
            if value and value != "transparent":
                return value
        return "#000000" if name == "color" else "#ffffff"

    found = []
    for element in document.body.iter():
        if not isinstance(element.tag, str) or element.tag in ("style", "script"):
            continue
        if any(styles(n).get("display") == "none" for n in (element, *element.iterancestors())):
            continue  # the preheader
        if element.tag == "img" and element.get("alt"):  # shown where images are blocked
            found.append((f"[{element.get('alt')}]", resolved(element, "color"),
                          resolved(element, "background-color")))
        if (element.text or "").strip():
            found.append((element.text.strip(), resolved(element, "color"),
                          resolved(element, "background-color")))
        parent = element.getparent()
        if (element.tail or "").strip() and parent is not None:
            found.append((element.tail.strip(), resolved(parent, "color"),
                          resolved(parent, "background-color")))
    return found


def with_logo() -> Sender:
    return Sender(SENDER.name, SENDER.postal_address,
                  Logo("https://news.example.org/logo.png", "Boletín Regional", 160, 40))


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_and_links_keep_4_5_to_1_in_both_colour_schemes(scheme: str) -> None:
    # an intro, a country section and the region, a foreign item's "(in English)" note,
    # "Read more", the view-in-browser link, the footer and a logo
    html = page(Variant("es", "CR"), with_logo())
    found = text_colours(html, scheme)
    shown = " ".join(text for text, _, _ in found)
    for expected in ("Welcome to this issue.", "En Costa Rica",
                     "En la región", "(en inglés)", "Leer más", "Ver este correo en el navegador",
                     "Cancelar la suscripción", SENDER.postal_address, "[Boletín Regional]"):
        assert expected in shown
    poor = [(text[:40], fg, bg, round(contrast(fg, bg), 2)) for text, fg, bg in found
            if contrast(fg, bg) < 4.5]
    assert poor == []


def test_colour_scheme_is_declared_and_dark_styles_survive_premailer() -> None:
    html = page(Variant("en"))
    head = html[:html.index("</head>")]
    assert '<meta name="color-scheme" content="light dark">' in head
    assert '<meta name="supported-color-schemes" content="light dark">' in head
    assert re.search(r":root\s*\{\s*color-scheme: light dark; supported-color-schemes: "
                     r"light dark;", head)
    rules = dict(dark_rules(html))
    assert rules["body"]["background-color"] == "#0f1419"
    assert rules[".card td"]["background-color"] == "#1c2630"
    # premailer left the dark colours in the <style>: none was inlined into an element
    body = html[html.index("<body"):]
    for values in rules.values():
        for value in values.values():
            assert value not in body


# --- the logo -------------------------------------------------------------------------


def images(html: str) -> list[dict[str, str]]:
    return [dict(img.attrib) for img in lxml.html.document_fromstring(html).iter("img")]


def test_logo_from_settings_with_alt_text_and_size() -> None:
    settings = load_settings(logo_url="https://news.example.org/logo.png", logo_width=160,
                             logo_height=40, sender_name='Boletín "Regional" & <Co>')
    sender = sender_from(settings)
    assert sender.logo == Logo("https://news.example.org/logo.png", 'Boletín "Regional" & <Co>',
                               160, 40)  # the alt text defaults to the sender's name
    [logo] = images(page(Variant("es"), sender))
    assert logo["src"] == "https://news.example.org/logo.png"
    assert logo["alt"] == 'Boletín "Regional" & <Co>'
    assert (logo["width"], logo["height"]) == ("160", "40")
    # wider than the masthead's 552 px: scaled down to fit, its shape kept
    banner = sender_from(load_settings(logo_url="https://news.example.org/logo.png",
                                       logo_width=600, logo_height=150, logo_alt="RMN"))
    [logo] = images(page(Variant("en"), banner))
    assert (logo["alt"], logo["width"], logo["height"]) == ("RMN", "552", "138")
    thin = Logo("https://news.example.org/logo.png", "", 600, 1)
    assert (thin.fit(552), thin.fit(600), thin.fit(1000)) == ((552, 1), (600, 1), (600, 1))


def test_no_logo_when_unset() -> None:
    sender = sender_from(load_settings())
    assert sender.logo is None
    assert images(page(Variant("en"), sender)) == []
