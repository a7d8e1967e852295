"""Storage on SQLite and PostgreSQL: migrations, items, issues."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cli.demo import sample_items_text
from newsletter.db import current_revision, ensure_schema, head_revision, make_engine, upgrade
from newsletter.ingest.model import ParsedItem
from newsletter.ingest.text import parse_text
from newsletter.issue_calendar import calendar
from newsletter.issues import IssueError, content_of, create_issue, get_issue
from newsletter.items import list_items, store_items
from newsletter.settings import Settings
from newsletter.web import create_app, dispose
from newsletter.web.subscriber import EXTENSION


@pytest.mark.empty_database
def test_migrations_reach_head_and_are_idempotent(engine: Engine) -> None:
    """From an empty database (the `engine` fixture migrates it), as every test's copy."""
    assert current_revision(engine) == head_revision(engine)
    upgrade(engine)
    ensure_schema(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"items", "issues", "issue_items", "issue_variants", "subscribers",
            "deliveries"} <= tables


@pytest.mark.empty_database
def test_the_first_web_app_on_a_new_database_migrates_it(
    db_url: str, settings: Settings
) -> None:
    """`create_app` (as `newsletter serve` and gunicorn run it) brings the schema to the head;
    the other tests get a database migrated already."""
    empty = make_engine(db_url)
    try:
        assert inspect(empty).get_table_names() == []
    finally:
        empty.dispose()
    app = create_app(settings)
    try:
        engine = app.extensions[EXTENSION].engine
        assert current_revision(engine) == head_revision(engine)
    finally:
        dispose(app)


def test_items_are_stored_once_and_refreshed_when_changed(
    sessions: sessionmaker[Session],
) -> None:
    parsed = parse_text(sample_items_text(), "sample")
    with sessions() as session, session.begin():
        first = store_items(session, parsed)
    with sessions() as session, session.begin():
        second = store_items(session, parsed)
    assert (first.added, first.updated, first.unchanged) == (10, 0, 0)
    assert (second.added, second.updated, second.unchanged) == (0, 0, 10)
    changed = ParsedItem(parsed[0].published, parsed[0].title, ("New text.",), parsed[0].place)
    with sessions() as session, session.begin():
        third = store_items(session, [changed])
        stored = list_items(session)
    assert (third.added, third.updated) == (0, 1)
    assert len(stored) == 10
    assert stored[0].paragraphs == ["New text."]


def test_paragraphs_and_countries_round_trip(sessions: sessionmaker[Session]) -> None:
    item = ParsedItem(date(2019, 10, 10), "T", ("One & <two>.", "Three."), "San José",
                      countries=("CR", "NI"))
    with sessions() as session, session.begin():
        store_items(session, [item])
    with sessions() as session:
        (stored,) = list_items(session)
        assert stored.paragraphs == ["One & <two>.", "Three."]
        assert stored.country_codes == ["CR", "NI"] and stored.place == "San José"


def test_issue_takes_the_window_newest_first(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        store_items(session, parse_text(sample_items_text(), "sample"))
        create_issue(session, "2019-10", date(2019, 10, 1), date(2019, 10, 31))
    with sessions() as session:
        issue = get_issue(session, "2019-10")
        dates = [i.published for i in content_of(issue).items]
        assert dates == sorted(dates, reverse=True)
        assert all(date(2019, 10, 1) <= d <= date(2019, 10, 31) for d in dates)
        assert len(dates) == len(list_items(session, since=date(2019, 10, 1),
                                            until=date(2019, 10, 31)))
        assert issue.status == "draft"
        assert [s.slug for s in calendar(session)[0]] == ["2019-10"]


@pytest.mark.parametrize(
    ("slug", "start", "end", "message"),
    [
        ("2019-10", date(2019, 11, 1), date(2019, 11, 30), "no items were published"),
        ("Bad Slug!", date(2019, 10, 1), date(2019, 10, 31), "not a usable issue name"),
        ("2019-10", date(2019, 10, 31), date(2019, 10, 1), "ends"),
    ],
)
def test_issue_refusals(sessions: sessionmaker[Session], slug: str, start: date, end: date,
                        message: str) -> None:
    with sessions() as session, session.begin():
        store_items(session, parse_text(sample_items_text(), "sample"))
    with sessions() as session, pytest.raises(IssueError, match=message):
        create_issue(session, slug, start, end)


def test_a_slug_is_used_once(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        store_items(session, parse_text(sample_items_text(), "sample"))
        create_issue(session, "2019-10", date(2019, 10, 1), date(2019, 10, 31))
    with sessions() as session, pytest.raises(IssueError, match="exists already"):
        create_issue(session, "2019-10", date(2019, 10, 1), date(2019, 10, 31))
