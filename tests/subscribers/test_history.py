"""Counts by country x language x status, and one person's history (subscriber_events,
consent and the delivery ledger in one timeline), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import date
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cli import cli
from newsletter.cli.demo import sample_items_text
from newsletter.ingest.text import parse_text
from newsletter.issues import create_issue
from newsletter.items import store_items
from newsletter.models import Delivery, Issue
from newsletter.privacy import erase
from newsletter.settings import Settings
from newsletter.web import create_app, dispose
from subscribers.filters import Filter
from subscribers.importer import ImportOptions, import_csv
from subscribers.lists import create_list
from subscribers.models import Subscriber, SubscriberEvent
from subscribers.people import NewSubscriber, add, confirm, unsubscribe, update_subscriber
from subscribers.report import CountRow, ReportError, counts, history
from subscribers.suppressions import suppress
from subscribers.tokens import subscriber_links
from tests.servers import SmtpServer
from tests.worker.conftest import runtime_with
from worker.confirmations import send_confirmations
from worker.delivery import send_issue
from worker.runtime import configure
from worker.transports import SMTPTransport

PEOPLE = """email,name,country,language,status
ana@example.org,Ana,CR,es,active
bea@example.org,Bea,CR,es,active
cruz@example.org,Cruz,CR,es,unsubscribed
dan@example.org,Dan,,en,active
eli@example.org,Eli,NI,es,active
"""


def test_counts_group_people_without_a_country_and_follow_the_filters(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    with sessions() as session, session.begin():
        create_list(session, "partners")
        import_csv(session, PEOPLE, default_language="en",
                   options=ImportOptions(list_name="partners"))
        add(session, NewSubscriber("fay@example.org", country="", language="en"),
            default_language="en")
    with sessions() as session:
        assert counts(session) == [
            CountRow(("(none)", "en", "active"), 2),
            CountRow(("CR", "es", "active"), 2),
            CountRow(("CR", "es", "unsubscribed"), 1),
            CountRow(("NI", "es", "active"), 1),
        ]
        assert counts(session, by=("status", "country")) == [
            CountRow(("active", "(none)"), 2), CountRow(("active", "CR"), 2),
            CountRow(("active", "NI"), 1), CountRow(("unsubscribed", "CR"), 1),
        ]
        # fay is on no list; cruz unsubscribed, so is on none of the lists either
        on_list = counts(session, by=("country",), filters=Filter(lists=("partners",)))
        assert on_list == [CountRow(("(none)",), 1), CountRow(("CR",), 2),
                           CountRow(("NI",), 1)]
        assert counts(session, by=("language",), filters=Filter(countries=("none",))) == [
            CountRow(("en",), 2)]
        with pytest.raises(ReportError, match="cannot count by 'email'"):
            counts(session, by=("email",))


def test_a_life_from_sign_up_to_bounce_is_told_in_order_with_its_evidence(
    sessions: sessionmaker[Session], settings: Settings, smtp_server: SmtpServer
) -> None:
    with sessions() as session, session.begin():
        store_items(session, parse_text(sample_items_text(), "sample"))
        create_list(session, "partners", opt_in="double")
        person = add(session, NewSubscriber("bob@example.org", country="BZ", language="en",
                                            lists=("partners",), consent_method="web:form"),
                     default_language="en", by="web")
        bob = person.id
        assert person.status == "pending"
    transport = SMTPTransport(smtp_server.url)
    try:
        assert send_confirmations(settings, sessions, transport=transport).sent == 1
        with sessions() as session, session.begin():
            confirm(session, bob, by="subscriber")
        runtime = runtime_with(settings, sessions, transport)
        configure(runtime)
        with sessions() as session, session.begin():
            create_issue(session, "first", date(2019, 9, 1), date(2019, 10, 31))
        assert send_issue(runtime, "first").counts["sent"] == 1
        # the mailbox is gone by the second issue
        smtp_server.reject_recipients({"bob@example.org": "550 5.1.1 No such user"})
        with sessions() as session, session.begin():
            create_issue(session, "second", date(2019, 9, 1), date(2019, 10, 31))
        assert send_issue(runtime, "second").counts["bounced"] == 1
    finally:
        configure(None)
        transport.close()

    with sessions() as session:
        second = session.scalar(select(Delivery.id).join(Issue).where(Issue.slug == "second"))
        found = history(session, "BOB@example.org")
    assert found.status == "bounced" and found.suppressed
    assert found.lists == [("partners", "confirmed")]
    assert [(e.kind, e.by) for e in found.timeline] == [
        ("suppressed", "worker"), ("bounced", "worker"), ("delivery", ""),
        ("delivery", ""), ("confirmed", "subscriber"), ("confirmation-sent", "worker"),
        ("subscribed", "web"),
    ]
    suppressed, bounced, failed, received, confirmed, asked, subscribed = found.timeline
    assert bounced.detail == (f"issue second (en-BZ), delivery {second}: "
                              "550 5.1.1 No such user")
    assert suppressed.detail.startswith("bounced: 550 5.1.1 No such user")
    assert failed.detail.startswith("issue second (en-BZ): bounced; 1 attempt;")
    assert failed.detail.endswith("reply: 550 5.1.1 No such user")
    assert received.detail.startswith("issue first (en-BZ): sent; 1 attempt")
    assert [d.status for d in found.deliveries] == ["sent", "bounced"]
    assert found.deliveries[0].sent_at == received.at
    assert confirmed.detail == "double opt-in confirmation; lists: partners"
    # confirming keeps how they signed up (and when); the confirmation is its own event
    assert found.consent_method == "web:form" and found.consent_at == subscribed.at
    assert subscribed.detail == "pending; consent: web:form; lists: partners (unconfirmed)"
    assert all(a.at >= b.at for a, b in zip(found.timeline, found.timeline[1:], strict=False))
    # the JSON form says the same, and an id finds the same person
    with sessions() as session:
        data = history(session, str(bob)).to_json()
    assert [e["kind"] for e in data["timeline"]] == [e.kind for e in found.timeline]
    assert data["deliveries"][1]["last_reply"] == "550 5.1.1 No such user"


def test_changes_by_hand_are_recorded_once_and_erasure_leaves_no_history(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    with sessions() as session, session.begin():
        create_list(session, "partners")
        create_list(session, "board")
        add(session, NewSubscriber("ana@example.org", country="CR", lists=("partners",)),
            default_language="en", by="cli")
        update_subscriber(session, "ana@example.org", default_language="en", country="NI",
                          status="complained", add_lists=("board",), by="ed@example.org")
        unsubscribe(session, "ana@example.org", list_name="partners", how="link")
        unsubscribe(session, "ana@example.org", list_name="partners", how="link")  # no-op
        unsubscribe(session, "ana@example.org", how="one-click", by="subscriber")
        suppress(session, "ana@example.org", reason="complained", by="cli")
        found = history(session, "ana@example.org")
        assert [(e.kind, e.detail) for e in reversed(found.timeline)] == [
            ("subscribed", "active; consent: cli:add; lists: partners (confirmed)"),
            ("changed", "country: CR -> NI"),
            ("status", "active -> complained"),
            ("list-added", "board (confirmed)"),
            ("unsubscribed", "from partners, by link"),
            ("unsubscribed", "from everything (was complained), by one-click"),
            ("suppressed", "complained"),
        ]
        assert found.timeline[-2].by == "ed@example.org"
        erase(session, "ana@example.org")
        assert session.scalar(select(func.count()).select_from(SubscriberEvent)) == 0


def test_an_import_writes_each_status_and_list_change_once_per_person(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    rows = ("email,status\nana@example.org,\nbea@example.org,\ncruz@example.org,unsubscribed\n"
            "dan@example.org,\nANA@example.org,\n")  # ana again, in a later batch
    with sessions() as session, session.begin():
        create_list(session, "partners", opt_in="double")
        import_csv(session, rows, default_language="en",
                   options=ImportOptions(list_name="partners", batch_size=2))
        import_csv(session, "email,status\nbea@example.org,unsubscribed\n",
                   default_language="en")
        create_list(session, "board")
        import_csv(session, "email\nana@example.org\ndan@example.org\nANA@example.org\n",
                   default_language="en",
                   options=ImportOptions(list_name="board", batch_size=1))
        ana = history(session, "ana@example.org")
        bea = history(session, "bea@example.org")
        cruz = history(session, "cruz@example.org")
    # new people: no event per row (the import stays as fast); the row is the record
    assert [(e.kind, e.detail, e.by) for e in ana.timeline] == [
        ("list-added", "board (confirmed)", "import"),  # once, though ana comes twice
        ("subscribed", "consent: import; lists: partners", "")]
    assert [(e.kind, e.detail) for e in bea.timeline][:1] == [
        ("status", "pending -> unsubscribed (import)")]
    # unsubscribed in the file: not put on the list
    assert [(e.kind, e.detail) for e in cruz.timeline] == [("subscribed", "consent: import")]


def test_cli_counts_and_history(runner: CliRunner, sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        import_csv(session, PEOPLE, default_language="en")
    assert runner.invoke(cli, ["subscribers", "unsubscribe", "ana@example.org"]).exit_code == 0
    shown = runner.invoke(cli, ["subscribers", "history", "ana@example.org", "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert [(e["kind"], e["by"]) for e in data["timeline"]] == [
        ("unsubscribed", "cli"), ("subscribed", "")]
    assert data["timeline"][0]["detail"] == "from everything (was active), by admin"
    table = runner.invoke(cli, ["subscribers", "history", "ana@example.org"])
    assert table.exit_code == 0 and "unsubscribed" in table.output
    missing = runner.invoke(cli, ["subscribers", "history", "nobody@example.org"])
    assert missing.exit_code == 1 and "no subscriber" in missing.output
    assert "Traceback" not in missing.output

    counted = runner.invoke(cli, ["subscribers", "counts", "--by", "country,status", "--json"])
    assert counted.exit_code == 0, counted.output
    assert json.loads(counted.output) == {
        "by": ["country", "status"], "total": 5,
        "groups": [{"country": "(none)", "status": "active", "count": 1},
                   {"country": "CR", "status": "active", "count": 1},
                   {"country": "CR", "status": "unsubscribed", "count": 2},
                   {"country": "NI", "status": "active", "count": 1}]}
    text = runner.invoke(cli, ["subscribers", "counts", "--by", "language", "--status",
                               "active"])
    assert text.exit_code == 0 and "total" in text.output and "3 subscribers" in text.output
    csv_out = runner.invoke(cli, ["subscribers", "counts", "--by", "language", "--csv"])
    assert csv_out.output.splitlines() == ["language,count", "en,1", "es,4"]
    wrong = runner.invoke(cli, ["subscribers", "counts", "--by", "nope"])
    assert wrong.exit_code == 1 and "cannot count by 'nope'" in wrong.output


def test_the_web_links_say_whether_one_click_or_the_page_unsubscribed(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    with sessions() as session, session.begin():
        import_csv(session, PEOPLE, default_language="en")
        links = {p.email: subscriber_links(settings.public_base_url, settings.secret_key,
                                           p.id, p.token_salt)[0]
                 for p in session.scalars(select(Subscriber))}
    app = create_app(settings)
    try:
        client = app.test_client()
        for address, body in (("ana@example.org", "List-Unsubscribe=One-Click"),
                              ("bea@example.org", "")):
            reply = client.post(urlsplit(links[address]).path, data=body,
                                content_type="application/x-www-form-urlencoded")
            assert reply.status_code == 200
    finally:
        dispose(app)
    with sessions() as session:
        for address, how in (("ana@example.org", "one-click"), ("bea@example.org", "link")):
            latest = history(session, address).timeline[0]
            assert (latest.kind, latest.detail, latest.by) == (
                "unsubscribed", f"from everything (was active), by {how}", "subscriber")
