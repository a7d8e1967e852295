"""What a report that came back by mail changes, decided and stored with its evidence.

`record` takes a classified report (`worker.bounce_parse`) and the raw message:

- a **hard** bounce marks the person `bounced`, suppresses the address and turns the
  delivery it names from `sent` into `bounced` (with what the server said);
- a **soft** bounce is counted per delivery: NEWSLETTER_SOFT_BOUNCE_LIMIT deliveries
  that soft-bounced within NEWSLETTER_SOFT_BOUNCE_DAYS make a hard one (a `delayed`
  report is recorded, not counted: the relay still tries);
- a **complaint** marks the person `complained` and suppresses the address at once;
- an **unsubscribe** request (the List-Unsubscribe mailto) unsubscribes them;
- an **auto-reply** or **unrelated** mail changes nothing.

Every report is one `mail_reports` row, whatever was decided (nothing, too): kind,
status, diagnostic, when, the decision in words, and the raw message until
`purge_raw` clears it. The same message read twice (an mbox imported again, a
receiver that crashed after storing and before answering) is recorded once: rows are
unique by the message's SHA-256. A VERP address whose mac does not match its delivery
(forged, or from a database made again) names nobody.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.errors import NewsletterError
from newsletter.models import Delivery, Issue, MailReport
from newsletter.settings import Settings
from subscribers.events import record_event
from subscribers.models import Subscriber
from subscribers.people import unsubscribe
from subscribers.suppressions import hash_of, suppress
from worker import ledger, verp
from worker.bounce_parse import Report
from worker.mime import issue_key

MAX_RAW = 256 * 1024  # characters of a report kept as evidence
BY = "bounces"


@dataclass(frozen=True)
class Outcome:
    report_id: int | None  # None: the same message was recorded before
    kind: str
    decision: str
    subscriber_id: int | None = None
    delivery_id: int | None = None
    issue_slug: str = ""


@dataclass(frozen=True)
class _Target:
    subscriber_id: int | None
    email: str
    delivery_id: int | None
    issue_id: int | None
    issue_slug: str
    why: str  # how the report was matched, or why it was not


def _target(session: Session, report: Report, settings: Settings) -> _Target:
    """Whom the report is about: the delivery its VERP token names, when the token's mac
    checks out for that delivery's issue; else nobody. A quoted Message-ID is never
    enough: every reader of an issue sees its Message-ID scheme, so anyone could forge a
    bounce for another reader's delivery number."""
    delivery_id: int | None = None
    why = "it names no delivery of ours (no VERP address)"
    if report.token is not None:
        found = session.execute(
            select(Delivery.id, Issue.id, Issue.created_at)
            .join(Issue, Issue.id == Delivery.issue_id)
            .where(Delivery.id == report.token.delivery_id)).first()
        if found is not None and verp.check(settings.secret_key, report.token,
                                            issue_key(settings.secret_key, found[1], found[2])):
            delivery_id, why = found[0], "its VERP address"
        else:
            why = (f"its VERP address names delivery {report.token.delivery_id}, which this "
                   "database does not hold with that signature")
    if delivery_id is None:
        return _Target(None, "", None, None, "", why)
    row = session.execute(
        select(Subscriber.id, Subscriber.email, Issue.id, Issue.slug)
        .join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .join(Issue, Issue.id == Delivery.issue_id)
        .where(Delivery.id == delivery_id)).one()
    return _Target(row[0], row[1], delivery_id, row[2], row[3], why)


def _soft_count(session: Session, subscriber_id: int, since: datetime,
                delivery_id: int | None) -> int:
    """Deliveries to this person that soft-bounced since `since`, this one included: a
    relay that reports one message twice (or two intake paths) counts it once."""
    earlier = set(session.scalars(select(MailReport.delivery_id).where(
        MailReport.subscriber_id == subscriber_id, MailReport.kind == "soft",
        MailReport.received_at >= since, MailReport.delivery_id.is_not(None))))
    return len(earlier | {delivery_id})


def _status(session: Session, subscriber_id: int) -> str | None:
    return session.scalar(select(Subscriber.status).where(Subscriber.id == subscriber_id))


def _bounce(session: Session, target: _Target, report: Report, now: datetime,
            reason: str) -> str:
    assert target.subscriber_id is not None
    evidence = " ".join(p for p in (report.status, report.diagnostic) if p)
    ledger.bounced_later(session, target.delivery_id, evidence[:1000], now)
    ledger.mark_bounced(session, target.subscriber_id, delivery_id=target.delivery_id,
                        reply=f"{reason}: {evidence}"[:900])
    try:
        with session.begin_nested():
            suppress(session, target.email, reason="bounced", by=BY,
                     note=f"{reason}: {evidence}"[:300])
    except (IntegrityError, NewsletterError):
        pass  # suppressed a moment ago by someone else, or an address that no longer validates
    return f"bounced and suppressed ({reason})"


def _complain(session: Session, target: _Target, report: Report, now: datetime) -> str:
    assert target.subscriber_id is not None
    changed = session.execute(
        update(Subscriber).where(Subscriber.id == target.subscriber_id,
                                 Subscriber.status != "complained")
        .values(status="complained", updated_at=now)).rowcount  # type: ignore[attr-defined]
    if changed:
        record_event(session, target.subscriber_id, "complained",
                     f"issue {target.issue_slug}: {report.diagnostic}", BY, now)
    try:
        with session.begin_nested():
            suppress(session, target.email, reason="complained", by=BY,
                     note=f"issue {target.issue_slug}: {report.diagnostic}"[:300])
    except (IntegrityError, NewsletterError):
        pass
    return "complained and suppressed"


def record(session: Session, report: Report, raw: bytes, settings: Settings, *,
           source: str, now: datetime) -> Outcome:
    """Decide what `report` changes, change it and store the report, in the session's
    transaction (the caller commits: a receiver answers 250 only after that)."""
    digest = hashlib.sha256(raw).hexdigest()
    if session.scalar(select(MailReport.id).where(MailReport.digest == digest)) is not None:
        return Outcome(None, report.kind, "nothing: this message was recorded before")
    target = _target(session, report, settings)
    decision = "nothing"
    if target.subscriber_id is None:
        decision = f"nothing: {target.why}"
    elif report.kind == "hard":
        decision = _bounce(session, target, report, now, f"hard bounce {report.status}".strip())
    elif report.kind == "soft":
        since = now - timedelta(days=settings.soft_bounce_days)
        count = _soft_count(session, target.subscriber_id, since, target.delivery_id)
        if count >= settings.soft_bounce_limit:
            decision = _bounce(session, target, report, now,
                               f"{count} soft bounces within {settings.soft_bounce_days} days")
        else:
            decision = (f"counted: soft bounce {count} of {settings.soft_bounce_limit} within "
                        f"{settings.soft_bounce_days} days")
    elif report.kind == "complaint":
        decision = _complain(session, target, report, now)
    elif report.kind == "unsubscribe":
        if _status(session, target.subscriber_id) == "complained":
            decision = "nothing: they complained already (suppressed)"
        else:
            with session.begin_nested():
                unsubscribe(session, target.email, how="mailto", by=BY)
            decision = "unsubscribed (mailto)"
    elif report.kind == "delayed":
        decision = "noted: delayed, the relay still tries (not counted)"
    else:
        decision = ("nothing: an automatic reply" if report.kind == "auto-reply"
                    else "nothing: unrelated mail")
    row = MailReport(
        received_at=now, source=source[:32], digest=digest, kind=report.kind,
        decision=decision[:300], subscriber_id=target.subscriber_id,
        delivery_id=target.delivery_id, issue_id=target.issue_id, status=report.status[:16],
        diagnostic=report.diagnostic[:500],
        raw=raw[:MAX_RAW].decode("utf-8", "replace").replace("\x00", ""))
    session.add(row)
    session.flush()
    return Outcome(row.id, report.kind, decision, target.subscriber_id, target.delivery_id,
                   target.issue_slug)


def purge_raw(session: Session, settings: Settings, now: datetime) -> int:
    """Clear the raw messages older than NEWSLETTER_BOUNCE_KEEP_DAYS (the decision and its
    evidence stay); returns how many."""
    cutoff = now - timedelta(days=settings.bounce_keep_days)
    cleared: int = session.execute(
        update(MailReport).where(MailReport.received_at < cutoff, MailReport.raw.is_not(None))
        .values(raw=None)).rowcount  # type: ignore[attr-defined]
    return cleared


def reports_of(session: Session, address: str, limit: int = 50) -> list[MailReport]:
    """The reports about one person, newest first (`subscribers show`)."""
    return list(session.scalars(
        select(MailReport).join(Subscriber, Subscriber.id == MailReport.subscriber_id)
        .where(Subscriber.email_hash == hash_of(address))
        .order_by(MailReport.received_at.desc(), MailReport.id.desc()).limit(limit)))


def rates(session: Session, issue_id: int) -> dict[str, int]:
    """People of one issue reported by kind (hard, soft, complaint, unsubscribe)."""
    rows = session.execute(
        select(MailReport.kind, func.count(func.distinct(MailReport.subscriber_id)))
        .where(MailReport.issue_id == issue_id, MailReport.subscriber_id.is_not(None))
        .group_by(MailReport.kind))
    return {kind: int(count) for kind, count in rows}
