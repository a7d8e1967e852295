"""`newsletter issues ...`"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.output import console, emit_json, json_option, table
from newsletter.issues import content_of, countries_of, create_issue, get_issue, list_issues
from newsletter.preview import preview_variants, write_preview
from newsletter.render import FOCUS_POLICIES, sender_from
from subscribers.queries import audience

DATE = click.DateTime(["%Y-%m-%d"])


@click.group()
def issues() -> None:
    """Create, preview, send and follow issues.

    \b
    Example:
      newsletter issues create 2019-10 --from 2019-10-01 --to 2019-10-31
    """


@issues.command("create")
@click.argument("slug")
@click.option("--from", "date_from", type=DATE, required=True, help="First day (YYYY-MM-DD).")
@click.option("--to", "date_to", type=DATE, required=True, help="Last day (YYYY-MM-DD).")
@click.option("--title", default="",
              help="Subject line; default: the sender and the window, in each language.")
@click.option("--list", "lists", multiple=True,
              help="Send to this list's confirmed subscribers (repeatable).")
@click.option("--segment", "segments", multiple=True,
              help="Send to this segment (repeatable). Default: every active subscriber.")
@click.option("--country-focus", "focus", type=click.Choice(FOCUS_POLICIES), default="first",
              show_default=True,
              help="first: the reader's country first, then the region; only: just their "
                   "country; none: the regional order for everyone.")
@pass_app
@user_errors
def create(app: App, slug: str, date_from: datetime, date_to: datetime, title: str,
           lists: tuple[str, ...], segments: tuple[str, ...], focus: str) -> None:
    """Create issue SLUG from the items published in a window, newest first.

    \b
    Example:
      newsletter issues create 2019-10 --from 2019-10-01 --to 2019-10-31
      newsletter issues create 2019-10-es --from 2019-10-01 --to 2019-10-31 --segment central-es
    """
    with app.transaction() as session:
        issue = create_issue(session, slug, date_from.date(), date_to.date(), title,
                             lists=lists, segments=segments, focus=focus)
        count = len(issue.entries)
    audience = ", ".join([*(f"list {n}" for n in lists), *(f"segment {n}" for n in segments)])
    click.echo(f"issue {slug} created with {count} items ({date_from:%Y-%m-%d} to "
               f"{date_to:%Y-%m-%d}) for {audience or 'every active subscriber'}; "
               f"preview it with `newsletter issues preview {slug}`")


@issues.command("list")
@json_option
@pass_app
@user_errors
def list_cmd(app: App, as_json: bool) -> None:
    """List issues, newest first.

    \b
    Example:
      newsletter issues list --json
    """
    with app.sessions() as session:
        rows = list_issues(session)
    if as_json:
        emit_json([r.__dict__ for r in rows])
        return
    table(None, ["issue", "from", "to", "items", "status", "title"],
          [(r.slug, r.date_from, r.date_to, r.items, r.status, r.title) for r in rows])


@issues.command("preview")
@click.argument("slug")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Directory for the files (default: var/preview/SLUG).")
@json_option
@pass_app
@user_errors
def preview(app: App, slug: str, out_dir: Path | None, as_json: bool) -> None:
    """Render every variant of issue SLUG to HTML and text files you can open.

    One pair of files per language and country focus (e.g. es-CR.html, en-regional.txt)
    and an index.html linking them.

    \b
    Example:
      newsletter issues preview 2019-10 --out /tmp/preview && xdg-open /tmp/preview/index.html
    """
    settings = app.settings
    with app.sessions() as session:
        issue = get_issue(session, slug)
        content = content_of(issue)
        variants = preview_variants(audience(session), settings.languages,
                                    settings.default_language, countries_of(issue))
    directory = out_dir or settings.var_dir / "preview" / slug
    index, files = write_preview(content, variants, sender_from(settings), directory)
    if as_json:
        emit_json({"index": str(index), "variants": [
            {"language": f.variant.language, "country": f.variant.country or None,
             "subject": f.subject, "html": str(f.html_path), "text": str(f.text_path),
             "html_bytes": f.html_bytes} for f in files]})
        return
    table(f"issue {slug}: {len(files)} variants", ["variant", "subject", "html", "size"],
          [(f.variant.label, f.subject, f.html_path, f"{f.html_bytes / 1024:.1f} KB")
           for f in files])
    click.echo(f"open {index}")


@issues.command("send")
@click.argument("slug")
@click.option("--no-wait", is_flag=True, help="With a broker: enqueue and return at once.")
@json_option
@pass_app
@user_errors
def send(app: App, slug: str, no_wait: bool, as_json: bool) -> None:
    """Send issue SLUG to every active subscriber who has not had it yet.

    Without NEWSLETTER_BROKER_URL the batches run in this process; with it they go to
    the workers (`newsletter worker`) and this command follows their progress. Sending
    twice is safe: nobody gets the issue twice; deferred messages are tried again.

    \b
    Example:
      newsletter issues send 2019-10
    """
    from worker.app import app as celery_app
    from worker.app import configure_app
    from worker.delivery import send_issue
    from worker.runtime import build, configure

    problem = app.settings.insecure_for_mailing() if app.settings.smtp_url else None
    if problem:
        raise click.ClickException(problem)
    configure_app(celery_app, app.settings)
    runtime = build(app.settings)
    configure(runtime)
    with Progress(TextColumn("sending {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console, transient=True,
                  disable=as_json) as bar:
        task = bar.add_task(slug, total=None)

        def show(counts: dict[str, int]) -> None:
            pending = counts["queued"] + counts["sending"]
            bar.update(task, total=sum(counts.values()), completed=sum(counts.values()) - pending)

        try:
            summary = send_issue(runtime, slug, progress=show, wait=not no_wait)
        finally:
            configure(None)
    if as_json:
        emit_json({"issue": slug, "planned": summary.planned, "batches": summary.batches,
                   "variants": summary.variants, "counts": summary.counts})
        return
    table(f"issue {slug}: {summary.planned} new deliveries planned, {summary.batches} batches",
          ["status", "messages"], [(k, v) for k, v in summary.counts.items() if v])
    if summary.counts.get("deferred"):
        click.echo(f"{summary.counts['deferred']} deferred: run `newsletter issues send {slug}` "
                   "again to retry them", err=True)
    if summary.counts.get("bounced"):
        click.echo(f"{summary.counts['bounced']} bounced: the server refused them for good",
                   err=True)


@issues.command("status")
@click.argument("slug")
@json_option
@pass_app
@user_errors
def status(app: App, slug: str, as_json: bool) -> None:
    """Show how many deliveries of issue SLUG are in each state.

    \b
    Example:
      newsletter issues status 2019-10 --json
    """
    from worker.ledger import counts

    with app.sessions() as session:
        issue = get_issue(session, slug)
        by_status = counts(session, issue.id)
        state = issue.status
    if as_json:
        emit_json(by_status)
        return
    table(f"issue {slug}: {state}", ["status", "messages"], by_status.items())
