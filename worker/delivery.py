"""Sending an issue: render its variants, plan the ledger, deliver batches, report.

`send_issue` runs in the CLI; `deliver_range` runs inside the `deliver_batch` task,
in-process (no broker) or on a Celery worker: the same code either way.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.db import utcnow
from newsletter.errors import NewsletterError
from newsletter.issues import audience_of, content_of, countries_of, get_issue
from newsletter.models import Issue, IssueVariant
from newsletter.render import (
    PREFERENCES,
    UNSUBSCRIBE,
    Rendered,
    Variant,
    render_variant,
    sender_from,
)
from subscribers.tokens import subscriber_links
from worker import ledger
from worker.mime import MessageTemplate, Recipient, ascii_address, message_id
from worker.replies import classify, next_attempt
from worker.runtime import Runtime
from worker.transports import ConnectionFailure, Envelope, TransportError

Progress = Callable[[dict[str, int]], None]
STATUS_CHECK_EVERY = 100  # messages between checks for pause/cancel
SENDER_PROBLEM_PAUSE = 3  # consecutive 5.7.x replies before the issue pauses itself

log = logging.getLogger(__name__)


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
        return not any(self.counts.get(s, 0) for s in ledger.PENDING)


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
        rendered = render_variant(
            content, variant, sender, directory=runtime.settings.template_dir,
            view_url=view_url(runtime.settings.public_base_url, issue.slug, variant),
        )
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


def view_url(base_url: str, slug: str, variant: Variant) -> str:
    """Where a variant can be read in a browser (the same for everyone who gets it)."""
    return f"{base_url}/v/{slug}/{variant.label}"


_templates: dict[tuple[int, str, str], MessageTemplate] = {}


def _template(
    runtime: Runtime, session: Session, issue: Issue, variant: Variant
) -> MessageTemplate:
    """A variant's message, encoded once per worker process and reused for every recipient."""
    key = (issue.id, variant.language, variant.country)
    if key not in _templates:
        row = session.scalar(
            select(IssueVariant).where(
                IssueVariant.issue_id == issue.id,
                IssueVariant.language == variant.language,
                IssueVariant.country == variant.country,
            )
        )
        if row is None:
            raise SendError(f"issue {issue.slug} has no rendered {variant.label} variant")
        s = runtime.settings
        _templates[key] = MessageTemplate.build(
            Rendered(row.subject, row.html, row.text),
            from_name=s.sender_name,
            from_email=s.sender_email,
            list_id=f"{issue.slug}.{s.sender_domain}",
            reply_to=s.reply_to,
            slots=(UNSUBSCRIBE, PREFERENCES),
        )
    return _templates[key]


def _issue_status(session: Session, issue_id: int) -> str | None:
    return session.scalar(select(Issue.status).where(Issue.id == issue_id))


def deliver_range(runtime: Runtime, issue_id: int, lo: int, hi: int) -> dict[str, int]:
    """Claim, send and record the deliveries in [lo, hi]; returns counts of outcomes."""
    settings = runtime.settings
    outcome: Counter[str] = Counter()
    with runtime.batch_session() as session:
        issue = session.get(Issue, issue_id)
        if issue is None or issue.status != "sending":
            return {}
        claimed = ledger.claim(session, issue_id, lo, hi, timedelta(seconds=settings.lease_seconds))
        session.commit()
        sender_problems = 0
        for n, row in enumerate(claimed):
            if n and n % STATUS_CHECK_EVERY == 0 and _issue_status(session, issue_id) != "sending":
                ledger.release(session, [r.delivery_id for r in claimed[n:]])
                session.commit()
                outcome["released"] += len(claimed) - n
                break
            unsubscribe, preferences = subscriber_links(
                settings.public_base_url, settings.secret_key, row.subscriber_id
            )
            mid = message_id(issue.slug, row.delivery_id, settings.sender_domain)
            message = _template(runtime, session, issue, row.variant).render(
                Recipient(row.name, row.email, mid, unsubscribe,
                          {UNSUBSCRIBE: unsubscribe, PREFERENCES: preferences})
            )
            envelope = Envelope(settings.sender_email, ascii_address(row.email), message, mid)
            code: int | None
            try:
                reply = runtime.transport.send(envelope)
                code = int(reply[:3]) if reply[:3].isdigit() else 250
            except ConnectionFailure as exc:
                reply, code = str(exc), None
            except TransportError as exc:
                reply, code = str(exc), exc.code
            result = classify(code, reply)
            status, retry_at = result.status, None
            if status == "deferred":
                retry_at = next_attempt(
                    row.attempts, row.first_attempt_at, utcnow(),
                    base_seconds=settings.retry_base_seconds,
                    max_delay_seconds=settings.retry_max_delay_seconds,
                    give_up_after_seconds=settings.retry_for_seconds,
                )
                if retry_at is None:
                    status, reply = "failed", f"gave up after repeated temporary failures: {reply}"
            ledger.record(session, row.delivery_id, status, reply, mid, code=code,
                          relay=runtime.transport.last_relay, next_attempt_at=retry_at)
            if result.suppress:
                ledger.suppress_recipient(session, row.delivery_id)
            sender_problems = sender_problems + 1 if result.sender_problem else 0
            if sender_problems >= SENDER_PROBLEM_PAUSE:
                _pause_for_sender_problem(session, issue, reply)
            session.commit()  # each reply is on disk before the next message goes out
            outcome[status] += 1
            if code is None:
                # the relays are unreachable: hand the rest back untouched for later
                ledger.release(session, [r.delivery_id for r in claimed[n + 1 :]])
                session.commit()
                outcome["released"] += len(claimed) - n - 1
                break
            if sender_problems >= SENDER_PROBLEM_PAUSE:
                ledger.release(session, [r.delivery_id for r in claimed[n + 1 :]])
                session.commit()
                break
    return dict(outcome)


def _pause_for_sender_problem(session: Session, issue: Issue, reply: str) -> None:
    issue.status = "paused"
    issue.status_note = (
        f"paused: the mail server refuses our messages for a policy reason ({reply[:200]}). "
        "This is the sending setup (SPF/DKIM, relay login or permissions), not the "
        f"subscribers: fix it, then `newsletter issues retry {issue.slug} --status failed` "
        f"and `newsletter issues resume {issue.slug}`"
    )
    log.error("issue %s %s", issue.slug, issue.status_note)


def enqueue(runtime: Runtime, issue_id: int, ranges: list[tuple[int, int]],
            progress: Progress | None = None) -> None:
    """Hand ranges to the workers (or run them here, without a broker), marking them first
    so the sweeper knows a task is on its way."""
    from worker.tasks import deliver_batch  # the task module binds the Celery app

    for lo, hi in ranges:
        with runtime.sessions() as session, session.begin():
            ledger.mark_enqueued(session, issue_id, lo, hi)
        deliver_batch.delay(issue_id, lo, hi)
        if progress is not None and not runtime.settings.broker_url:
            progress(counts(runtime, issue_id))


def send_issue(
    runtime: Runtime,
    slug: str,
    *,
    progress: Progress | None = None,
    wait: bool = True,
    poll_seconds: float = 0.5,
    timeout: float | None = None,
) -> SendSummary:
    """Plan the ledger and deliver every claimable row of the issue.

    Sending again is safe: rows already sent are never sent again. With a broker the
    batches go to the workers and this waits (showing progress) until none is in flight.
    """
    settings = runtime.settings
    for attempt in (1, 2):
        try:
            with runtime.sessions() as session, session.begin():
                issue = get_issue(session, slug)
                if issue.status in ("cancelled", "paused"):
                    raise SendError(
                        f"issue {slug!r} is {issue.status}"
                        + ("; `newsletter issues resume` it first" if issue.status == "paused"
                           else "; it cannot be sent")
                    )
                planned = ledger.plan(
                    session,
                    issue.id,
                    languages=settings.languages,
                    default_language=settings.default_language,
                    focus_countries=sorted(countries_of(issue)),
                    audience=audience_of(session, issue),
                )
                if not ledger.total(session, issue.id):
                    raise SendError(
                        "there are no active subscribers to send to: import some with "
                        "`newsletter subscribers import FILE`"
                    )
                needed = render_missing_variants(runtime, session, issue)
                ranges = ledger.batch_ranges(session, issue.id, settings.batch_size)
                if ranges or ledger.has_pending(session, issue.id):
                    issue.status, issue.status_note = "sending", ""
                issue_id = issue.id
            break
        except IntegrityError:
            # another `send` planned the same rows at the same moment: plan again
            if attempt == 2:
                raise
    summary = SendSummary(slug, planned, len(ranges), variants=[v.label for v in needed])
    enqueue(runtime, issue_id, ranges, progress)
    if wait and settings.broker_url:
        started = time.monotonic()
        while True:
            now_counts = counts(runtime, issue_id)
            if progress is not None:
                progress(now_counts)
            if not now_counts["queued"] and not now_counts["sending"]:
                break
            if timeout is not None and time.monotonic() - started > timeout:
                break
            time.sleep(poll_seconds)
    summary.counts = counts(runtime, issue_id)
    finish_if_done(runtime, issue_id)
    return summary


def finish_if_done(runtime: Runtime, issue_id: int) -> bool:
    """Mark the issue sent once nothing is pending; True if it is (or already was)."""
    with runtime.sessions() as session, session.begin():
        issue = session.get(Issue, issue_id)
        if issue is None or issue.status not in ("sending", "sent"):
            return False
        if ledger.has_pending(session, issue_id):
            return False
        if issue.status != "sent":
            issue.status, issue.sent_at = "sent", utcnow()
        return True


def counts(runtime: Runtime, issue_id: int) -> dict[str, int]:
    with runtime.sessions() as session:
        return ledger.counts(session, issue_id)
