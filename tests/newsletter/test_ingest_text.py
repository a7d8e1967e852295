"""The plain-text item format: the project sample, each dateline style, each error."""

from __future__ import annotations

from datetime import date
from importlib import resources

import pytest

from newsletter.ingest.model import ItemFormatError, ParsedItem
from newsletter.ingest.text import parse_date, parse_text, split_dateline


def sample_text() -> str:
    return (resources.files("newsletter") / "data" / "sample-items.txt").read_text(
        encoding="utf-8"
    )


def item(first_paragraph: str, *more: str, title: str = "A title") -> str:
    """A one-item file in the text format."""
    return "\n\n".join(["10 October, 2019", title, first_paragraph, *more]) + "\n"


def only(text: str) -> ParsedItem:
    items = parse_text(text)
    assert len(items) == 1
    return items[0]


# --- the project sample --------------------------------------------------------------------

SAMPLE = [
    # (date, title, place, paragraph count, countries)
    (date(2019, 10, 14),
     "Mobile health teams reach families resting at shelters near the Darién border",
     "Panama City", 2, ("PA",)),
    (date(2019, 10, 11), "Community leaders learn to spot signs of human trafficking",
     "Port-au-Prince", 1, ("HT",)),
    (date(2019, 10, 8),
     "Youth campaign “Conectá & Avanzá” opens a text line for questions about travel and jobs",
     "San Salvador, El Salvador", 2, ("SV",)),
    (date(2019, 10, 3), "Study maps the needs of Nicaraguan families settling in northern towns",
     "San José", 3, ("CR", "NI")),
    (date(2019, 9, 30), "Reception centre for returnees extends its opening hours",
     "Tegucigalpa", 2, ("HN",)),
    (date(2019, 9, 26), "Municipal offices start registering people who come back from abroad",
     "Huehuetenango, Guatemala", 2, ("GT",)),
    (date(2019, 9, 20), "Shelter network agrees on a common registration form", None, 2, ()),
    (date(2019, 9, 16),
     "Teachers discuss how to welcome children who change schools across borders",
     None, 1, ("BZ",)),
    (date(2019, 9, 10), "Civil society groups receive guidance on document renewals",
     "Santo Domingo", 1, ("DO",)),
    (date(2019, 9, 2), "New information point opens at the Tapachula bus terminal",
     None, 3, ("MX", "HT")),
]


def test_sample_parses_into_ten_items() -> None:
    items = parse_text(sample_text(), source="sample-items.txt")
    got = [(i.published, i.title, i.place, len(i.paragraphs), i.countries) for i in items]
    assert got == SAMPLE


def test_sample_items_are_tagged_and_located() -> None:
    items = parse_text(sample_text())
    assert items[0].line == 1
    assert all(i.line is not None and i.line > 1 for i in items[1:])
    assert all(i.language == "en" for i in items)
    assert [i.published for i in items] == sorted((i.published for i in items), reverse=True)
    assert all(i.countries for i in items if i.title != SAMPLE[6][1])
    covered = {c for i in items for c in i.countries}
    assert {"CR", "NI", "SV", "HN", "GT", "BZ", "DO", "MX", "PA", "HT"} <= covered


def test_sample_has_text_that_needs_escaping() -> None:
    body = " ".join(p for i in parse_text(sample_text()) for p in i.paragraphs)
    assert "<b>" in body
    assert "&" in body
    assert "“Conectá & Avanzá”" in body


def test_dateline_is_removed_from_first_paragraph_only() -> None:
    items = parse_text(sample_text())
    assert items[0].paragraphs[0].startswith("Two mobile health teams")
    assert items[2].paragraphs[0].startswith("A campaign called")
    assert items[2].paragraphs[1].startswith("Early flyers")


# --- dates -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "line",
    [
        "10 October, 2019",
        "10 October 2019",
        "October 10, 2019",
        "october 10 2019",
        "2019-10-10",
        "10 de octubre de 2019",
        "10 de Octubre del 2019",
        "10 OCTUBRE, 2019",
        "10th Oct. 2019",
    ],
)
def test_date_forms(line: str) -> None:
    assert parse_date(line) == date(2019, 10, 10)
    assert only(f"{line}\n\nTitle\n\nBody.\n").published == date(2019, 10, 10)


def test_spanish_months() -> None:
    assert parse_date("2 de septiembre de 2019") == date(2019, 9, 2)
    assert parse_date("2 de setiembre de 2019") == date(2019, 9, 2)
    assert parse_date("14 enero 2020") == date(2020, 1, 14)


# --- datelines -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("paragraph", "place", "rest"),
    [
        ("San José. The symposium opened.", "San José", "The symposium opened."),
        ("Santo Domingo. On Monday, a meeting was held.", "Santo Domingo",
         "On Monday, a meeting was held."),
        ("Belize—Two activities took place.", "Belize", "Two activities took place."),
        ("Belize — Two activities took place.", "Belize", "Two activities took place."),
        ("Managua – Officials met.", "Managua", "Officials met."),
        ("San Salvador, El Salvador. – The campaign began.", "San Salvador, El Salvador",
         "The campaign began."),
        ("Quintana Roo, Mexico - In August, work began.", "Quintana Roo, Mexico",
         "In August, work began."),
        ("Guatemala City. Within the framework of the meeting.", "Guatemala City",
         "Within the framework of the meeting."),
        ("Tegucigalpa. The meeting was held.", "Tegucigalpa", "The meeting was held."),
        ("Santiago de los Caballeros. Families arrived.", "Santiago de los Caballeros",
         "Families arrived."),
        ("Port-au-Prince—Leaders met.", "Port-au-Prince", "Leaders met."),
    ],
)
def test_dateline_styles(paragraph: str, place: str, rest: str) -> None:
    assert split_dateline(paragraph) == (place, rest)
    parsed = only(item(paragraph, "Second paragraph. Not a place."))
    assert parsed.place == place
    assert parsed.paragraphs == (rest, "Second paragraph. Not a place.")


@pytest.mark.parametrize(
    "paragraph",
    [
        "A study conducted by the International Organization for Migration found this.",
        "The study was a response to urgent needs.",
        "On September 26, a first meeting was held.",
        "In 2019, different efforts were made.",
        "Dr. Ramírez opened the event.",
        "Guatemala City and Tegucigalpa. Officials met.",
        "One Two Three Four Five Six Seven. Too many words for a place.",
        "Migration is rising - officials say.",
    ],
)
def test_no_false_dateline(paragraph: str) -> None:
    assert split_dateline(paragraph) == (None, paragraph)
    parsed = only(item(paragraph))
    assert parsed.place is None
    assert parsed.paragraphs == (paragraph,)


def test_dateline_only_in_first_paragraph() -> None:
    parsed = only(item("The event began.", "Managua. Later that day, more arrived."))
    assert parsed.place is None
    assert parsed.paragraphs[1] == "Managua. Later that day, more arrived."


def test_dateline_after_no_break_space() -> None:
    parsed = only(item("Guatemala City.\u00a0Within the framework.\u00a0 \u00a0"))
    assert parsed.place == "Guatemala City"
    assert parsed.paragraphs == ("Within the framework.",)


# --- layout ----------------------------------------------------------------------------------

def test_paragraph_lines_are_joined_and_blank_runs_tolerated() -> None:
    text = (
        "\n\n10 October, 2019   \n\n\n\nA title  \n\n\n"
        "First line of a paragraph\n  second line\t\nthird line\n\n\n\nLast paragraph.\n\n\n"
    )
    parsed = only(text)
    assert parsed.title == "A title"
    assert parsed.paragraphs == (
        "First line of a paragraph second line third line",
        "Last paragraph.",
    )
    assert parsed.line == 3


def test_inner_whitespace_and_no_break_spaces_collapse() -> None:
    parsed = only(item("Two  spaces,\u00a0a no-break space\tand a tab.", title="A \u00a0 title"))
    assert parsed.title == "A title"
    assert parsed.paragraphs == ("Two spaces, a no-break space and a tab.",)


def test_title_directly_after_date_line_is_accepted() -> None:
    parsed = only("10 October, 2019\nA title\n\nBody.\n")
    assert parsed.title == "A title"
    assert parsed.paragraphs == ("Body.",)


def test_crlf_and_bom_parse_like_plain_text() -> None:
    plain = parse_text(sample_text())
    assert parse_text("\ufeff" + sample_text().replace("\n", "\r\n")) == plain
    assert parse_text(sample_text().replace("\n", "\r")) == plain


def test_several_items_with_line_numbers_and_countries() -> None:
    text = (
        "10 October, 2019\n\nFirst\n\nQuintana Roo, Mexico - Work with Belize.\n\n"
        "5 September, 2019\n\nSecond\n\nA workshop for Honduran officials.\n"
    )
    first, second = parse_text(text, language="es")
    assert (first.line, second.line) == (1, 7)
    assert first.countries == ("MX", "BZ")
    assert second.countries == ("HN",)
    assert first.language == second.language == "es"


def test_source_key_is_stable() -> None:
    once = parse_text(sample_text())
    again = parse_text(sample_text())
    assert [i.source_key for i in once] == [i.source_key for i in again]
    assert len({i.source_key for i in once}) == len(once)
    a = only(item("Body one.", title="Same  Title"))
    b = only(item("A different body.", title="same title"))
    assert a.source_key == b.source_key
    c = only("11 October, 2019\n\nSame Title\n\nBody one.\n")
    assert c.source_key != a.source_key


# --- errors ----------------------------------------------------------------------------------

GOOD = "10 October, 2019\n\nTitle\n\nBody.\n"  # lines 1-5; what follows starts on line 6


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("", "line 1", "no news items"),
        ("\ufeff\n  \r\n\n", "line 1", "no news items"),
        ("Newsletter\n\n" + GOOD, "line 1", "before the first date line"),
        ("\n\nIntro text\n" + GOOD, "line 3", "before the first date line"),
        ("32 October, 2019\n\nTitle\n\nBody.\n", "line 1", "looks like a date"),
        (GOOD + "10 Octobr, 2019\n\nTitle\n\nBody.\n", "line 6", "Octobr"),
        (GOOD + "2019-02-30\n\nTitle\n\nBody.\n", "line 6", "looks like a date"),
        (GOOD + "Title\n\nBody.\n\nOctober 41, 2019\n", "line 10", "looks like a date"),
        ("10 October, 2019\n\n11 October, 2019\n\nTitle\n\nBody.\n", "line 1", "without a title"),
        (GOOD + "12 October, 2019\n\n\n", "line 6", "without a title"),
        ("10 October, 2019\n\nTitle\n\n11 October, 2019\n\nT\n\nB\n", "line 3",
         "without any paragraph"),
        (GOOD + "12 October, 2019\n\nLast title\n", "line 8", "without any paragraph"),
        ("10 October, 2019\n\n" + "word " * 50 + "\n\nBody.\n", "line 3", "probably a paragraph"),
        ("10 October, 2019\n\nA title\nthat goes on\n\nBody.\n", "line 4", "title continues"),
    ],
)
def test_errors_name_the_line(text: str, where: str, words: str) -> None:
    with pytest.raises(ItemFormatError) as caught:
        parse_text(text, source="news.txt")
    err = caught.value
    assert err.where == where
    assert err.source == "news.txt"
    assert words in err.problem
    assert err.hint  # every error says what to do
    assert str(err).startswith(f"news.txt, {where}: ")


def test_long_title_hint_explains_the_layout() -> None:
    with pytest.raises(ItemFormatError) as caught:
        parse_text("10 October, 2019\n\n" + "x" * 201 + "\n\nBody.\n")
    assert "single short line followed by a blank line" in caught.value.hint


def test_title_of_200_characters_is_accepted() -> None:
    assert len(only(item("Body.", title="x" * 200)).title) == 200


def test_bad_date_in_later_item_rejects_whole_file() -> None:
    with pytest.raises(ItemFormatError, match="line 34"):
        parse_text(sample_text().replace("30 September, 2019", "31 September, 2019"))


def test_parse_date_explains_problem() -> None:
    with pytest.raises(ValueError, match="unknown month 'Octobr'"):
        parse_date("10 Octobr, 2019")
    with pytest.raises(ValueError, match="not a valid date"):
        parse_date("32 October, 2019")
    with pytest.raises(ValueError, match="not a date"):
        parse_date("sometime in 2019")
