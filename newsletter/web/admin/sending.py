"""Sending an issue: review (submit, approve, reject), schedule, send now, progress,
pause / resume / cancel / retry, and a test-send to yourself.

Everything is the library's: newsletter.approval, newsletter.schedules,
newsletter.audience, worker.delivery, worker.control, worker.ledger; starting a send
goes through worker.background (in the request with a broker, on a thread without).
Roles: an editor submits, sends tests and watches; an approver (or admin) approves,
rejects, schedules, sends and steers a send. Whoever submitted an issue, or an approver,
may withdraw it (back to not submitted, as `issues withdraw`). Nobody approves an issue
they submitted (the library compares the names: `User.display_name` is the `by` of every
step).
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, jsonify, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from newsletter import approval, schedules
from newsletter.audience import audience_report
from newsletter.db import transaction, utcnow
from newsletter.errors import NewsletterError
from newsletter.issue_calendar import series_of
from newsletter.issues import IssueNotFound, countries_of, get_issue
from newsletter.models import Issue
from newsletter.variants import parse_variant
from newsletter.web.admin.core import (
    explain,
    gettext,
    render,
    see_other,
    sessions,
    settings,
    status_label,
    templates_dir,
)
from newsletter.web.auth import current_user, require
from worker import background, control, ledger
from worker.delivery import plan_issue
from worker.preflight import mailing_blocker

STEPS = ("submit", "approve", "reject", "withdraw")
CONTROLS = ("pause", "resume", "cancel", "retry")
RETRYABLE = ("deferred", "failed")
FIELD_MAX = 200


def by_user() -> str:
    """Who takes a step or makes a change, as approvals record it: "Name <address>"
    (users.User.display_name), unique per person. The issue pages use it too."""
    return current_user().display_name


def _issue(db: Any, slug: str) -> Issue:
    try:
        return get_issue(db, slug[:FIELD_MAX])
    except IssueNotFound:
        abort(404)


def _field(name: str) -> str:
    return request.form.get(name, "")[:FIELD_MAX * 10]


# --- review -----------------------------------------------------------------------------

def _submitted_by_me(submitter: str | None) -> bool:
    """Whether the logged-in user submitted the issue (in any spelling of their name)."""
    return submitter is not None and bool(
        approval.identities(submitter) & approval.identities(by_user()))


def _review_page(slug: str, code: int = 200, problem: str = "", note: str = "") -> Response:
    with sessions()() as db:
        issue = _issue(db, slug)
        steps = approval.history(db, issue)
        asked = approval.submitter(db, issue)
        db.expunge_all()
    mine = _submitted_by_me(asked)
    return render("sending_review", code, issue=issue, steps=steps, submitter=asked,
                  me=by_user(), mine=mine,
                  can_withdraw=mine or current_user().may("issues.approve"),
                  message="", problem=problem, note=note, waiting=waiting_for(issue))


@require("newsroom.read")
def review(slug: str) -> BaseResponse:
    if request.method == "GET":
        return _review_page(slug)
    step, note = request.form.get("action", ""), _field("note")
    if step not in STEPS:
        return _review_page(slug, 400, problem=gettext(
            "Choose submit, approve, reject or withdraw."), note=note)
    if not current_user().may("issues.approve" if step in ("approve", "reject")
                              else "issues.change"):
        abort(403)
    try:
        with transaction(sessions()) as db:
            issue = _issue(db, slug)
            if step == "withdraw" and not (current_user().may("issues.approve") or
                                           _submitted_by_me(approval.submitter(db, issue))):
                abort(403)
            do = {"submit": approval.submit, "approve": approval.approve,
                  "reject": approval.reject, "withdraw": approval.withdraw}[step]
            do(db, issue, by_user(), note, now=utcnow())
            slug = issue.slug
    except NewsletterError as exc:
        return _review_page(slug, 400, problem=explain(exc), note=note)
    done = {"submit": gettext("Submitted for approval."), "approve": gettext("Approved."),
            "reject": gettext("Rejected; the note says why."),
            "withdraw": gettext("Withdrawn: the issue is not submitted any more; submit it "
                                "again when it is ready.")}[step]
    return see_other(done, "admin.sending_review", slug=slug)


# --- schedule ---------------------------------------------------------------------------

def _schedule_page(slug: str, code: int = 200, *, problem: str = "",
                   form: dict[str, str] | None = None) -> Response:
    with sessions()() as db:
        issue = _issue(db, slug)
        shown = schedules.describe(issue)
        zone = _default_zone(db, issue)
        result = schedules.current_schedule(db, issue)
        planned = ledger.total(db, issue.id) if result is not None else None
        db.expunge_all()
    values = {"mode": "at", "day": "", "time": "", "zone": zone}
    if shown:
        values.update(day=shown["local"][:10], time=shown["local"][11:16],
                      zone=shown["timezone"])
        if issue.send_local_time:
            values.update(mode="local", time=issue.send_local_time,
                          day=str(issue.send_on or ""))
    values.update(form or {})
    return render("sending_schedule", code, issue=issue, shown=shown, result=result,
                  planned=planned, message="", problem=problem, form=values,
                  waiting=waiting_for(issue))


def _default_zone(db: Any, issue: Issue) -> str:
    """The zone times are read in when none is given, as `issues schedule`: the zone of
    the issue's series, else UTC."""
    return series_of(db, issue)[1] or "UTC"


@require("issues.schedule")
def schedule(slug: str) -> BaseResponse:
    if request.method == "GET":
        return _schedule_page(slug)
    form = {k: _field(k).strip() for k in ("mode", "day", "time", "zone")}
    if request.form.get("action") == "unschedule":
        try:
            with transaction(sessions()) as db:
                removed = schedules.unschedule_issue(db, _issue(db, slug))
        except NewsletterError as exc:
            return _schedule_page(slug, 400, problem=explain(exc), form=form)
        return see_other(gettext(
            "Unscheduled: the issue is a draft again (%(n)s planned deliveries removed).",
            n=removed), "admin.sending_schedule", slug=slug)
    try:
        with transaction(sessions()) as db:
            issue = _issue(db, slug)
            zone = schedules.parse_zone(form["zone"] or _default_zone(db, issue),
                                        gettext("Time zone"))
            day = schedules.parse_day(form["day"])
            wall = schedules.parse_wall_time(form["time"])
            if form["mode"] == "local":
                schedules.schedule_issue(db, issue, local_time=wall, on=day, timezone=zone,
                                         now=utcnow())
            else:
                at = schedules.parse_instant(f"{day.isoformat()} {wall:%H:%M}", zone)
                schedules.schedule_issue(db, issue, at=at, timezone=zone, now=utcnow())
            plan_issue(settings(), db, issue)
            slug = issue.slug
    except NewsletterError as exc:
        return _schedule_page(slug, 400, problem=explain(exc), form=form)
    return see_other(gettext("Scheduled."), "admin.sending_schedule", slug=slug)


# --- send now ---------------------------------------------------------------------------

def _send_page(slug: str, code: int = 200, problem: str = "") -> Response:
    s = settings()
    with sessions()() as db:
        issue = _issue(db, slug)
        report = audience_report(db, issue, s.languages, s.default_language)
        db.expunge_all()
    return render("sending_send", code, issue=issue, report=report,
                  blocked=_why_not(issue), message="", problem=problem)


def _why_not(issue: Issue) -> str:
    """Why `issue` may not be sent now (background.check_can_send decides), said in the
    reader's language with what to do in the newsroom; "" when it may."""
    s = settings()
    blocked = mailing_blocker(s)
    if blocked:
        return blocked  # the operator's to fix, in the settings or DNS (English)
    try:
        background.check_can_send(s, issue, utcnow(), preflight=False)
    except NewsletterError as exc:
        if issue.status == "scheduled" and issue.send_at:
            return gettext("This issue is scheduled for %(utc)s UTC: unschedule it first to "
                           "send it now.", utc=issue.send_at.strftime("%Y-%m-%d %H:%M"))
        if issue.status == "paused":
            return gettext("This issue is paused: resume it first, on the Progress page.")
        if issue.status == "cancelled":
            return gettext("This issue was cancelled: it cannot be sent.")
        return waiting_for(issue) or explain(exc)
    return ""


def waiting_for(issue: Issue) -> str:
    """What approval still needs before `issue` may go out (approval.sendable decides),
    in the reader's language and with the newsroom's steps, not the CLI's; "" if none."""
    if not approval.sendable(issue):
        return ""
    if issue.review == "in_review":
        return gettext("It needs approval first: someone other than the person who "
                       "submitted it approves it on the Review page.")
    if issue.review == "rejected":
        return gettext("It was rejected: change it, submit it again on the Review page, "
                       "and have someone else approve it.")
    return gettext("It needs approval first: submit it on the Review page, then "
                   "someone else approves it.")


@require("issues.send")
def send(slug: str) -> BaseResponse:
    if request.method == "GET" or request.form.get("confirm") != "yes":
        return _send_page(slug)
    s = settings()
    try:
        with sessions()() as db:
            issue = _issue(db, slug)
            why = _why_not(issue)
            if why:
                raise NewsletterError(why)
            if not audience_report(db, issue, s.languages, s.default_language).recipients:
                raise NewsletterError(gettext("Nobody would receive this issue."))
            slug = issue.slug
        background.start_send(background.runtime_for(s, sessions()), slug)
    except NewsletterError as exc:
        return _send_page(slug, 400, problem=explain(exc))
    return redirect(url_for("admin.sending_progress", slug=slug, started=1), 303)


# --- progress ---------------------------------------------------------------------------

def _progress(slug: str) -> dict[str, Any]:
    with sessions()() as db:
        issue = _issue(db, slug)
        by_status = ledger.counts(db, issue.id)
        state, note = issue.status, issue.status_note
    pace = control.progress(sessions(), slug)
    total = sum(by_status.values())
    left = by_status.get("queued", 0) + by_status.get("sending", 0)
    eta = pace["eta_seconds"]
    return {"issue": slug, "status": state, "status_label": status_label(state), "note": note,
            "counts": by_status, "total": total, "done": total - left,
            "rate": round(pace["rate"], 2),
            "eta_seconds": None if eta < 0 else round(eta),
            "eta": "" if eta < 0 else _duration(eta)}


def _duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@require("newsroom.read")
def progress(slug: str) -> Response:
    return render("sending_progress", 200, issue_slug=slug, p=_progress(slug),
                  message=gettext("Sending started.") if request.args.get("started") else "",
                  problem="", retryable=RETRYABLE)


@require("newsroom.read")
def progress_json(slug: str) -> Response:
    return jsonify(_progress(slug))


@require("newsroom.read")
def script() -> Response:
    js = (templates_dir() / "static" / "sending.js").read_bytes()
    response = Response(js, 200, mimetype="text/javascript")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@require("issues.send")
def steer(slug: str) -> BaseResponse:
    """Pause, resume, retry at once; cancel asks first (a page, no script needed)."""
    action = request.form.get("action", "")
    if action not in CONTROLS:
        abort(400)
    if action == "cancel" and request.form.get("confirm") != "yes":
        with sessions()() as db:  # ask only about an issue there is
            return render("sending_cancel", issue_slug=_issue(db, slug).slug)
    s = settings()
    runtime = background.runtime_for(s, sessions())
    try:
        with sessions()() as db:
            slug = _issue(db, slug).slug
        if action in ("resume", "retry"):
            problem = mailing_blocker(s)
            if problem:
                raise NewsletterError(problem)
        if action == "pause":
            control.pause(runtime, slug)
            message = gettext("Paused: messages in flight finish, nothing more goes out.")
        elif action == "cancel":
            left = control.cancel(runtime, slug)
            message = gettext("Cancelled: %(n)s messages will not go out.", n=left)
        elif action == "resume":
            with sessions()() as db:
                if _issue(db, slug).status != "paused":
                    raise control.ControlError(gettext("Only a paused issue can be resumed."))
            background.run(runtime, lambda: control.resume(runtime, slug), f"resume-{slug}")
            message = gettext("Resumed.")
        else:
            status = request.form.get("status", "")
            if status not in RETRYABLE:
                raise control.ControlError(gettext("Retry deferred or failed messages."))
            count = control.retry(runtime, slug, status) if s.broker_url else _retry_later(
                runtime, slug, status)
            message = gettext("Retrying %(n)s messages.", n=count)
    except NewsletterError as exc:
        return render("sending_progress", 400, issue_slug=slug, p=_progress(slug),
                      message="", problem=explain(exc), retryable=RETRYABLE)
    return see_other(message, "admin.sending_progress", slug=slug)


def _retry_later(runtime: Any, slug: str, status: str) -> int:
    """Without a broker: count what would be retried now, then retry on a thread."""
    with sessions()() as db:
        issue = _issue(db, slug)
        if issue.status == "cancelled":
            raise control.ControlError(f"issue {slug!r} was cancelled")
        count = ledger.counts(db, issue.id).get(status, 0)
    background.run(runtime, lambda: control.retry(runtime, slug, status), f"retry-{slug}")
    return count


# --- test-send --------------------------------------------------------------------------

def _variants(issue: Issue) -> list[str]:
    s = settings()
    countries = sorted(countries_of(issue))
    return [f"{lang}-{c}" for lang in s.languages for c in [*countries, "regional"]]


@require("issues.change")
def test_send(slug: str) -> BaseResponse:
    with sessions()() as db:
        issue = _issue(db, slug)
        variants = _variants(issue)
        db.expunge_all()
    if request.method == "GET":  # after a test, the variant sent is chosen again
        return render("sending_test", issue=issue, variants=variants,
                      chosen=request.args.get("variant", "")[:FIELD_MAX], message="",
                      problem="")
    chosen = _field("variant")
    user = current_user()
    try:
        if chosen not in variants:
            raise NewsletterError(gettext("Choose one of the variants listed."))
        problem = mailing_blocker(settings())
        if problem:
            raise NewsletterError(problem)
        runtime = background.runtime_for(settings(), sessions())
        result = control.test_send(runtime, issue.slug, user.email,
                                   parse_variant(chosen, settings().languages))
    except NewsletterError as exc:
        return render("sending_test", 400, issue=issue, variants=variants, chosen=chosen,
                      message="", problem=explain(exc))
    return see_other(gettext("%(variant)s sent to %(to)s.", variant=result.variant,
                             to=result.to), "admin.sending_test", slug=issue.slug,
                     variant=chosen)
