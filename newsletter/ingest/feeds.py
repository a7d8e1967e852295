"""RSS 0.9x, RSS 1.0 (RDF), RSS 2.0 and Atom feeds: bytes in, items out, no database.

feedparser reads every dialect (and the broken ones it can); what an entry says is then
reduced to the item model: plain-text paragraphs (nh3 takes every tag off, and script
and style with their content; a paragraph ends at p, br, li, div and their like), a
title of one line, the dateline place if the first paragraph opens with one, a date, an
http(s) address. Anything an entry cannot carry is dropped from it, never refused: one
odd entry must not stop a feed. What identifies an entry is its guid (else its link,
else its title and date), so a re-fetch finds the same items.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import feedparser  # type: ignore[import-untyped]
import nh3

from newsletter import geo
from newsletter.errors import NewsletterError
from newsletter.i18n import SOURCE_LANGUAGE
from newsletter.ingest.language import detect_language
from newsletter.ingest.model import LANGUAGE_CODE, MAX_URL_LENGTH, UNUSABLE, ParsedItem
from newsletter.ingest.text import MAX_TITLE_LENGTH, split_dateline


class FeedError(NewsletterError):
    """A feed that cannot be fetched or read; the message says why and what to do."""


# Where a paragraph ends. nh3 keeps these tags (without attributes) and drops all others,
# keeping their text; the text of these is dropped with the tag.
_BREAKS = frozenset({"p", "br", "li", "div", "h1", "h2", "h3", "h4", "h5", "h6",
                     "blockquote", "tr", "pre", "hr", "dd", "dt", "section", "article",
                     "figcaption", "header", "footer", "ul", "ol", "table"})
_DROPPED = frozenset({"script", "style", "template", "iframe", "noscript", "noembed",
                      "noframes", "object", "embed", "svg", "math", "title", "head",
                      "select", "textarea", "button", "canvas", "audio", "video"})
_BREAK_TAG = re.compile(r"</?[a-z0-9]+\s*/?>")
_TAG_LIKE = re.compile(r"<[A-Za-z/!?]")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S")
_HTTP_URL = re.compile(r"https?://[^\s<>\"]+", re.IGNORECASE)
MAX_PASSES = 3  # an entry escaped twice over ("&amp;lt;p&amp;gt;") is still reduced


def reduce_html(fragment: str) -> list[str]:
    """Paragraphs of plain text from an HTML fragment: no tag, script or style survives.

    nh3 parses as a browser does (so "<scr<script>ipt>" and unclosed comments are no way
    around it); what it leaves is only break tags and escaped text, which a regular
    expression can then split safely. Text that still holds markup after unescaping (an
    entry escaped twice) goes round again.
    """
    paragraphs = [fragment]
    for _ in range(MAX_PASSES):
        paragraphs = [p for chunk in paragraphs for p in _reduce_once(chunk)]
        if not any(_TAG_LIKE.search(p) for p in paragraphs):
            break
    else:
        # still markup-shaped after three rounds: a feed playing games; keep the words
        paragraphs = [_TAG_LIKE.sub(" ", p) for p in paragraphs]
        paragraphs = [" ".join(p.split()) for p in paragraphs if p.strip()]
    return paragraphs


def _reduce_once(fragment: str) -> list[str]:
    cleaned = nh3.clean(fragment, tags=set(_BREAKS), attributes={},
                        clean_content_tags=set(_DROPPED), strip_comments=True)
    pieces = _BREAK_TAG.split(cleaned)
    text = (" ".join(html.unescape(piece).split()) for piece in pieces)
    return [UNUSABLE.sub("", t).strip() for t in text if UNUSABLE.sub("", t).strip()]


def one_line(fragment: str, limit: int) -> str:
    """An HTML or text fragment as one line of at most `limit` characters (cut at a word,
    with an ellipsis)."""
    line = " ".join(" ".join(reduce_html(fragment)).split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    if " " in cut[limit // 2:]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:.") + "…"


@dataclass(frozen=True)
class FeedEntry:
    """One entry, reduced to what an item holds. `identity` is what finds it again."""

    identity: str  # "guid:…", "link:…" or "title:…\n<date>"
    title: str
    paragraphs: tuple[str, ...]
    published: date | None  # None: the entry has no date (the fetch date is used)
    place: str | None = None
    url: str | None = None
    language: str | None = None  # what the feed or entry declares (often wrong)
    revised: bool = False  # `published` is the day it was last updated, not published

    def key(self, feed_url: str) -> str:
        """The item's source key: the guid or link alone when it is an absolute URI (the
        same article in two feeds is one item), else together with the feed's address."""
        kind, _, value = self.identity.partition(":")
        if kind in ("guid", "link") and _URI.match(value):
            raw = f"feed\n{value}"
        else:
            raw = f"feed\n{feed_url}\n{self.identity}"
        return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    version: str  # feedparser's: rss090, rss10, rss20, atom10, ...
    entries: tuple[FeedEntry, ...]
    skipped: int = 0  # entries with neither a title nor any text


def parse_feed(raw: bytes, source: str, *, content_type: str | None = None) -> ParsedFeed:
    """Read a feed's bytes (`source`: its address, which relative links resolve against).

    Raises FeedError, and nothing else, for bytes that are not a feed.
    """
    headers = {"content-location": source}
    if content_type:
        headers["content-type"] = content_type
    try:
        parsed = feedparser.parse(bytes(raw), response_headers=headers,
                                  sanitize_html=True, resolve_relative_uris=True)
        version = str(parsed.get("version") or "")
        entries = list(parsed.get("entries") or [])
        channel = parsed.get("feed") or {}
        if not version and not entries:
            raise FeedError(_not_a_feed(raw, source, content_type))
        declared = _language(channel.get("language"))
        out: list[FeedEntry] = []
        skipped = 0
        for entry in entries:
            reduced = _entry(entry, declared)
            if reduced is None:
                skipped += 1
            else:
                out.append(reduced)
        title = one_line(str(channel.get("title") or ""), MAX_TITLE_LENGTH)
        return ParsedFeed(title=title, version=version, entries=tuple(out), skipped=skipped)
    except FeedError:
        raise
    except Exception as exc:  # a third-party parser of hostile bytes: anything may come
        raise FeedError(f"{source}: cannot be read as a feed ({type(exc).__name__}: "
                        f"{str(exc)[:200]}); check the address in a browser") from None


def _not_a_feed(raw: bytes, source: str, content_type: str | None) -> str:
    head = raw[:2048].lstrip().lower()
    if not head:
        return f"{source}: the server sent an empty answer, not a feed; it is tried again later"
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return (f"{source} is a web page, not an RSS or Atom feed: open it in a browser and "
                "find the feed's own address (often ending in /feed, /rss or .xml), then "
                "`newsletter feeds edit NAME --url NEW-ADDRESS`")
    what = f" (the server calls it {content_type})" if content_type else ""
    return (f"{source}: what the server sent is not an RSS or Atom feed{what}; check the "
            "address")


def _language(value: object) -> str | None:
    """A declared language ("es-CR", "en_US") as the item model's primary code, or None."""
    if not isinstance(value, str):
        return None
    code = value.strip().lower().replace("_", "-").split("-")[0]
    return code if LANGUAGE_CODE.fullmatch(code) else None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _entry(entry: Mapping[str, Any], declared: str | None) -> FeedEntry | None:
    body = _body(entry)
    paragraphs = reduce_html(body) if body else []
    title = one_line(_text(entry.get("title")), MAX_TITLE_LENGTH)
    if not title and not paragraphs:
        return None
    if not title:  # a note without a title (microblogs): its opening words stand in
        title = one_line(paragraphs[0], 80)
    place = None
    if paragraphs:
        place, paragraphs[0] = split_dateline(paragraphs[0])
    published, revised = _published(entry)
    link = _url(_text(entry.get("link")))
    guid = _text(entry.get("id")).strip()
    if guid and not UNUSABLE.search(guid):
        identity = f"guid:{guid}"
    elif link:
        identity = f"link:{link}"
    else:
        identity = f"title:{title.casefold()}\n{published.isoformat() if published else ''}"
    detail = entry.get("summary_detail") or entry.get("title_detail") or {}
    language = _language(detail.get("language") if isinstance(detail, Mapping) else None)
    return FeedEntry(identity=identity, title=title, paragraphs=tuple(paragraphs),
                     published=published, place=place, url=link,
                     language=language or declared, revised=revised)


def _body(entry: Mapping[str, Any]) -> str:
    """The fullest text an entry has: its content (Atom content, content:encoded), else its
    summary (RSS description)."""
    for content in entry.get("content") or []:
        if isinstance(content, Mapping) and _text(content.get("value")).strip():
            return _text(content.get("value"))
    return _text(entry.get("summary"))


def _url(value: str) -> str | None:
    value = value.strip()
    if (len(value) > MAX_URL_LENGTH or not _HTTP_URL.fullmatch(value)
            or UNUSABLE.search(value)):
        return None
    return value


def _published(entry: Mapping[str, Any]) -> tuple[date | None, bool]:
    """The day the entry was published, as its own time zone counts days ("20:00 -0600"
    is still that day, not the next in UTC); None when it has no date feedparser reads.
    And whether that is only the day it was last updated (an Atom entry without
    <published>), which moves whenever its author touches it."""
    for name in ("published", "created", "updated"):
        parsed = entry.get(f"{name}_parsed")
        if not parsed:
            continue
        written = _text(entry.get(name)).strip()
        local = _local_date(written)
        if local is not None:
            return local, name == "updated"
        try:
            return date(parsed.tm_year, parsed.tm_mon, parsed.tm_mday), name == "updated"
        except (AttributeError, ValueError, TypeError):
            continue
    return None, False


def _local_date(written: str) -> date | None:
    try:
        return parsedate_to_datetime(written).date()
    except (TypeError, ValueError, IndexError, OverflowError):
        pass
    try:
        return datetime.fromisoformat(written.replace("Z", "+00:00")).date()
    except ValueError:
        return None


@dataclass(frozen=True)
class FeedItem(ParsedItem):
    """A ParsedItem found again by its feed identity rather than by date and title, so a
    corrected title or date in the feed updates the same item."""

    key: str = field(default="")

    @property
    def source_key(self) -> str:
        return self.key

    @property
    def fingerprint(self) -> str:
        # Never matches another item: an entry's identity is its guid. (The files' date and
        # first paragraph would merge two short entries of one day, "Read more ...".)
        return hashlib.sha256(f"feed-item\n{self.key}".encode()).hexdigest()[:32]


def to_item(entry: FeedEntry, key: str, published: date, *, language: str | None,
            among: Sequence[str] = (), countries: Sequence[str] = ()) -> FeedItem:
    """The item an entry becomes.

    Its language: `language` (the feed's --language) if given, else detected among the
    editions as for files; when the detector is not sure, the language the feed declares
    if it is one of them, else the first edition. (A declared language alone is not
    trusted: many Spanish blogs declare "en-US", their software's default.) Its
    countries: the feed's first, then those its dateline and words name.
    """
    detected = False
    if language is None:
        found = detect_language(" ".join([entry.title, *entry.paragraphs]), among or None)
        detected = found is not None
        fallback = entry.language if entry.language in among else None
        language = found or fallback or next(iter(among), SOURCE_LANGUAGE)
    named = geo.detect_countries(entry.place, " ".join([entry.title, *entry.paragraphs]))
    codes = tuple(dict.fromkeys([*countries, *named]))
    return FeedItem(published=published, title=entry.title, paragraphs=entry.paragraphs,
                    place=entry.place, language=language, url=entry.url, countries=codes,
                    detected=detected, key=key)
