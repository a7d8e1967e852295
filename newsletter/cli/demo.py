"""`newsletter demo`: the whole path on embedded defaults, with the project's own sample data."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from datetime import date
from email import message_from_bytes, policy
from importlib.resources import files
from pathlib import Path

import click
from sqlalchemy.orm import Session

from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.output import table
from newsletter.ingest.text import parse_text
from newsletter.issues import IssueError, content_of, countries_of, create_issue, get_issue
from newsletter.items import find_item, store_items, translate_item
from newsletter.preview import preview_variants, write_preview
from newsletter.render import sender_from
from newsletter.words import plural
from subscribers.importer import import_csv
from subscribers.queries import audience

DEMO_SLUG = "demo-2019-10"
DEMO_COUNTRIES = ("CR", "NI", "SV", "HN", "GT", "BZ", "DO", "MX", "PA", "HT")
FIRST = ("Ana", "José", "María", "Luis", "Sofía", "Andrés", "Lucía", "Marvin",
         "Daniela", "Óscar", "Carmen", "Kevin")
LAST = ("Rodríguez", "Hernández", "Pérez", "Castillo", "Ramírez", "Flores", "Núñez",
        "Morales", "Gómez", "Young", "Pierre", "Baptiste")


def sample_items_text() -> str:
    return (files("newsletter") / "data" / "sample-items.txt").read_text(encoding="utf-8")


def add_sample_translations(session: Session) -> int:
    """The Spanish versions of some sample items (the rest show the English, marked)."""
    raw = (files("newsletter") / "data" / "sample-translations.json").read_text("utf-8")
    entries = json.loads(raw)
    for entry in entries:
        item = find_item(session, date.fromisoformat(entry["date"]), entry["title"])
        text = entry["translation"]
        translate_item(session, item.id, entry["language"], title=text["title"],
                       paragraphs=text["paragraphs"], place=text.get("place"))
    return len(entries)


def demo_subscribers_csv(per_country: int = 3) -> str:
    """A few dozen made-up subscribers across the sample's countries, in English and Spanish."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["email", "name", "country", "language"])
    n = 0
    for country in (*DEMO_COUNTRIES, ""):
        for _ in range(per_country):
            first, last = FIRST[n % len(FIRST)], LAST[(n * 5) % len(LAST)]
            language = "en" if country in ("BZ", "HT", "") and n % 2 == 0 or n % 3 == 0 else "es"
            local = unicodedata.normalize("NFKD", f"{first}.{last}.{n}".lower())
            local = local.encode("ascii", "ignore").decode()
            writer.writerow([f"{local}@example.org", f"{first} {last}", country, language])
            n += 1
    return out.getvalue()


@click.command()
@click.option("--outbox", "outbox_dir", type=click.Path(path_type=Path), default=None,
              help="Where to write the .eml files (default: NEWSLETTER_OUTBOX_DIR or var/outbox).")
@pass_app
@user_errors
def demo(app: App, outbox_dir: Path | None) -> None:
    """Run the whole path on sample data: items, subscribers, issue, preview, send.

    Mail goes to an outbox directory of .eml files, never to a server, whatever
    NEWSLETTER_SMTP_URL says. Running it again sends nothing new.

    \b
    Example:
      newsletter demo --outbox /tmp/outbox
    """
    from worker.app import app as celery_app
    from worker.app import configure_app
    from worker.delivery import send_issue
    from worker.runtime import build, configure
    from worker.transports import OutboxTransport

    settings = app.settings.model_copy(update={"smtp_url": "", "broker_url": ""})
    outbox = outbox_dir or settings.resolved_outbox_dir
    parsed = parse_text(sample_items_text(), "sample-items.txt")
    with app.transaction() as session:
        items = store_items(session, parsed)
        add_sample_translations(session)
        people = import_csv(session, demo_subscribers_csv(),
                            default_language=settings.default_language)
    click.echo(f"items: {items.added} added, {items.unchanged} already there; "
               f"subscribers: {people.added} added, {people.unchanged} already there")
    first, last = min(p.published for p in parsed), max(p.published for p in parsed)
    with app.transaction() as session:
        try:
            create_issue(session, DEMO_SLUG, first, last)
            click.echo(f"issue {DEMO_SLUG} created ({first} to {last})")
        except IssueError:
            get_issue(session, DEMO_SLUG)  # made by an earlier run: reuse it
    with app.sessions() as session:
        issue = get_issue(session, DEMO_SLUG)
        variants = preview_variants(audience(session), settings.languages,
                                    settings.default_language, countries_of(issue))
        index, _ = write_preview(content_of(issue), variants, sender_from(settings),
                                 settings.var_dir / "preview" / DEMO_SLUG,
                                 template_dir=settings.template_dir, slug=DEMO_SLUG)
    configure_app(celery_app, settings)
    runtime = build(settings, OutboxTransport(outbox))
    configure(runtime)
    try:
        summary = send_issue(runtime, DEMO_SLUG)
    finally:
        configure(None)
    table(f"issue {DEMO_SLUG}", ["status", "messages"],
          [(k, v) for k, v in summary.counts.items() if v])
    sent = summary.counts.get("sent", 0)
    if summary.planned:
        click.echo(f"sent {plural(summary.planned, 'new message')} ({sent} sent in all)")
    else:
        click.echo(f"nothing new to send: all {plural(sent, 'message')} of this issue were "
                   "already sent by an earlier run")
    emls = sorted(outbox.glob(f"{DEMO_SLUG}.*.eml"))
    for path in emls[:1]:
        message_from_bytes(path.read_bytes(), policy=policy.default)  # parseable, or raise
    click.echo(f"preview: {index}")
    click.echo(f"preview of one variant: {index.parent / 'es-CR.html'}")
    click.echo(f"outbox: {outbox} ({len(emls)} messages of this issue)")
