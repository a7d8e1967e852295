"""`newsletter issues ...`"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.output import emit_json, json_option, table
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
@click.option("--screenshot", "screenshots", is_flag=True,
              help="Also PNGs at 375 and 600 px (es-CR-375.png) from headless Chromium: "
                   "sudo apt-get install -y chromium, or set NEWSLETTER_CHROMIUM.")
@json_option
@pass_app
@user_errors
def preview(app: App, slug: str, out_dir: Path | None, screenshots: bool,
            as_json: bool) -> None:
    """Render every variant of issue SLUG to HTML and text files you can open.

    One pair of files per language and country focus (e.g. es-CR.html, en-regional.txt)
    and an index.html linking them. With --screenshot, also a full-page PNG of each at a
    phone's and a desktop's width (es-CR-375.png, es-CR-600.png), shown in the index.

    \b
    Example:
      newsletter issues preview 2019-10 --out /tmp/preview && xdg-open /tmp/preview/index.html
      newsletter issues preview 2019-10 --screenshot
    """
    settings = app.settings
    with app.sessions() as session:
        issue = get_issue(session, slug)
        content = content_of(issue)
        variants = preview_variants(audience(session), settings.languages,
                                    settings.default_language, countries_of(issue))
    directory = out_dir or settings.var_dir / "preview" / slug
    index, files = write_preview(content, variants, sender_from(settings), directory,
                                 screenshots=screenshots, template_dir=settings.template_dir)
    if as_json:
        emit_json({"index": str(index), "variants": [
            {"language": f.variant.language, "country": f.variant.country or None,
             "subject": f.subject, "html": str(f.html_path), "text": str(f.text_path),
             "html_bytes": f.html_bytes, "text_bytes": f.text_bytes,
             "screenshots": [str(p) for p in f.screenshots]} for f in files]})
        return
    table(f"issue {slug}: {len(files)} variants", ["variant", "subject", "html", "size"],
          [(f.variant.label, f.subject, f.html_path, f"{f.html_bytes / 1024:.1f} KB")
           for f in files])
    click.echo(f"open {index}")
