"""Changing an issue after `issues create`: its items and their order, its titles and
introductions, its country focus and who it goes to.

Only a draft or a scheduled issue changes: once sending started, what readers got must
stay what the others get. Every change

- drops the issue's stored renders (IssueVariant rows), so previews and sends render
  the issue as it is now;
- withdraws its approval when it was in review or approved (an IssueReview row
  "withdrawn" by whoever changed it, with a note saying what changed), so what goes out
  is what was approved: it must be submitted and approved again;
- of a scheduled issue keeps the schedule. Deliveries are planned per subscriber, not per
  item, but each planned row carries the country variant its reader gets (only countries
  some item is about have one) and the audience comes from the lists and segments: when
  either changes, the rows planned and never tried are dropped (`Edit.unplanned`), to be
  planned again (`issues items`/`issues edit` do it at once; the scheduler would at the
  start anyway). Titles and introductions change nothing planned.

A change that changes nothing (the same items in the same order, the same title) records
nothing and withdraws nothing. Pure of the clock: `now` (naive UTC) is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.orm import Session

from newsletter import approval, schedules
from newsletter.errors import N_, NewsletterError, Term
from newsletter.issues import clean_texts, countries_of, deleted_targets, targets_of
from newsletter.models import (
    Issue,
    IssueItem,
    IssueReview,
    IssueTarget,
    IssueVariant,
    Item,
    ItemTranslation,
)
from newsletter.render import FOCUS_POLICIES
from subscribers.lists import get_list
from subscribers.segments import get_segment

EDITABLE = ("draft", "scheduled")
MAX_CANDIDATES = 500
MAX_WORDS = 20


class IssueEditError(NewsletterError):
    """An issue cannot be changed as asked."""


@dataclass
class Edit:
    """What a change did: for the person who made it, and for `--json`."""

    slug: str
    changes: list[str] = field(default_factory=list)  # "items changed: added 17", ...
    withdrawn: IssueReview | None = None  # the approval this change withdrew
    withdrawn_from: str = ""  # the review state it withdrew: in_review or approved
    renders_dropped: int = 0
    unplanned: int = 0  # planned deliveries dropped, to be planned again

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def lines(self) -> list[str]:
        if not self.changes:
            return [f"issue {self.slug}: nothing changed"]
        out = [f"issue {self.slug}: {change}" for change in self.changes]
        if self.renders_dropped:
            out.append(f"  {self.renders_dropped} stored render(s) dropped: previews and the "
                       "send render it again")
        if self.withdrawn is not None:
            was = "APPROVED" if self.withdrawn_from == "approved" else "IN REVIEW"
            out.append(f"  APPROVAL WITHDRAWN: the issue was {was}; it changed, so it must "
                       f"be submitted (`newsletter issues submit {self.slug} --by NAME`) and "
                       "approved again before it goes out")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "issue": self.slug,
            "changed": self.changed,
            "changes": list(self.changes),
            "approval_withdrawn": self.withdrawn is not None,
            "withdrawn_from": self.withdrawn_from or None,
            "renders_dropped": self.renders_dropped,
            "unplanned": self.unplanned,
        }


# --- the rules every change follows -----------------------------------------------------

def check_editable(issue: Issue) -> None:
    """Refuse, saying why, to change an issue whose sending started or is over."""
    if issue.status in EDITABLE:
        return
    template, hint = {
        "sending": (N_("issue %(slug)r is %(status)s: it cannot be changed; it is being sent, "
                       "and what the first readers got must stay what the others get"),
                    "; `newsletter issues pause` stops it, but it stays as it is"),
        "paused": (N_("issue %(slug)r is %(status)s: it cannot be changed; sending started "
                      "before it was paused: some readers have it, and the others must get "
                      "the same (cancel it, then create a new issue)"),
                   " (`newsletter issues cancel`)"),
        "sent": (N_("issue %(slug)r is %(status)s: it cannot be changed; it was sent: what "
                    "readers got stays as it was (create a new issue)"), ""),
        "cancelled": (N_("issue %(slug)r is %(status)s: it cannot be changed; it was "
                         "cancelled part-way: some readers may have it (create a new issue)"),
                      ""),
    }.get(issue.status, (N_("issue %(slug)r is %(status)s: it cannot be changed; only a "
                            "draft or a scheduled issue can be changed"), ""))
    raise IssueEditError.translatable(template, slug=issue.slug, status=Term(issue.status),
                                      hint=hint)


def _begin(issue: Issue, by: str) -> str:
    """Checks before anything is written: returns the cleaned name (may be "")."""
    check_editable(issue)
    if issue.review in ("in_review", "approved"):
        if not by.strip():
            state = "approved" if issue.review == "approved" else "in review"
            raise IssueEditError(
                f"issue {issue.slug!r} is {state}: a change withdraws its approval, so say "
                "who makes it (--by NAME)")
        return approval.clean_name(by)
    return by.strip()


def _commit(session: Session, issue: Issue, edit: Edit, by: str, *, now: datetime,
            replan: bool) -> Edit:
    """After the change was made in memory: withdraw the approval, drop the renders, drop
    the planned deliveries when their variant or audience may differ."""
    if not edit.changes:
        return edit
    if issue.review in ("in_review", "approved"):
        edit.withdrawn_from = issue.review
        edit.withdrawn = approval.withdraw(session, issue, by, "; ".join(edit.changes),
                                           now=now)
    session.flush()
    result = session.execute(delete(IssueVariant).where(IssueVariant.issue_id == issue.id)
                             .returning(IssueVariant.id))
    edit.renders_dropped = len(result.all())
    if replan and issue.status == "scheduled":
        edit.unplanned = schedules.forget_unattempted(session, issue)
    session.flush()
    return edit


# --- items --------------------------------------------------------------------------------

def item_ids(issue: Issue) -> list[int]:
    """The issue's items' ids, in order."""
    return [entry.item_id for entry in issue.entries]


def set_items(session: Session, issue: Issue, ids: Sequence[int], *, by: str = "",
              now: datetime) -> Edit:
    """The issue holds exactly these items, in this order (adds, removes and reorders in
    one call). Unknown ids, an id given twice and an empty list are refused."""
    name = _begin(issue, by)
    wanted = list(ids)
    if not wanted:
        raise IssueEditError.translatable(
            N_("issue %(slug)r would hold no item: an issue needs at least one"),
            slug=issue.slug,
            hint=f" (`newsletter issues candidates {issue.slug}` lists items to add)")
    twice = sorted({i for i in wanted if wanted.count(i) > 1})
    if twice:
        raise IssueEditError.translatable(
            N_("item %(ids)s is given twice: an item appears once in an issue"),
            ids=_ids(twice))
    found = {item.id: item for item in session.scalars(select(Item).where(Item.id.in_(wanted)))}
    unknown = [i for i in wanted if i not in found]
    if unknown:
        raise IssueEditError.translatable(
            N_("no item %(ids)s"), ids=_ids(unknown),
            hint=f": `newsletter items list` (or `issues candidates {issue.slug}`) shows the "
                 "items there are")
    before = item_ids(issue)
    if before == wanted:
        return Edit(issue.slug)
    countries = countries_of(issue)
    schedules.hold_issue(session, issue, IssueEditError)
    kept = {entry.item_id: entry for entry in issue.entries}
    entries = []
    for position, item_id in enumerate(wanted):
        entry = kept.get(item_id) or IssueItem(item=found[item_id])
        entry.position = position
        entries.append(entry)
    issue.entries = entries
    added = [i for i in wanted if i not in kept]
    removed = [i for i in before if i not in set(wanted)]
    parts = ([f"added {_ids(added)}"] if added else []) + (
        [f"removed {_ids(removed)}"] if removed else [])
    if [i for i in before if i in set(wanted)] != [i for i in wanted if i in kept]:
        parts.append("order changed")
    edit = Edit(issue.slug, [f"items changed: {', '.join(parts)}"])
    session.flush()
    return _commit(session, issue, edit, name, now=now, replan=countries_of(issue) != countries)


def add_items(session: Session, issue: Issue, ids: Sequence[int], *, at: int | None = None,
              by: str = "", now: datetime) -> Edit:
    """Add items at position `at` (1: first; None: at the end), in the order given."""
    current = item_ids(issue)
    there = [i for i in ids if i in current]
    if there:
        where = ", ".join(f"{i} at {current.index(i) + 1}" for i in there)
        raise IssueEditError.translatable(
            N_("item %(ids)s is already in issue %(slug)r"), ids=where, slug=issue.slug,
            hint=" (`--move ID --to N` moves it)")
    index = len(current) if at is None else _position(at, len(current) + 1, "--at") - 1
    return set_items(session, issue, [*current[:index], *ids, *current[index:]], by=by,
                     now=now)


def remove_items(session: Session, issue: Issue, ids: Sequence[int], *, by: str = "",
                 now: datetime) -> Edit:
    """Take items out of the issue (the items themselves stay)."""
    current = item_ids(issue)
    absent = [i for i in ids if i not in current]
    if absent:
        raise IssueEditError.translatable(
            N_("item %(ids)s is not in issue %(slug)r"), ids=_ids(absent), slug=issue.slug,
            hint=f": `newsletter issues items {issue.slug}` shows what it holds")
    return set_items(session, issue, [i for i in current if i not in set(ids)], by=by, now=now)


def move_item(session: Session, issue: Issue, item_id: int, to_position: int, *,
              by: str = "", now: datetime) -> Edit:
    """Move one item to `to_position` (1: first), the others keeping their order."""
    current = item_ids(issue)
    if item_id not in current:
        raise IssueEditError.translatable(
            N_("item %(ids)s is not in issue %(slug)r"), ids=item_id, slug=issue.slug,
            hint=f": `newsletter issues items {issue.slug}` shows what it holds")
    index = _position(to_position, len(current), "--to") - 1
    rest = [i for i in current if i != item_id]
    return set_items(session, issue, [*rest[:index], item_id, *rest[index:]], by=by, now=now)


def _position(value: int, last: int, option: str) -> int:
    if not 1 <= value <= last:
        raise IssueEditError(f"{option} {value}: give a position from 1 to {last}")
    return value


def _ids(ids: Sequence[int]) -> str:
    return ", ".join(str(i) for i in ids)


def candidates(
    session: Session,
    issue: Issue,
    *,
    since: date | None = None,
    until: date | None = None,
    country: str | None = None,
    query: str | None = None,
    limit: int = MAX_CANDIDATES,
) -> list[Item]:
    """Items one could add: not in the issue, newest first, published in [since, until],
    about `country`, and holding every word of `query` in their title or text (or in a
    translation's), case-insensitively."""
    if since is not None and until is not None and until < since:
        raise IssueEditError(f"the window ends ({until}) before it starts ({since})")
    inside = select(IssueItem.item_id).where(IssueItem.issue_id == issue.id)
    stmt = select(Item).where(Item.id.not_in(inside)).order_by(Item.published.desc(), Item.id)
    if country and country.strip():
        code = country.strip().upper()
        stmt = stmt.where(("," + Item.countries + ",").contains(f",{code},", autoescape=True))
    if since is not None:
        stmt = stmt.where(Item.published >= since)
    if until is not None:
        stmt = stmt.where(Item.published <= until)
    words = (query or "").split()
    if len(words) > MAX_WORDS:
        raise IssueEditError(f"the search has {len(words)} words: give at most {MAX_WORDS}")
    for word in words:
        needle = word.lower()
        translated = exists(select(ItemTranslation.item_id).where(
            ItemTranslation.item_id == Item.id,
            or_(func.lower(ItemTranslation.title).contains(needle, autoescape=True),
                func.lower(ItemTranslation.body).contains(needle, autoescape=True))))
        stmt = stmt.where(or_(func.lower(Item.title).contains(needle, autoescape=True),
                              func.lower(Item.body).contains(needle, autoescape=True),
                              translated))
    return list(session.scalars(stmt.limit(limit)))


# --- texts, focus, audience ---------------------------------------------------------------

def edit_issue(
    session: Session,
    issue: Issue,
    *,
    titles: Mapping[str, str] | None = None,
    intros: Mapping[str, str] | None = None,
    languages: Sequence[str] = (),
    focus: str | None = None,
    lists: Sequence[str] | None = None,
    segments: Sequence[str] | None = None,
    by: str = "",
    now: datetime,
) -> Edit:
    """Change titles, introductions, country focus and audience in one step: everything
    is checked before anything changes, and an approval is withdrawn once, with a note
    naming every change. None leaves a part as it is.

    Titles and intros are per language ("" key: every language), checked as
    `create_issue` checks them (`languages`: the editions); languages not given keep
    theirs, and an empty text removes that language's own (a title then falls back to
    the one for every language, then to the default subject line). `lists` and
    `segments` replace who it goes to (both empty: every active subscriber)."""
    name = _begin(issue, by)
    changes: list[str] = []
    texts = None
    if titles is not None or intros is not None:
        texts = _new_texts(issue, titles, intros, languages)
        changes += texts[3]
    if focus is not None:
        if focus not in FOCUS_POLICIES:
            raise IssueEditError(f"country focus {focus!r}: use one of "
                                 f"{', '.join(FOCUS_POLICIES)}")
        if focus != issue.focus:
            changes.append(f"country focus changed: {issue.focus} -> {focus}")
    targets = None
    if lists is not None or segments is not None:
        targets = _new_targets(session, issue, lists or (), segments or ())
        changes += targets[2]
    if not changes:
        return Edit(issue.slug)
    countries = countries_of(issue)
    schedules.hold_issue(session, issue, IssueEditError)
    if texts is not None:
        issue.title, issue.titles, issue.intros = texts[:3]
    if focus is not None:
        issue.focus = focus
    if targets is not None and targets[2]:
        session.execute(delete(IssueTarget).where(IssueTarget.issue_id == issue.id))
        session.add_all([IssueTarget(issue_id=issue.id, list_id=i) for i in targets[0]])
        session.add_all([IssueTarget(issue_id=issue.id, segment_id=i) for i in targets[1]])
    replan = bool(targets and targets[2]) or countries_of(issue) != countries
    return _commit(session, issue, Edit(issue.slug, changes), name, now=now, replan=replan)


def _new_texts(
    issue: Issue, titles: Mapping[str, str] | None, intros: Mapping[str, str] | None,
    languages: Sequence[str],
) -> tuple[str, dict[str, str], dict[str, str], list[str]]:
    """The issue's title, titles and intros after the change, and what changed."""
    given_titles = dict(titles or {})
    every = given_titles.pop("", None)
    title, clean_titles, clean_intros = clean_texts(every or "", given_titles, intros,
                                                    languages)
    new_title = issue.title if every is None else title
    old_titles, old_intros = dict(issue.titles or {}), dict(issue.intros or {})
    new_titles, new_intros = dict(old_titles), dict(old_intros)
    for target, cleaned in ((new_titles, clean_titles), (new_intros, clean_intros)):
        for lang, text in cleaned.items():
            target.pop(lang, None)
            if text:
                target[lang] = text
    changes = []
    which = {k for k in {*new_titles, *old_titles} if new_titles.get(k) != old_titles.get(k)}
    if which or new_title != issue.title:
        shown = sorted(which | ({"every language"} if new_title != issue.title else set()))
        changes.append(f"title changed ({', '.join(shown)})")
    which = {k or "every language" for k in {*new_intros, *old_intros}
             if new_intros.get(k) != old_intros.get(k)}
    if which:
        changes.append(f"introduction changed ({', '.join(sorted(which))})")
    return new_title, new_titles, new_intros, changes


def _new_targets(
    session: Session, issue: Issue, lists: Sequence[str], segments: Sequence[str]
) -> tuple[list[int], list[int], list[str]]:
    """The ids of the lists and segments named (each checked), and what changed."""
    try:
        list_rows = {found.name: found.id for found in (get_list(session, n) for n in lists)}
        segment_rows = {found.name: found.id
                        for found in (get_segment(session, n) for n in segments)}
    except NewsletterError as exc:
        raise IssueEditError(str(exc)) from exc
    if ((sorted(list_rows), sorted(segment_rows)) == targets_of(session, issue)
            and not deleted_targets(session, issue)):
        return [], [], []
    shown = ", ".join([*(f"list {n}" for n in sorted(list_rows)),
                       *(f"segment {n}" for n in sorted(segment_rows))]) or "everyone"
    return list(list_rows.values()), list(segment_rows.values()), [
        f"audience changed: {shown}"]


def set_texts(session: Session, issue: Issue, *, titles: Mapping[str, str] | None = None,
              intros: Mapping[str, str] | None = None, languages: Sequence[str],
              by: str = "", now: datetime) -> Edit:
    """Set subject titles and introductions per language (see `edit_issue`)."""
    return edit_issue(session, issue, titles=titles, intros=intros, languages=languages,
                      by=by, now=now)


def set_focus(session: Session, issue: Issue, focus: str, *, by: str = "",
              now: datetime) -> Edit:
    """first: the reader's country first; only: just their country; none: the regional
    order for everyone."""
    return edit_issue(session, issue, focus=focus, by=by, now=now)


def set_targets(session: Session, issue: Issue, lists: Sequence[str],
                segments: Sequence[str], *, by: str = "", now: datetime) -> Edit:
    """Send to the people in any of these lists and segments (both empty: every active
    subscriber). Names are checked before anything changes."""
    return edit_issue(session, issue, lists=lists, segments=segments, by=by, now=now)
