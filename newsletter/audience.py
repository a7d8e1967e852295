"""Who an issue reaches, in which edition, and why the others in its targets are left out.

`issues create` and `issues send` print this report; an empty audience is explained from
real counts ("12 active subscribers are on list partners but none has confirmed...")
instead of a guess.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, case, func, select, true
from sqlalchemy.orm import Session

from newsletter.issues import audience_of, deleted_targets, targets_of
from newsletter.models import Issue
from newsletter.words import plural
from subscribers.filters import segment_condition
from subscribers.lists import get_list
from subscribers.models import Subscriber, Subscription, Suppression
from subscribers.validate import best_edition

IMPORT_HINT = "import some with `newsletter subscribers import FILE`"


@dataclass(frozen=True)
class Fallback:
    """People whose language has no edition of its own, and the edition they get."""

    preferred: str
    edition: str
    count: int

    def __str__(self) -> str:
        who = "subscriber prefers" if self.count == 1 else "subscribers prefer"
        return f"{self.count} {who} {self.preferred}: they get {self.edition}"


@dataclass(frozen=True)
class AudienceReport:
    target: str  # "list partners, segment x", or "every active subscriber"
    recipients: int  # who would get the issue now
    editions: dict[str, int] = field(default_factory=dict)  # recipients by edition
    fallbacks: list[Fallback] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # who in the targets does not, and why

    def summary(self) -> str:
        """One line: "audience: 30 subscribers (en 12, es 15, fr 3) on list partners"."""
        by_edition = ", ".join(f"{lang} {n}" for lang, n in sorted(self.editions.items()))
        return (f"audience: {plural(self.recipients, 'subscriber')}"
                f"{f' ({by_edition})' if by_edition else ''}, {self.target}")

    def empty_explanation(self) -> str:
        """Why nobody would get the issue, and what to do."""
        reasons = "; ".join(self.left_out) or f"there are no subscribers yet: {IMPORT_HINT}"
        return f"nobody would receive this issue ({self.target}): {reasons}"


def audience_report(
    session: Session, issue: Issue, languages: list[str], default_language: str
) -> AudienceReport:
    """Count the issue's recipients by edition, the fallbacks, and the people left out."""
    lists, segments = targets_of(session, issue)
    gone = deleted_targets(session, issue)
    target = ", ".join([*(f"list {n}" for n in lists), *(f"segment {n}" for n in segments),
                        *([plural(gone, "deleted list or segment", "deleted lists or segments")]
                          if gone else [])])
    by_tag = session.execute(
        select(Subscriber.language, func.count())
        .where(audience_of(session, issue))
        .group_by(Subscriber.language)
    )
    editions: Counter[str] = Counter()
    fallbacks: Counter[tuple[str, str]] = Counter()
    for tag, count in by_tag:
        edition = best_edition(tag, languages, default_language)
        editions[edition] += count
        if _primary(edition) != _primary(tag):
            fallbacks[(tag, edition)] += count
    left_out: list[str] = []
    for name in lists:
        list_id = get_list(session, name).id
        left_out += _list_reasons(name, _breakdown(session, true(), list_id))
    for name in segments:
        left_out += _group_reasons(f"in segment {name}", _breakdown(
            session, segment_condition(session, name)))
    if gone:
        what = ("a list or segment it was for was" if gone == 1
                else f"{gone} lists or segments it was for were")
        left_out.append(f"{what} deleted, and a deleted target reaches nobody: create a new "
                        "issue for the lists or segments that exist now")
    elif not lists and not segments:
        left_out += _group_reasons("", _breakdown(session, true()))
    return AudienceReport(
        target=f"on {target}" if target else "every active subscriber",
        recipients=sum(editions.values()),
        editions=dict(editions),
        fallbacks=[Fallback(tag, edition, n)
                   for (tag, edition), n in sorted(fallbacks.items(), key=lambda x: -x[1])],
        left_out=left_out,
    )


def _primary(tag: str) -> str:
    return tag.split("-", 1)[0].lower()


# (subscriber status, subscription status or "" without a list, suppressed) -> people
Breakdown = Counter[tuple[str, str, bool]]


def _breakdown(
    session: Session, where: ColumnElement[bool], list_id: int | None = None
) -> Breakdown:
    suppressed = case((Suppression.email_hash.is_(None), False), else_=True)
    columns: list[Any] = [Subscriber.status, suppressed]
    if list_id is not None:
        columns.append(Subscription.status)
    stmt = (
        select(*columns, func.count())
        .outerjoin(Suppression, Suppression.email_hash == Subscriber.email_hash)
        .where(where)
        .group_by(*columns)
    )
    if list_id is not None:
        stmt = stmt.join(Subscription, Subscription.subscriber_id == Subscriber.id).where(
            Subscription.list_id == list_id)
    found: Breakdown = Counter()
    for row in session.execute(stmt):
        status, flag, *member, n = row
        found[(status, member[0] if member else "", bool(flag))] += int(n)
    return found


_LEFT = {
    "pending": "waiting to confirm their subscription (double opt-in): `newsletter "
               "subscribers send-confirmations{opt}` asks them",
    "unsubscribed": "unsubscribed",
    "bounced": "bounced (their mailbox does not exist)",
    "complained": "marked an issue as spam",
}


def _group_reasons(where: str, counts: Breakdown, list_option: str = "") -> list[str]:
    """Sentences for the people of one target who will not receive the issue."""
    on = f" {where}" if where else ""
    if not counts:
        if where.startswith("in segment"):
            return [f"{where.removeprefix('in ')} matches no subscriber"]
        return [f"there are no subscribers yet: {IMPORT_HINT}"]
    reasons = []
    by_status: Counter[str] = Counter()
    for (status, _member, suppressed), n in counts.items():
        if status == "active" and suppressed:
            by_status["suppressed"] += n
        elif status != "active":
            by_status[status] += n
    for status, template in _LEFT.items():
        if by_status[status]:
            count = by_status[status]
            verb = "is" if count == 1 and status == "pending" else "are"
            verb = verb if status == "pending" else ""
            who = f"{plural(count, 'person', 'people')}{on}"
            reasons.append(" ".join(filter(None, (who, verb, template.format(opt=list_option)))))
    if by_status["suppressed"]:
        count = by_status["suppressed"]
        reasons.append(f"{plural(count, 'active subscriber')}{on} {'is' if count == 1 else 'are'}"
                       " suppressed (`newsletter suppressions list`)")
    return reasons


def _list_reasons(name: str, counts: Breakdown) -> list[str]:
    if not counts:
        return [f"list {name} has no subscribers: import some with `newsletter subscribers "
                f"import FILE --list {name}`"]
    members = {k: n for k, n in counts.items() if k[1] != "unsubscribed"}
    left = sum(counts.values()) - sum(members.values())
    reasons = []
    waiting = sum(n for (status, member, suppressed), n in members.items()
                  if status == "active" and member == "unconfirmed" and not suppressed)
    if waiting:
        confirmed = sum(n for (status, member, suppressed), n in members.items()
                        if status == "active" and member == "confirmed" and not suppressed)
        who = plural(waiting, "active subscriber")
        verb = "is" if waiting == 1 else "are"
        has = "none has" if not confirmed else "they have not"
        reasons.append(f"{who} {verb} on list {name} but {has} confirmed (double opt-in): "
                       f"run `newsletter subscribers send-confirmations --list {name}`")
    if members:  # with none, _group_reasons would say there are no subscribers at all
        reasons += _group_reasons(f"on list {name}", Counter(members), f" --list {name}")
    if left:
        reasons.append(f"{plural(left, 'person', 'people')} unsubscribed from list {name}")
    return reasons
