"""Sending an issue: render its variants, plan the ledger, deliver batches, report.

`send_issue` runs in the CLI; `deliver_range` runs inside the `deliver_batch` task,
in-process (no broker) or on a Celery worker: the same code either way.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.db import utcnow
from newsletter.errors import NewsletterError
from newsletter.issues import audience_of, content_of, countries_of, get_issue
from newsletter.models import Issue, IssueVariant
from newsletter.render import Rendered, Variant, personalise, render_variant, sender_from
from subscribers.tokens import subscriber_links
from worker import ledger
from worker.mime import Headers, build_message, message_id
from worker.runtime import Runtime
from worker.transports import ConnectionFailure, Envelope, PermanentFailure, TemporaryFailure

Progress = Callable[[dict[str, int]], None]


class SendError(NewsletterError):
    """The issue cannot be sent as asked."""


@dataclass
class SendSummary:
    slug: str
    planned: int
    batches: int
    counts: dict[str, int] = field(default_factory=dict)
    variants: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return not any(self.counts.get(s, 0) for s in ("queued", "sending", "deferred"))


def render_missing_variants(runtime: Runtime, session: Session, issue: Issue) -> list[Variant]:
    """Render each variant the ledger needs once, and store it for every worker to share."""
    needed = ledger.variants(session, issue.id)
    stored = {
        (v.language, v.country)
        for v in session.scalars(select(IssueVariant).where(IssueVariant.issue_id == issue.id))
    }
    content = content_of(issue)
    sender = sender_from(runtime.settings)
    for variant in needed:
        if (variant.language, variant.country) in stored:
            continue
        rendered = render_variant(content, variant, sender)
        session.add(
            IssueVariant(
                issue_id=issue.id,
                language=variant.language,
                country=variant.country,
                subject=rendered.subject,
                html=rendered.html,
                text=rendered.text,
            )
        )
    session.flush()
    return needed


_variant_cache: dict[tuple[int, str, str], Rendered] = {}


def _variant(session: Session, issue_id: int, variant: Variant) -> Rendered:
    key = (issue_id, variant.language, variant.country)
    if key not in _variant_cache:
        row = session.scalar(
            select(IssueVariant).where(
                IssueVariant.issue_id == issue_id,
                IssueVariant.language == variant.language,
                IssueVariant.country == variant.country,
            )
        )
        if row is None:
            raise SendError(f"issue {issue_id} has no rendered {variant.label} variant")
        _variant_cache[key] = Rendered(row.subject, row.html, row.text)
    return _variant_cache[key]


def deliver_range(runtime: Runtime, issue_id: int, lo: int, hi: int) -> dict[str, int]:
    """Claim, send and record the deliveries in [lo, hi]; returns counts of outcomes."""
    settings = runtime.settings
    outcome: Counter[str] = Counter()
    with runtime.sessions() as session:
        issue = session.get(Issue, issue_id)
        if issue is None or issue.status in ("cancelled", "paused"):
            return {}
        claimed = ledger.claim(session, issue_id, lo, hi, timedelta(seconds=settings.lease_seconds))
        session.commit()
        slug = issue.slug
        for n, row in enumerate(claimed):
            rendered = _variant(session, issue_id, row.variant)
            unsubscribe, preferences = subscriber_links(
                settings.public_base_url, settings.secret_key, row.subscriber_id
            )
            mid = message_id(slug, row.delivery_id, settings.sender_domain)
            message = build_message(
                personalise(rendered, unsubscribe_url=unsubscribe, preferences_url=preferences),
                Headers(
                    from_name=settings.sender_name,
                    from_email=settings.sender_email,
                    to_name=row.name,
                    to_email=row.email,
                    message_id=mid,
                    list_id=f"{slug}.{settings.sender_domain}",
                    unsubscribe_url=unsubscribe,
                    reply_to=settings.reply_to,
                ),
            )
            envelope = Envelope(settings.sender_email, row.email, message, mid)
            try:
                reply = runtime.transport.send(envelope)
                status = "sent"
            except ConnectionFailure as exc:
                # the server is gone: this one is deferred, the rest go back untouched
                ledger.record(session, row.delivery_id, "deferred", str(exc), mid)
                ledger.release(session, [r.delivery_id for r in claimed[n + 1 :]])
                session.commit()
                outcome["deferred"] += 1
                outcome["released"] += len(claimed) - n - 1
                break
            except TemporaryFailure as exc:
                reply, status = str(exc), "deferred"
            except PermanentFailure as exc:
                reply, status = str(exc), "bounced"
            ledger.record(session, row.delivery_id, status, reply, mid)
            session.commit()  # each reply is on disk before the next message goes out
            outcome[status] += 1
    return dict(outcome)


def send_issue(
    runtime: Runtime,
    slug: str,
    *,
    progress: Progress | None = None,
    wait: bool = True,
    poll_seconds: float = 0.5,
    timeout: float | None = None,
) -> SendSummary:
    """Plan the ledger and deliver every queued or deferred row of the issue.

    Sending again is safe: rows already sent are never sent again. With a broker the
    batches go to the workers and this waits (showing progress) until none is pending.
    """
    from worker.tasks import deliver_batch  # the task module binds the Celery app

    settings = runtime.settings
    with runtime.sessions() as session, session.begin():
        issue = get_issue(session, slug)
        if issue.status == "cancelled":
            raise SendError(f"issue {slug!r} was cancelled; it cannot be sent")
        planned = ledger.plan(
            session,
            issue.id,
            languages=settings.languages,
            default_language=settings.default_language,
            focus_countries=sorted(countries_of(issue)),
            audience=audience_of(session, issue),
        )
        if not any(ledger.counts(session, issue.id).values()):
            raise SendError(
                "there are no active subscribers to send to: import some with "
                "`newsletter subscribers import FILE`"
            )
        needed = render_missing_variants(runtime, session, issue)
        ranges = ledger.batch_ranges(session, issue.id, settings.batch_size)
        if ranges:
            issue.status = "sending"
        issue_id = issue.id
    summary = SendSummary(slug, planned, len(ranges), variants=[v.label for v in needed])
    # enqueue after the commit, so a worker always finds the rows it is given
    for lo, hi in ranges:
        deliver_batch.delay(issue_id, lo, hi)
        if progress is not None and settings.broker_url == "":
            progress(_counts(runtime, issue_id))
    if wait and settings.broker_url:
        started = time.monotonic()
        while True:
            counts = _counts(runtime, issue_id)
            if progress is not None:
                progress(counts)
            if not counts["queued"] and not counts["sending"]:
                break
            if timeout is not None and time.monotonic() - started > timeout:
                break
            time.sleep(poll_seconds)
    summary.counts = _counts(runtime, issue_id)
    if summary.finished:
        with runtime.sessions() as session, session.begin():
            issue = get_issue(session, slug)
            if issue.status != "sent":
                issue.status, issue.sent_at = "sent", utcnow()
    return summary


def _counts(runtime: Runtime, issue_id: int) -> dict[str, int]:
    with runtime.sessions() as session:
        return ledger.counts(session, issue_id)
