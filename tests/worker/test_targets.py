"""Who gets an issue: lists, segments, suppressions, erasure, on both databases."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cli.demo import sample_items_text
from newsletter.ingest.text import parse_text
from newsletter.issues import IssueError, create_issue
from newsletter.items import store_items
from newsletter.models import Delivery
from newsletter.privacy import erase, export_data
from newsletter.settings import Settings
from subscribers.filters import Filter
from subscribers.lists import create_list
from subscribers.models import Subscriber, Suppression
from subscribers.people import NewSubscriber, SubscriberError, add, find
from subscribers.segments import create_segment
from subscribers.suppressions import suppress
from tests.worker.conftest import runtime_with
from worker.delivery import send_issue
from worker.runtime import configure
from worker.transports import MemoryTransport


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with sessions() as session, session.begin():
        store_items(session, parse_text(sample_items_text(), "sample"))
        create_list(session, "partners")
        create_list(session, "press", opt_in="double")
        for email, country, lang, lists in [
            ("ana@example.org", "CR", "es", ("partners",)),
            ("bo@example.org", "BZ", "en", ("press",)),  # pending: double opt-in
            ("cy@example.org", "NI", "es", ()),
            ("di@example.org", "SV", "es", ("partners",)),
            ("ed@example.org", "MX", "es", ()),
        ]:
            add(session, NewSubscriber(email, "", country, lang, lists), default_language="en")
        create_segment(session, "central-es", Filter(countries=("CR", "NI"), languages=("es",)))
    return sessions


def send(settings: Settings, sessions: sessionmaker[Session], slug: str) -> list[str]:
    memory = MemoryTransport()
    runtime = runtime_with(settings, sessions, memory)
    configure(runtime)
    try:
        send_issue(runtime, slug)
    finally:
        configure(None)
    return sorted(e.recipient for e in memory.sent)


def make_issue(sessions: sessionmaker[Session], slug: str, **targets: tuple[str, ...]) -> None:
    with sessions() as session, session.begin():
        create_issue(session, slug, date(2019, 9, 1), date(2019, 10, 31), **targets)


def test_an_issue_without_targets_goes_to_every_active_unsuppressed_person(
    world: sessionmaker[Session], settings: Settings
) -> None:
    with world() as session, session.begin():
        suppress(session, "ED@example.org", reason="complained")
    make_issue(world, "all")
    assert send(settings, world, "all") == ["ana@example.org", "cy@example.org",
                                            "di@example.org"]


def test_a_segment_or_list_target_selects_only_its_people(
    world: sessionmaker[Session], settings: Settings
) -> None:
    make_issue(world, "seg", segments=("central-es",))
    assert send(settings, world, "seg") == ["ana@example.org", "cy@example.org"]
    make_issue(world, "lists", lists=("partners", "press"))
    # press is double opt-in and Bo has not confirmed: only confirmed subscriptions count
    assert send(settings, world, "lists") == ["ana@example.org", "di@example.org"]
    make_issue(world, "both", lists=("partners",), segments=("central-es",))
    assert send(settings, world, "both") == ["ana@example.org", "cy@example.org",
                                             "di@example.org"]


def test_unknown_targets_are_refused_before_anything_is_created(
    world: sessionmaker[Session],
) -> None:
    with world() as session, pytest.raises(IssueError, match="no segment called 'nope'"):
        create_issue(session, "x", date(2019, 9, 1), date(2019, 10, 31), segments=("nope",))


def test_export_data_then_erase_leaves_only_a_hash(
    world: sessionmaker[Session], settings: Settings
) -> None:
    make_issue(world, "all")
    send(settings, world, "all")
    with world() as session:
        data = export_data(session, "Ana@example.org")
    json.dumps(data)  # JSON-ready
    assert data["subscriber"]["email"] == "ana@example.org"
    assert data["lists"] == [{"list": "partners", "status": "confirmed"}]
    assert data["consent"]["method"] == "cli:add" and data["consent"]["at"]
    assert [d["issue"] for d in data["deliveries"]] == ["all"]
    assert data["deliveries"][0]["status"] == "sent"

    with world() as session, session.begin():
        ana_id = find(session, "ana@example.org").id
        erase(session, "ana@example.org")
    with world() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)
                              .where(Subscriber.id == ana_id)) == 0
        assert session.scalar(select(func.count()).select_from(Delivery)
                              .where(Delivery.subscriber_id == ana_id)) == 0
        (kept,) = session.scalars(select(Suppression))
        assert kept.reason == "erased" and "ana" not in kept.email_hash
        with pytest.raises(SubscriberError, match="suppressed"):
            add(session, NewSubscriber("ana@example.org"), default_language="en")
