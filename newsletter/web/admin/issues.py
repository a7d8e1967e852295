"""The Issues screen: the calendar, creating an issue (from a date window or a series'
next period), one issue's page (what `issues show` shows, its items chosen and ordered,
its titles, introductions, country focus and audience: its lists and segments) and the
preview of every variant.

Editors and above (every role) read and change issues here; the library the CLI calls
does the work (`issues.create_issue`, `series.build_series`, `issue_edits`, `preview`).
A change that drops planned deliveries of a scheduled issue plans them again at once, as
the CLI's `issues items`/`issues edit` do. Submitting, approving, scheduling and sending
live in `sending.py`; the issue page links to them when they are there.

Every successful POST answers 303 to the issue's page (Post/Redirect/Get) with what it
did in the notice: what changed, a withdrawn approval, deliveries planned again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from flask import Response, abort, request
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as BaseResponse

from newsletter import approval, schedules
from newsletter.approval import APPROVAL_POLICIES
from newsletter.audience import audience_report
from newsletter.db import transaction, utcnow
from newsletter.errors import NewsletterError
from newsletter.issue_calendar import calendar, series_of
from newsletter.issue_edits import (
    Edit,
    add_items,
    candidates,
    edit_issue,
    item_ids,
    move_item,
    remove_items,
)
from newsletter.issues import content_of, countries_of, create_issue, get_issue, targets_of
from newsletter.models import Issue
from newsletter.preview import preview_variants, render_preview
from newsletter.render import FOCUS_POLICIES, Variant, sender_from
from newsletter.series import build_series, list_series
from newsletter.web.admin.core import (
    N_,
    explain,
    gettext,
    language,
    render,
    see_other,
    sessions,
    settings,
    translations,
)
from newsletter.web.admin.sending import by_user, waiting_for
from newsletter.web.auth import require
from subscribers.lists import list_summaries
from subscribers.queries import audience
from subscribers.segments import list_segments

# the pages the sending screen (sending.py) adds, each taking `slug`; linked only when
# registered
# registered, and shown only to those who may use them (the permission each page needs)
SENDING_LINKS = (
    ("admin.sending_review", N_("Review and approval"), "newsroom.read"),
    ("admin.sending_test", N_("Test-send to yourself"), "issues.change"),
    ("admin.sending_schedule", N_("Schedule"), "issues.schedule"),
    ("admin.sending_send", N_("Send"), "issues.send"),
    ("admin.sending_progress", N_("Progress"), "newsroom.read"),
)
MAX_TARGETS = 500  # lists and segments checked at once; more is not a form of ours
MAX_FIELD = 20_000  # longer than any title or introduction; refused rather than stored
SHOWN_CANDIDATES = 50
VARIANT_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                  "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox")
PREVIEW_POLICY = ("default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' "
                  "data:; frame-src 'self'; form-action 'self'; base-uri 'none'; "
                  "frame-ancestors 'none'")


def _field(form: Mapping[str, str], name: str) -> str:
    value = form.get(name, "")
    if len(value) > MAX_FIELD:
        raise NewsletterError(gettext("A field is longer than %(n)s characters.", n=MAX_FIELD))
    return value


def _day(text: str, label: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise NewsletterError(gettext("%(field)s: give a date as YYYY-MM-DD.",
                                      field=label)) from None


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


# --- the calendar, creating and building --------------------------------------------------

def _list_page(code: int = 200, *, message: str = "", problem: str = "",
               form: Mapping[str, str] | None = None) -> Response:
    with sessions()() as db:
        issues, skipped = calendar(db)
        series = [s.slug for s in list_series(db)]
    return render("issues", code, issues=issues, skipped=skipped, series=series,
                  languages=settings().languages, focuses=FOCUS_POLICIES,
                  approvals=APPROVAL_POLICIES, form=form or {}, message=message,
                  problem=problem)


@require("newsroom.read")
def issues_page() -> Response:
    return _list_page()


@require("issues.change")
def create() -> BaseResponse:
    form = request.form
    languages = settings().languages
    try:
        slug = _field(form, "slug").strip()
        start = _day(_field(form, "from"), gettext("From"))
        end = _day(_field(form, "to"), gettext("To"))
        titles = {lang: _field(form, f"title-{lang}") for lang in languages}
        intros = {lang: _field(form, f"intro-{lang}") for lang in languages}
        every_intro = _field(form, "intro")
        if every_intro.strip():
            intros[""] = every_intro
        policy = form.get("approval", "none")
        if policy not in APPROVAL_POLICIES:
            raise NewsletterError(gettext("Approval: choose none or required."))
        with transaction(sessions()) as db:
            issue = create_issue(db, slug, start, end, _field(form, "title"),
                                 titles={k: v for k, v in titles.items() if v.strip()},
                                 intros={k: v for k, v in intros.items() if v.strip()},
                                 languages=languages, lists=_names(_field(form, "lists")),
                                 segments=_names(_field(form, "segments")),
                                 focus=form.get("focus", "first"))
            issue.approval = policy
            slug = issue.slug
    except NewsletterError as exc:
        return _list_page(400, problem=explain(exc), form=form)
    return see_other(gettext("Issue created."), "admin.issue", slug=slug)


@require("issues.change")
def build() -> BaseResponse:
    from worker.delivery import plan_scheduled

    form = request.form
    try:
        day_text = _field(form, "day").strip()
        day = _day(day_text, gettext("A date in the period")) if day_text else None
        result = build_series(sessions(), settings(), _field(form, "series"), day=day,
                              now=utcnow())
    except NewsletterError as exc:
        return _list_page(400, problem=explain(exc), form=form)
    if result.status == "built" and result.issue is not None:
        if result.send_at is not None:
            plan_scheduled(settings(), sessions(), result.issue)
        return see_other(gettext("Issue built from its series."), "admin.issue",
                         slug=result.issue)
    if result.status == "exists" and result.issue is not None:
        return see_other(gettext("That period's issue was built before: here it is."),
                         "admin.issue", slug=result.issue)
    message = gettext("Series %(series)s: nothing built (%(reason)s).",
                      series=result.series, reason=result.reason or result.status)
    if result.status == "failed":
        return _list_page(400, problem=message, form=form)
    return see_other(message, "admin.issues")  # skipped: too few items, said why


# --- one issue -------------------------------------------------------------------------

def _describe(db: Session, issue: Issue) -> dict[str, Any]:
    """What `issues show` shows (newsletter/cli/calendar.describe_issue), for the page."""
    config = settings()
    series, _zone = series_of(db, issue)
    lists, segments = targets_of(db, issue)
    report = audience_report(db, issue, config.languages, config.default_language)
    return {
        "slug": issue.slug, "title": issue.title, "titles": dict(issue.titles or {}),
        "intros": dict(issue.intros or {}), "focus": issue.focus,
        "date_from": issue.date_from, "date_to": issue.date_to,
        "status": issue.status, "status_note": issue.status_note,
        "series": series, "number": issue.number,
        "items": [e.item for e in issue.entries],
        "policy": issue.approval, "review": issue.review,
        "waiting_for": waiting_for(issue),
        "history": approval.history(db, issue),
        "schedule": schedules.describe(issue), "sent_at": issue.sent_at,
        "lists": lists, "segments": segments, "audience": report,
        "editable": issue.status in ("draft", "scheduled"),
        "all_lists": [found.name for found in list_summaries(db)],
        "all_segments": [found.name for found, _definition in list_segments(db)],
    }


def _issue_page(slug: str, code: int = 200, *, problem: str = "",
                form: Mapping[str, Any] | None = None) -> Response:
    args = request.args
    query = args.get("q", "")[:500]
    problem_search = ""
    with sessions()() as db:
        try:
            issue = get_issue(db, slug)
        except NewsletterError:
            abort(404)
        data = _describe(db, issue)
        found: list[Any] = []
        if data["editable"]:
            try:
                since = _day(args["since"], gettext("Since")) if args.get("since") else None
                until = _day(args["until"], gettext("Until")) if args.get("until") else None
                found = candidates(db, issue, since=since, until=until,
                                   country=args.get("country", "")[:10] or None,
                                   query=query, limit=SHOWN_CANDIDATES)
            except NewsletterError as exc:
                problem_search = explain(exc)
    return render("issue", code, issue=data, candidates=found, query=query,
                  since=args.get("since", "")[:20], until=args.get("until", "")[:20],
                  country=args.get("country", "")[:10], problem_search=problem_search,
                  languages=settings().languages, focuses=FOCUS_POLICIES,
                  sending_links=SENDING_LINKS, form=form or {}, problem=problem)


@require("newsroom.read")
def issue_page(slug: str) -> Response:
    return _issue_page(slug)


def _replan(db: Session, issue: Issue, edit: Edit) -> int:
    """As the CLI's `_replan`: a scheduled issue whose planned deliveries were dropped
    gets them planned again now."""
    if not edit.unplanned or issue.status != "scheduled":
        return 0
    from worker.delivery import plan_issue

    return plan_issue(settings(), db, issue)


def _done(db: Session, issue: Issue, edit: Edit, planned: int, *,
          audience_after: bool = False) -> str:
    """The notice after a change: what changed (or nothing), a withdrawn approval, the
    planned deliveries dropped and planned again, and, when asked, the audience now."""
    if not edit.changed:
        return gettext("Nothing changed.")
    parts = [gettext("Saved:") + " " + "; ".join(edit.changes) + "."]
    if edit.withdrawn is not None:
        was = gettext("This issue was approved.") if edit.withdrawn_from == "approved" \
            else gettext("This issue was in review.")
        parts.append(gettext("Approval withdrawn") + f": {was} "
                     + gettext("It changed, so it must be submitted and approved again before "
                               "it goes out."))
    if edit.unplanned:
        parts.append(gettext("%(dropped)s planned deliveries dropped, %(planned)s planned "
                             "again for the schedule.", dropped=edit.unplanned,
                             planned=planned))
    if audience_after:
        config = settings()
        report = audience_report(db, issue, config.languages, config.default_language)
        count = translations(language()).ngettext(
            "%(num)s subscriber", "%(num)s subscribers", report.recipients) % {
            "num": report.recipients}
        parts.append(gettext("Audience now: %(count)s.", count=count))
    return " ".join(parts)


def _item_id(form: Mapping[str, str]) -> int:
    try:
        return int(form.get("item", ""))
    except ValueError:
        raise NewsletterError(gettext("No such item.")) from None


@require("issues.change")
def change_items(slug: str) -> BaseResponse:
    """One button: up, down, remove or add an item (a form per button, no script)."""
    form = request.form
    action = form.get("action", "")
    try:
        item = _item_id(form)
        with transaction(sessions()) as db:
            issue = get_issue(db, slug)
            current = item_ids(issue)
            now, by = utcnow(), by_user()
            if action in ("up", "down") and item in current:
                position = current.index(item) + (0 if action == "up" else 2)
                position = min(max(position, 1), len(current))
                edit = move_item(db, issue, item, position, by=by, now=now)
            elif action == "remove":
                edit = remove_items(db, issue, [item], by=by, now=now)
            elif action == "add":
                edit = add_items(db, issue, [item], by=by, now=now)
            elif action in ("up", "down"):
                edit = move_item(db, issue, item, 1, by=by, now=now)  # says "not in issue"
            else:
                raise NewsletterError(gettext("Unknown action."))
            planned = _replan(db, issue, edit)
            message = _done(db, issue, edit, planned)
    except NewsletterError as exc:
        return _issue_page(slug, 400, problem=explain(exc))
    return see_other(message, "admin.issue", slug=slug, _anchor="items")


@require("issues.change")
def edit_texts(slug: str) -> BaseResponse:
    """Titles, introductions (per language and for every language) and country focus."""
    form = request.form
    languages = settings().languages
    try:
        titles = {"": _field(form, "title"),
                  **{lang: _field(form, f"title-{lang}") for lang in languages}}
        intros = {"": _field(form, "intro"),
                  **{lang: _field(form, f"intro-{lang}") for lang in languages}}
        with transaction(sessions()) as db:
            issue = get_issue(db, slug)
            edit = edit_issue(db, issue, titles=titles, intros=intros, languages=languages,
                              focus=form.get("focus", issue.focus), by=by_user(), now=utcnow())
            planned = _replan(db, issue, edit)
            message = _done(db, issue, edit, planned)
    except NewsletterError as exc:
        return _issue_page(slug, 400, problem=explain(exc), form=form)
    return see_other(message, "admin.issue", slug=slug)


@require("issues.change")
def edit_audience(slug: str) -> BaseResponse:
    """Who it goes to: the lists and segments checked (none: every active subscriber),
    as `issues edit SLUG --list ... --segment ...` (or `--everyone`)."""
    form = request.form
    lists, segments = form.getlist("list"), form.getlist("segment")
    kept = {"audience": "sent", "list": lists, "segment": segments}
    try:
        if len(lists) + len(segments) > MAX_TARGETS:
            raise NewsletterError(gettext("Check at most %(n)s lists and segments.",
                                          n=MAX_TARGETS))
        with transaction(sessions()) as db:
            issue = get_issue(db, slug)
            edit = edit_issue(db, issue, lists=lists, segments=segments, by=by_user(),
                              now=utcnow())
            planned = _replan(db, issue, edit)
            message = _done(db, issue, edit, planned, audience_after=True)
    except NewsletterError as exc:
        return _issue_page(slug, 400, problem=explain(exc), form=kept)
    return see_other(message, "admin.issue", slug=slug, _anchor="audience")


# --- the preview --------------------------------------------------------------------------

def _variants(db: Session, issue: Issue) -> list[Variant]:
    config = settings()
    return preview_variants(audience(db), config.languages, config.default_language,
                            countries_of(issue))


@require("newsroom.read")
def preview(slug: str) -> Response:
    config = settings()
    with sessions()() as db:
        try:
            issue = get_issue(db, slug)
        except NewsletterError:
            abort(404)
        content = content_of(issue)
        variants = _variants(db, issue)
    shown = []
    for variant in variants:
        rendered = render_preview(content, variant, sender_from(config), config.template_dir)
        shown.append({"label": variant.label, "language": variant.language,
                      "country": variant.country, "subject": rendered.subject,
                      "text": rendered.text})
    response = render("issue_preview", slug=slug, variants=shown)
    response.headers["Content-Security-Policy"] = PREVIEW_POLICY
    return response


@require("newsroom.read")
def variant_html(slug: str, label: str) -> Response:
    """One variant's HTML for the preview's sandboxed frames: its own strict policy (no
    script at all, nothing loaded from anywhere, shown only in our own pages)."""
    config = settings()
    with sessions()() as db:
        try:
            issue = get_issue(db, slug)
        except NewsletterError:
            abort(404)
        content = content_of(issue)
        wanted = [v for v in _variants(db, issue) if v.label == label]
    if not wanted:
        abort(404)
    rendered = render_preview(content, wanted[0], sender_from(config), config.template_dir)
    response = Response(rendered.html, 200, mimetype="text/html")
    response.headers["Content-Security-Policy"] = VARIANT_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response
