"""Lists, segments, suppressions and one-person changes, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from subscribers.filters import Filter, FilterError
from subscribers.lists import ListError, create_list, delete_list, list_summaries, rename_list
from subscribers.models import Subscription
from subscribers.people import (
    NewSubscriber,
    SubscriberError,
    add,
    find,
    select_subscribers,
    unsubscribe,
    update_subscriber,
)
from subscribers.queries import stats
from subscribers.segments import SegmentError, create_segment, preview_segment
from subscribers.suppressions import is_suppressed, suppress, unsuppress

PEOPLE = [
    NewSubscriber("ana@example.org", "Ana", "Costa Rica", "es-CR", ("partners",)),
    NewSubscriber("bo@example.org", "Bo", "BZ", "en", ("partners", "press")),
    NewSubscriber("cy@example.org", "Cy", "Nicaragua", "es", ("press",)),
    NewSubscriber("di@example.org", "Di", "", "en", (), (("org", "unicef"),)),
    NewSubscriber("ed@Example.ORG", "Ed", "México", "ES", ()),
]


@pytest.fixture
def people(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with sessions() as session, session.begin():
        create_list(session, "partners", description="Partner organisations")
        create_list(session, "press", opt_in="double")
        for p in PEOPLE:
            add(session, p, default_language="en")
    return sessions


def emails(session: Session, f: Filter) -> list[str]:
    return [s.email for s in select_subscribers(session, f)]


def test_add_normalises_and_records_consent(people: sessionmaker[Session]) -> None:
    with people() as session:
        ana = find(session, "ANA@example.org")
        # the tag is kept as given (es-CR); she reads the es edition (issue 8, item 18)
        assert (ana.country, ana.language, ana.status) == ("CR", "es-CR", "active")
        assert ana.consent_method == "cli:add" and ana.consent_at is not None
        # on a double opt-in list, a new person waits for confirmation
        assert find(session, "cy@example.org").status == "pending"
        assert find(session, "ed@example.org").email == "ed@example.org"
        with pytest.raises(SubscriberError, match="already a subscriber"):
            add(session, NewSubscriber("Ana@Example.org"), default_language="en")


def test_filters_select_in_the_database(people: sessionmaker[Session]) -> None:
    with people() as session:
        assert emails(session, Filter(countries=("CR", "NI"))) == [
            "ana@example.org", "cy@example.org"]
        assert emails(session, Filter(countries=("none",))) == ["di@example.org"]
        assert emails(session, Filter(languages=("es",), statuses=("active",))) == [
            "ana@example.org", "ed@example.org"]
        assert emails(session, Filter(lists=("press",))) == ["bo@example.org", "cy@example.org"]
        assert emails(session, Filter(email="EXAMPLE.org", countries=("BZ",))) == [
            "bo@example.org"]
        assert emails(session, Filter(attributes=(("org", "unicef"),))) == ["di@example.org"]
        assert emails(session, Filter(email="%")) == []  # LIKE wildcards are literal
        assert emails(session, Filter(email="_")) == []
        assert emails(session, Filter(languages=("e%",))) == []  # es-CR is not e%-...
        assert emails(session, Filter(languages=("_s",))) == []
        with pytest.raises(FilterError, match="no list called 'nope'"):
            emails(session, Filter(lists=("nope",)))
        with pytest.raises(FilterError, match="unknown status"):
            emails(session, Filter(statuses=("gone",)))


def test_segments_store_a_filter_and_preview_it(people: sessionmaker[Session]) -> None:
    with people() as session, session.begin():
        create_segment(session, "central-es", Filter(countries=("CR", "NI", "MX"),
                                                     languages=("es",)))
        create_segment(session, "partners-or-central",
                       Filter(segments=("central-es",), statuses=("active",)))
        preview = preview_segment(session, "central-es", 2)
        assert preview.count == 3
        assert [s.email for s in preview.sample] == ["ana@example.org", "cy@example.org"]
        assert preview_segment(session, "partners-or-central").count == 2
        with pytest.raises(SegmentError, match="exists already"):
            create_segment(session, "central-es", Filter(languages=("en",)))
        with pytest.raises(SegmentError, match="at least one condition"):
            create_segment(session, "empty", Filter())
        with pytest.raises(FilterError, match="no list"):
            create_segment(session, "bad", Filter(lists=("missing",)))


def test_lists_count_rename_delete(people: sessionmaker[Session]) -> None:
    with people() as session, session.begin():
        summary = {s.name: s for s in list_summaries(session)}
        assert (summary["partners"].confirmed, summary["press"].unconfirmed) == (2, 2)
        assert summary["press"].confirmed == 0
        # Bo is on a single opt-in list too, so he is mailed for that one meanwhile
        assert find(session, "bo@example.org").status == "active"
        rename_list(session, "press", "media")
        with pytest.raises(ListError, match="exists already"):
            rename_list(session, "media", "partners")
        assert delete_list(session, "media") == 2
        assert find(session, "bo@example.org").email == "bo@example.org"  # people stay
        assert {s.name for s in list_summaries(session)} == {"partners"}


def test_unsubscribe_from_a_list_or_from_everything(people: sessionmaker[Session]) -> None:
    with people() as session, session.begin():
        unsubscribe(session, "bo@example.org", list_name="press")
        bo = find(session, "bo@example.org")
        assert bo.status == "active"
        statuses = dict(session.execute(
            select(Subscription.list_id, Subscription.status)
            .where(Subscription.subscriber_id == bo.id)).all())
        assert sorted(statuses.values()) == ["confirmed", "unsubscribed"]
        unsubscribe(session, "ana@example.org")
        assert find(session, "ana@example.org").status == "unsubscribed"
        assert emails(session, Filter(lists=("partners",))) == ["bo@example.org"]


def test_suppression_blocks_adding_and_reactivating(people: sessionmaker[Session]) -> None:
    with people() as session, session.begin():
        assert suppress(session, " Ed@EXAMPLE.org ", reason="complained")
        assert not suppress(session, "ed@example.org")
        assert is_suppressed(session, "ED@example.org")
        with pytest.raises(SubscriberError, match="suppressed"):
            update_subscriber(session, "ed@example.org", default_language="en", status="active")
        suppress(session, "new@example.org")
        with pytest.raises(SubscriberError, match="suppressed"):
            add(session, NewSubscriber("new@example.org"), default_language="en")
        assert unsuppress(session, "new@example.org") and not unsuppress(session, "x@y.org")


def test_stats_count_country_language_status(people: sessionmaker[Session]) -> None:
    with people() as session:
        rows = stats(session)
    assert (None, "en", "active", 1) in rows
    assert ("CR", "es-CR", "active", 1) in rows and ("NI", "es", "pending", 1) in rows
    assert sum(r[3] for r in rows) == 5
