"""The Feeds pages: list, add, one feed (its recent items, its last error), fetch now,
remove (after a confirmation naming the series that draw on it). newsletter.feeds does
the work; an address whose host is loopback, private or link-local is refused unless
NEWSLETTER_FEED_ALLOW_PRIVATE (the library checks, as for the CLI). Who may change is
`users.PERMISSIONS["feeds.change"]`."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Response, abort, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from newsletter import feeds as library
from newsletter.db import transaction, utcnow
from newsletter.errors import NewsletterError
from newsletter.web.admin.core import gettext, render, sessions, settings
from newsletter.web.admin.series import may_change
from newsletter.web.auth import require

SHOWN_ITEMS = 20


def _list_page(code: int = 200, *, form: Mapping[str, str] | None = None, problem: str = "",
               message: str = "") -> Response:
    with sessions()() as db:
        found = library.list_feeds(db)
        counts = library.item_counts(db)
        db.expunge_all()
    return render("feeds", code, feeds=found, counts=counts, form=form or {},
                  problem=problem, message=message, may_change=may_change(), now=utcnow())


@require("newsroom.read")
def feeds_page() -> Response:
    return _list_page()


@require("feeds.change")
def add() -> BaseResponse:
    form = {k: v[:2000] for k, v in request.form.items() if k != "csrf_token"}
    interval = form.get("interval", "60").strip() or "60"
    try:
        if not (interval.isascii() and interval.isdigit()):
            raise library.FeedSetupError(f"--interval {interval[:20]!r}: give minutes between "
                                         f"1 and {library.MAX_INTERVAL_MINUTES} (a week)")
        with transaction(sessions()) as db:
            feed = library.add_feed(
                db, form.get("url", ""), name=form.get("name", "").strip() or None,
                language=form.get("language", "").strip() or None,
                countries=[form.get("countries", "")], interval_minutes=int(interval[:9]),
                allow_private=settings().feed_allow_private)
            name = feed.name
    except NewsletterError as exc:
        return _list_page(400, form=form, problem=str(exc))
    return redirect(url_for("admin.feed", name=name, done="added"), 303)


def _feed_page(name: str, code: int = 200, *, message: str = "", problem: str = "",
               result: library.FetchResult | None = None) -> Response:
    with sessions()() as db:
        try:
            feed = library.get_feed(db, name)
        except library.FeedSetupError:
            abort(404)
        items = library.recent_items(db, feed, SHOWN_ITEMS)
        count = library.item_counts(db).get(feed.id, 0)
        using = library.series_using(db, feed.name)
        db.expunge_all()
    return render("feed", code, feed=feed, items=items, count=count, using=using,
                  message=message, problem=problem, result=result, may_change=may_change(),
                  now=utcnow())


@require("newsroom.read")
def feed(name: str) -> Response:
    added = request.args.get("done") == "added"
    return _feed_page(name, message=gettext("The feed was added: it is fetched when due, or "
                                            "now with “Fetch now”.") if added else "")


@require("feeds.change")
def fetch(name: str) -> Response:
    """Fetch the feed now, however soon it is due; the result is shown on its page."""
    try:
        (result,) = library.fetch_now(sessions(), settings(), utcnow(), [name])
    except library.FeedSetupError:
        abort(404)
    return _feed_page(name, result=result)


@require("feeds.change")
def remove(name: str) -> BaseResponse:
    """The first POST asks (naming the series that take their items from it); the second
    removes. Its items stay."""
    with sessions()() as db:
        try:
            found = library.get_feed(db, name)
        except library.FeedSetupError:
            abort(404)
        using = library.series_using(db, found.name)
        count = library.item_counts(db).get(found.id, 0)
        name = found.name
    if request.form.get("confirm") != "yes":
        return render("feed_remove", name=name, using=using, count=count)
    try:
        with transaction(sessions()) as db:
            _, count = library.remove_feed(db, name)
    except library.FeedSetupError:
        abort(404)
    return _list_page(message=gettext(
        "Feed %(name)s was removed; the items it brought (%(count)d) stay.",
        name=name, count=count))
