"""`newsletter bounces ...`: bounces, complaints and unsubscribe requests that come back
by mail."""

from __future__ import annotations

import logging
import signal
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from newsletter.cli.context import App, pass_app, user_errors
from newsletter.cli.output import emit_json, json_option, table
from newsletter.db import utcnow
from newsletter.models import Issue, MailReport
from worker.bounce_intake import (
    IntakeError,
    poll_imap,
    process,
    read_file,
    read_maildir,
    read_mbox,
    receiver,
)
from worker.bounce_record import Outcome, purge_raw

log = logging.getLogger(__name__)


@click.group()
def bounces() -> None:
    """Read the mail that comes back: bounces, complaints, unsubscribe requests.

    Each delivery is sent from its own address, bounces+<delivery>.<mac>@ the bounce
    domain (NEWSLETTER_BOUNCE_DOMAIN, by default the sender's). Point that domain's MX at
    `newsletter bounces receive` (or import a mailbox that receives it): a hard bounce
    marks the person bounced and suppresses them, soft bounces are counted, a complaint
    (ARF) suppresses at once, a mail to the List-Unsubscribe address unsubscribes, and a
    vacation reply changes nothing. Every report is kept with its evidence.

    \b
    Example:
      newsletter bounces receive --port 2525
      newsletter bounces import --mbox /var/mail/bounces
      newsletter bounces list --issue 2019-10
    """


def _outcome_dict(outcome: Outcome, source: str) -> dict[str, Any]:
    return {"source": source, "report": outcome.report_id, "kind": outcome.kind,
            "decision": outcome.decision, "issue": outcome.issue_slug or None,
            "delivery": outcome.delivery_id}


@bounces.command("import")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--mbox", "mboxes", multiple=True, type=click.Path(path_type=Path),
              help="An mbox file of reports (repeatable).")
@click.option("--maildir", "maildirs", multiple=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="A Maildir folder of reports (repeatable).")
@json_option
@pass_app
@user_errors
def import_(app: App, files: tuple[Path, ...], mboxes: tuple[Path, ...],
            maildirs: tuple[Path, ...], as_json: bool) -> None:
    """Read reports from .eml FILES, mbox files or Maildir folders, and act on them.

    Importing the same messages again changes nothing (each is recorded once).

    \b
    Example:
      newsletter bounces import dsn1.eml dsn2.eml
      newsletter bounces import --mbox bounces.mbox --maildir ~/Maildir/.Bounces
    """
    if not (files or mboxes or maildirs):
        raise click.UsageError("name .eml files, --mbox or --maildir")
    results: list[dict[str, Any]] = []

    def take(raw: bytes, source: str, label: str) -> None:
        outcome = process(app.sessions, app.settings, raw, source=source)
        results.append({**_outcome_dict(outcome, source), "from": label})

    for path in files:
        take(read_file(path), "import", str(path))
    for path in mboxes:
        for n, raw in enumerate(read_mbox(path), 1):
            take(raw, "mbox", f"{path} #{n}")
    for path in maildirs:
        for n, raw in enumerate(read_maildir(path), 1):
            take(raw, "maildir", f"{path} #{n}")
    with app.sessions() as session, session.begin():
        purge_raw(session, app.settings, utcnow())
    if as_json:
        emit_json({"reports": results,
                   "kinds": dict(Counter(r["kind"] for r in results))})
        return
    table(None, ["from", "kind", "decision", "issue"],
          [[r["from"], r["kind"], r["decision"], r["issue"] or ""] for r in results])
    kinds = Counter(r["kind"] for r in results)
    click.echo(f"{len(results)} message(s): " + ", ".join(f"{n} {k}" for k, n in
                                                          sorted(kinds.items())))


@bounces.command("receive")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Where to listen (0.0.0.0 as the domain's MX).")
@click.option("--port", type=click.IntRange(1, 65535), default=2525, show_default=True)
@click.option("--lmtp", is_flag=True,
              help="Speak LMTP (for a mail server that hands mail on), not SMTP.")
@pass_app
@user_errors
def receive(app: App, host: str, port: int, lmtp: bool) -> None:
    """Receive reports by SMTP (or LMTP) for the bounce domain, until stopped.

    Mail for any other domain is refused (no relaying). A report is answered 250 only
    once it is stored; 451 when the database cannot take it, so the sender retries.

    \b
    Example:
      NEWSLETTER_BOUNCE_DOMAIN=bounces.example.org newsletter bounces receive \\
        --host 0.0.0.0 --port 25
    """
    server = receiver(app.sessions, app.settings, host, port, lmtp=lmtp)
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from exc
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"receiving {'LMTP' if lmtp else 'SMTP'} on {host}:{server.port} for "
               f"@{app.settings.resolved_bounce_domain}", err=False)
    try:
        while not stop.wait(3600):
            try:
                with app.sessions() as session, session.begin():
                    purge_raw(session, app.settings, utcnow())
            except Exception:  # noqa: BLE001 (the database away for a while: keep receiving)
                log.exception("could not clear old reports; trying again in an hour")
    finally:
        server.stop()


@bounces.command("imap")
@click.argument("url", envvar="NEWSLETTER_BOUNCE_IMAP_URL")
@click.option("--once", is_flag=True, help="Read what is there now, then stop.")
@click.option("--interval", type=click.FloatRange(5, 86400), default=60, show_default=True,
              help="Seconds between passes.")
@click.option("--delete", is_flag=True,
              help="Delete each message once it is recorded (default: mark it seen).")
@json_option
@pass_app
@user_errors
def imap(app: App, url: str, once: bool, interval: float, delete: bool,
         as_json: bool) -> None:
    """Read reports from an IMAP mailbox: every unseen message, then again every
    --interval seconds. URL (or NEWSLETTER_BOUNCE_IMAP_URL) is
    imaps://user:password@host/FOLDER (imap+starttls:// and imap:// too).

    Each message is recorded before it is marked seen: one whose report cannot be stored
    stays unseen for the next pass, and one read twice is recorded once.

    \b
    Example:
      newsletter bounces imap imaps://bounces:secret@mail.example.org/INBOX --once
    """
    stop = threading.Event()
    if not once:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    while True:
        try:
            outcomes = poll_imap(app.sessions, app.settings, url, delete=delete)
            with app.sessions() as session, session.begin():
                purge_raw(session, app.settings, utcnow())
        except (IntakeError, SQLAlchemyError) as exc:
            if once:
                raise
            log.error("bounces imap: %s; trying again in %.0f s", exc, interval)
            if stop.wait(interval):
                return
            continue
        if as_json:
            emit_json({"reports": [_outcome_dict(o, "imap") for o in outcomes],
                       "kinds": dict(Counter(o.kind for o in outcomes))})
        else:
            kinds = Counter(o.kind for o in outcomes)
            click.echo(f"{len(outcomes)} new message(s)"
                       + (": " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
                          if outcomes else ""))
        if once or stop.wait(interval):
            return


@bounces.command("list")
@click.option("--issue", "slug", help="Only the reports about this issue.")
@click.option("--kind", type=click.Choice(["hard", "soft", "delayed", "complaint", "unsubscribe",
                                           "auto-reply", "unrelated"]))
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@json_option
@pass_app
@user_errors
def list_(app: App, slug: str | None, kind: str | None, limit: int, as_json: bool) -> None:
    """The reports received, newest first, with their evidence and decision.

    \b
    Example:
      newsletter bounces list --issue 2019-10 --kind hard
    """
    with app.sessions() as session:
        query = (select(MailReport, Issue.slug).outerjoin(Issue, Issue.id == MailReport.issue_id)
                 .order_by(MailReport.received_at.desc(), MailReport.id.desc()).limit(limit))
        if slug:
            query = query.where(Issue.slug == slug)
        if kind:
            query = query.where(MailReport.kind == kind)
        rows = [{"id": r.id, "received_at": r.received_at.isoformat() + "+00:00",
                 "source": r.source, "kind": r.kind, "status": r.status,
                 "diagnostic": r.diagnostic, "decision": r.decision, "issue": s,
                 "delivery": r.delivery_id} for r, s in session.execute(query)]
    if as_json:
        emit_json(rows)
        return
    table(None, ["id", "received", "kind", "status", "issue", "decision", "diagnostic"],
          [[r["id"], str(r["received_at"])[:16], r["kind"], r["status"], r["issue"] or "",
            r["decision"], r["diagnostic"]] for r in rows])


@bounces.command("show")
@click.argument("report_id", type=int)
@pass_app
@user_errors
def show(app: App, report_id: int) -> None:
    """One report: its evidence, decision and the message as received (while kept).

    \b
    Example:
      newsletter bounces show 12
    """
    with app.sessions() as session:
        row = session.get(MailReport, report_id)
        if row is None:
            raise click.ClickException(f"no report {report_id}: see `newsletter bounces list`")
        click.echo(f"report {row.id}, received {row.received_at:%Y-%m-%d %H:%M} UTC by "
                   f"{row.source}: {row.kind} {row.status}".rstrip())
        click.echo(f"decision: {row.decision}")
        click.echo(f"diagnostic: {row.diagnostic}")
        click.echo("")
        click.echo(_printable(row.raw) if row.raw is not None else
                   f"(the message itself was cleared after "
                   f"{app.settings.bounce_keep_days} days)")


def _printable(raw: str) -> str:
    """The message as received, without the control characters a hostile one could use
    to steer the terminal (escape sequences); line breaks and tabs stay."""
    return "".join(c if c in "\n\t" or c.isprintable() else "\ufffd" for c in raw)
