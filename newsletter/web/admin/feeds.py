"""The Feeds pages: list, add, one feed (its recent items, its last error), change it
(address, language, countries, interval: `feeds edit`), fetch now, remove (after a
confirmation naming the series that draw on it). newsletter.feeds does the work; an
address whose host is loopback, private or link-local is refused unless
NEWSLETTER_FEED_ALLOW_PRIVATE (the library checks, as for the CLI). Who may change is
`users.PERMISSIONS["feeds.change"]`. Every POST that changes something answers 303 with a notice
(Post/Redirect/Get); a refused one shows the page again (400) with the form as sent."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Response, abort, request
from werkzeug.wrappers import Response as BaseResponse

from newsletter import feeds as library
from newsletter.db import transaction, utcnow
from newsletter.errors import NewsletterError
from newsletter.web.admin.core import explain, gettext, render, see_other, sessions, settings
from newsletter.web.auth import require

SHOWN_ITEMS = 20


def _list_page(code: int = 200, *, form: Mapping[str, str] | None = None, problem: str = "",
               message: str = "") -> Response:
    with sessions()() as db:
        found = library.list_feeds(db)
        counts = library.item_counts(db)
        db.expunge_all()
    return render("feeds", code, feeds=found, counts=counts, form=form or {},
                  problem=problem, message=message, now=utcnow())


@require("newsroom.read")
def feeds_page() -> Response:
    return _list_page()


def _interval(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise library.FeedSetupError(f"--interval {text[:20]!r}: give minutes between "
                                     f"1 and {library.MAX_INTERVAL_MINUTES} (a week)")
    return int(text[:9])


@require("feeds.change")
def add() -> BaseResponse:
    form = {k: v[:2000] for k, v in request.form.items() if k != "csrf_token"}
    interval = form.get("interval", "60").strip() or "60"
    try:
        minutes = _interval(interval)
        with transaction(sessions()) as db:
            feed = library.add_feed(
                db, form.get("url", ""), name=form.get("name", "").strip() or None,
                language=form.get("language", "").strip() or None,
                countries=[form.get("countries", "")], interval_minutes=minutes,
                allow_private=settings().feed_allow_private)
            name = feed.name
    except NewsletterError as exc:
        return _list_page(400, form=form, problem=explain(exc))
    return see_other(gettext("The feed was added: it is fetched when due, or now with "
                             "“Fetch now”."), "admin.feed", name=name)


def _feed_page(name: str, code: int = 200, *, problem: str = "",
               form: Mapping[str, str] | None = None) -> Response:
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
                  problem=problem, form=form or {}, now=utcnow())


@require("newsroom.read")
def feed(name: str) -> Response:
    return _feed_page(name)


@require("feeds.change")
def edit(name: str) -> BaseResponse:
    """Change the address, language, countries or interval, as `feeds edit`."""
    form = {k: v[:2000] for k, v in request.form.items() if k != "csrf_token"}
    with sessions()() as db:
        try:
            name = library.get_feed(db, name).name
        except library.FeedSetupError:
            abort(404)
    try:
        with transaction(sessions()) as db:
            done = library.edit_feed(
                db, name, url=form.get("url", ""), language=form.get("language", ""),
                countries=[form.get("countries", "")],
                interval_minutes=_interval(form.get("interval", "").strip()),
                allow_private=settings().feed_allow_private, now=utcnow())
    except NewsletterError as exc:
        return _feed_page(name, 400, problem=explain(exc), form=form)
    if not done.changed:
        return see_other(gettext("Nothing changed."), "admin.feed", name=name)
    message = gettext("Saved: %(changes)s.", changes="; ".join(done.changes))
    if done.reset:
        message += " " + gettext("A new address: what the server said before (ETag, "
                                 "Last-Modified) and the failures are forgotten; it is "
                                 "fetched in full at the next round, or now with “Fetch "
                                 "now”.")
    return see_other(message, "admin.feed", name=name)


@require("feeds.change")
def fetch(name: str) -> BaseResponse:
    """Fetch the feed now, however soon it is due; the result is the next page's notice."""
    try:
        (result,) = library.fetch_now(sessions(), settings(), utcnow(), [name])
    except library.FeedSetupError:
        abort(404)
    if result.status == "failed":
        message = gettext("The fetch failed:") + " " + result.error
    elif result.status == "not-modified":
        message = gettext("Fetched: the feed has not changed since the last fetch.")
    else:
        message = gettext("Fetched. Entries: %(entries)d; new items: %(new)d; updated: "
                          "%(updated)d.", entries=result.entries, new=result.new,
                          updated=result.updated)
        if result.kept:
            message += " " + gettext("Items that kept a person's edit: %(kept)d.",
                                     kept=result.kept)
    return see_other(message, "admin.feed", name=name)


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
    return see_other(gettext("Feed %(name)s was removed; the items it brought (%(count)d) "
                             "stay.", name=name, count=count), "admin.feeds")
