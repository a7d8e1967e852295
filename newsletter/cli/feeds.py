"""`newsletter feeds ...`: RSS and Atom feeds whose entries become items."""

from __future__ import annotations

from typing import Any

import click

from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.output import cell, emit_json, json_option, table
from newsletter.db import utcnow
from newsletter.feeds import (
    FetchResult,
    add_feed,
    edit_feed,
    fetch_now,
    get_feed,
    item_counts,
    list_feeds,
    remove_feed,
    series_using,
)
from newsletter.models import Feed


@click.group()
def feeds() -> None:
    """Follow RSS and Atom feeds: their entries become items.

    \b
    Example:
      newsletter feeds add https://news.example.org/es/feed.xml --name noticias --language es
      newsletter feeds fetch
    """


def _describe(feed: Feed, items: int) -> dict[str, Any]:
    return {"name": feed.name, "url": feed.url, "language": feed.language,
            "countries": [c for c in feed.countries.split(",") if c],
            "interval_minutes": feed.interval_minutes, "items": items,
            "last_fetched_at": feed.last_fetched_at, "last_ok_at": feed.last_ok_at,
            "next_fetch_at": feed.next_fetch_at, "failures": feed.failures,
            "last_error": feed.last_error, "etag": feed.etag,
            "last_modified": feed.last_modified, "created_at": feed.created_at}


@feeds.command("add")
@click.argument("url")
@click.option("--name", default=None,
              help="A short name for the feed (default: the address's host).")
@click.option("--language", default=None,
              help="The language its entries are in (default: detected for each entry, "
                   "among the configured languages).")
@click.option("--country", "countries", multiple=True, metavar="CR,NI",
              help="Countries every entry is about, besides those its text names "
                   "(ISO codes or names, comma-separated).")
@click.option("--interval", "interval", type=int, default=60, show_default=True,
              metavar="MINUTES", help="How often `newsletter scheduler` fetches it.")
@json_option
@pass_app
@user_errors
def add(app: App, url: str, name: str | None, language: str | None,
        countries: tuple[str, ...], interval: int, as_json: bool) -> None:
    """Follow the RSS or Atom feed at URL (http or https).

    Nothing is fetched yet: `newsletter feeds fetch NAME` does it now, and the
    scheduler whenever the feed is due (at once, then every --interval minutes).

    \b
    Example:
      newsletter feeds add https://news.example.org/es/feed.xml --name noticias \\
          --language es --country CR,NI --interval 30
    """
    with app.transaction() as session:
        feed = add_feed(session, url, name=name, language=language, countries=countries,
                        interval_minutes=interval,
                        allow_private=app.settings.feed_allow_private)
        if as_json:
            emit_json(_describe(feed, 0))
            return
        click.echo(f"feed {feed.name!r} added ({feed.url}); fetch it now with "
                   f"`newsletter feeds fetch {feed.name}`")


@feeds.command("edit")
@click.argument("name")
@click.option("--url", default=None, help="A new address (http or https).")
@click.option("--language", default=None,
              help='The language its entries are in; "" to detect each entry\'s.')
@click.option("--country", "countries", multiple=True, metavar="CR,NI",
              help="Countries every entry is about (replaces them; --country '' clears).")
@click.option("--interval", "interval", type=int, default=None, metavar="MINUTES",
              help="How often `newsletter scheduler` fetches it.")
@json_option
@pass_app
@user_errors
def edit(app: App, name: str, url: str | None, language: str | None,
         countries: tuple[str, ...], interval: int | None, as_json: bool) -> None:
    """Change feed NAME: its address, language, countries or interval.

    Options not given leave things as they are; each is checked as `feeds add` checks
    it. A new address forgets the feed's ETag/Last-Modified, its failures and backoff:
    the scheduler fetches it in full at its next round. Its items stay.

    \b
    Example:
      newsletter feeds edit noticias --url https://news.example.org/es/rss --interval 30
      newsletter feeds edit noticias --language "" --country CR,NI
    """
    if url is None and language is None and not countries and interval is None:
        raise click.UsageError("nothing to change: give --url, --language, --country or "
                               "--interval")
    with app.transaction() as session:
        done = edit_feed(session, name, url=url, language=language,
                         countries=countries or None, interval_minutes=interval,
                         allow_private=app.settings.feed_allow_private, now=utcnow())
    if as_json:
        emit_json(done.as_dict())
        return
    for line in done.lines():
        click.echo(line)


@feeds.command("list")
@json_option
@pass_app
@user_errors
def list_cmd(app: App, as_json: bool) -> None:
    """List the feeds: items each brought, when it is due next, and its last error
    (--json adds when it was last fetched, its ETag and more).

    \b
    Example:
      newsletter feeds list --json
    """
    with app.sessions() as session:
        rows = list_feeds(session)
        counts = item_counts(session)
    if as_json:
        emit_json([_describe(f, counts.get(f.id, 0)) for f in rows])
        return
    table(f"{len(rows)} feeds",
          ["name", "language", "countries", "every", "items", "next fetch", "failures"],
          [(f.name, f.language or "detect", f.countries, f"{f.interval_minutes} min",
            counts.get(f.id, 0), f.next_fetch_at or "now", f.failures or "")
           for f in rows])
    for feed in rows:
        if feed.failures:
            click.echo(f"{feed.name}: {feed.last_error}")


@feeds.command("show")
@click.argument("name")
@json_option
@pass_app
@user_errors
def show(app: App, name: str, as_json: bool) -> None:
    """Show feed NAME: its settings, state and last error.

    \b
    Example:
      newsletter feeds show noticias
    """
    with app.sessions() as session:
        feed = get_feed(session, name)
        info = _describe(feed, item_counts(session).get(feed.id, 0))
    if as_json:
        emit_json(info)
        return
    if info["next_fetch_at"] is None:
        info["next_fetch_at"] = "now (due)"
    for key, value in info.items():
        click.echo(f"{key}: {','.join(value) if isinstance(value, list) else cell(value)}")


@feeds.command("remove")
@click.argument("name")
@pass_app
@user_errors
def remove(app: App, name: str) -> None:
    """Stop following feed NAME. The items it brought stay.

    A series made with --feed NAME cannot build without it: add the feed's new
    address with the same --name.

    \b
    Example:
      newsletter feeds remove noticias
    """
    with app.transaction() as session:
        feed, count = remove_feed(session, name)
        using = series_using(session, feed.name)
    click.echo(f"feed {feed.name!r} removed; its {count} items stay "
               "(`newsletter items delete` removes one)")
    for slug in using:
        click.echo(f"series {slug!r} takes its items from feed {feed.name!r}: its builds fail "
                   "until a feed of that name is added again (`newsletter feeds add URL "
                   f"--name {feed.name}`)")


@feeds.command("fetch")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@json_option
@pass_app
@user_errors
def fetch(app: App, names: tuple[str, ...], as_json: bool) -> None:
    """Fetch every feed now (or the NAMEd ones), however soon they are due.

    Entries already fetched add nothing; a changed entry updates its item except
    where a person edited it. A feed that fails is reported (and tried again
    later by the scheduler) and the others are still fetched; the exit status is
    1 if any failed.

    \b
    Example:
      newsletter feeds fetch
      newsletter feeds fetch noticias --json
    """
    results = fetch_now(app.sessions, app.settings, utcnow(), names)
    if as_json:
        emit_json([r.as_dict() for r in results])
    else:
        for result in results:
            click.echo(_line(result))
        if not results:
            click.echo("no feeds: add one with `newsletter feeds add URL`")
    failed = [r.feed for r in results if r.status == "failed"]
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(results)} feeds failed: "
                                   f"{', '.join(failed)}")


def _line(result: FetchResult) -> str:
    if result.status == "failed":
        return f"{result.feed}: failed: {result.error}"
    if result.status == "not-modified":
        return f"{result.feed}: not modified since the last fetch"
    line = (f"{result.feed}: {result.entries} entries, {result.new} new items, "
            f"{result.updated} updated")
    if result.kept:
        line += f", {result.kept} kept a person's edits"
    if result.skipped:
        line += f", {result.skipped} entries without title or text skipped"
    return line
