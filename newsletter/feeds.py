"""Feeds in the database: following, listing, removing, and fetching their entries as items.

The network exchange happens outside any transaction; storing a feed's entries and its
new state (etag, errors, next fetch) is one transaction per feed, so one feed's failure
never touches another's. Items are stored through `newsletter.items.store_items`, the path
file imports take: a re-fetch adds nothing, and a changed entry updates only the fields
nobody edited. Every query about feeds is in this module.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from newsletter import geo
from newsletter.db import transaction
from newsletter.errors import NewsletterError
from newsletter.ingest.feeds import FeedEntry, FeedError, FeedItem, parse_feed, to_item
from newsletter.ingest.fetch import check_host, check_url, http_get
from newsletter.ingest.model import LANGUAGE_CODE, MAX_URL_LENGTH, UNUSABLE
from newsletter.items import store_items
from newsletter.models import Feed, Item, Series
from newsletter.settings import Settings

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=24)
# How long a claim holds a feed: past any fetch (a deadline of seconds, then one store),
# short enough that a scheduler killed half-way leaves the feed to the next one soon.
# A fetch that ends, well or not, sets the feed's real next time.
CLAIM_LEASE = timedelta(minutes=15)
MAX_INTERVAL_MINUTES = 7 * 24 * 60
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

Status = Literal["ok", "not-modified", "failed"]


class FeedSetupError(NewsletterError):
    """A feed that cannot be added as asked, or is not there."""


@dataclass(frozen=True)
class FetchResult:
    """What one fetch of one feed did."""

    feed: str
    status: Status
    new: int = 0  # items added
    updated: int = 0  # items whose entry changed (fields nobody edited)
    kept: int = 0  # items whose entry changed a field a person had edited: the edit stayed
    entries: int = 0  # entries read
    skipped: int = 0  # entries with neither title nor text
    error: str = ""
    next_fetch_at: datetime | None = None

    def as_dict(self) -> dict[str, object]:
        return {"feed": self.feed, "status": self.status, "new": self.new,
                "updated": self.updated, "kept": self.kept, "entries": self.entries,
                "skipped": self.skipped, "error": self.error,
                "next_fetch_at": self.next_fetch_at}


# -- following feeds ---------------------------------------------------------------------


def add_feed(session: Session, url: str, *, name: str | None = None,
             language: str | None = None, countries: Sequence[str] = (),
             interval_minutes: int = 60, allow_private: bool = False) -> Feed:
    """Follow a feed (nothing is fetched yet: it is due at once).

    An address whose host resolves to a loopback, private or link-local address is
    refused unless `allow_private` (NEWSLETTER_FEED_ALLOW_PRIVATE); every fetch checks
    again, each redirect too.

    `name` defaults to the address's host ("news.example.org", then "-2" ...).
    """
    url = check_url(url)
    check_host(url, allow_private=allow_private)
    if len(url) > MAX_URL_LENGTH or any(c.isspace() for c in url):
        raise FeedSetupError(f"the address must be one line of at most {MAX_URL_LENGTH} "
                             "characters, without spaces")
    same = session.scalar(select(Feed).where(Feed.url == url))
    if same is not None:
        raise FeedSetupError(f"{url} is already followed, as feed {same.name!r}")
    if name is None:
        name = _free_name(session, _name_from(url))
    name = name.strip().lower()
    if not NAME.fullmatch(name):
        raise FeedSetupError(f"--name {name!r}: use 1 to 64 lowercase letters, digits, '.', "
                             "'-' or '_', starting with a letter or digit (e.g. noticias-cr)")
    if session.scalar(select(Feed.id).where(Feed.name == name)) is not None:
        raise FeedSetupError(f"there is already a feed named {name!r}: choose another --name")
    if language is not None:
        language = language.strip().lower()
        if not LANGUAGE_CODE.fullmatch(language):
            raise FeedSetupError(f"--language {language!r} is not a language code: use one "
                                 "such as 'es' or 'en' (leave it out to detect each entry's)")
    if not 1 <= interval_minutes <= MAX_INTERVAL_MINUTES:
        raise FeedSetupError(f"--interval {interval_minutes}: give minutes between 1 and "
                             f"{MAX_INTERVAL_MINUTES} (a week)")
    feed = Feed(name=name, url=url, language=language, countries=",".join(
        country_codes(countries)), interval_minutes=interval_minutes)
    session.add(feed)
    try:
        session.flush()
    except IntegrityError as exc:  # added by someone else since the check above
        raise FeedSetupError(f"a feed named {name!r} was just added by someone else: choose "
                             "another --name, or look at it with `newsletter feeds show "
                             f"{name}`") from exc
    return feed


@dataclass
class FeedEdit:
    """What `edit_feed` changed: for the person who asked, and for `--json`."""

    feed: str
    changes: list[str] = field(default_factory=list)
    reset: bool = False  # a new address: validators and backoff forgotten, due now

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def lines(self) -> list[str]:
        if not self.changes:
            return [f"feed {self.feed}: nothing changed"]
        out = [f"feed {self.feed}: {change}" for change in self.changes]
        if self.reset:
            out.append("  a new address: its ETag/Last-Modified and its failures are "
                       "forgotten; it is fetched in full when the scheduler next runs")
        return out

    def as_dict(self) -> dict[str, object]:
        return {"feed": self.feed, "changed": self.changed, "changes": list(self.changes),
                "reset": self.reset}


def edit_feed(session: Session, name: str, *, url: str | None = None,
              language: str | None = None, countries: Sequence[str] | None = None,
              interval_minutes: int | None = None, allow_private: bool = False,
              now: datetime) -> FeedEdit:
    """Change a feed's address, language ("": detect each entry's), countries or interval,
    checked as `add_feed` checks them; None leaves a part as it is.

    A new address is a new conversation with a server: its conditional-GET validators
    (ETag, Last-Modified), its failures and its backoff are forgotten and it is due now.
    A new interval moves the next fetch of a feed that is not failing (last fetch +
    the new interval); a failing one keeps its backoff."""
    feed = get_feed(session, name)
    changes: list[str] = []
    new_url = feed.url
    if url is not None:
        new_url = check_url(url)
        check_host(new_url, allow_private=allow_private)
        if len(new_url) > MAX_URL_LENGTH or any(c.isspace() for c in new_url):
            raise FeedSetupError(f"the address must be one line of at most {MAX_URL_LENGTH} "
                                 "characters, without spaces")
        same = session.scalar(select(Feed).where(Feed.url == new_url, Feed.id != feed.id))
        if same is not None:
            raise FeedSetupError(f"{new_url} is already followed, as feed {same.name!r}")
        if new_url != feed.url:
            changes.append(f"address changed: {feed.url} -> {new_url}")
    new_language = feed.language
    if language is not None:
        new_language = language.strip().lower() or None
        if new_language is not None and not LANGUAGE_CODE.fullmatch(new_language):
            raise FeedSetupError(f"--language {new_language!r} is not a language code: use "
                                 "one such as 'es' or 'en' (or an empty one to detect each "
                                 "entry's)")
        if new_language != feed.language:
            changes.append(f"language changed: {feed.language or 'detected'} -> "
                           f"{new_language or 'detected'}")
    new_countries = feed.countries
    if countries is not None:
        new_countries = ",".join(country_codes(countries))
        if new_countries != feed.countries:
            changes.append(f"countries changed: {feed.countries or '(none)'} -> "
                           f"{new_countries or '(none)'}")
    new_interval = feed.interval_minutes
    if interval_minutes is not None:
        if not 1 <= interval_minutes <= MAX_INTERVAL_MINUTES:
            raise FeedSetupError(f"--interval {interval_minutes}: give minutes between 1 and "
                                 f"{MAX_INTERVAL_MINUTES} (a week)")
        new_interval = interval_minutes
        if new_interval != feed.interval_minutes:
            changes.append(f"interval changed: {feed.interval_minutes} -> {new_interval} "
                           "minutes")
    edit = FeedEdit(feed.name, changes)
    if not changes:
        return edit
    feed.language, feed.countries = new_language, new_countries
    if new_interval != feed.interval_minutes:
        feed.interval_minutes = new_interval
        if not feed.failures and feed.last_fetched_at is not None:
            feed.next_fetch_at = max(now, feed.last_fetched_at
                                     + timedelta(minutes=new_interval))
    if new_url != feed.url:
        feed.url = new_url
        feed.etag = feed.last_modified = None
        feed.failures, feed.last_error, feed.next_fetch_at = 0, "", None
        edit.reset = True
    session.flush()
    return edit


def country_codes(values: Sequence[str]) -> list[str]:
    """ISO codes for names or codes ("CR", "Nicaragua"), each once, in order."""
    codes: list[str] = []
    for value in (v for raw in values for v in raw.split(",") if v.strip()):
        code = geo.country_code(value)
        if code is None:
            raise FeedSetupError(f"--country {value.strip()!r} is not a known country: use "
                                 "ISO 3166-1 codes such as CR,NI")
        if code not in codes:
            codes.append(code)
    return codes


def _name_from(url: str) -> str:
    host = (re.sub(r"^www\.", "", url.split("//", 1)[-1].split("/", 1)[0].split("@")[-1])
            .split(":")[0].lower())
    name = re.sub(r"[^a-z0-9._-]+", "-", host).strip("-._")[:60]
    return name or "feed"


def _free_name(session: Session, base: str) -> str:
    taken = set(session.scalars(select(Feed.name).where(Feed.name.startswith(base,
                                                                              autoescape=True))))
    if base not in taken:
        return base
    number = 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


def list_feeds(session: Session) -> list[Feed]:
    return list(session.scalars(select(Feed).order_by(Feed.name)))


def get_feed(session: Session, name: str) -> Feed:
    feed = session.scalar(select(Feed).where(Feed.name == name.strip().lower()))
    if feed is None:
        raise FeedSetupError(f"no feed named {name!r}: `newsletter feeds list` shows them")
    return feed


def item_counts(session: Session) -> dict[int, int]:
    """How many items each feed brought (by feed id)."""
    rows = session.execute(select(Item.feed_id, func.count()).where(Item.feed_id.is_not(None))
                           .group_by(Item.feed_id))
    return {feed_id: count for feed_id, count in rows if feed_id is not None}


def recent_items(session: Session, feed: Feed, limit: int = 20) -> list[Item]:
    """The feed's newest items (by date, then newest stored first)."""
    return list(session.scalars(select(Item).where(Item.feed_id == feed.id)
                                .order_by(Item.published.desc(), Item.id.desc()).limit(limit)))


def series_using(session: Session, name: str) -> list[str]:
    """The slugs of the series that take their items from feed `name` (they name it)."""
    rows = session.execute(select(Series.slug, Series.feeds).order_by(Series.slug))
    return [slug for slug, feeds in rows if name in (feeds or [])]


def remove_feed(session: Session, name: str) -> tuple[Feed, int]:
    """Stop following a feed; its items stay (no longer tied to it). Returns the feed and
    how many items it had brought."""
    feed = get_feed(session, name)
    count = item_counts(session).get(feed.id, 0)
    session.execute(update(Item).where(Item.feed_id == feed.id).values(feed_id=None))
    session.delete(feed)
    session.flush()
    return feed, count


# -- fetching ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """What a fetch needs to know about a feed, read before the network exchange."""

    id: int
    name: str
    url: str
    language: str | None
    countries: tuple[str, ...]
    interval: timedelta
    etag: str | None
    last_modified: str | None


def fetch_due(sessions: sessionmaker[Session], settings: Settings,
              now: datetime) -> list[FetchResult]:
    """Fetch every feed that is due (`next_fetch_at` unset or <= now), each once even
    when several schedulers run: a feed is claimed by one conditional UPDATE that moves its
    next fetch on (by CLAIM_LEASE at most, in case this process dies half-way), and only
    the process whose UPDATE changed the row fetches it.

    Never raises because of one feed: its failure is recorded on it and returned.
    """
    with transaction(sessions) as session:
        due = session.execute(
            select(Feed.id, Feed.interval_minutes)
            .where(or_(Feed.next_fetch_at.is_(None), Feed.next_fetch_at <= now))
            .order_by(Feed.next_fetch_at.asc().nulls_first(), Feed.id)).all()
    results = []
    for feed_id, interval in due:
        target = _claim(sessions, feed_id, interval, now)
        if target is not None:
            results.append(_fetch(sessions, settings, target, now))
    return results


def fetch_now(sessions: sessionmaker[Session], settings: Settings, now: datetime,
              names: Sequence[str] = ()) -> list[FetchResult]:
    """Fetch the named feeds (none named: every feed) now, however soon they are due."""
    with transaction(sessions) as session:
        feeds = [get_feed(session, n) for n in names] if names else list_feeds(session)
        targets = [_target(feed) for feed in feeds]
    return [_fetch(sessions, settings, target, now) for target in targets]


def _claim(sessions: sessionmaker[Session], feed_id: int, interval: int,
           now: datetime) -> _Target | None:
    """Take a due feed for this process, or None when another process took it first (or
    the database would not say): one conditional UPDATE, committed at once.

    The UPDATE is the transaction's first statement, so SQLite takes its write lock there
    (waiting its busy timeout) instead of failing to upgrade a read made earlier.
    """
    try:
        with transaction(sessions) as session:
            claimed = session.execute(
                update(Feed)
                .where(Feed.id == feed_id,
                       or_(Feed.next_fetch_at.is_(None), Feed.next_fetch_at <= now))
                .values(next_fetch_at=now + min(timedelta(minutes=interval), CLAIM_LEASE))
                .execution_options(synchronize_session=False))
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            feed = session.get(Feed, feed_id)
            return None if feed is None else _target(feed)
    except Exception:  # still due: the next round tries again
        log.exception("claiming feed %s failed", feed_id)
        return None


def _target(feed: Feed) -> _Target:
    return _Target(feed.id, feed.name, feed.url, feed.language,
                   tuple(c for c in feed.countries.split(",") if c),
                   timedelta(minutes=feed.interval_minutes), feed.etag, feed.last_modified)


def _fetch(sessions: sessionmaker[Session], settings: Settings, target: _Target,
           now: datetime) -> FetchResult:
    try:
        fetched = http_get(target.url, timeout=settings.feed_timeout_seconds,
                           max_bytes=settings.feed_max_bytes, etag=target.etag,
                           last_modified=target.last_modified,
                           user_agent=f"newsletter (+{settings.public_base_url})",
                           allow_private=settings.feed_allow_private)
        if fetched.not_modified:
            with transaction(sessions) as session:
                return _succeeded(session, target, now, "not-modified", fetched.etag,
                                  fetched.last_modified)
        parsed = parse_feed(fetched.body, fetched.url, content_type=fetched.content_type)
        for attempt in (1, 2):
            try:
                with transaction(sessions) as session:
                    items = _items(session, target, parsed.entries, settings.languages,
                                   now.date())
                    report = store_items(session, items)
                    session.execute(
                        update(Item).where(Item.source_key.in_([i.key for i in items]),
                                           Item.feed_id.is_(None))
                        .values(feed_id=target.id)
                        .execution_options(synchronize_session=False))
                    result = _succeeded(session, target, now, "ok", fetched.etag,
                                        fetched.last_modified)
                break
            except IntegrityError:
                # Another process stored some of these entries after this one looked (the
                # scheduler and `feeds fetch` at once, or two feeds with the same
                # articles): look again, and they are found.
                if attempt == 2:
                    raise
        return FetchResult(target.name, "ok", report.added, report.updated, report.kept,
                           len(parsed.entries), parsed.skipped,
                           next_fetch_at=result.next_fetch_at)
    except FeedError as exc:
        return _failed(sessions, target, now, str(exc))
    except Exception as exc:  # one feed must never stop the others
        log.exception("fetching feed %s failed", target.name)
        problem = f"{type(exc).__name__}: {str(exc)[:300]}"
        return _failed(sessions, target, now,
                       f"could not store its entries ({problem}); it is tried again later")


def _items(session: Session, target: _Target, entries: Sequence[FeedEntry],
           among: Sequence[str], today: date) -> list[FeedItem]:
    """The feed's entries as items; an entry without a date, or dated only by its last
    update, keeps the day it was first seen (else an edit upstream would move it into a
    later period, and its series would send it again).

    An entry whose item came from another feed (the same article, the same guid) is left
    to that feed: two feeds saying different things must not rewrite it by turns.
    """
    keyed = {entry.key(target.url): entry for entry in entries}
    seen: dict[str, date] = {}
    for chunk in _chunks(list(keyed), 500):
        rows = session.execute(select(Item.source_key, Item.published, Item.feed_id)
                               .where(Item.source_key.in_(chunk)))
        for key, published, feed_id in rows:
            if feed_id is not None and feed_id != target.id:
                del keyed[key]
            else:
                seen[key] = published
    return [to_item(entry, key, _day(entry, seen.get(key), today),
                    language=target.language, among=among, countries=target.countries)
            for key, entry in keyed.items()]


def _day(entry: FeedEntry, stored: date | None, today: date) -> date:
    """The item's date: the entry's, unless it only says when it was last updated and the
    item is already stored; the fetch's day for an entry with none."""
    if entry.published is not None and not (entry.revised and stored is not None):
        return entry.published
    return stored or entry.published or today


def _chunks(values: list[str], size: int) -> list[list[str]]:
    return [values[i:i + size] for i in range(0, len(values), size)]


def _succeeded(session: Session, target: _Target, now: datetime, status: Status,
               etag: str | None, last_modified: str | None) -> FetchResult:
    next_at = now + target.interval
    values: dict[str, object] = {"last_fetched_at": now, "last_ok_at": now,
                                 "next_fetch_at": next_at, "last_error": "", "failures": 0}
    if status == "ok":  # what the server says now, even nothing (it stopped validating)
        values["etag"], values["last_modified"] = etag or None, last_modified or None
    else:  # a 304 may repeat the validators or leave them out: keep the old ones then
        values["etag"] = etag or target.etag
        values["last_modified"] = last_modified or target.last_modified
    for column, limit in (("etag", 500), ("last_modified", 100)):
        value = values.get(column)
        if isinstance(value, str) and (len(value) > limit or UNUSABLE.search(value)):
            # a validator that long, or with a control character (PostgreSQL refuses NUL),
            # is no use: fetch in full instead
            values[column] = None
    # a fetch of an address since changed (`edit_feed`) leaves the feed's state alone
    session.execute(update(Feed).where(Feed.id == target.id, Feed.url == target.url)
                    .values(**values).execution_options(synchronize_session=False))
    return FetchResult(target.name, status, next_fetch_at=next_at)


def _failed(sessions: sessionmaker[Session], target: _Target, now: datetime,
            error: str) -> FetchResult:
    """Record the failure; the next try waits interval * 2**failures (24 h at most)."""
    # what a server said is in it: no control character (PostgreSQL refuses NUL in text,
    # and an escape sequence would reach a terminal)
    error = UNUSABLE.sub(" ", error)[:1000]
    log.warning("feed %s: %s", target.name, error)
    try:
        with transaction(sessions) as session:
            failures = 1 + (session.scalar(select(Feed.failures)
                                           .where(Feed.id == target.id)) or 0)
            wait = min(target.interval * 2 ** min(failures, 20), MAX_BACKOFF)
            next_at = now + wait
            session.execute(update(Feed).where(Feed.id == target.id,
                                               Feed.url == target.url).values(
                last_fetched_at=now, last_error=error, failures=failures,
                next_fetch_at=next_at).execution_options(synchronize_session=False))
    except Exception:  # the database itself is failing: report, go on
        log.exception("recording the failure of feed %s failed", target.name)
        next_at = None
    return FetchResult(target.name, "failed", error=error, next_fetch_at=next_at)
