"""Steering a send: pause, resume, cancel, retry, test-send, and the periodic sweep."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.db import utcnow
from newsletter.errors import N_, NewsletterError, Term
from newsletter.issues import content_of, get_issue
from newsletter.models import Issue
from newsletter.render import Variant, personalise, render_variant, sender_from
from worker import ledger
from worker.delivery import enqueue, finish_if_done, view_url
from worker.mime import Headers, ascii_address, build_message
from worker.runtime import Runtime
from worker.transports import Envelope

log = logging.getLogger(__name__)


class ControlError(NewsletterError):
    """The issue is not in a state where that can be done."""


def _set_status(runtime: Runtime, slug: str, allowed: tuple[str, ...], to: str) -> Issue:
    with runtime.sessions() as session, session.begin():
        issue = get_issue(session, slug)
        if issue.status not in allowed:
            raise ControlError.translatable(
                N_("issue %(slug)r is %(status)s: only an issue that is %(allowed)s can "
                   "become %(to)s"), slug=slug, status=Term(issue.status),
                allowed=Term(allowed[0]) if len(allowed) == 1 else " or ".join(allowed),
                to=Term(to))
        issue.status, issue.status_note = to, ""
        return issue


def pause(runtime: Runtime, slug: str) -> None:
    """Stop handing out messages; batches in flight stop within a hundred messages."""
    _set_status(runtime, slug, ("sending",), "paused")


def resume(runtime: Runtime, slug: str) -> int:
    """Carry on sending; returns how many batches were handed to the workers."""
    issue = _set_status(runtime, slug, ("paused",), "sending")
    with runtime.sessions() as session:
        ranges = ledger.batch_ranges(session, issue.id, runtime.settings.batch_size)
    enqueue(runtime, issue.id, ranges)
    finish_if_done(runtime, issue.id)
    return len(ranges)


def cancel(runtime: Runtime, slug: str) -> int:
    """Never send what is left; returns how many messages will not go out."""
    with runtime.sessions() as session, session.begin():
        issue = get_issue(session, slug)
        if issue.status in ("sent", "cancelled"):
            raise ControlError.translatable(N_("issue %(slug)r is already %(status)s"),
                                            slug=slug, status=Term(issue.status))
        issue.status = "cancelled"
        return ledger.cancel(session, issue.id)


def retry(runtime: Runtime, slug: str, status: str) -> int:
    """Try the deferred (or failed) messages again now; returns how many."""
    if status not in ("deferred", "failed"):
        raise ControlError.translatable(
            N_("only deferred or failed messages can be retried, not %(status)s: a bounce is "
               "the receiving server's final answer"), status=Term(status))
    with runtime.sessions() as session, session.begin():
        issue = get_issue(session, slug)
        if issue.status == "cancelled":
            raise ControlError.translatable(N_("issue %(slug)r was cancelled"), slug=slug)
        count = ledger.retry(session, issue.id, status)
        if count and issue.status == "sent":
            issue.status = "sending"
        issue_id, state = issue.id, issue.status
    if state == "sending":
        with runtime.sessions() as session:
            ranges = ledger.batch_ranges(session, issue_id, runtime.settings.batch_size)
        enqueue(runtime, issue_id, ranges)
        finish_if_done(runtime, issue_id)
    return count


@dataclass(frozen=True)
class TestSend:
    to: str
    variant: str
    subject: str
    reply: str


def test_send(runtime: Runtime, slug: str, to: str, variant: Variant) -> TestSend:
    """Send one variant to an address of the team's, outside the ledger (no subscriber,
    no delivery row, links that lead nowhere)."""
    s = runtime.settings
    with runtime.sessions() as session:
        issue = get_issue(session, slug)
        content = content_of(issue)
    rendered = render_variant(content, variant, sender_from(s), directory=s.template_dir,
                              view_url=view_url(s.public_base_url, slug, variant))
    preview_link = f"{s.public_base_url}/test-send"
    rendered = personalise(rendered, unsubscribe_url=preview_link, preferences_url=preview_link)
    mid = f"<{slug}.test.{secrets.token_hex(8)}@{s.sender_domain}>"  # unique, as any send
    message = build_message(
        replace(rendered, subject=f"[TEST {variant.label}] {rendered.subject}"),
        Headers(s.sender_name, s.sender_email, "", to, mid, s.resolved_list_id,
                preview_link, s.reply_to),
    )
    reply = runtime.transport.send(Envelope(s.sender_email, ascii_address(to), message, mid))
    return TestSend(to, variant.label, rendered.subject, reply)


def sweep(runtime: Runtime) -> dict[str, int]:
    """The periodic clean-up: hand expired leases, due retries and lost batches back to
    the workers, and mark finished issues sent. Returns batches enqueued per issue."""
    s = runtime.settings
    with runtime.sessions() as session:
        sending = list(session.scalars(select(Issue).where(Issue.status == "sending")))
        plans = {
            issue.slug: (issue.id, ledger.lost_ranges(
                session, issue.id, s.batch_size, timedelta(seconds=s.requeue_after_seconds)))
            for issue in sending
        }
    done: dict[str, int] = {}
    for slug, (issue_id, ranges) in plans.items():
        if ranges:
            enqueue(runtime, issue_id, ranges)
            log.info("sweep: %s batches of issue %s handed back to the workers", len(ranges), slug)
        finish_if_done(runtime, issue_id)
        done[slug] = len(ranges)
    return done


def progress(
    sessions: sessionmaker[Session], slug: str, window_seconds: int = 60
) -> dict[str, float]:
    """Current rate (messages/s over the last minute) and the estimated time left."""
    with sessions() as session:
        issue = get_issue(session, slug)
        recent = ledger.sent_since(session, issue.id, utcnow() - timedelta(seconds=window_seconds))
        by_status = ledger.counts(session, issue.id)
    rate = recent / window_seconds
    left = by_status["queued"] + by_status["sending"] + by_status["deferred"]
    return {"rate": rate, "eta_seconds": left / rate if rate else -1.0, "left": float(left)}
