"""Property-based fuzzing of the item readers (text format and JSON).

Whatever the bytes, reading either yields items or raises ItemFormatError naming the file
and the line (or JSON item) at fault; and every item a reader accepts can be stored
(SQLite) and rendered in HTML and text. The suite runs a bounded number of examples;
NEWSLETTER_FUZZ_EXAMPLES=10000 makes the long run (see tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter.db import make_engine, session_factory, upgrade
from newsletter.ingest.model import ItemFormatError, ParsedItem
from newsletter.issues import content_of, create_issue
from newsletter.items import parse_bytes, store_items
from newsletter.render import Sender, Variant, render_variant

# a long run (NEWSLETTER_FUZZ_EXAMPLES=10000) takes minutes: give it the time it needs
EXAMPLES = int(os.environ.get("NEWSLETTER_FUZZ_EXAMPLES", "150"))
pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(max(300, EXAMPLES // 5))]
T = TypeVar("T")
U = TypeVar("U")

SOURCE = "fuzz.txt"
WHERE = re.compile(r"^fuzz\.(txt|json), (line \d+|item \d+(, translation '.*')?): ")
SENDER = Sender("Fuzz sender", "Postal address 1")

def mostly(usual: st.SearchStrategy[T], rare: st.SearchStrategy[U], times: int = 9
           ) -> st.SearchStrategy[T | U]:
    """`usual` `times` times as often as `rare` (one_of would pick each half the time)."""
    return st.sampled_from([True] * times + [False]).flatmap(
        lambda u: usual if u else rare)


# any character at all, surrogates and controls included
ANY_CHAR = st.characters(codec=None, exclude_categories=())
ANY_TEXT = st.text(ANY_CHAR, max_size=60)
# characters the text format gives meaning to, and ones that break email markup
SHARP = st.sampled_from(list("\n\n\r\t \u00a0<>&\"'.–—-,:{}[]#%\x00\x01\x0b\x1f\x7f\x85"
                             "\ufeff\ufffe\uffff\u2028"))
HOSTILE = st.text(st.one_of(st.characters(codec="utf-8"), SHARP), max_size=80)
# printable text of any script (no controls, no surrogates), the common case
NICE = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
               min_size=1, max_size=80).filter(str.strip)
WORDS = mostly(NICE, HOSTILE, 3)
# around the columns' sizes (200 for a title or place, 8 for a language, 2,000 for an
# address): SQLite stores what PostgreSQL refuses, so the sizes are checked below
LONG = st.integers(190, 210).map(lambda n: "Á" * n)
LONG_URL = st.integers(1985, 2010).map(lambda n: "https://e.org/" + "a" * (n - 14))
LINE = mostly(NICE.map(lambda t: " ".join(t.split())), HOSTILE, 3)
VALID_DATES = st.dates(date(1, 1, 1), date(9999, 12, 31)).map(lambda d: d.isoformat())
DATES = st.one_of(
    st.dates(date(1, 1, 1), date(9999, 12, 31)).map(lambda d: d.isoformat()),
    st.dates(date(1, 1, 1), date(9999, 12, 31)).map(lambda d: f"{d.day} {d:%B}, {d.year:04}"),
    st.dates(date(1, 1, 1), date(9999, 12, 31)).map(lambda d: f"{d:%B} {d.day}, {d.year:04}"),
    st.builds(lambda d, m, y: f"{d} {m}, {y}", st.integers(0, 40),
              st.sampled_from(["octubre", "Setiembre", "Octobr", "may"]),
              st.integers(0, 99999)),
)


@st.composite
def text_files(draw: st.DrawFn) -> str:
    """Mostly well-shaped item files with hostile words, sometimes plain noise."""
    if draw(st.integers(0, 7)) == 0:
        return draw(st.text(st.one_of(ANY_CHAR.filter(lambda c: not 0xD800 <= ord(c) <= 0xDFFF),
                                      SHARP), max_size=300))
    parts: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        parts.append(draw(DATES))
        parts.append(draw(LINE))
        parts += draw(st.lists(WORDS, min_size=draw(st.sampled_from([0, 1, 1, 1])),
                               max_size=3))
    return draw(st.sampled_from(["\n\n", "\n", "\r\n\r\n", "\n \n"])).join(parts)


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), ANY_TEXT),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=8,
)
FIELD_VALUES = st.one_of(WORDS, ANY_TEXT, JSON_VALUES, st.lists(WORDS, max_size=3))


@st.composite
def json_files(draw: st.DrawFn) -> str:
    """Lists of item-like objects with hostile values, or any JSON, or broken JSON."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(st.text(st.one_of(ANY_CHAR, SHARP), max_size=200))
    if choice == 1:
        return json.dumps(draw(JSON_VALUES))
    items = []
    for _ in range(draw(st.integers(1, 3))):
        item: dict[str, object] = {
            "date": draw(mostly(VALID_DATES, st.one_of(DATES, FIELD_VALUES))),
            "title": draw(mostly(LINE, st.one_of(FIELD_VALUES, LONG))),
        }
        if draw(st.booleans()):
            item["paragraphs"] = draw(mostly(st.lists(WORDS, min_size=1, max_size=3),
                                             FIELD_VALUES))
        else:
            item["body"] = draw(mostly(WORDS, FIELD_VALUES))
        optional = {"place": mostly(WORDS, LONG),
                    "language": st.sampled_from(["en", "es", "fr", "x", "", "es-abcdefgh"]),
                    "url": st.one_of(WORDS.map(lambda w: "https://e.org/" + w), WORDS,
                                     LONG_URL),
                    "countries": st.lists(st.sampled_from(["CR", "ni", "XX", "Costa Rica"]),
                                          max_size=2),
                    "translations": st.dictionaries(
                        st.sampled_from(["es", "en", "fr", "??"]),
                        st.fixed_dictionaries({"title": mostly(WORDS, LONG), "body": WORDS},
                                              optional={"place": mostly(WORDS, LONG)}),
                        max_size=2),
                    "extra": FIELD_VALUES}
        for name, values in optional.items():
            if draw(st.sampled_from([False] * (40 if name == "extra" else 1) + [True])):
                item[name] = draw(values)
        items.append(item)
    text = json.dumps(items, ensure_ascii=draw(st.booleans()))
    if choice == 9:  # damage it
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.text(SHARP, max_size=3)) + text[cut:]
    return text


@pytest.fixture(scope="module")
def fuzz_sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    engine: Engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    yield session_factory(engine)
    engine.dispose()


def read(raw: bytes, json_format: bool) -> list[ParsedItem] | None:
    """The items read, or None after checking that the error names file and place."""
    source = "fuzz.json" if json_format else SOURCE
    try:
        items = parse_bytes(raw, source, language=None, json=json_format, among=["en", "es"])
    except ItemFormatError as exc:
        assert WHERE.match(str(exc)), str(exc)
        event(f"refused: {exc.problem.split(':')[0].split('(')[0][:40]}")
        return None
    event("read, stored and rendered")
    return items


def store_and_render(sessions: sessionmaker[Session], items: list[ParsedItem]) -> None:
    """Everything a reader accepted is stored, then rendered; nothing is kept."""
    with sessions() as session:
        report = store_items(session, items)
        assert report.added == len({i.source_key for i in items})
        for row in list(session.identity_map.values()):  # store_items flushed them
            fits_its_columns(row)
        first = min(i.published for i in items)
        last = max(i.published for i in items)
        issue = create_issue(session, "fuzz", first, last)
        content = content_of(issue)
        for language in {"en", items[0].language}:
            rendered = render_variant(content, Variant(language, "CR"), SENDER)
            assert rendered.html.startswith("<!doctype html>") and rendered.text
        session.rollback()


def fits_its_columns(row: object) -> None:
    """What PostgreSQL would refuse with a DataError, which SQLite stores."""
    for column in inspect(row).mapper.columns:
        value = getattr(row, column.key)
        limit = getattr(column.type, "length", None)
        if isinstance(value, str) and limit is not None:
            assert len(value) <= limit, (type(row).__name__, column.key, len(value))


@given(text_files())
def test_text_reader_reads_or_names_the_line(
    fuzz_sessions: sessionmaker[Session], text: str
) -> None:
    items = read(text.encode("utf-8"), json_format=False)
    if items:
        store_and_render(fuzz_sessions, items)


@given(json_files())
def test_json_reader_reads_or_names_the_place(
    fuzz_sessions: sessionmaker[Session], text: str
) -> None:
    items = read(text.encode("utf-8", "surrogatepass"), json_format=True)
    if items:
        store_and_render(fuzz_sessions, items)


@given(st.binary(max_size=300), st.booleans())
def test_any_bytes_read_or_name_the_place(raw: bytes, json_format: bool) -> None:
    read(raw, json_format)
