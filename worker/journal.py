"""What the SMTP server said, on disk before it is in the ledger.

A worker records replies in groups (one database round trip for many messages), so
between a message's 250 and its group's write the only trace of it is here: one line
appended per reply, with a plain `write` (no fsync: a killed process loses nothing the
kernel already has; only a crash of the machine could, and then that group is sent
again, never lost).

Each batch a worker sends has its own file, locked (`flock`) while the batch runs and
deleted when its replies are all in the ledger. The kernel drops the lock when the
process dies, however it dies, so whoever finds a file it can lock knows its batch is
over without having recorded everything: it applies the lines to the ledger and
deletes the file (`recover`). A worker does that before it claims anything, so a message whose
reply reached a journal is never sent again, and a SIGKILL costs at most the one
message that was on the wire. Workers on several machines share the directory (a
volume) for that to hold across machines; see NEWSLETTER_JOURNAL_DIR.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from newsletter.errors import NewsletterError

log = logging.getLogger(__name__)

SUFFIX = ".journal"
MAKING = ".new"  # a journal between its creation and its lock
UNBORN_SECONDS = 60  # a file still under that name this long after it was made is dead
OUTCOMES = ("sent", "deferred", "bounced", "failed")


@dataclass(frozen=True)
class Reply:
    """One message's outcome, as the ledger records it (`ledger.record_replies`)."""

    delivery_id: int
    attempts: int  # the claim's fencing token: a row claimed again since is not ours
    status: str  # sent, deferred, bounced or failed
    reply: str
    message_id: str | None
    code: int | None
    relay: str | None
    next_attempt_at: datetime | None
    at: datetime
    # a 5.1.x reply: the address is dead and gets suppressed (who, for the suppression)
    suppress: bool = False
    subscriber_id: int = 0
    email: str = ""

    def line(self) -> bytes:
        """One JSON line (built by hand: `dataclasses.asdict` deep-copies, 40 us a reply)."""
        nxt = self.next_attempt_at
        fields = {
            "delivery_id": self.delivery_id, "attempts": self.attempts, "status": self.status,
            "reply": self.reply, "message_id": self.message_id, "code": self.code,
            "relay": self.relay, "next_attempt_at": nxt.isoformat() if nxt else None,
            "at": self.at.isoformat(), "suppress": self.suppress,
            "subscriber_id": self.subscriber_id, "email": self.email,
        }
        return _encode(fields).encode() + b"\n"

    @classmethod
    def parse(cls, line: bytes) -> Reply:
        """A line `line()` wrote; ValueError for anything else."""
        fields = json.loads(line)
        if not isinstance(fields, dict) or set(fields) != set(_TYPES):
            raise ValueError("not the fields of a reply")
        for name, types in _TYPES.items():
            if not isinstance(fields[name], types) or isinstance(fields[name], bool) and (
                    bool not in types):
                raise ValueError(f"{name} is {type(fields[name]).__name__}")
        for name in ("next_attempt_at", "at"):
            if fields[name] is not None:
                fields[name] = datetime.fromisoformat(fields[name])
        if fields["status"] not in OUTCOMES:
            raise ValueError(f"status {fields['status']!r}")
        for name, most in _LONGEST.items():  # what the ledger's columns can hold
            if len(fields[name] or "") > most:
                raise ValueError(f"{name} is longer than {most} characters")
        return cls(**fields)


_encode = json.JSONEncoder(separators=(",", ":")).encode

_TYPES: dict[str, tuple[type, ...]] = {
    "delivery_id": (int,), "attempts": (int,), "status": (str,), "reply": (str,),
    "message_id": (str, type(None)), "code": (int, type(None)), "relay": (str, type(None)),
    "next_attempt_at": (str, type(None)), "at": (str,), "suppress": (bool,),
    "subscriber_id": (int,), "email": (str,),
}


_LONGEST = {"reply": 1000, "message_id": 300, "relay": 200, "email": 320}

Apply = Callable[[list[Reply]], None]


class JournalError(NewsletterError):
    """The journal directory cannot be written."""


class Journal:
    """One batch's file: `write` before the group is recorded, `clear` after. Used as a
    context manager; on the way out the file goes if the ledger has every reply, else
    it stays, unlocked, for `recover`."""

    def __init__(self, directory: Path) -> None:
        stem = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(6)}"
        # locked under a name `recover` does not read, then renamed: nobody can take a
        # file between its creation and its lock
        making = directory / f"{stem}{MAKING}"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(making, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                              0o600)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            self.path = directory / f"{stem}{SUFFIX}"
            os.rename(making, self.path)
        except OSError as exc:
            raise JournalError(
                f"cannot write the delivery journal in {directory}: {exc.strerror or exc}; "
                "make that directory writable by the workers, or set NEWSLETTER_JOURNAL_DIR "
                "to one that is (a volume the workers share)") from exc
        self.pending: list[Reply] = []

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, reply: Reply) -> None:
        line = reply.line()
        if os.write(self.fd, line) != len(line):  # a full disk: say so before sending on
            raise OSError(f"could not write the delivery journal {self.path}")
        self.pending.append(reply)

    def clear(self) -> None:
        """The pending replies are in the ledger: the file starts again empty."""
        os.ftruncate(self.fd, 0)
        self.pending.clear()

    def close(self) -> None:
        if self.fd < 0:
            return
        if not self.pending:
            self.path.unlink(missing_ok=True)  # before the lock goes: nobody reads it
        os.close(self.fd)
        self.fd = -1


def recover(directory: Path, apply: Apply) -> int:
    """Apply the replies in the journals of processes that are gone, then delete those
    journals; returns how many replies were applied. `apply` must be idempotent (a
    reply applied twice changes nothing the second time): two processes may read the
    same file when one of them opened it just before the other deleted it."""
    applied = 0
    if not directory.is_dir():
        return 0
    _clear_unborn(directory)
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        with _unheld(path) as fd:
            if fd is None:
                continue  # recovered a moment ago, or its batch is still running
            replies = list(_read(fd, path))
            if replies:
                apply(replies)
                applied += len(replies)
                log.warning("recorded %d replies from %s, whose batch ended before "
                            "it could record them", len(replies), path.name)
            path.unlink(missing_ok=True)
    return applied


def _clear_unborn(directory: Path) -> None:
    """A process that died between creating its journal and locking it left an empty
    file under its first name: once nobody holds it, it goes."""
    for path in directory.glob(f"*{MAKING}"):
        with contextlib.suppress(FileNotFoundError):
            if time.time() - path.stat().st_mtime < UNBORN_SECONDS:
                continue  # most likely being locked and renamed right now
        with _unheld(path) as fd:
            if fd is not None:
                path.unlink(missing_ok=True)


@contextlib.contextmanager
def _unheld(path: Path) -> Iterator[int | None]:
    """`path` opened and locked, if it still exists and no process holds its lock (its
    batch is over); else None. The lock goes with the descriptor on the way out."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        yield fd
    finally:
        os.close(fd)


def _read(fd: int, path: Path) -> Iterator[Reply]:
    with os.fdopen(os.dup(fd), "rb") as file:
        for number, line in enumerate(file, 1):
            if not line.endswith(b"\n"):
                break  # the last write was cut short: that message was never recorded
            try:
                yield Reply.parse(line)
            except (ValueError, TypeError, KeyError) as exc:
                log.error("%s line %d is not a journal entry (%s); skipped", path, number, exc)
