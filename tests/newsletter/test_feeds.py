"""Feeds end to end against a real local HTTP server: every RSS version and Atom into
items, idempotence, a person's corrections kept, conditional GET, failures that stay with
their feed, backoff, one claim per due feed, and the commands. On SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cli import cli
from newsletter.feeds import FetchResult, add_feed, fetch_due, fetch_now, get_feed, remove_feed
from newsletter.ingest.feeds import FeedError, parse_feed, to_item
from newsletter.ingest.fetch import MAX_REDIRECTS, http_get, private_address
from newsletter.item_edits import ItemChanges, delete_item, edit_item
from newsletter.items import store_items
from newsletter.models import Feed, Item
from newsletter.settings import Settings
from tests.conftest import FIXTURES

FEEDS = FIXTURES / "feeds"
NOW = datetime(2026, 12, 6, 12, 0)
RSS = "application/rss+xml; charset=utf-8"


@dataclass
class Route:
    """What the server answers on one path."""

    body: bytes = b""
    status: int = 200
    content_type: str = RSS
    etag: str | None = None
    last_modified: str | None = None
    location: str | None = None
    gzip: bool = False
    drip: bool = False  # a byte every 50 ms, never finishing
    endless: bool = False  # 64 KB after 64 KB, never finishing
    cut: bool = False  # announces the whole length, sends half, hangs up


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


@dataclass
class FeedServer:
    """http.server on 127.0.0.1:0 in a thread; counts requests and keeps their headers."""

    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    def serve(self, path: str, fixture: str | None = None, **route: object) -> str:
        body = (FEEDS / fixture).read_bytes() if fixture else route.pop("body", b"")
        self.routes[path] = Route(body=body, **route)  # type: ignore[arg-type]
        return self.url(path)


def _handler(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            server.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}))
            route = server.routes.get(self.path)
            if route is None:
                self.send_error(404)
                return
            if (route.etag and self.headers.get("If-None-Match") == route.etag) or (
                    route.last_modified and not route.etag
                    and self.headers.get("If-Modified-Since") == route.last_modified):
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(route.status)
            if route.location:
                self.send_header("Location", route.location)
            for name, value in (("ETag", route.etag), ("Last-Modified", route.last_modified)):
                if value:
                    self.send_header(name, value)
            self.send_header("Content-Type", route.content_type)
            body = gzip.compress(route.body) if route.gzip else route.body
            if route.gzip:
                self.send_header("Content-Encoding", "gzip")
            if route.drip or route.endless:
                self.end_headers()  # no length: the body ends when the connection does
                self._forever(b"<" if route.drip else b"x" * 65536, 0.05 if route.drip else 0)
                return
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if route.cut else body)

        def _forever(self, chunk: bytes, pause: float) -> None:
            deadline = time.monotonic() + 20
            try:
                while not server.stop.is_set() and time.monotonic() < deadline:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    if pause:
                        server.stop.wait(pause)
            except OSError:
                pass  # the client hung up: what the test wants

    return Handler


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.stop.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fast(settings: Settings) -> Settings:
    # the feeds are served on 127.0.0.1, which only NEWSLETTER_FEED_ALLOW_PRIVATE lets in
    return settings.model_copy(update={"feed_timeout_seconds": 1.0, "feed_max_bytes": 200_000,
                                       "feed_allow_private": True})


@pytest.fixture
def runner(cli_env: dict[str, str]) -> CliRunner:
    return CliRunner(env={**cli_env, "NEWSLETTER_FEED_ALLOW_PRIVATE": "true"})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def follow(sessions: sessionmaker[Session], url: str, name: str, **options: object) -> None:
    with sessions() as session, session.begin():
        add_feed(session, url, name=name, allow_private=True,
                 **options)  # type: ignore[arg-type]


def items_of(sessions: sessionmaker[Session], name: str) -> dict[str, Item]:
    with sessions() as session:
        feed = get_feed(session, name)
        rows = session.scalars(select(Item).where(Item.feed_id == feed.id))
        return {item.title: item for item in rows}


def feed_row(sessions: sessionmaker[Session], name: str) -> Feed:
    with sessions() as session:
        return get_feed(session, name)


# -- into items ---------------------------------------------------------------------------

def test_every_rss_version_and_atom_become_items_once(
        sessions: sessionmaker[Session], fast: Settings, feed_server: FeedServer) -> None:
    for name, fixture in (("rss20", "rss20-es.xml"), ("atom", "atom-en.xml"),
                          ("rdf", "rss10-en.rdf"), ("rss091", "rss091-es.xml")):
        follow(sessions, feed_server.serve(f"/{name}", fixture), name)
    # the same articles (tag: guids) in another feed, gzipped, one title reworded
    retitled = (FEEDS / "atom-en.xml").read_bytes().replace(b"expands its", b"enlarges a")
    follow(sessions, feed_server.serve("/gz", body=retitled, gzip=True), "gz")
    results = {r.feed: r for r in fetch_due(sessions, fast, NOW)}
    assert {n: (r.status, r.new, r.entries) for n, r in results.items()} == {
        "rss20": ("ok", 3, 3), "atom": ("ok", 2, 2), "rdf": ("ok", 2, 2),
        "rss091": ("ok", 2, 2), "gz": ("ok", 0, 2)}

    upala = items_of(sessions, "rss20")["Upala abre un segundo albergue temporal"]
    assert (upala.published, upala.place, upala.language, upala.countries) == (
        date(2026, 12, 1), "Upala", "es", "CR,NI")
    assert upala.paragraphs[0].startswith("La municipalidad habilitó")
    assert "rastreo" not in upala.body and "<" not in upala.body
    atom = items_of(sessions, "atom")
    assert "Guatemala expands its return reception centre" in atom  # not rewritten by gz
    assert items_of(sessions, "gz") == {}
    assert atom["Haitian families reach Santo Domingo shelters"].countries == "DO,HT"
    assert {i.language for i in atom.values()} == {"en"}
    rdf = items_of(sessions, "rdf")
    assert rdf["Kingston prepares for a charter of returnees"].countries == "JM"
    undated = items_of(sessions, "rss091")["Chetumal recibe a solicitantes de refugio beliceños"]
    assert (undated.published, undated.countries) == (NOW.date(), "MX,BZ")

    # a day later: nothing new, nothing changed, and an undated entry keeps its first day
    later = NOW + timedelta(days=1)
    again = fetch_now(sessions, fast, later)
    assert [(r.status, r.new, r.updated) for r in again] == [("ok", 0, 0)] * 5
    assert items_of(sessions, "rss091")[undated.title].published == NOW.date()
    with sessions() as session:
        assert session.scalar(select(Item.id).where(Item.feed_id.is_(None))) is None
        assert len(session.scalars(select(Item)).all()) == 9


def test_a_changed_entry_keeps_a_persons_corrections(
        sessions: sessionmaker[Session], fast: Settings, feed_server: FeedServer) -> None:
    url = feed_server.serve("/n", "rss20-es.xml")
    follow(sessions, url, "noticias")
    fetch_now(sessions, fast, NOW)
    item = items_of(sessions, "noticias")["Upala abre un segundo albergue temporal"]
    with sessions() as session, session.begin():
        edit_item(session, item.id, ItemChanges(title="Upala abre su segundo albergue"))

    original = (FEEDS / "rss20-es.xml").read_text()
    feed_server.routes["/n"].body = (
        original.replace("Upala abre un segundo albergue temporal", "Upala: segundo albergue")
        .replace("ochenta personas", "cien personas").encode())
    (result,) = fetch_now(sessions, fast, NOW + timedelta(hours=1))
    assert (result.new, result.updated, result.kept) == (0, 1, 1)
    with sessions() as session:
        stored = session.get(Item, item.id)
        assert stored is not None
        assert stored.title == "Upala abre su segundo albergue"  # the person's title stays
        assert "cien personas" in stored.body  # the field nobody edited follows the feed
        assert stored.feed_id == feed_row(sessions, "noticias").id


def test_an_entry_dated_only_by_its_last_update_keeps_its_first_day(
        sessions: sessionmaker[Session], fast: Settings, feed_server: FeedServer) -> None:
    """An Atom entry without <published> is dated by <updated>, which moves each time its
    author touches it: the item would move into a later period, and a series would send it
    again. It keeps the day it was first seen; an entry that says when it was published
    follows a corrected date."""
    original = (FEEDS / "atom-en.xml").read_text()
    follow(sessions, feed_server.serve("/a", body=original.encode()), "atom")
    fetch_now(sessions, fast, NOW)
    feed_server.routes["/a"].body = (
        original.replace("<updated>2026-12-03T18:00:00Z</updated>",
                         "<updated>2026-12-10T18:00:00Z</updated>")
        .replace("2026-12-04T08:00:00-04:00", "2026-12-05T08:00:00-04:00")
        .replace("job counselling", "job and housing counselling").encode())
    (result,) = fetch_now(sessions, fast, NOW + timedelta(days=7))
    assert result.updated == 2
    atom = items_of(sessions, "atom")
    guatemala = atom["Guatemala expands its return reception centre"]
    assert (guatemala.published, "housing" in guatemala.body) == (date(2026, 12, 3), True)
    assert atom["Haitian families reach Santo Domingo shelters"].published == date(2026, 12, 5)


def test_conditional_get_sends_the_validators_and_a_304_adds_nothing(
        sessions: sessionmaker[Session], fast: Settings, feed_server: FeedServer) -> None:
    stamp = "Sat, 05 Dec 2026 10:00:00 GMT"
    follow(sessions, feed_server.serve("/e", "atom-en.xml", etag='"v1"', last_modified=stamp,
                                       content_type="application/atom+xml"), "etag")
    follow(sessions, feed_server.serve("/m", "rss10-en.rdf", last_modified=stamp), "modified")
    assert [r.status for r in fetch_due(sessions, fast, NOW)] == ["ok", "ok"]
    assert (feed_row(sessions, "etag").etag, feed_row(sessions, "etag").last_modified) == (
        '"v1"', stamp)
    later = NOW + timedelta(hours=2)
    results = fetch_due(sessions, fast, later)
    assert [(r.status, r.new) for r in results] == [("not-modified", 0)] * 2
    second = feed_server.requests("/e")[1].headers
    assert (second["if-none-match"], second["if-modified-since"]) == ('"v1"', stamp)
    assert "if-none-match" not in feed_server.requests("/e")[0].headers
    assert feed_server.requests("/m")[1].headers["if-modified-since"] == stamp
    row = feed_row(sessions, "etag")
    assert (row.etag, row.last_ok_at, row.next_fetch_at) == (
        '"v1"', later, later + timedelta(minutes=60))


def test_one_failing_feed_never_stops_the_others_and_says_what_to_do(
        sessions: sessionmaker[Session], fast: Settings, feed_server: FeedServer) -> None:
    feed_server.serve("/loop", location=feed_server.url("/loop"), status=302)
    bad = {
        "refused": (f"http://127.0.0.1:{closed_port()}/feed", "refused the connection"),
        "dns": ("http://feeds.nonexistent.invalid/rss", "cannot be found (DNS)"),
        "error500": (feed_server.serve("/500", body=b"oops", status=500),
                     "answered 500 Internal Server Error (a problem on their side)"),
        "gone": (feed_server.url("/missing"), "answered 404 Not Found: the feed moved"),
        "slow": (feed_server.serve("/drip", drip=True), "no complete answer within 1 s"),
        "huge": (feed_server.serve("/huge", endless=True), "larger than 200,000 bytes"),
        "page": (feed_server.serve("/page", body=b"<!doctype html><html><p>Hola</p></html>",
                                   content_type="text/html"), "is a web page"),
        "loop": (feed_server.url("/loop"), f"more than {MAX_REDIRECTS} redirects"),
        "ftp": (feed_server.serve("/to-ftp", status=301, location="ftp://example.org/f"),
                "not an http(s) address"),
    }
    for name, (url, _) in bad.items():
        follow(sessions, url, name)
    follow(sessions, feed_server.serve("/moved", status=301, location="/good"), "moved")
    feed_server.serve("/good", "rss20-es.xml")
    follow(sessions, feed_server.url("/good"), "good")

    started = time.monotonic()
    results = {r.feed: r for r in fetch_due(sessions, fast, NOW)}
    assert time.monotonic() - started < 8  # each slow or endless feed cut at its limit
    assert (results["good"].status, results["good"].new) == ("ok", 3)
    assert (results["moved"].status, results["moved"].entries) == ("ok", 3)  # redirect
    for name, (_, message) in bad.items():
        assert results[name].status == "failed"
        assert message in results[name].error, (name, results[name].error)
        row = feed_row(sessions, name)
        assert (row.failures, row.last_error, row.last_ok_at) == (1, results[name].error, None)
        assert row.next_fetch_at == NOW + timedelta(minutes=120)  # interval * 2**1
    assert feed_row(sessions, "good").failures == 0


def test_a_feed_cut_off_half_way_is_a_failure_not_half_an_entry(
        sessions: sessionmaker[Session], fast: Settings, feed_server: FeedServer) -> None:
    """The connection drops after half the announced length: what arrived still parses
    (feedparser is lenient), but storing it would keep an entry without its text, and its
    ETag would make every later fetch a 304 that never brings the rest."""
    for gz in (False, True):
        name = f"cut-{gz}"
        url = feed_server.serve(f"/{name}", "rss20-es.xml", etag='"v1"', cut=True, gzip=gz)
        follow(sessions, url, name)
        (result,) = fetch_now(sessions, fast, NOW, [name])
        assert result.status == "failed", (gz, result)
        assert "closed before the whole feed arrived" in result.error
        assert items_of(sessions, name) == {} and feed_row(sessions, name).etag is None
        feed_server.routes[f"/{name}"].cut = False
        (result,) = fetch_now(sessions, fast, NOW + timedelta(hours=1), [name])
        assert (result.status, result.new) == ("ok", 3)
        tapachula = items_of(sessions, name)["Tapachula: largas filas para obtener citas de asilo"]
        assert tapachula.paragraphs[-1] == "Organizaciones locales reparten agua y comida."


def test_a_failure_is_recorded_whatever_bytes_the_server_sent(
        sessions: sessionmaker[Session], fast: Settings) -> None:
    """A reason phrase with a NUL in it: PostgreSQL refuses NUL in text, so the error must
    be cleaned before it is stored, or the failure (and its backoff) is lost."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def answer() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 503 Down\x00For\x07Now\r\nContent-Length: 0\r\n\r\n")

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        follow(sessions, f"http://127.0.0.1:{listener.getsockname()[1]}/feed", "odd")
        (result,) = fetch_due(sessions, fast, NOW)
        thread.join()
    row = feed_row(sessions, "odd")
    assert (result.status, row.failures) == ("failed", 1)
    assert "answered 503 Down" in row.last_error and "\x00" not in row.last_error
    assert row.next_fetch_at == NOW + timedelta(minutes=120)


def test_a_validator_with_a_control_character_is_not_kept(
        sessions: sessionmaker[Session], fast: Settings) -> None:
    """PostgreSQL refuses NUL in text: an ETag holding one failed the whole fetch, every time."""
    body = (FEEDS / "rss20-es.xml").read_bytes()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def answer() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b'HTTP/1.1 200 OK\r\nETag: "a\x00b"\r\nLast-Modified: Sat\x01'
                             b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        follow(sessions, f"http://127.0.0.1:{listener.getsockname()[1]}/feed", "odd")
        (result,) = fetch_due(sessions, fast, NOW)
        thread.join()
    row = feed_row(sessions, "odd")
    assert (result.status, result.new, row.etag, row.last_modified) == ("ok", 3, None, None)


def test_a_failing_feed_backs_off_then_recovers(
        sessions: sessionmaker[Session], fast: Settings, feed_server: FeedServer) -> None:
    url = feed_server.serve("/flaky", body=b"down", status=503)
    follow(sessions, url, "flaky", interval_minutes=180)
    now = NOW
    waits = []
    for _ in range(5):
        (result,) = fetch_due(sessions, fast, now)
        assert result.status == "failed"
        assert fetch_due(sessions, fast, now) == []  # not due again before its backoff
        row = feed_row(sessions, "flaky")
        assert row.next_fetch_at is not None
        waits.append(row.next_fetch_at - now)
        assert fetch_due(sessions, fast, row.next_fetch_at - timedelta(seconds=1)) == []
        now = row.next_fetch_at
    hours = [w / timedelta(hours=1) for w in waits]
    assert hours == [6, 12, 24, 24, 24]  # 3 h * 2**failures, at most a day
    feed_server.serve("/flaky", "rss10-en.rdf")
    (result,) = fetch_due(sessions, fast, now)
    row = feed_row(sessions, "flaky")
    assert (result.status, result.new, row.failures, row.last_error) == ("ok", 2, 0, "")
    assert row.next_fetch_at == now + timedelta(hours=3)


def test_a_due_feed_is_claimed_once(
        sessions: sessionmaker[Session], fast: Settings, feed_server: FeedServer) -> None:
    follow(sessions, feed_server.serve("/a", "rss20-es.xml"), "a")
    follow(sessions, feed_server.serve("/b", "atom-en.xml"), "b", interval_minutes=30)
    assert [r.feed for r in fetch_due(sessions, fast, NOW)] == ["a", "b"]
    assert fetch_due(sessions, fast, NOW) == []  # a second scheduler at the same time
    assert len(feed_server.seen) == 2
    assert [r.feed for r in fetch_due(sessions, fast, NOW + timedelta(minutes=30))] == ["b"]
    # two schedulers in threads, both at the moment both are due: each feed fetched once
    results: list[list[str]] = []
    due = NOW + timedelta(minutes=60)
    threads = [threading.Thread(
        target=lambda: results.append([r.feed for r in fetch_due(sessions, fast, due)]))
        for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(f for run in results for f in run) == ["a", "b"]
    assert len(feed_server.seen) == 5


def test_a_fetch_that_loses_the_race_to_store_the_same_entries_is_not_a_failure(
        engine: Engine, sessions: sessionmaker[Session], fast: Settings,
        feed_server: FeedServer) -> None:
    """`feeds fetch` while the scheduler fetches the same feed (or two schedulers, two feeds
    with the same articles): the other process stores the entries between this one's look
    and its insert. The loser reads them again; no failure, no backoff."""
    url = feed_server.serve("/n", "rss20-es.xml")
    follow(sessions, url, "noticias")
    parsed = parse_feed((FEEDS / "rss20-es.xml").read_bytes(), url)
    other = sessions()
    other.begin()
    # the other process's store, not yet committed: this fetch cannot see it
    store_items(other, [to_item(e, e.key(url), e.published or NOW.date(), language="es")
                        for e in parsed.entries])
    inserting = threading.Event()

    def before(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.startswith("INSERT INTO items") and threading.current_thread() is not main:
            inserting.set()

    main = threading.current_thread()
    event.listen(engine, "before_cursor_execute", before)
    results: list[FetchResult] = []
    fetching = threading.Thread(target=lambda: results.extend(fetch_now(sessions, fast, NOW)))
    try:
        fetching.start()
        assert inserting.wait(20)  # this fetch looked, found nothing, and inserts now
        other.commit()
        fetching.join()
    finally:
        other.close()
        event.remove(engine, "before_cursor_execute", before)
    ((result),) = results
    assert (result.status, result.error, result.new) == ("ok", "", 0)
    assert feed_row(sessions, "noticias").failures == 0
    assert len(items_of(sessions, "noticias")) == 3


CLAIM_AND_HANG = """
import sys
from datetime import datetime
from newsletter.db import make_engine, session_factory
from newsletter.feeds import fetch_due
from newsletter.settings import Settings
url, var = sys.argv[1], sys.argv[2]
settings = Settings(var_dir=var, database_url=url, broker_url="", smtp_url="",
                    secret_key="x", sender_name="x", sender_email="news@example.org",
                    public_base_url="https://news.example.org", feed_timeout_seconds=60,
                    feed_allow_private=True)
fetch_due(session_factory(make_engine(url)), settings, datetime.fromisoformat(sys.argv[3]))
"""


def test_a_scheduler_killed_half_way_through_a_fetch_leaves_the_feed_due_soon(
        db_url: str, sessions: sessionmaker[Session], fast: Settings,
        feed_server: FeedServer, tmp_path: Path) -> None:
    """A weekly feed claimed by a scheduler that is then killed (a deploy, a crash) must
    not wait a week: the claim is a short lease; only a finished fetch sets the interval."""
    feed_server.serve("/weekly", "rss20-es.xml", drip=True)  # the fetch hangs
    follow(sessions, feed_server.url("/weekly"), "weekly", interval_minutes=7 * 24 * 60)
    process = subprocess.Popen([sys.executable, "-c", CLAIM_AND_HANG, db_url,
                                str(tmp_path / "var"), NOW.isoformat()])
    try:
        deadline = time.monotonic() + 30
        while not feed_server.requests("/weekly"):  # claimed, and fetching
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
    assert feed_row(sessions, "weekly").last_fetched_at is None  # it never finished
    assert fetch_due(sessions, fast, NOW + timedelta(minutes=5)) == []  # still leased
    feed_server.serve("/weekly", "rss20-es.xml")
    (result,) = fetch_due(sessions, fast, NOW + timedelta(minutes=15))
    assert (result.status, result.new) == ("ok", 3)
    assert feed_row(sessions, "weekly").next_fetch_at == NOW + timedelta(minutes=15, days=7)


def test_removing_a_feed_keeps_its_items(
        sessions: sessionmaker[Session], fast: Settings, feed_server: FeedServer) -> None:
    follow(sessions, feed_server.serve("/a", "rss10-en.rdf"), "a")
    fetch_now(sessions, fast, NOW)
    with sessions() as session, session.begin():
        feed, count = remove_feed(session, "a")
    assert count == 2
    with sessions() as session:
        kept = session.scalars(select(Item)).all()
        assert [(i.feed_id, i.countries) for i in kept] == [(None, "JM"), (None, "CU,NI")]
    follow(sessions, feed_server.url("/a"), "again")  # the same items, found again
    (result,) = fetch_now(sessions, fast, NOW)
    assert (result.new, result.updated) == (0, 0)
    assert len(items_of(sessions, "again")) == 2


# -- the HTTP exchange on its own -------------------------------------------------------

def test_http_get_limits(feed_server: FeedServer) -> None:
    body = (FEEDS / "rss20-es.xml").read_bytes()
    feed_server.serve("/bomb", body=b"\0" * 5_000_000, gzip=True)
    with pytest.raises(FeedError, match="larger than 100,000 bytes"):
        http_get(feed_server.url("/bomb"), timeout=5, max_bytes=100_000,  # 5 MB from ~5 KB
                 allow_private=True)
    feed_server.serve("/ok", body=body, gzip=True)
    assert http_get(feed_server.url("/ok"), timeout=5, max_bytes=len(body),
                    allow_private=True).body == body
    with pytest.raises(FeedError, match="larger than"):
        http_get(feed_server.url("/ok"), timeout=5, max_bytes=len(body) - 1,
                 allow_private=True)
    with pytest.raises(FeedError, match="not an http"):
        http_get("file:///etc/passwd", timeout=5, max_bytes=1000)
    feed_server.serve("/hop", status=307, location="/ok")
    assert http_get(feed_server.url("/hop"), timeout=5, max_bytes=10**6,
                    allow_private=True).url.endswith("/ok")


def test_private_addresses_wrapped_in_6to4_or_teredo_are_private() -> None:
    """An IPv6 address that carries a private IPv4 one (6to4, Teredo) reaches it through
    a relay: refused like the address it carries; public ones it carries still pass."""
    for address in ("2002:7f00:1::1", "2002:a9fe:a9fe::1", "2002:a01:203::",
                    "2001:0:4136:e378:8000:63bf:80ff:fffe"):  # Teredo client 127.0.0.1
        assert private_address(address), address
    assert not private_address("2002:5db8:d822::1")  # 6to4 of 93.184.216.34


def test_private_addresses_are_refused_unless_the_setting_allows_them(
        sessions: sessionmaker[Session], settings: Settings, runner: CliRunner,
        cli_env: dict[str, str], feed_server: FeedServer) -> None:
    """No SSRF: a feed (added from the web, say) must not make the server ask its own
    network or the cloud's metadata address; adding and every fetch check the host."""
    url = feed_server.serve("/es", "rss20-es.xml")
    for address in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.5.4", "169.254.169.254",
                    "::1", "fe80::1", "::ffff:127.0.0.1", "0.0.0.0", "100.64.0.1"):
        assert private_address(address), address
    assert not private_address("93.184.216.34") and not private_address("2606:4700::1")
    for target in (url, "http://localhost:9/feed", "http://[::1]/feed",
                   "http://169.254.169.254/latest/meta-data/"):
        with sessions() as session, pytest.raises(FeedError, match="private or link-local"):
            add_feed(session, target, name="x")
        with pytest.raises(FeedError, match="NEWSLETTER_FEED_ALLOW_PRIVATE=true allows it"):
            http_get(target, timeout=1, max_bytes=1000)
    refused = CliRunner(env=cli_env).invoke(cli, ["feeds", "add", url])
    assert refused.exit_code == 1 and "private or link-local" in refused.output
    # added while allowed, fetched while not: the fetch refuses too, and says why
    follow(sessions, url, "loopback")
    (result,) = fetch_now(sessions, settings, NOW)
    assert result.status == "failed" and "private or link-local" in result.error
    assert feed_server.requests("/es") == []  # nothing was asked of it
    (result,) = fetch_now(sessions, settings.model_copy(update={"feed_allow_private": True}),
                          NOW)
    assert (result.status, result.new) == ("ok", 3)


def test_an_address_with_accents_is_asked_for_as_a_browser_would(
        sessions: sessionmaker[Session], fast: Settings, feed_server: FeedServer) -> None:
    """Spanish sites name their sections "categoría", "migración": the address as typed
    (or copied from the address bar) goes out percent-encoded, as UTF-8."""
    feed_server.serve("/categor%C3%ADa/migraci%C3%B3n.xml?a%C3%B1o=2026", "rss20-es.xml")
    follow(sessions, feed_server.url("/categoría/migración.xml?año=2026"), "acentos")
    (result,) = fetch_due(sessions, fast, NOW)
    assert (result.status, result.new, result.error) == ("ok", 3, "")


def test_http_get_keeps_one_deadline_while_the_headers_trickle() -> None:
    """A server that sends its headers a byte at a time never lets a socket timeout fire;
    the exchange is still cut at its deadline (the scheduler must not hang on one feed)."""
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def trickle() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)
                try:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    for _ in range(100):  # 10 s at most
                        if stop.wait(0.1):
                            return
                        conn.sendall(b"x")
                except OSError:
                    pass  # the client hung up: what the test wants

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        started = time.monotonic()
        try:
            with pytest.raises(FeedError, match="no complete answer within 1 s"):
                http_get(f"http://127.0.0.1:{listener.getsockname()[1]}/feed", timeout=1,
                         max_bytes=1000, allow_private=True)
            assert time.monotonic() - started < 3
        finally:
            stop.set()
            thread.join()


@dataclass
class RawServer:
    """Answers every connection with `answer`, byte for byte, then hangs up."""

    listener: socket.socket
    answer: bytes = b""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/feed"

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed: the test is over
            with conn:
                try:
                    conn.settimeout(2)
                    conn.recv(65536)
                    conn.sendall(self.answer)
                except OSError:
                    pass


@pytest.fixture(scope="module")
def raw_server() -> Iterator[RawServer]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server = RawServer(listener)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    yield server
    listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone would not)
    listener.close()
    thread.join(5)
    assert not thread.is_alive()


HEADER_NAMES = st.sampled_from(["Content-Length", "Content-Encoding", "Transfer-Encoding",
                                "Location", "ETag", "Last-Modified", "Content-Type", "X-Odd"])
HEADER_VALUES = st.one_of(
    st.sampled_from(["gzip", "x-gzip", "br", "chunked", "identity", "0", "5", "99999999",
                     "-1", "²", "/feed", "/feed?x=ñ", "ftp://127.0.0.1/f", '"v1"', ""]),
    st.integers(0, 5000).map(str),
    st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=20)
    .filter(lambda v: "//" not in v and "\\" not in v),  # a Location never names a host
)
STATUS_LINES = st.one_of(
    st.sampled_from([200, 301, 302, 304, 307, 404, 500, 100, 204, 206]).map(
        lambda code: f"HTTP/1.1 {code} Reason"),
    st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=30),
)
BODIES = st.one_of(
    st.binary(max_size=300),
    st.just((FEEDS / "rss10-en.rdf").read_bytes()),
    st.binary(max_size=300).map(gzip.compress),
    st.sampled_from([b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\n", b"\x1f\x8b\x08garbage"]),
)


@pytest.mark.fuzz
@given(STATUS_LINES, st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=5), BODIES)
def test_whatever_a_server_answers_http_get_returns_or_raises_feed_error(
        raw_server: RawServer, status: str, headers: list[tuple[str, str]],
        body: bytes) -> None:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    raw_server.answer = f"{status}\r\n{head}\r\n".encode("latin-1") + body
    started = time.monotonic()
    try:
        fetched = http_get(raw_server.url, timeout=2, max_bytes=2000, allow_private=True)
    except FeedError:
        pass
    else:
        assert fetched.status in (200, 304) and len(fetched.body) <= 2000
    assert time.monotonic() - started < 4


# -- the commands -------------------------------------------------------------------------

def run(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_feeds_commands(runner: CliRunner, feed_server: FeedServer) -> None:
    url = feed_server.serve("/es", "rss20-es.xml")
    out = run(runner, "feeds", "add", url, "--language", "es", "--country", "cr,Nicaragua",
              "--interval", "30")
    assert "feed '127.0.0.1' added" in out
    assert "127.0.0.1-2" in run(runner, "feeds", "add", feed_server.url("/none"))
    assert "already followed, as feed '127.0.0.1'" in run(runner, "feeds", "add", url, code=1)
    for args, message in (
            (["ftp://x.example/f"], "is not an http(s) address"),
            (["http://127.0.0.1:abc/feed"], "the port after '127.0.0.1' is not a number"),
            (["https://example.org:99999/feed"], "is not a number from 0 to 65535"),
            ([url + "?x", "--country", "Atlantis"], "'Atlantis' is not a known country"),
            ([url + "?x", "--name", "Bad Name"], "--name 'bad name': use 1 to 64"),
            ([url + "?x", "--interval", "0"], "--interval 0"),
            ([url + "?x", "--language", "español"], "is not a language code")):
        out = run(runner, "feeds", "add", *args, code=1)
        assert message in out and "Traceback" not in out

    fetched = json.loads(run(runner, "feeds", "fetch", "127.0.0.1", "--json"))
    assert [(r["feed"], r["status"], r["new"]) for r in fetched] == [("127.0.0.1", "ok", 3)]
    out = run(runner, "feeds", "fetch", code=1)  # the other answers 404
    assert "127.0.0.1: 3 entries, 0 new items, 0 updated" in out
    assert "127.0.0.1-2: failed:" in out and "1 of 2 feeds failed: 127.0.0.1-2" in out

    listed = json.loads(run(runner, "feeds", "list", "--json"))
    assert [(f["name"], f["items"], f["failures"]) for f in listed] == [
        ("127.0.0.1", 3, 0), ("127.0.0.1-2", 0, 1)]
    shown = json.loads(run(runner, "feeds", "show", "127.0.0.1", "--json"))
    assert (shown["language"], shown["countries"], shown["interval_minutes"]) == (
        "es", ["CR", "NI"], 30)
    out = run(runner, "feeds", "list")
    assert "2 feeds" in out and "detect" in out
    assert "127.0.0.1-2: http://127.0.0.1:" in out and "404 Not Found" in out
    assert "last_error: " in run(runner, "feeds", "show", "127.0.0.1-2")
    items = json.loads(run(runner, "items", "list", "--json"))
    assert {i["language"] for i in items} == {"es"}
    assert "its 3 items stay" in run(runner, "feeds", "remove", "127.0.0.1")
    assert "no feed named 'nope'" in run(runner, "feeds", "show", "nope", code=1)


def test_removing_a_feed_a_series_draws_on_says_so(runner: CliRunner,
                                                   feed_server: FeedServer) -> None:
    """The series names its feeds: without that feed its every build fails. Whoever
    removes it (to add its new address, as a 404 advises) is told how to keep the series."""
    run(runner, "feeds", "add", feed_server.serve("/es", "rss20-es.xml"), "--name", "noticias")
    run(runner, "series", "create", "boletin", "--every", "weekly on monday at 09:00",
        "--timezone", "America/Costa_Rica", "--feed", "noticias")
    out = run(runner, "feeds", "remove", "noticias")
    assert "series 'boletin' takes its items from feed 'noticias'" in out
    assert "--name noticias" in out
    assert "series" not in run(runner, "feeds", "remove", "127.0.0.1", code=1)


def test_every_feeds_command_has_help_with_an_example(runner: CliRunner) -> None:
    for command in ("add", "list", "show", "remove", "fetch"):
        out = run(runner, "feeds", command, "--help")
        assert "Example:" in out and "newsletter feeds " + command in out


def test_an_entry_a_person_deleted_does_not_come_back_with_the_next_fetch(
        sessions: sessionmaker[Session], fast: Settings, feed_server: FeedServer) -> None:
    url = feed_server.serve("/n", "rss20-es.xml")
    follow(sessions, url, "noticias")
    (first,) = fetch_now(sessions, fast, NOW)
    item = items_of(sessions, "noticias")["Upala abre un segundo albergue temporal"]
    with sessions() as session, session.begin():
        delete_item(session, item.id)
    original = (FEEDS / "rss20-es.xml").read_text()  # the entry changes upstream too
    feed_server.routes["/n"].body = original.replace("ochenta personas", "cien").encode()
    (again,) = fetch_now(sessions, fast, NOW + timedelta(hours=1))
    assert (again.status, again.new, again.updated) == ("ok", 0, 0)
    assert "Upala abre un segundo albergue temporal" not in items_of(sessions, "noticias")
    assert len(items_of(sessions, "noticias")) == first.new - 1
