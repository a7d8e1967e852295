"""`newsletter issues ...`"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import click

from newsletter.approval import APPROVAL_POLICIES
from newsletter.audience import AudienceReport, audience_report
from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.output import emit_json, json_option, table
from newsletter.issue_calendar import calendar
from newsletter.issues import (
    content_of,
    countries_of,
    create_issue,
    get_issue,
    split_language_value,
)
from newsletter.preview import preview_variants, write_preview
from newsletter.render import FOCUS_POLICIES, sender_from
from newsletter.words import plural
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
@click.option("--title", "titles", multiple=True,
              help="Subject title: LANG=TEXT for one language (repeatable), or TEXT for "
                   "every language; default: the first item in each language and how many "
                   "more follow.")
@click.option("--intro", "intros", multiple=True,
              help="Introduction at the top of the email: LANG=TEXT, or TEXT for every "
                   "language (repeatable); blank lines separate paragraphs.")
@click.option("--intro-file", "intro_files", multiple=True,
              help="Introduction read from a UTF-8 file: LANG=FILE, or FILE for every language.")
@click.option("--list", "lists", multiple=True,
              help="Send to this list's confirmed subscribers (repeatable).")
@click.option("--segment", "segments", multiple=True,
              help="Send to this segment (repeatable). Default: every active subscriber.")
@click.option("--country-focus", "focus", type=click.Choice(FOCUS_POLICIES), default="first",
              show_default=True,
              help="first: the reader's country first, then the region; only: just their "
                   "country; none: the regional order for everyone.")
@click.option("--approval", type=click.Choice(APPROVAL_POLICIES), default="none",
              show_default=True,
              help="required: it goes out only once someone approves it (`issues submit`, "
                   "`issues approve`).")
@pass_app
@user_errors
def create(app: App, slug: str, date_from: datetime, date_to: datetime,
           titles: tuple[str, ...], intros: tuple[str, ...], intro_files: tuple[str, ...],
           lists: tuple[str, ...], segments: tuple[str, ...], focus: str,
           approval: str) -> None:
    """Create issue SLUG from the items published in a window, newest first.

    Prints who it will reach: how many subscribers in each edition, who gets another
    language than theirs, and who in its lists is left out and why.

    \b
    Example:
      newsletter issues create 2019-10 --from 2019-10-01 --to 2019-10-31
      newsletter issues create 2019-10 --from 2019-10-01 --to 2019-10-31 \\
          --title es="Boletín de octubre" --title en="October news" \\
          --intro-file es=intro-es.txt --list partners
      newsletter issues create 2026-w49 --from 2026-11-30 --to 2026-12-06 \\
          --title es="Boletín semanal" --approval required
    """
    settings = app.settings
    languages = settings.languages
    per_language = one_per_language(language_pairs(titles, languages), "--title")
    title = per_language.pop("", "")
    intro_texts = one_per_language([*language_pairs(intros, languages),
                             *((lang, _read_text(path))
                               for lang, path in language_pairs(intro_files, languages))],
                            "--intro/--intro-file")
    with app.transaction() as session:
        issue = create_issue(session, slug, date_from.date(), date_to.date(), title,
                             titles=per_language, intros=intro_texts, languages=languages,
                             lists=lists, segments=segments, focus=focus)
        issue.approval = approval
        count = len(issue.entries)
        report = audience_report(session, issue, languages, settings.default_language)
    click.echo(f"issue {slug} created with {plural(count, 'item')} ({date_from:%Y-%m-%d} to "
               f"{date_to:%Y-%m-%d}); preview it with `newsletter issues preview {slug}`")
    print_audience(report)


def print_audience(report: AudienceReport) -> None:
    """The audience line, who falls back to another language, who is left out and why."""
    click.echo(report.summary())
    for fallback in report.fallbacks:
        click.echo(f"  {fallback}")
    if not report.recipients:
        click.echo(f"  {report.empty_explanation()}")
        return
    for reason in report.left_out:
        click.echo(f"  not reached: {reason}")


def language_pairs(values: tuple[str, ...], languages: list[str]) -> list[tuple[str, str]]:
    return [split_language_value(v, languages) for v in values]


def one_per_language(pairs: list[tuple[str, str]], option: str) -> dict[str, str]:
    """{language: text}, "" for every language; a language given twice is refused (the
    second would silently replace the first)."""
    found: dict[str, str] = {}
    seen: set[str] = set()
    for language, text in pairs:
        key = language.strip().replace("_", "-").lower()
        if key in seen:
            which = f"{language}=..." if language else "a value for every language"
            raise click.BadParameter(f"{which} is given twice: give one value for every "
                                     "language, and one LANG=TEXT per language",
                                     param_hint=option)
        seen.add(key)
        found[language] = text
    return found


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise click.BadParameter(f"{path}: not UTF-8 text (byte {exc.start}): save it as "
                                 "UTF-8", param_hint="--intro-file") from exc
    except OSError as exc:
        raise click.BadParameter(f"{path}: {exc.strerror}", param_hint="--intro-file") from exc


@issues.command("list")
@json_option
@pass_app
@user_errors
def list_cmd(app: App, as_json: bool) -> None:
    """The calendar: every issue (newest first) with its status, approval, when it goes
    out and its series and number, then the series periods that were skipped, and why.

    --json prints one object per issue (kind "issue") followed by one per skipped
    period (kind "skipped"); times are UTC, ISO 8601.

    \b
    Example:
      newsletter issues list --json
    """
    with app.sessions() as session:
        rows, skipped = calendar(session)
    if as_json:
        emit_json([{"kind": "issue", **r.as_dict()} for r in rows]
                  + [{"kind": "skipped", **p.as_dict()} for p in skipped])
        return
    table(None, ["issue", "from", "to", "items", "status", "approval", "goes out (UTC)",
                 "series", "title"],
          [(r.slug, r.date_from, r.date_to, r.items, r.status, _approval(r.approval, r.review),
            _when(r.send_at, r.local_time, r.on, r.sent_at),
            f"{r.series} No. {r.number}" if r.series else "", r.title) for r in rows])
    if skipped:
        table("skipped periods", ["series", "period of (UTC)", "window", "reason"],
              [(p.series, p.occurs_at, f"{p.window_from} to {p.window_to}", p.reason)
               for p in skipped])


def _approval(policy: str, review: str) -> str:
    if policy != "required":
        return "-"
    return {"": "needs submitting", "in_review": "waits for approval",
            "approved": "approved", "rejected": "rejected"}.get(review, review)


def _when(send_at: datetime | None, local_time: str | None, on: date | None,
          sent_at: datetime | None) -> str:
    if sent_at is not None:
        return f"sent {sent_at:%Y-%m-%d %H:%M}"
    if send_at is None:
        return ""
    if local_time:
        return f"{local_time} local on {on} (from {send_at:%Y-%m-%d %H:%M})"
    return f"{send_at:%Y-%m-%d %H:%M}"


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
                                 screenshots=screenshots, template_dir=settings.template_dir,
                                 slug=slug)
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
