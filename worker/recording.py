"""Replies into the ledger in groups, each first in the worker's journal.

One UPDATE round trip a message cost a worker more than the message itself (issue 12:
the workers waited on the database a third of the time). Now a reply is appended to
the journal (worker/journal.py) and the group goes to the ledger in one transaction
every `every` replies or `seconds`, whichever comes first, and whenever the batch
stops. A worker that dies between the two leaves its replies in the journal, and the
next batch to start anywhere applies them before it claims a row (`recover_replies`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.errors import NewsletterError
from subscribers.suppressions import suppress
from worker import ledger
from worker.journal import Journal, Reply, recover

log = logging.getLogger(__name__)


def apply_replies(session: Session, replies: Sequence[Reply]) -> None:
    """The ledger's side of a group: the rows, then the dead addresses (5.1.x) suppressed."""
    ledger.record_replies(session, replies)
    for reply in replies:
        if reply.suppress:
            _suppress_dead_address(session, reply)


def _suppress_dead_address(session: Session, reply: Reply) -> None:
    """A 5.1.x reply: the mailbox does not exist. Never mail the address again."""
    ledger.mark_bounced(session, reply.subscriber_id, delivery_id=reply.delivery_id,
                        reply=reply.reply)
    try:
        suppress(session, reply.email, reason="bounced", by="worker",
                 note=f"{reply.reply[:200]} (delivery {reply.delivery_id})")
    except IntegrityError:
        session.rollback()  # another worker suppressed it a moment ago: the same outcome
    except NewsletterError as exc:  # a stored address that no longer validates
        log.warning("could not suppress %s after %s: %s", reply.email, reply.reply[:80], exc)


def journal_directory(base: Path, database_url: URL) -> Path:
    """Where the batches of one database keep their journals: a directory per database
    under NEWSLETTER_JOURNAL_DIR, so that a journal is never applied to another database
    whose delivery ids it might match (staging and production on one host)."""
    name = database_url.render_as_string(hide_password=True)
    return base / hashlib.sha256(name.encode()).hexdigest()[:16]


def recover_replies(session: Session, directory: Path) -> int:
    """Before claiming: the journals of batches that ended without recording all their
    replies (their worker died, or the database was away). Returns how many replies."""
    return recover(directory, lambda found: apply_replies(session, found))


class Recorder:
    """Collects a batch's replies: journal first, ledger by the group."""

    def __init__(
        self,
        session: Session,
        journal: Journal,
        *,
        every: int,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.journal = journal
        self.every = every
        self.seconds = seconds
        self.clock = clock
        self._since = clock()

    def add(self, reply: Reply) -> None:
        self.journal.write(reply)
        if len(self.journal.pending) >= self.every or self.clock() - self._since >= self.seconds:
            self.flush()

    def flush(self) -> None:
        """Everything added so far into the ledger (the journal is cleared only after)."""
        if self.journal.pending:
            apply_replies(self.session, self.journal.pending)
            self.journal.clear()
        self._since = self.clock()

