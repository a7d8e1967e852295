"""Approval: an issue created with approval "required" goes out only once approved.

The review is its own axis beside the issue's status: "" (not submitted) -> in_review ->
approved | rejected; a rejected issue can be changed and submitted again; an issue in
review or approved that is changed, or withdrawn by hand, is back to "" (not submitted).
Nobody approves an issue they submitted. Every step is an IssueReview row: who, what,
when, and a note. Pure of the clock: `now` (naive UTC) is passed in.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from newsletter.errors import N_, Message, NewsletterError, Term
from newsletter.models import Issue, IssueReview

APPROVAL_POLICIES = ("none", "required")
MAX_NAME = 200
MAX_NOTE = 2000
# steps that can still change: a sent, sending or cancelled issue's review is history
REVIEWABLE = ("draft", "scheduled")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_NAME_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


_NAMED = re.compile(r"(?P<name>[^<>]*)<(?P<address>[^<>]+)>")


class ApprovalError(NewsletterError):
    """An approval step cannot be taken as asked."""


def clean_name(raw: str) -> str:
    """Who took a step: free text on one line, 1-200 characters once trimmed."""
    name = unicodedata.normalize("NFC", raw).strip()
    if not name:
        raise ApprovalError("--by is empty: give the name of the person taking this step")
    if _NAME_CONTROL.search(name):
        raise ApprovalError("--by holds a line break or a control character: give a name "
                            "on one line")
    if len(name) > MAX_NAME:
        raise ApprovalError(f"--by is longer than {MAX_NAME} characters: give a shorter name")
    return name


def clean_note(raw: str | None) -> str:
    """A note: free text (line breaks allowed), at most 2000 characters once trimmed."""
    note = unicodedata.normalize("NFC", (raw or "").replace("\r\n", "\n")).strip()
    if _CONTROL.search(note):
        raise ApprovalError.translatable(
            N_("the note holds a control character: give plain text"), hint=" (--note)")
    if len(note) > MAX_NOTE:
        raise ApprovalError.translatable(
            N_("the note is longer than %(max)s characters: shorten it"), max=MAX_NOTE,
            hint=" (--note)")
    return note


def _check(issue: Issue, step: str) -> None:
    if issue.approval != "required":
        raise ApprovalError.translatable(
            N_("issue %(slug)r does not need approval: nothing to submit, approve or reject"),
            slug=issue.slug, hint=" (it was created with --approval none)")
    if issue.status not in REVIEWABLE:
        raise ApprovalError.translatable(
            N_("issue %(slug)r is %(status)s: it can no longer be %(step)s"),
            slug=issue.slug, status=Term(issue.status), step=Term(step))


def _move(session: Session, issue: Issue, to: str) -> None:
    """Set the review state to `to` only if the database still holds the state (and a
    reviewable status) this step was checked against: two people acting at once (one
    rejects while the other approves) never overwrite each other's step."""
    moved = session.execute(
        update(Issue)
        .where(Issue.id == issue.id, Issue.review == issue.review,
               Issue.status.in_(REVIEWABLE))
        .values(review=to)
        .returning(Issue.id)
        .execution_options(synchronize_session=False)
    ).first()
    if moved is None:
        raise ApprovalError.translatable(
            N_("issue %(slug)r was changed meanwhile by someone else: look again and retry"),
            slug=issue.slug, hint=f" (`newsletter issues show {issue.slug}`)")
    set_committed_value(issue, "review", to)


def _record(session: Session, issue: Issue, action: str, by: str, note: str,
            now: datetime) -> IssueReview:
    step = IssueReview(issue_id=issue.id, action=action, by=by, note=note, at=now)
    session.add(step)
    session.flush()
    return step


def submit(session: Session, issue: Issue, by: str, note: str | None = None, *,
           now: datetime) -> IssueReview:
    """Ask for approval: a draft or a rejected issue goes into review."""
    _check(issue, "submitted")
    name, text = clean_name(by), clean_note(note)
    if issue.review == "in_review":
        raise ApprovalError.translatable(
            N_("issue %(slug)r is already in review"), slug=issue.slug,
            hint=f": `newsletter issues approve {issue.slug} --by NAME` or `reject` it")
    if issue.review == "approved":
        raise ApprovalError.translatable(N_("issue %(slug)r is already approved"),
                                         slug=issue.slug)
    _move(session, issue, "in_review")
    return _record(session, issue, "submitted", name, text, now)


def submitter(session: Session, issue: Issue) -> str | None:
    """Who submitted the issue for the review now under way."""
    return session.scalar(
        select(IssueReview.by)
        .where(IssueReview.issue_id == issue.id, IssueReview.action == "submitted")
        .order_by(IssueReview.at.desc(), IssueReview.id.desc())
        .limit(1))


def _in_review(issue: Issue, step: str) -> None:
    if issue.review != "in_review":
        template = {
            "": N_("issue %(slug)r has not been submitted, so it cannot be %(step)s"),
            "approved": N_("issue %(slug)r is already approved, so it cannot be %(step)s"),
            "rejected": N_("issue %(slug)r was rejected, so it cannot be %(step)s"),
        }.get(issue.review, N_("issue %(slug)r is %(review)s, so it cannot be %(step)s"))
        hint = (f": `newsletter issues submit {issue.slug} --by NAME` first"
                if issue.review in ("", "rejected") else "")
        raise ApprovalError.translatable(template, slug=issue.slug, step=Term(step),
                                         review=Term(issue.review), hint=hint)


def approve(session: Session, issue: Issue, by: str, note: str | None = None, *,
            now: datetime) -> IssueReview:
    """Approve an issue in review; the person who submitted it cannot."""
    _check(issue, "approved")
    name, text = clean_name(by), clean_note(note)
    _in_review(issue, "approved")
    asked = submitter(session, issue)
    if asked is not None and identities(asked) & identities(name):
        raise ApprovalError.translatable(
            N_("%(by)s submitted issue %(slug)r: somebody else must approve it (nobody "
               "approves their own issue)"), by=asked, slug=issue.slug)
    _move(session, issue, "approved")
    return _record(session, issue, "approved", name, text, now)


def identities(by: str) -> set[str]:
    """Who a `--by` names, in every spelling one person uses: "Ana Mora <ana@example.org>"
    (the newsroom) is "Ana Mora" and "ana@example.org" (the CLI), whatever the case."""
    whole = " ".join(by.split()).casefold()
    found = _NAMED.fullmatch(whole)
    if found is None:
        return {whole}
    return {part for part in (whole, found["name"].strip(), found["address"].strip()) if part}


def reject(session: Session, issue: Issue, by: str, note: str | None, *,
           now: datetime) -> IssueReview:
    """Send an issue in review back, saying why (the note is required)."""
    _check(issue, "rejected")
    name, text = clean_name(by), clean_note(note)
    if not text:
        raise ApprovalError.translatable(
            N_("a rejection needs a note: say what has to change"), hint=" (--note)")
    _in_review(issue, "rejected")
    _move(session, issue, "rejected")
    return _record(session, issue, "rejected", name, text, now)


def withdraw(session: Session, issue: Issue, by: str, note: str | None = None, *,
             now: datetime) -> IssueReview:
    """Take an issue in review, or approved, back out: it is not submitted any more and
    must be submitted and approved again before it goes out. An author withdraws it by
    hand; a change to its content (newsletter.issue_edits) withdraws it by itself, so that
    what goes out is what was approved."""
    _check(issue, "withdrawn")
    name, text = clean_name(by), clean_note(note)
    if issue.review not in ("in_review", "approved"):
        template = {
            "": N_("issue %(slug)r has not been submitted: there is nothing to withdraw"),
            "rejected": N_("issue %(slug)r was rejected: there is nothing to withdraw"),
        }.get(issue.review, N_("issue %(slug)r is %(review)s: there is nothing to withdraw"))
        raise ApprovalError.translatable(template, slug=issue.slug,
                                         review=Term(issue.review))
    _move(session, issue, "")
    return _record(session, issue, "withdrawn", name, text, now)


def history(session: Session, issue: Issue) -> list[IssueReview]:
    """Every step of the issue's approval, oldest first."""
    return list(session.scalars(
        select(IssueReview).where(IssueReview.issue_id == issue.id)
        .order_by(IssueReview.at, IssueReview.id)))


def sendable(issue: Issue) -> str | None:
    """Why the issue may not go out now as far as approval goes, or None if it may."""
    why = waiting_for(issue)
    return None if why is None else str(why)


def waiting_for(issue: Issue) -> Message | None:
    """`sendable` as a message an interface translates (the CLI's commands as its hint)."""
    if issue.approval != "required" or issue.review == "approved":
        return None
    slug = issue.slug
    if issue.review == "in_review":
        return Message(N_("needs approval: it is in review"),
                       hint=f"; `newsletter issues approve {slug} --by NAME`")
    if issue.review == "rejected":
        return Message(N_("needs approval: it was rejected"),
                       hint=f"; change it, then `newsletter issues submit {slug} --by NAME` "
                            "and have someone else approve it")
    return Message(N_("needs approval: it has not been submitted"),
                   hint=f"; `newsletter issues submit {slug} --by NAME`, then someone else "
                        "approves it")
