"""Double opt-in: ask people waiting on a double opt-in list to confirm their address.

One message per person, in their language, with their signed `/c/` link. Each accepted
message is recorded (`confirmation_sent_at`, committed at once), so a run that stops
half-way can simply be run again, and a run within `resend_after` of the last request
mails nobody twice. A refusal is reported with the address, never raised: one bad
mailbox must not keep the others from being asked.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from newsletter.db import transaction, utcnow
from newsletter.errors import NewsletterError
from newsletter.render import Rendered, Sender, sender_from
from newsletter.settings import Settings
from newsletter.templating import environment
from subscribers.events import record_event
from subscribers.lists import get_list
from subscribers.models import Subscriber
from subscribers.queries import awaiting_confirmation
from subscribers.suppressions import is_suppressed
from subscribers.tokens import confirm_link, subscriber_links
from subscribers.validate import best_edition
from worker.mime import Headers, ascii_address, build_message
from worker.runtime import transport_for
from worker.transports import Envelope, Transport, TransportError

TEXT_TEMPLATE = "confirm.txt.j2"
HTML_TEMPLATE = "confirm.html.j2"
SUBJECT_TEMPLATE = "confirm_subject.txt.j2"

log = logging.getLogger(__name__)


@dataclass
class ConfirmationReport:
    sent: int = 0
    skipped: int = 0  # asked too recently, or suppressed
    failed: list[tuple[str, str]] = field(default_factory=list)  # (address, reason)


def render_confirmation(
    sender: Sender, language: str, name: str, confirm_url: str, unsubscribe_url: str,
    directory: Path | None = None,
) -> Rendered:
    """The request to confirm, in `language` (pure: no database, no sending)."""
    env = environment(directory, language)
    context = {"lang": language, "sender": sender, "name": name,
               "confirm_url": confirm_url, "unsubscribe_url": unsubscribe_url}
    subject = " ".join(env.get_template(SUBJECT_TEMPLATE).render(context).split())
    return Rendered(subject, env.get_template(HTML_TEMPLATE).render(context),
                    env.get_template(TEXT_TEMPLATE).render(context))


def _message(settings: Settings, person: Subscriber) -> tuple[bytes, str]:
    s = settings
    salt = person.token_salt
    unsubscribe_url, _ = subscriber_links(s.public_base_url, s.secret_key, person.id, salt)
    rendered = render_confirmation(
        sender_from(s), best_edition(person.language, s.languages, s.default_language),
        person.name,
        confirm_link(s.public_base_url, s.secret_key, person.id, salt), unsubscribe_url,
        s.template_dir,
    )
    mid = f"<confirm.{person.id}.{secrets.token_hex(8)}@{s.sender_domain}>"
    headers = Headers(s.sender_name, s.sender_email, person.name, person.email, mid,
                      f"confirm.{s.sender_domain}", unsubscribe_url, s.reply_to)
    return build_message(rendered, headers), mid


def send_confirmations(
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    list_name: str | None = None,
    resend_after: timedelta = timedelta(hours=24),
    transport: Transport | None = None,
) -> ConfirmationReport:
    """Ask every pending or active person with an unconfirmed subscription (on `list_name`,
    if given) to confirm, unless they were asked less than `resend_after` ago."""
    report = ConfirmationReport()
    with sessions() as session:
        list_id = get_list(session, list_name).id if list_name is not None else None
        waiting = awaiting_confirmation(session, list_id=list_id)
        due = set(awaiting_confirmation(session, list_id=list_id,
                                        sent_before=utcnow() - resend_after))
    report.skipped = len(waiting) - len(due)
    own = transport is None
    carrier = transport_for(settings) if transport is None else transport
    try:
        for subscriber_id in sorted(due):
            with sessions() as session:
                person = session.get(Subscriber, subscriber_id)
                if person is None or person.status not in ("pending", "active") \
                        or is_suppressed(session, person.email):
                    report.skipped += 1
                    continue
                address = person.email
                try:
                    message, mid = _message(settings, person)
                    envelope = Envelope(settings.sender_email, ascii_address(address),
                                        message, mid)
                except (ValueError, UnicodeError, NewsletterError) as exc:
                    report.failed.append((address, f"could not build the message: {exc}"))
                    continue
            try:
                carrier.ready()
                carrier.send(envelope)
            except TransportError as exc:
                log.warning("confirmation request to subscriber %s refused: %s",
                            subscriber_id, exc)
                report.failed.append((address, str(exc)))
                continue
            with transaction(sessions) as session:
                sent = session.get(Subscriber, subscriber_id)
                if sent is not None:
                    sent.confirmation_sent_at = now = utcnow()
                    record_event(session, subscriber_id, "confirmation-sent",
                                 "double opt-in request mailed", "worker", now)
            report.sent += 1
    finally:
        if own:
            carrier.close()
    return report


def ask_to_confirm(
    settings: Settings,
    sessions: sessionmaker[Session],
    subscriber_id: int,
    *,
    transport: Transport | None = None,
) -> bool:
    """Mail one pending person their confirmation request now (the public sign-up form),
    whether or not they are on a list; True if the transport accepted it.

    A refusal is logged, not raised: the form answers the same either way.
    """
    with sessions() as session:
        person = session.get(Subscriber, subscriber_id)
        if person is None or person.status != "pending" \
                or is_suppressed(session, person.email):
            return False
        try:
            message, mid = _message(settings, person)
            envelope = Envelope(settings.sender_email, ascii_address(person.email),
                                message, mid)
        except (ValueError, UnicodeError, NewsletterError) as exc:
            log.warning("confirmation request to subscriber %s not built: %s",
                        subscriber_id, exc)
            return False
    carrier = transport_for(settings) if transport is None else transport
    try:
        carrier.ready()
        carrier.send(envelope)
    except TransportError as exc:
        log.warning("confirmation request to subscriber %s refused: %s", subscriber_id, exc)
        return False
    finally:
        if transport is None:
            carrier.close()
    with transaction(sessions) as session:
        sent = session.get(Subscriber, subscriber_id)
        if sent is not None:
            sent.confirmation_sent_at = utcnow()
    return True
