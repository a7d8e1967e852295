"""`subscribers.search`: words of the address or name with the CLI's Filter, paged; and the
export of the same people (`export_subscribers(also=words_condition(...))`)."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy.orm import Session, sessionmaker

from subscribers.export import export_subscribers
from subscribers.filters import Filter, FilterError
from subscribers.people import NewSubscriber, add
from subscribers.search import MAX_WORDS, search_subscribers, split_words, words_condition


def seed(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        for person in (NewSubscriber("ana@example.org", "Ana María Mora", "CR", "es"),
                       NewSubscriber("bob_1@example.net", "Bob", "NI", "en"),
                       NewSubscriber("bob@example.org", "Roberto 100%", "CR", "es")):
            add(session, person, default_language="en")


EVERYONE = Filter()


def emails(sessions: sessionmaker[Session], f: Filter = EVERYONE,
           **kwargs: object) -> list[str]:
    with sessions() as session:
        return [p.email for p in search_subscribers(session, f, **kwargs).people]  # type: ignore[arg-type]


def test_words_in_the_address_or_the_name(sessions: sessionmaker[Session]) -> None:
    seed(sessions)
    assert emails(sessions, words="") == ["ana@example.org", "bob_1@example.net",
                                          "bob@example.org"]
    assert emails(sessions, words="MORA ana") == ["ana@example.org"]
    assert emails(sessions, words="bob") == ["bob_1@example.net", "bob@example.org"]
    assert emails(sessions, words="b_b") == []  # _ is a character, not a wildcard
    assert emails(sessions, words="bob_") == ["bob_1@example.net"]
    assert emails(sessions, words="100%") == ["bob@example.org"]
    assert emails(sessions, Filter(countries=("CR",)), words="bob") == ["bob@example.org"]
    assert emails(sessions, words="nobody\x00") == []  # NUL dropped, not an error
    with pytest.raises(FilterError):
        emails(sessions, Filter(statuses=("gone",)))
    assert len(split_words(" ".join(map(str, range(50))))) == MAX_WORDS


def test_pages(sessions: sessionmaker[Session]) -> None:
    seed(sessions)
    with sessions() as session:
        second = search_subscribers(session, Filter(), page=2, per_page=2)
        past = search_subscribers(session, Filter(), page=9, per_page=2)
        none = search_subscribers(session, Filter(countries=("BZ",)), page=0)
    assert (second.total, second.pages, second.page) == (3, 2, 2)
    assert [p.email for p in second.people] == ["bob@example.org"]
    assert past.page == 2 and [p.email for p in past.people] == ["bob@example.org"]
    assert (none.total, none.pages, none.page, none.people) == (0, 1, 1, [])


def test_the_export_selects_the_same_people(sessions: sessionmaker[Session]) -> None:
    seed(sessions)
    out = io.StringIO()
    with sessions() as session:
        written = export_subscribers(session, Filter(languages=("es",)), "csv", out,
                                     also=words_condition("bob"))
    assert written == 1
    assert [r["email"] for r in csv.DictReader(io.StringIO(out.getvalue()))] == [
        "bob@example.org"]
