"""The Subscribers screen: search (words of the address or name, and the CLI's `Filter`:
country, language, status, list) with paging, the counts by country x language x status,
the CSV export of the current search, and a person's page (fields, lists, consent, one
timeline of events and deliveries).

Everyone reads; only admins change, on the person's page, each after a confirmation:
unsubscribe (`people.unsubscribe`, how="admin") and suppress (`suppressions.suppress`),
with the logged-in user's email as `by`, so the history records who.
"""

from __future__ import annotations

import io
from typing import Any

from flask import Response, abort, request
from werkzeug.wrappers import Response as BaseResponse

from newsletter.db import transaction, utcnow
from newsletter.errors import NewsletterError
from newsletter.web.admin.core import explain, gettext, render, see_other, sessions, settings
from newsletter.web.auth import current_user, require
from subscribers.export import export_subscribers
from subscribers.filters import Filter
from subscribers.lists import list_summaries
from subscribers.models import STATUSES
from subscribers.people import unsubscribe
from subscribers.report import ReportError, counts, history
from subscribers.search import search_subscribers, words_condition
from subscribers.suppressions import REASONS, suppress

PER_PAGE = 50
FIELDS = ("q", "country", "language", "status", "list")
LIMITS = {"q": 200, "country": 100, "language": 20, "status": 20, "list": 100}
MAX_NOTE = 500


def _id(raw: str) -> int:
    """The subscriber id of a URL: 404 unless it is a number."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 12):
        abort(404)
    return int(raw)


def _query() -> dict[str, str]:
    """The search as the page shows it again (NUL dropped: PostgreSQL refuses it)."""
    return {name: request.args.get(name, "").replace("\x00", "").strip()[:LIMITS[name]]
            for name in FIELDS}


def _split(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _filter(query: dict[str, str]) -> Filter:
    """The same Filter `subscribers list --country ... --language ... --status ... --list`
    builds (countries comma-separated, `none` for no country)."""
    return Filter(countries=_split(query["country"]), languages=_split(query["language"]),
                  statuses=_split(query["status"]), lists=_split(query["list"]))


@require("subscribers.read")
def subscribers_page(code: int = 200) -> Response:
    """The search, its page of people, and the counts of the people the filters select."""
    query = _query()
    try:
        page = int(request.args.get("page", "1")[:9])
    except ValueError:
        page = 1
    flt = _filter(query)
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    groups: list[tuple[str, ...]] = []
    found = None
    with sessions()() as db:
        lists = [summary.name for summary in list_summaries(db)]
        try:
            found = search_subscribers(db, flt, words=query["q"], page=page,
                                       per_page=PER_PAGE)
            rows = [{"id": s.id, "email": s.email, "name": s.name, "country": s.country or "",
                     "language": s.language, "status": s.status} for s in found.people]
            groups = [(*g.values, str(g.count)) for g in counts(db, filters=flt)]
        except NewsletterError as exc:
            problems.append(explain(exc))
            code = 400
    total = sum(int(g[-1]) for g in groups)
    return render("subscribers", code, found=found, rows=rows, query=query,
                  paging={k: v for k, v in query.items() if v}, groups=groups, total=total,
                  languages=settings().languages, statuses=STATUSES, lists=lists,
                  message="", problems=problems)


@require("subscribers.export")
def export() -> Response:
    """The current search as CSV (the columns of `subscribers export`, formula-escaped as
    the CLI does by default), downloaded under a fixed, safe name."""
    query = _query()
    out = io.StringIO()
    try:
        with sessions()() as db:
            export_subscribers(db, _filter(query), "csv", out, formula_escape=True,
                               also=words_condition(query["q"]), by=current_user().email)
    except NewsletterError as exc:
        return render("subscribers", 400, found=None, rows=[], query=query, paging={},
                      groups=[], total=0, languages=settings().languages,
                      statuses=STATUSES, lists=[], message="", problems=[explain(exc)])
    name = f"subscribers-{utcnow():%Y%m%d-%H%M}.csv"
    response = Response(out.getvalue(), 200, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _person_page(person_id: int, code: int = 200, *, problem: str = "") -> Response:
    try:
        with sessions()() as db:
            found = history(db, person_id)
    except ReportError:
        abort(404)
    return render("subscribers_person", code, person=found,
                  message="", problem=problem)


@require("subscribers.read")
def person_page(raw_id: str) -> Response:
    return _person_page(_id(raw_id))


def _address(person_id: int) -> str:
    try:
        with sessions()() as db:
            return history(db, person_id).email
    except ReportError:
        abort(404)


@require("subscribers.change")
def unsubscribe_person(raw_id: str) -> BaseResponse:
    """The first POST asks; the second, with confirm=yes, unsubscribes from everything."""
    person_id = _id(raw_id)
    address = _address(person_id)
    if request.form.get("confirm") != "yes":
        return render("subscribers_confirm", action="unsubscribe", person_id=person_id,
                      email=address, reasons=REASONS)
    try:
        with transaction(sessions()) as db:
            unsubscribe(db, address, how="admin", by=current_user().email)
    except NewsletterError as exc:
        return _person_page(person_id, 400, problem=explain(exc))
    return see_other(gettext("%(email)s is unsubscribed.", email=address), "admin.subscriber",
                     raw_id=person_id)


@require("subscribers.change")
def suppress_person(raw_id: str) -> BaseResponse:
    """The first POST asks (with a reason and a note); the second, with confirm=yes,
    suppresses the address."""
    person_id = _id(raw_id)
    address = _address(person_id)
    if request.form.get("confirm") != "yes":
        return render("subscribers_confirm", action="suppress", person_id=person_id,
                      email=address, reasons=REASONS)
    reason = request.form.get("reason", "manual")[:40]
    note = request.form.get("note", "").replace("\x00", "").strip()[:MAX_NOTE]
    try:
        with transaction(sessions()) as db:
            done = suppress(db, address, reason=reason, note=note, by=current_user().email)
    except NewsletterError as exc:
        return _person_page(person_id, 400, problem=explain(exc))
    message = (gettext("%(email)s is suppressed: nothing more is sent to it.", email=address)
               if done else gettext("%(email)s was already suppressed.", email=address))
    return see_other(message, "admin.subscriber", raw_id=person_id)
