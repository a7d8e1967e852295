"""The pure feed reader: every RSS version and Atom, the reduction of entry HTML to plain
paragraphs, what identifies an entry, and hostile bytes (hypothesis)."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.ingest.feeds import (
    FeedEntry,
    FeedError,
    parse_feed,
    reduce_html,
    to_item,
)
from tests.conftest import FIXTURES

FEEDS = FIXTURES / "feeds"
SOURCE = "https://feeds.example.org/feed.xml"
EDITIONS = ("en", "es", "fr")


def read(name: str) -> list[FeedEntry]:
    return list(parse_feed((FEEDS / name).read_bytes(), SOURCE).entries)


def rss(items: str, *, channel: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>T</title>{channel}{items}</channel></rss>").encode()


def test_rss_2_0_with_escaped_html_and_content_encoded() -> None:
    upala, tapachula, darien = read("rss20-es.xml")
    assert upala == FeedEntry(
        identity="guid:noticias-2026-1201",
        title="Upala abre un segundo albergue temporal",
        paragraphs=("La municipalidad habilitó un segundo albergue para familias nicaragüenses "
                    "que cruzan la frontera norte.",
                    "El centro tiene capacidad para ochenta personas y atención médica básica."),
        published=date(2026, 12, 1),  # 20:30 -0600 is still the 1st where it was written
        place="Upala",
        url="https://noticias.example.org/2026/12/upala-albergue",
        language="es",
    )
    # content:encoded wins over the description; each li is a paragraph; style, img gone
    assert tapachula.place == "Tapachula"
    assert tapachula.paragraphs == (
        "Cientos de personas durmieron frente a las oficinas de la comisión de refugiados a "
        "la espera de una cita.",
        "Las autoridades prometieron ampliar el horario.",
        "Organizaciones locales reparten agua y comida.",
    )
    assert darien.paragraphs[1] == "Las estaciones de recepción migratoria reducen su personal."


def test_atom_resolves_relative_links_and_reduces_an_html_title() -> None:
    haiti, guatemala = read("atom-en.xml")
    assert haiti.title == "Haitian families reach Santo Domingo shelters"
    assert haiti.url == "https://feeds.example.org/2026/haiti-shelters"
    assert haiti.identity == "guid:tag:briefing.example.org,2026:haiti-shelters"
    assert (haiti.place, haiti.published) == ("Santo Domingo", date(2026, 12, 4))
    assert guatemala.paragraphs == (
        "The reception centre for people returned by air now offers job counselling.",
        "Officials expect more flights in January.",
    )
    assert (guatemala.place, guatemala.published) == ("Guatemala City", date(2026, 12, 3))


def test_rss_1_0_rdf_and_rss_0_91_in_latin_1() -> None:
    kingston, havana = read("rss10-en.rdf")
    assert kingston.identity == "guid:https://caribe.example.org/notes/kingston-deportations"
    assert (kingston.place, kingston.published) == ("Kingston", date(2026, 12, 2))
    assert havana.published == date(2026, 12, 1)
    parsed = parse_feed((FEEDS / "rss091-es.xml").read_bytes(), SOURCE)
    assert parsed.version.startswith("rss091")
    chetumal, juarez = parsed.entries
    assert chetumal.title == "Chetumal recibe a solicitantes de refugio beliceños"
    assert chetumal.published is None  # RSS 0.91 items have no date
    assert chetumal.identity == "link:https://frontera.example.org/breves/chetumal"
    assert juarez.place is None


@pytest.mark.parametrize(("fragment", "paragraphs"), [
    ("<p>One</p><p>Two <b>bold</b></p>", ["One", "Two bold"]),
    ("a<br>b<br/><br>c", ["a", "b", "c"]),
    ("<ul><li>x</li><li>y</li></ul>", ["x", "y"]),
    ("<div>in<div>nested</div>after</div>", ["in", "nested", "after"]),
    ("<script>alert('x')</script><style>p{color:red}</style>kept", ["kept"]),
    ("<scr<script>ipt>alert(1)</script>", ["ipt>alert(1)"]),  # text, not a tag, once parsed
    ("&lt;p&gt;escaped twice&lt;/p&gt;&lt;script&gt;evil()&lt;/script&gt;", ["escaped twice"]),
    ("<!-- <p>hidden</p> -->shown", ["shown"]),
    ("Fish &amp; chips &lt; 5 &#8364;", ["Fish & chips < 5 €"]),
    ("<p>\x00nul\x07 and \ufffe</p>", ["nul and"]),
    ("<svg><script>x()</script><text>t</text></svg><iframe src=x>f</iframe>ok", ["ok"]),
    ("", []),
])
def test_reduce_html(fragment: str, paragraphs: list[str]) -> None:
    assert reduce_html(fragment) == paragraphs


def test_an_entry_is_found_by_guid_else_link_else_title_and_date() -> None:
    entries = parse_feed(rss(
        "<item><title>A</title><guid>urn:uuid:1</guid><link>https://a.example/1</link></item>"
        "<item><title>B</title><link>https://a.example/2</link></item>"
        "<item><title>C</title><pubDate>Mon, 07 Dec 2026 10:00:00 GMT</pubDate></item>"
        "<item><title>D</title><guid isPermaLink='false'>42</guid></item>"), SOURCE).entries
    assert [e.identity for e in entries] == [
        "guid:urn:uuid:1", "link:https://a.example/2", "title:c\n2026-12-07", "guid:42"]
    a, b, c, d = entries
    # a guid or link that is an address is the same item in any feed; "42" is not
    assert a.key(SOURCE) == a.key("https://other.example/feed")
    assert b.key(SOURCE) == b.key("https://other.example/feed")
    assert d.key(SOURCE) != d.key("https://other.example/feed")
    assert c.key(SOURCE) != c.key("https://other.example/feed")
    assert len({e.key(SOURCE) for e in entries}) == 4
    (odd,) = parse_feed(rss("<item><title>E</title><link>https://a.example/\x7f</link>"
                            "</item>"), SOURCE).entries
    assert (odd.url, odd.identity) == (None, "title:e\n")  # no address a mail can carry


def test_titles_are_one_line_within_the_column_and_untitled_notes_borrow_their_words() -> None:
    long_title = " ".join(["palabra"] * 60)
    entries = parse_feed(rss(
        f"<item><title>{long_title}</title><description>x</description></item>"
        "<item><description>&lt;p&gt;Una nota sin título sobre Managua y otras cosas "
        "que siguen y siguen más allá de ochenta caracteres&lt;/p&gt;</description></item>"
        "<item><title> </title><description>&lt;script&gt;x&lt;/script&gt;</description>"
        "</item>"), SOURCE)
    first, second = entries.entries
    assert len(first.title) <= 200 and first.title.endswith("…")
    assert "\n" not in first.title
    assert second.title.startswith("Una nota sin título sobre Managua")
    assert len(second.title) <= 80
    assert entries.skipped == 1  # nothing but a script: no title, no text


def test_what_is_not_a_feed_says_what_it_is() -> None:
    with pytest.raises(FeedError, match="is a web page, not an RSS or Atom feed"):
        parse_feed(b"<!DOCTYPE html><html><body><p>Hola</p></body></html>", SOURCE)
    with pytest.raises(FeedError, match="empty answer"):
        parse_feed(b"", SOURCE)
    with pytest.raises(FeedError, match="not an RSS or Atom feed"):
        parse_feed(b"\x89PNG\r\n\x1a\n\x00\x00", SOURCE, content_type="image/png")


def test_external_entities_are_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("PRIVATE-KEY-MATERIAL")
    raw = (f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "{secret.as_uri()}">]>'
           '<rss version="2.0"><channel><title>t</title><item><guid>urn:x:1</guid>'
           "<title>A &x; B</title><description>C &x; D</description></item></channel></rss>")
    (entry,) = parse_feed(raw.encode(), SOURCE).entries
    assert (entry.title, entry.paragraphs) == ("A B", ("C D",))  # the entity reads as nothing


def test_to_item_language_and_countries() -> None:
    (upala, *_) = read("rss20-es.xml")
    fixed = to_item(upala, "k", date(2026, 12, 1), language="fr", among=EDITIONS,
                    countries=("PA",))
    assert (fixed.language, fixed.detected) == ("fr", False)
    assert fixed.countries == ("PA", "CR", "NI")  # the feed's first, then what it names
    assert fixed.source_key == "k"
    detected = to_item(upala, "k", date(2026, 12, 1), language=None, among=EDITIONS)
    assert (detected.language, detected.detected) == ("es", True)
    # too short to tell ("2026" scores 0.4): the language the feed declares, when it is an
    # edition; else the first edition
    short = FeedEntry("guid:x", "2026", (), None, language="fr")
    item = to_item(short, "k", date(2026, 12, 1), language=None, among=EDITIONS)
    assert (item.language, item.detected) == ("fr", False)
    undeclared = FeedEntry("guid:x", "2026", (), None, language="de")
    item = to_item(undeclared, "k", date(2026, 12, 1), language=None, among=("es", "en"))
    assert (item.language, item.detected) == ("es", False)


def test_feed_items_never_share_a_fingerprint() -> None:
    one = to_item(FeedEntry("guid:1", "Read more", (), None), "k1", date(2026, 12, 1),
                  language="en")
    two = to_item(FeedEntry("guid:2", "Read more", (), None), "k2", date(2026, 12, 1),
                  language="en")
    assert one.fingerprint != two.fingerprint


# -- hostile input ------------------------------------------------------------------------

HOSTILE = st.sampled_from([
    "<script>alert(1)</script>", "<style>body{display:none}</style>",
    "<img src=x onerror=alert(1)>", '<a href="javascript:alert(1)">link</a>',
    "<iframe src=//evil.example></iframe>", "<svg onload=alert(1)>", "<!--", "-->",
    "<![CDATA[x]]>", "&lt;script&gt;alert(1)&lt;/script&gt;", "<scr<script>ipt>",
    "<p>", "</p>", "<br>", "<li>", "<div>", "&amp;", "&#0;", "\x00", "\ufeff", "<b>",
    "<math><mi xlink:href=javascript:alert(1)>", "<template><script>x</script></template>",
])
WORDS = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
FRAGMENT = st.lists(st.one_of(HOSTILE, WORDS), max_size=12).map("".join)
MARKUP = ("<script", "</script", "<style", "<img", "<iframe", "<svg", "onerror", "onload",
          "javascript:", "alert(1)", "body{display")


def _only_words(text: str) -> None:
    assert not re.search(r"<[A-Za-z/!?]", text), text  # nothing a browser reads as a tag
    lowered = text.casefold()
    for marker in MARKUP:
        assert marker not in lowered, (marker, text)


@pytest.mark.fuzz
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_raise_nothing_but_feed_error(raw: bytes) -> None:
    try:
        parse_feed(raw, SOURCE)
    except FeedError:
        pass


@pytest.mark.fuzz
@given(st.lists(st.tuples(FRAGMENT, FRAGMENT), min_size=1, max_size=4),
       st.booleans())
def test_hostile_html_in_entries_leaves_no_markup(entries: list[tuple[str, str]],
                                                  atom: bool) -> None:
    def x(text: str) -> str:  # what a feed writer escapes into XML
        return escape("".join(c for c in text if c.isprintable() or c in "\n\t"))

    if atom:
        raw = ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/'
               'Atom"><title>t</title>' + "".join(
                   f'<entry><id>urn:x:{n}</id><title type="html">{x(title)}</title>'
                   f'<content type="html">{x(body)}</content></entry>'
                   for n, (title, body) in enumerate(entries)) + "</feed>").encode()
    else:
        raw = rss("".join(f"<item><guid>urn:x:{n}</guid><title>{x(title)}</title>"
                          f"<description>{x(body)}</description></item>"
                          for n, (title, body) in enumerate(entries)))
    parsed = parse_feed(raw, SOURCE)  # well-formed XML: it is read, never refused
    assert len(parsed.entries) + parsed.skipped == len(entries)
    for entry in parsed.entries:
        _only_words(entry.title)
        assert "\n" not in entry.title and 0 < len(entry.title) <= 200
        for paragraph in entry.paragraphs:
            _only_words(paragraph)
            assert paragraph == paragraph.strip() and "\x00" not in paragraph


@pytest.mark.fuzz
@given(FRAGMENT)
def test_reduce_html_leaves_no_markup(fragment: str) -> None:
    for paragraph in reduce_html(fragment):
        _only_words(paragraph)
        assert paragraph and paragraph == " ".join(paragraph.split())
