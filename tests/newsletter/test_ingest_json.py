"""The JSON item format: happy paths, and errors that name the item or line."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from newsletter.ingest.jsonfile import parse_json
from newsletter.ingest.model import ItemFormatError
from newsletter.ingest.text import parse_text


def dump(*items: dict[str, Any]) -> str:
    return json.dumps(list(items), ensure_ascii=False, indent=2)


BASIC: dict[str, Any] = {
    "date": "2019-10-10",
    "title": "  Study maps needs of Nicaraguan families  ",
    "paragraphs": ["  First paragraph in Costa Rica.  ", "Second\nparagraph."],
}


def test_happy_path_with_paragraphs() -> None:
    (parsed,) = parse_json(dump(BASIC), source="items.json")
    assert parsed.published == date(2019, 10, 10)
    assert parsed.title == "Study maps needs of Nicaraguan families"
    assert parsed.paragraphs == ("First paragraph in Costa Rica.", "Second paragraph.")
    assert parsed.place is None
    assert parsed.language == "en"
    assert parsed.url is None
    assert parsed.countries == ("NI", "CR")  # detected, in order of first mention
    assert parsed.line is None


def test_all_fields() -> None:
    entry = {
        "date": "7 de octubre de 2019",
        "title": "Campaña para jóvenes",
        "place": " San Salvador, El Salvador ",
        "body": "Primer párrafo\ncon dos líneas.\r\n\r\n  \n\nSegundo párrafo.\n",
        "language": "es",
        "url": "https://example.org/news/1",
        "countries": ["sv", "Guatemala", "SV"],
    }
    (parsed,) = parse_json(dump(entry), default_language="en")
    assert parsed.published == date(2019, 10, 7)
    assert parsed.place == "San Salvador, El Salvador"
    assert parsed.paragraphs == ("Primer párrafo con dos líneas.", "Segundo párrafo.")
    assert parsed.language == "es"
    assert parsed.url == "https://example.org/news/1"
    assert parsed.countries == ("SV", "GT")  # given countries are used, not detected


def test_detection_puts_place_first_and_empty_countries_stays_empty() -> None:
    first, second = parse_json(
        dump(
            {**BASIC, "place": "Tegucigalpa"},
            {**BASIC, "countries": []},
        )
    )
    assert first.countries == ("HN", "NI", "CR")
    assert second.countries == ()


def test_default_language_and_several_items() -> None:
    items = parse_json(dump(BASIC, {**BASIC, "date": "October 11, 2019"}), default_language="fr")
    assert [i.published for i in items] == [date(2019, 10, 10), date(2019, 10, 11)]
    assert {i.language for i in items} == {"fr"}


def test_bom_is_tolerated() -> None:
    assert parse_json("\ufeff" + dump(BASIC)) == parse_json(dump(BASIC))


def test_same_item_has_same_source_key_as_text_format() -> None:
    (from_json,) = parse_json(dump(BASIC))
    (from_text,) = parse_text(
        "10 October, 2019\n\nStudy maps needs of Nicaraguan families\n\nBody.\n"
    )
    assert from_json.source_key == from_text.source_key


# --- errors ----------------------------------------------------------------------------------

def raises(text: str) -> ItemFormatError:
    with pytest.raises(ItemFormatError) as caught:
        parse_json(text, source="items.json")
    err = caught.value
    assert err.source == "items.json"
    assert err.hint
    assert str(err).startswith(f"items.json, {err.where}: ")
    return err


def test_syntax_error_names_the_line() -> None:
    text = '[\n  {"date": "2019-10-10",\n   "title": "T"\n   "paragraphs": ["P"]}\n]\n'
    err = raises(text)
    assert err.where == "line 4"
    assert "invalid JSON" in err.problem


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"date": "2019-10-10"}', "found a JSON object"),
        ("[]", "no news items"),
    ],
)
def test_whole_file_errors(text: str, words: str) -> None:
    err = raises(text)
    assert err.where == "line 1"
    assert words in err.problem


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"summary": "x"}, "unknown field(s) 'summary'"),
        ({"title": 42}, "field 'title' must be a string, not number"),
        ({"title": "   "}, "field 'title' is missing or empty"),
        ({"title": None}, "field 'title' is missing or empty"),
        ({"date": None}, "field 'date' is missing or empty"),
        ({"date": "2019-13-01"}, "field 'date'"),
        ({"date": "10 Octobr 2019"}, "unknown month 'Octobr'"),
        ({"date": 20191010}, "field 'date' must be a string"),
        ({"paragraphs": []}, "no paragraphs"),
        ({"paragraphs": "One paragraph"}, "field 'paragraphs' must be a list of strings"),
        ({"paragraphs": ["ok", 3]}, "entry 2 is a number"),
        ({"paragraphs": ["ok", "  "]}, "entry 2 is empty"),
        ({"body": "Also a body"}, "both 'paragraphs' and 'body'"),
        ({"paragraphs": None, "body": " \n\n "}, "no paragraphs"),
        ({"title": "x" * 201}, "at most 200"),
        ({"place": ["San José"]}, "field 'place' must be a string, not array"),
        ({"countries": ["XX"]}, "unknown country 'XX'"),
        ({"countries": "CR"}, "field 'countries' must be a list of strings"),
        ({"url": "example.org/news"}, "field 'url'"),
        ({"language": "English"}, "field 'language'"),
    ],
)
def test_item_errors_name_the_item_and_field(change: dict[str, Any], words: str) -> None:
    err = raises(dump(BASIC, {**BASIC, **change}))
    assert err.where == "item 2"
    assert words in err.problem


def test_missing_paragraphs_and_body() -> None:
    entry = {"date": "2019-10-10", "title": "T"}
    err = raises(dump(entry))
    assert err.where == "item 1"
    assert "no paragraphs" in err.problem


def test_entry_that_is_not_an_object() -> None:
    err = raises(json.dumps([BASIC, "just a string"]))
    assert err.where == "item 2"
    assert "expected an object, found string" in err.problem
