"""Hostile item files and stored items: control characters, deep JSON, huge numbers,
LIKE wildcards. Each is a clear message naming the file and place, never a traceback,
and one bad item never blocks an issue."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cli import cli
from newsletter.ingest.jsonfile import parse_json
from newsletter.ingest.model import ItemFormatError
from newsletter.ingest.text import parse_text
from newsletter.models import Item
from newsletter.render import (
    IssueContent,
    ItemView,
    RenderError,
    Variant,
    render_variant,
    sender_from,
)
from newsletter.settings import Settings

GOOD = "1 October, 2019\n\nA good title\n\nSan José. A good paragraph.\n\n"


def item_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Item)) or 0


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b", "\x7f", "\x85\x92", "\ufffe",
                                  "\uffff", "\ufdd0", "\U0001ffff"])
def test_text_file_with_a_control_character_names_line_and_field(char: str) -> None:
    text = GOOD + f"2 October, 2019\n\nSecond title\n\nFirst paragraph.\n\nIt says{char} no.\n"
    with pytest.raises(ItemFormatError) as caught:
        parse_text(text, "news.txt")
    message = str(caught.value)
    if char == "\x85\x92":  # U+0085 is whitespace to Python and is dropped; U+0092 is not
        char = "\x92"
    assert message.startswith("news.txt, line 13: paragraph 2 holds a control character")
    assert f"U+{ord(char):04X}" in message


def test_text_title_with_a_control_character_is_named() -> None:
    with pytest.raises(ItemFormatError, match=r"^news.txt, line 3: the title holds .*U\+0008"):
        parse_text("1 October, 2019\n\nBad\x08 title\n\nText.\n", "news.txt")


@pytest.mark.parametrize("value", ["x\u0000y", "x\ud800y", "x\uffffy", "x\u0002y"])
def test_json_field_with_a_control_character_names_item_and_field(value: str) -> None:
    items = [{"date": "2019-10-01", "title": "Fine", "body": "Fine."},
             {"date": "2019-10-02", "title": "Also fine", "paragraphs": ["One.", value]}]
    with pytest.raises(ItemFormatError) as caught:
        parse_json(json.dumps(items), "news.json")
    assert str(caught.value).startswith(
        "news.json, item 2: field 'paragraphs', entry 2, holds a control character")


def test_nul_in_an_item_file_imports_nothing_with_a_clear_message(
    runner: CliRunner, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """On PostgreSQL this was an uncaught DataError traceback."""
    good = tmp_path / "good.txt"
    good.write_text(GOOD, encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"date": "2019-10-03", "title": "Nul\u0000here",
                                "body": "Text."}]), encoding="utf-8")
    result = runner.invoke(cli, ["items", "import", str(good), str(bad)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{bad}, item 1: field 'title' holds a control character" in result.output
    assert "U+0000" in result.output
    assert item_count(sessions) == 0


def test_deep_json_names_the_file_and_line() -> None:
    with pytest.raises(ItemFormatError, match=r"^deep.json, line 2: the JSON nests more"):
        parse_json("\n" + "[" * 1000 + "]" * 1000, "deep.json")
    nested = '[{"date": "2019-10-01", "title": "T", "body": "B", "url": ' + "[" * 1000
    with pytest.raises(ItemFormatError, match=r"^deep.json, line 1: the JSON nests more"):
        parse_json(nested, "deep.json")


def test_a_4301_digit_number_names_the_file_and_line() -> None:
    text = '[\n{"date": "2019-10-01",\n "title": ' + "9" * 4301 + "}]"
    with pytest.raises(ItemFormatError, match=r"^big.json, line 3: a number of 4,301 digits"):
        parse_json(text, "big.json")


def test_deep_and_huge_json_through_the_cli(runner: CliRunner, tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 1000)
    huge = tmp_path / "huge.json"
    huge.write_text('[{"date": "2019-10-01", "title": "T", "body": "B", "url": '
                    + "1" * 4301 + "}]")
    for path, expected in ((deep, "nests more than"), (huge, "a number of 4,301 digits")):
        result = runner.invoke(cli, ["items", "import", str(path)])
        assert result.exit_code == 1, result.output
        assert f"{path}, line 1: " in result.output and expected in result.output


def test_list_country_treats_percent_and_underscore_as_characters(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "news.txt"
    path.write_text(GOOD, encoding="utf-8")
    assert runner.invoke(cli, ["items", "import", str(path), "--language", "en"]).exit_code == 0
    for pattern in ("%", "_", "C_", "%R"):
        result = runner.invoke(cli, ["items", "list", "--country", pattern, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == [], pattern
    found = runner.invoke(cli, ["items", "list", "--country", "cr", "--json"])
    assert [i["title"] for i in json.loads(found.output)] == ["A good title"]


# --- rendering: an item stored with such a character --------------------------------


def store_raw(sessions: sessionmaker[Session], title: str, body: str) -> None:
    """As an item written by an older version, or straight into the database."""
    with sessions() as session, session.begin():
        session.add(Item(source_key="raw", published=date(2019, 10, 5), title=title,
                         place="Managua", body=body, language="en", countries="NI"))


def test_a_stored_control_character_does_not_block_the_issue(
    runner: CliRunner, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    store_raw(sessions, "Bad\x01 title\ufffe", "Para\x0bgraph\x1f one.\n\nTwo\uffff.")
    created = runner.invoke(cli, ["issues", "create", "2019-10", "--from", "2019-10-01",
                                  "--to", "2019-10-31"])
    assert created.exit_code == 0, created.output
    out = tmp_path / "preview"
    result = runner.invoke(cli, ["issues", "preview", "2019-10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = (out / "en-regional.html").read_text(encoding="utf-8")
    text = (out / "en-regional.txt").read_text(encoding="utf-8")
    for part in (html, text):
        assert "Bad title" in part and "one." in part and "Two." in part, part
        assert not any(c in part for c in "\x01\x0b\x1f\ufffe\uffff")
    assert "Paragraph one." in html  # the text part's word wrap turns \x0b into a space


def test_a_render_failure_names_the_item_and_field(tmp_path: Path, settings: Settings) -> None:
    """A custom template that prints the place unescaped: the item whose place breaks
    the MJML is named, with the field, instead of a bare MJML parse error."""
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "newsletter.mjml.j2").write_text(
        '{% extends "default/newsletter.mjml.j2" %}\n'
        "{% block item %}{% set foreign = item.language != lang %}"
        "<mj-section><mj-column><mj-text><h2>{{ item.title }}</h2>"
        "{% for paragraph in item.paragraphs %}<p>{% if loop.first and item.place %}"
        "{{ item.place|safe }}. {% endif %}{{ paragraph }}</p>{% endfor %}"
        "</mj-text></mj-column></mj-section>{% endblock %}\n",
        encoding="utf-8",
    )
    items = [
        ItemView(date(2019, 10, 10), "Fine", "San José", ("Text.",), ("CR",), id=1),
        ItemView(date(2019, 10, 9), "Broken place", "León <b", ("Text.",), ("NI",), id=7),
    ]
    content = IssueContent("", date(2019, 10, 1), date(2019, 10, 31), items)
    with pytest.raises(RenderError) as caught:
        render_variant(content, Variant("en"), sender_from(settings), templates)
    message = str(caught.value)
    assert "item 7 ('Broken place'), field place" in message
    assert "MJML" in message


# --- values longer than their column, ids beyond any column ---------------------------


def test_overlong_json_fields_are_refused_by_name_not_by_the_database(
    runner: CliRunner, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """On PostgreSQL each of these was a DataError traceback (value too long)."""
    base = {"date": "2019-10-01", "title": "T", "body": "Text."}
    cases = [
        ({"place": "P" * 201}, "item 1: field 'place' is 201 characters long (at most 200)"),
        ({"url": "https://x.org/" + "a" * 1990},
         "item 1: field 'url' is 2,004 characters long (at most 2,000)"),
        ({"language": "es-abcdefgh"}, "item 1: field 'language': 'es-abcdefgh' is not"),
        ({"translations": {"es": {"title": "T" * 201, "body": "B."}}},
         "item 1, translation 'es': field 'title' is 201 characters long"),
        ({"translations": {"es": {"title": "T", "place": "P" * 201, "body": "B."}}},
         "item 1, translation 'es': field 'place' is 201 characters long"),
    ]
    for number, (extra, expected) in enumerate(cases):
        path = tmp_path / f"long{number}.json"
        path.write_text(json.dumps([base | extra]), encoding="utf-8")
        result = runner.invoke(cli, ["items", "import", str(path)])
        assert result.exit_code == 1, (extra, result.output)
        assert isinstance(result.exception, SystemExit), result.exception
        assert f"{path}, {expected}" in result.output
    assert item_count(sessions) == 0


def test_a_dateline_longer_than_a_place_stays_in_the_paragraph(
    runner: CliRunner, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    opening = "A" + "b" * 250 + ". The text."
    path = tmp_path / "news.txt"
    path.write_text(f"1 October, 2019\n\nA title\n\n{opening}\n", encoding="utf-8")
    result = runner.invoke(cli, ["items", "import", str(path), "--language", "en"])
    assert result.exit_code == 0, result.output
    with sessions() as session:
        stored = session.scalars(select(Item)).one()
        assert (stored.place, stored.body) == (None, opening)


def test_overlong_edits_and_translations_are_refused_by_name(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "news.txt"
    path.write_text(GOOD, encoding="utf-8")
    assert runner.invoke(cli, ["items", "import", str(path), "--language", "en"]).exit_code == 0
    translate = ["items", "translate", "1", "--body-file", "-", "--language"]
    cases = [
        (["items", "edit", "1", "--place", "P" * 201], "--place: the place is 201 characters"),
        (["items", "edit", "1", "--url", "https://x.org/" + "a" * 1990],
         "--url: the address is 2,004 characters"),
        ([*translate, "es", "--title", "T" * 201], "es translation: the title is 201 char"),
        ([*translate, "es", "--title", "T", "--place", "P" * 201],
         "es translation: the place is 201 characters"),
        ([*translate, "a" * 20, "--title", "T"], "is not a language code"),
        (["items", "import", str(path), "--language", "e" * 20], "is not a language code"),
    ]
    for args, expected in cases:
        result = runner.invoke(cli, args, input="Hola.\n")
        assert result.exit_code == 1, (args[:4], result.output)
        assert isinstance(result.exception, SystemExit), result.exception
        assert expected in result.output


@pytest.mark.parametrize("item_id", [2**31, 2**63, 2**64 + 5])
def test_an_item_id_beyond_any_column_is_not_found(runner: CliRunner, item_id: int) -> None:
    """SQLite raised OverflowError, PostgreSQL a DataError (integer out of range)."""
    for args in (["edit", str(item_id), "--title", "x"], ["delete", str(item_id), "--yes"],
                 ["tag", str(item_id), "--country", "CR"],
                 ["translate", str(item_id), "--language", "es", "--title", "T",
                  "--body-file", "-"]):
        result = runner.invoke(cli, ["items", *args], input="Hola.\n")
        assert result.exit_code == 1, (args, result.output)
        assert f"no item with id {item_id}" in result.output
