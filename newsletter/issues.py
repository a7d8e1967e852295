"""Issues: a window of items, sent as one newsletter. Life cycle draft -> sending -> sent."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import date

from sqlalchemy import ColumnElement, and_, exists, false, func, or_, select, true
from sqlalchemy.orm import Session

from newsletter.errors import NewsletterError
from newsletter.ingest.model import UNUSABLE
from newsletter.items import list_items
from newsletter.models import Issue, IssueItem, IssueTarget
from newsletter.render import FOCUS_POLICIES, IssueContent, ItemText, ItemView
from subscribers.filters import list_ids, on_list, segment_condition
from subscribers.lists import get_list
from subscribers.models import MailingList, Segment, Subscriber, Suppression
from subscribers.segments import get_segment
from subscribers.validate import InvalidValue, clean_header_text

SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_TITLE = 200
MAX_INTRO = 2000
_LINE_SEPARATORS = re.compile("[\u2028\u2029]")
_LANGUAGE_PREFIX = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")


class IssueError(NewsletterError):
    """An issue cannot be created or changed as asked."""


class IssueNotFound(IssueError):
    def __init__(self, slug: str) -> None:
        super().__init__(
            f"no issue called {slug!r}: `newsletter issues list` shows the issues there are"
        )


def create_issue(
    session: Session,
    slug: str,
    date_from: date,
    date_to: date,
    title: str = "",
    *,
    titles: Mapping[str, str] | None = None,
    intros: Mapping[str, str] | None = None,
    languages: Sequence[str] = (),
    lists: Sequence[str] = (),
    segments: Sequence[str] = (),
    focus: str = "first",
) -> Issue:
    """Collect the items published in [date_from, date_to], newest first, into a draft.

    `title` is every language's subject title ("": the default subject line); `titles`
    gives some languages their own, and `intros` an introduction per language ("": every
    language). Both name only editions in `languages`. With `lists` or `segments`, the
    issue goes to the people in any of them; without, to every active subscriber.
    """
    if not SLUG.match(slug):
        raise IssueError(
            f"{slug!r} is not a usable issue name: use lower-case letters, digits, '-', '_' "
            "or '.', starting with a letter or digit (e.g. 2019-10)"
        )
    if focus not in FOCUS_POLICIES:
        raise IssueError(f"country focus {focus!r}: use one of {', '.join(FOCUS_POLICIES)}")
    if date_to < date_from:
        raise IssueError(f"the window ends ({date_to}) before it starts ({date_from})")
    clean_title, clean_titles, clean_intros = clean_texts(title, titles, intros, languages)
    if session.scalar(select(Issue.id).where(Issue.slug == slug)) is not None:
        raise IssueError(f"an issue called {slug!r} exists already: pick another name")
    items = list_items(session, since=date_from, until=date_to)
    if not items:
        raise IssueError(
            f"no items were published between {date_from} and {date_to}: import items "
            "first (`newsletter items import FILE`) or widen the window"
        )
    issue = Issue(slug=slug, title=clean_title, date_from=date_from, date_to=date_to,
                  focus=focus, titles={k: v for k, v in clean_titles.items() if v},
                  intros={k: v for k, v in clean_intros.items() if v})
    issue.entries = [IssueItem(item=item, position=n) for n, item in enumerate(items)]
    session.add(issue)
    session.flush()
    try:
        for list_name in lists:
            session.add(IssueTarget(issue_id=issue.id, list_id=get_list(session, list_name).id))
        for segment_name in segments:
            segment = get_segment(session, segment_name)
            session.add(IssueTarget(issue_id=issue.id, segment_id=segment.id))
    except NewsletterError as exc:
        raise IssueError(str(exc)) from exc
    session.flush()
    return issue


def clean_texts(
    title: str,
    titles: Mapping[str, str] | None,
    intros: Mapping[str, str] | None,
    languages: Sequence[str],
) -> tuple[str, dict[str, str], dict[str, str]]:
    """The subject title for every language, the per-language titles and the intros
    ("" key: every language), checked and cleaned; an empty value stays "" (the caller
    drops it). Used by `create_issue` and by `issue_edits.set_texts`."""
    try:
        clean_title = clean_header_text(title, "title", MAX_TITLE)
        clean_titles = {
            edition_named(lang, languages, "title"): clean_header_text(text, f"title ({lang})",
                                                                  MAX_TITLE)
            for lang, text in (titles or {}).items()
        }
        clean_intros = {
            "" if not lang else edition_named(lang, languages, "intro"): clean_intro(text, lang)
            for lang, text in (intros or {}).items()
        }
    except InvalidValue as exc:
        raise IssueError(f"the issue {exc}") from exc
    return clean_title, clean_titles, clean_intros


def edition_named(language: str, languages: Sequence[str], what: str) -> str:
    """The edition a per-language title or intro is for, spelled as configured."""
    for edition in languages:
        if edition.lower() == language.strip().replace("_", "-").lower():
            return edition
    raise IssueError(
        f"--{what} {language}=...: there is no {language!r} edition, so nobody would read "
        f"it; the editions are {', '.join(languages)} (NEWSLETTER_LANGUAGES)"
    )


def clean_intro(raw: str, language: str = "") -> str:
    """An introduction: text (escaped when shown), paragraphs separated by blank lines."""
    value = unicodedata.normalize("NFC", raw).replace("\r\n", "\n").replace("\r", "\n")
    value = _LINE_SEPARATORS.sub(" ", UNUSABLE.sub(" ", value)).strip()
    if len(value) > MAX_INTRO:
        field = f"introduction ({language})" if language else "introduction"
        raise InvalidValue(field, raw, f"is longer than {MAX_INTRO} characters")
    return value


def split_language_value(raw: str, languages: Sequence[str]) -> tuple[str, str]:
    """`es=Boletín` -> ("es", "Boletín"); a value without a language prefix -> ("", raw).

    A prefix counts when it looks like a language code (one that is no edition is refused
    later), so a title for every language that starts like `Hi=` is written `en=...`."""
    head, sep, text = raw.partition("=")
    if sep and (head.strip().lower() in {lang.lower() for lang in languages}
                or _LANGUAGE_PREFIX.match(head.strip())):
        return head.strip(), text
    return "", raw


def targets_of(session: Session, issue: Issue) -> tuple[list[str], list[str]]:
    """The names of the lists and segments an issue goes to (both empty: everyone)."""
    lists = session.scalars(
        select(MailingList.name).join(IssueTarget, IssueTarget.list_id == MailingList.id)
        .where(IssueTarget.issue_id == issue.id).order_by(MailingList.name)
    )
    segments = session.scalars(
        select(Segment.name).join(IssueTarget, IssueTarget.segment_id == Segment.id)
        .where(IssueTarget.issue_id == issue.id).order_by(Segment.name)
    )
    return list(lists), list(segments)


def deleted_targets(session: Session, issue: Issue) -> int:
    """How many of the issue's lists and segments were deleted after it was created."""
    return session.scalar(
        select(func.count()).select_from(IssueTarget).where(
            IssueTarget.issue_id == issue.id,
            IssueTarget.list_id.is_(None), IssueTarget.segment_id.is_(None))
    ) or 0


def audience_of(session: Session, issue: Issue) -> ColumnElement[bool]:
    """Who may receive the issue: active, not suppressed, and in one of its targets."""
    lists, segments = targets_of(session, issue)
    suppressed = exists(
        select(Suppression.email_hash).where(Suppression.email_hash == Subscriber.email_hash)
    )
    parts: list[ColumnElement[bool]] = []
    if lists:
        parts.append(on_list(list_ids(session, lists), confirmed_only=True))
    parts += [segment_condition(session, name) for name in segments]
    if deleted_targets(session, issue):
        parts.append(false())  # a deleted list or segment reaches nobody, never everyone
    targeted = or_(*parts) if parts else true()
    return and_(Subscriber.status == "active", ~suppressed, targeted)


def get_issue(session: Session, slug: str) -> Issue:
    issue = session.scalar(select(Issue).where(Issue.slug == slug))
    if issue is None:
        raise IssueNotFound(slug)
    return issue


def content_of(issue: Issue) -> IssueContent:
    """What the renderer needs, detached from the database."""
    return IssueContent(
        title=issue.title,
        date_from=issue.date_from,
        date_to=issue.date_to,
        items=[
            ItemView(
                published=e.item.published,
                title=e.item.title,
                place=e.item.place,
                paragraphs=e.item.paragraphs,
                countries=e.item.country_codes,
                language=e.item.language,
                url=e.item.url,
                id=e.item.id,
                translations={
                    lang: ItemText(t.title, t.place, t.paragraphs)
                    for lang, t in e.item.translations.items()
                },
            )
            for e in issue.entries
        ],
        focus=issue.focus,
        titles=dict(issue.titles or {}),
        intros=dict(issue.intros or {}),
    )


def countries_of(issue: Issue) -> set[str]:
    """Countries that get a variant of their own: those some item is about, unless the
    issue's focus is "none" (everyone reads the regional order)."""
    if issue.focus == "none":
        return set()
    return {c for e in issue.entries for c in e.item.country_codes}
