"""Sending an issue: render its variants, plan the ledger, deliver batches, report.

`send_issue` runs in the CLI; `deliver_range` runs inside the `deliver_batch` task,
in-process (no broker) or on a Celery worker: the same code either way.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.approval import sendable
from newsletter.audience import audience_report
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
from newsletter.schedules import send_times
from newsletter.settings import Settings
from subscribers.tokens import subscriber_links
from worker import ledger
from worker.journal import Journal, Reply
from worker.mime import (
    MessageTemplate,
    Recipient,
    ascii_address,
    feedback_id,
    issue_key,
    message_id,
)
from worker.recording import Recorder, journal_directory, recover_replies
from worker.replies import classify, next_attempt
from worker.runtime import Runtime
from worker.transports import ConnectionFailure, Envelope, SenderProblem, TransportError
from worker.verp import bounce_address, unsubscribe_mailto

Progress = Callable[[dict[str, int]], None]
STATUS_CHECK_EVERY = 100  # messages between checks for pause/cancel, or...
STATUS_CHECK_SECONDS = 1.0  # ...this long, whichever comes first
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
    status: str = ""  # the issue's status when sending stopped (sent, sending, paused...)
    note: str = ""  # why it paused, and what to do


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


TEMPLATE_CACHE = 64  # variants kept encoded per worker process
_templates: OrderedDict[tuple[str, int, str, str, str], MessageTemplate] = OrderedDict()


def _template(
    runtime: Runtime, session: Session, issue: Issue, variant: Variant
) -> MessageTemplate:
    """A variant's message, encoded once per worker process and reused for every recipient.

    The key names the database and the issue's creation time as well as its id: an id
    can come back (SQLite reuses a deleted row's id), and its variants must not."""
    key = (str(session.get_bind().engine.url), issue.id, issue.created_at.isoformat(),
           variant.language, variant.country)
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
            list_id=s.resolved_list_id,
            reply_to=s.reply_to,
            feedback=feedback_id(issue.slug, s.resolved_list_id, s.sender_domain),
            slots=(UNSUBSCRIBE, PREFERENCES),
        )
        while len(_templates) > TEMPLATE_CACHE:
            _templates.popitem(last=False)
    _templates.move_to_end(key)
    return _templates[key]


def _issue_status(session: Session, issue_id: int) -> str | None:
    return session.scalar(select(Issue.status).where(Issue.id == issue_id))


def deliver_range(
    runtime: Runtime, issue_id: int, lo: int, hi: int, *,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, int]:
    """Claim, send and record the deliveries in [lo, hi]; returns counts of outcomes.

    Safe to run twice and alongside other workers: rows are claimed with a lease and a
    fencing token (their attempt number), the lease is renewed while the batch runs
    (rate limits can make it long), and a row another worker took over is skipped.
    Replies go to the journal at once and to the ledger in groups (worker/recording.py);
    the journals of dead workers are applied before anything is claimed. A pause or a
    cancel is seen within STATUS_CHECK_SECONDS, and before any message a rate limit
    held back.
    """
    settings = runtime.settings
    lease = timedelta(seconds=settings.lease_seconds)
    outcome: Counter[str] = Counter()
    journal_dir = journal_directory(settings.resolved_journal_dir,
                                    runtime.sessions.kw["bind"].url)
    with runtime.batch_session() as session, Journal(journal_dir) as journal:
        recover_replies(session, journal_dir)
        issue = session.get(Issue, issue_id)
        if issue is None or issue.status != "sending":
            return {}
        outcome["skipped"] = ledger.drop_ineligible(
            session, issue_id, lo, hi, audience_of(session, issue))
        claimed = ledger.claim(session, issue_id, lo, hi, lease)
        recorder = Recorder(session, journal, every=settings.record_every,
                            seconds=settings.record_seconds, clock=clock)
        renewed_at = checked_at = clock()
        checked_n = 0
        held = {row.delivery_id for row in claimed}
        sender_problems = 0
        try:
            for n, row in enumerate(claimed):
                runtime.transport.ready()  # the rate limits may hold us here for a while
                if (n - checked_n >= STATUS_CHECK_EVERY
                        or clock() - checked_at >= STATUS_CHECK_SECONDS):
                    state = _issue_status(session, issue_id)
                    if state != "sending":
                        ledger.release(session, [r.delivery_id for r in claimed[n:]])
                        if state == "cancelled":
                            ledger.cancel(session, issue_id)
                        outcome["released"] += len(claimed) - n
                        break
                    checked_at, checked_n = clock(), n
                if clock() - renewed_at > lease.total_seconds() / 3:
                    held = ledger.renew(
                        session, [(r.delivery_id, r.attempts) for r in claimed[n:]], lease)
                    renewed_at = clock()
                if row.delivery_id not in held:
                    outcome["taken_over"] += 1  # its lease ran out; another worker has it
                    continue
                attempt = _attempt(runtime, session, issue, row)
                reply = _reply(settings, row, attempt, runtime.transport.last_relay)
                recorder.add(reply)
                outcome[reply.status] += 1
                sender_problems = sender_problems + 1 if attempt.sender_problem else 0
                if attempt.connection_lost or sender_problems >= SENDER_PROBLEM_PAUSE:
                    recorder.flush()
                    if sender_problems >= SENDER_PROBLEM_PAUSE:
                        _pause_for_sender_problem(session, issue, reply.reply)
                    # relays unreachable, or our setup refused: hand the rest back untouched
                    ledger.release(session, [r.delivery_id for r in claimed[n + 1 :]])
                    outcome["released"] += len(claimed) - n - 1
                    break
        finally:
            recorder.flush()  # if the database is away, the journal keeps them for next time
    return {k: v for k, v in outcome.items() if v}


def _reply(settings: Settings, row: ledger.Claimed, attempt: Attempt, relay: str) -> Reply:
    """What goes into the journal, then the ledger, for one attempt."""
    status, reply = attempt.status, attempt.reply
    retry_at = None
    if status == "deferred":
        retry_at = next_attempt(
            row.attempts, row.first_attempt_at, utcnow(),
            base_seconds=settings.retry_base_seconds,
            max_delay_seconds=settings.retry_max_delay_seconds,
            give_up_after_seconds=settings.retry_for_seconds,
        )
        if retry_at is None:
            status, reply = "failed", f"gave up after repeated temporary failures: {reply}"
    return Reply(row.delivery_id, row.attempts, status, reply[:1000], attempt.message_id,
                 attempt.code, relay, retry_at, utcnow(), suppress=attempt.suppress,
                 subscriber_id=row.subscriber_id, email=row.email)


@dataclass(frozen=True)
class Attempt:
    status: str
    reply: str
    code: int | None
    message_id: str
    sender_problem: bool = False  # our setup is refused: no recipient is to blame
    connection_lost: bool = False  # no relay reachable: the rest of the batch waits
    suppress: bool = False  # the mailbox does not exist (5.1.x): never mail it again


def _attempt(
    runtime: Runtime, session: Session, issue: Issue, row: ledger.Claimed
) -> Attempt:
    """Build and send one message, and say what came of it."""
    settings = runtime.settings
    key = issue_key(settings.secret_key, issue.id, issue.created_at)
    mid = message_id(issue.slug, row.delivery_id, settings.sender_domain, key)
    bounces_to = bounce_address(settings.secret_key, settings.resolved_bounce_domain,
                                row.delivery_id, key)
    try:
        unsubscribe, preferences = subscriber_links(
            settings.public_base_url, settings.secret_key, row.subscriber_id, row.token_salt
        )
        message, dot_safe = _template(runtime, session, issue, row.variant).render_checked(
            Recipient(row.name, row.email, mid, unsubscribe,
                      {UNSUBSCRIBE: unsubscribe, PREFERENCES: preferences},
                      unsubscribe_mailto(bounces_to))
        )
        envelope = Envelope(bounces_to, ascii_address(row.email), message, mid, dot_safe)
    except (ValueError, UnicodeError, NewsletterError) as exc:
        # this message cannot be made (a bad link setting, an odd address): say so and
        # go on, rather than crash the batch again at every retry
        return Attempt("failed", f"could not build the message: {exc}", None, mid)
    try:
        reply = runtime.transport.send(envelope)
    except SenderProblem as exc:
        return Attempt("failed", str(exc), exc.code, mid, sender_problem=True)
    except ConnectionFailure as exc:
        return Attempt("deferred", str(exc), None, mid, connection_lost=True)
    except TransportError as exc:
        result = classify(exc.code, str(exc))
        return Attempt(result.status, str(exc), exc.code, mid,
                       sender_problem=result.sender_problem, suppress=result.suppress)
    code = int(reply[:3]) if reply[:3].isdigit() else 250
    return Attempt("sent", reply, code, mid)


def _pause_for_sender_problem(session: Session, issue: Issue, reply: str) -> None:
    note = (
        f"paused: the mail server refuses our messages for a policy reason ({reply[:200]}). "
        "This is the sending setup (SPF/DKIM, relay login or permissions), not the "
        f"subscribers: fix it, then `newsletter issues retry {issue.slug} --status failed` "
        f"and `newsletter issues resume {issue.slug}`"
    )
    # only a sending issue pauses: a cancel that came meanwhile stands
    session.execute(
        update(Issue).where(Issue.id == issue.id, Issue.status == "sending")
        .values(status="paused", status_note=note)
    )
    log.error("issue %s %s", issue.slug, note)


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


def plan_issue(settings: Settings, session: Session, issue: Issue) -> int:
    """Plan the ledger for everyone in the issue's audience who has no row yet, each row
    with its not_before (the schedule's instant, or the local time in their zone)."""
    return ledger.plan(
        session,
        issue.id,
        languages=settings.languages,
        default_language=settings.default_language,
        focus_countries=sorted(countries_of(issue)),
        audience=audience_of(session, issue),
        not_before=send_times(issue),
    )


def plan_scheduled(settings: Settings, sessions: sessionmaker[Session], slug: str) -> int | None:
    """Plan a scheduled issue's deliveries now (each row with its not_before), as
    `issues schedule` does, so `issues deliveries` shows when each goes before sending
    starts; None when the issue is no longer scheduled (or was started meanwhile)."""
    try:
        with sessions() as session, session.begin():
            issue = session.scalar(select(Issue).where(Issue.slug == slug))
            if issue is None or issue.status != "scheduled":
                return None
            return plan_issue(settings, session, issue)
    except IntegrityError:  # a scheduler started it and planned the same rows meanwhile
        return None


def _prepare(
    runtime: Runtime, session: Session, issue: Issue
) -> tuple[int, list[Variant], list[tuple[int, int]]]:
    """Plan the ledger (newcomers get a row), render the variants it needs, and find the
    ranges claimable now: what `issues send` and the scheduler both do before enqueueing."""
    settings = runtime.settings
    planned = plan_issue(settings, session, issue)
    if not ledger.total(session, issue.id):
        raise SendError(audience_report(
            session, issue, settings.languages, settings.default_language
        ).empty_explanation())
    needed = render_missing_variants(runtime, session, issue)
    ranges = ledger.batch_ranges(session, issue.id, settings.batch_size)
    if ranges or ledger.has_pending(session, issue.id):
        issue.status, issue.status_note = "sending", ""
    return planned, needed, ranges


def start_issue(
    runtime: Runtime, issue_id: int, *, progress: Progress | None = None
) -> SendSummary | None:
    """Start a scheduled issue that fell due, if this process is the one to claim it.

    The claim (scheduled -> sending, one conditional UPDATE) and the plan are one
    transaction: a second scheduler waits for it and then finds nothing to claim, and a
    process that dies before the commit leaves the issue scheduled for the next round.
    After the commit the ledger carries on its own (the sweep re-enqueues what a dead
    process left). Whether it may go out (approval, catch-up) is the caller's to decide
    (worker/scheduler.py). Returns None when the issue was not ours to start."""
    for attempt in (1, 2):
        try:
            with runtime.sessions() as session, session.begin():
                claimed = session.execute(
                    update(Issue).where(Issue.id == issue_id, Issue.status == "scheduled")
                    .values(status="sending", status_note="")
                    .returning(Issue.id)
                ).first() is not None
                if not claimed:
                    return None
                issue = session.get(Issue, issue_id, populate_existing=True)
                assert issue is not None  # the row we just updated
                planned, needed, ranges = _prepare(runtime, session, issue)
                slug = issue.slug
            break
        except IntegrityError:
            # an `issues send` planned the same rows at the same moment: plan again
            if attempt == 2:
                raise
    summary = SendSummary(slug, planned, len(ranges), variants=[v.label for v in needed])
    enqueue(runtime, issue_id, ranges, progress)
    summary.counts = counts(runtime, issue_id)
    finish_if_done(runtime, issue_id)
    summary.status, summary.note = _state(runtime, issue_id)
    return summary


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
                why = sendable(issue)
                if why:
                    raise SendError(f"issue {slug!r} {why}")
                planned, needed, ranges = _prepare(runtime, session, issue)
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
            if _state(runtime, issue_id)[0] != "sending":
                break  # paused (by someone, or by itself) or cancelled: nothing more comes
            if timeout is not None and time.monotonic() - started > timeout:
                break
            time.sleep(poll_seconds)
    summary.counts = counts(runtime, issue_id)
    finish_if_done(runtime, issue_id)
    summary.status, summary.note = _state(runtime, issue_id)
    return summary


def _state(runtime: Runtime, issue_id: int) -> tuple[str, str]:
    with runtime.sessions() as session:
        issue = session.get(Issue, issue_id)
        return (issue.status, issue.status_note) if issue else ("", "")


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
