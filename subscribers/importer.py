"""Importing subscribers: every good row lands once, every bad row is reported with its row.

The file is streamed: records are read, validated (`subscribers.rows`) and merged
by address in batches of `batch_size`, and each batch is written (`subscribers.bulk`)
and committed in its own transaction. Memory stays flat in the file's size; an
interrupted import leaves whole batches behind, and running it again finishes the
job, since an address already stored is updated, never added twice.

Counting: every data row ends up in exactly one of added, updated, unchanged,
merged (an address repeated in the file) or rejected (suppressed rows included).
A repeat is recognised as such within a batch, and across batches when the earlier
row added or changed the subscriber; a repeat of a row that changed nothing counts
as unchanged. A dry run writes each batch and rolls it back, so its counts are a
real import's, except that a repeat in a later batch counts as added again.

A value that is left out but does not cost the row (an unknown country) is a
warning: the row is stored and the warning reported like an error, with its row.
A problem with the file itself part-way through (bad bytes at row 24) stores the
valid rows before it, then raises `ImportStopped`, which says what is stored.
"""

from __future__ import annotations

import contextlib
import io
import queue
import signal
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import FrameType
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.errors import NewsletterError
from subscribers.bulk import (
    BULK_CHECKPOINT_PAGES,
    BatchResult,
    BatchSettings,
    ConcurrentChange,
    StagedText,
    end_bulk,
    staged_text,
    write_batch,
)
from subscribers.models import MailingList, Subscriber
from subscribers.readers import (
    COLUMNS,
    FORMATS,
    ByteCount,
    ImportFileError,
    format_for,
    read_records,
)
from subscribers.rows import (
    MAX_CONSENT_METHOD,
    MAX_CONSENT_TEXT,
    RowChecker,
    RowError,
    SubscriberRow,
)

__all__ = [
    "COLUMNS", "FORMATS", "ImportFileError", "ImportInterrupted", "ImportOptions",
    "ImportOptionError", "ImportReport", "ImportStopped", "RowError", "SubscriberRow",
    "UnknownListError",
    "check_rows", "format_for", "import_csv", "import_subscribers",
]

MAX_KEPT_ERRORS = 100
RETRIES = 3


class ImportOptionError(NewsletterError):
    """The options of an import contradict each other or the schema."""


class UnknownListError(ImportFileError):
    """`--list` names a list that does not exist; nothing was read."""


@dataclass(frozen=True)
class ImportOptions:
    format: str = "csv"
    delimiter: str = ","
    encoding: str = "utf-8-sig"  # UTF-8, with or without a byte order mark
    list_name: str | None = None
    dry_run: bool = False
    resubscribe: bool = False  # reactivate people who left, lift their suppressions
    preconfirm: bool = False  # double opt-in lists: these people already confirmed
    consent_method: str = "import"  # how consent was given, e.g. "import:people.csv"
    consent_text: str | None = None  # the version of the wording they agreed to
    batch_size: int = 20_000  # rows per transaction (SQLite, 1M rows: 5,000: 33 s; 20,000: 20 s)
    strict: bool = False  # an unknown country rejects the row instead of a warning


@dataclass
class ImportReport:
    read: int = 0  # data rows (blank rows are not counted)
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0  # rows that repeated an address seen earlier in the same file
    rejected: int = 0
    suppressed: int = 0  # rejected because the address is suppressed (part of `rejected`)
    resubscribed: int = 0
    inactive: int = 0  # existing subscribers left unsubscribed, bounced or complained
    subscribed: int = 0  # new subscriptions to the list
    committed: int = 0  # rows whose batch is committed (or rolled back, in a dry run)
    warned: int = 0  # rows stored with a value left out (an unknown country)
    dry_run: bool = False
    errors: list[RowError] = field(default_factory=list)  # the first MAX_KEPT_ERRORS
    warnings: list[RowError] = field(default_factory=list)  # the first MAX_KEPT_ERRORS
    max_errors: int = field(default=MAX_KEPT_ERRORS, repr=False)

    @property
    def imported(self) -> int:
        return self.added + self.updated + self.unchanged

    def reject(self, error: RowError) -> None:
        self.rejected += 1
        if len(self.errors) < self.max_errors:
            self.errors.append(error)

    def warn(self, warning: RowError) -> None:
        self.warned += 1
        if len(self.warnings) < self.max_errors:
            self.warnings.append(warning)

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read, "added": self.added, "updated": self.updated,
            "unchanged": self.unchanged, "merged": self.merged, "rejected": self.rejected,
            "suppressed": self.suppressed, "resubscribed": self.resubscribed,
            "inactive": self.inactive, "subscribed": self.subscribed, "warned": self.warned,
            "dry_run": self.dry_run,
            "errors": [_as_dict(e) for e in self.errors],
            "warnings": [_as_dict(w) for w in self.warnings],
        }


def _as_dict(e: RowError) -> dict[str, Any]:
    return {"row": e.row, "field": e.field, "value": e.value, "reason": e.reason}


class ImportStopped(ImportFileError):
    """A problem with the file part-way through: the valid rows before it are stored
    (rolled back, in a dry run); the message says how many and how to finish."""

    def __init__(self, cause: ImportFileError, report: ImportReport) -> None:
        self.cause = cause
        self.report = report
        done = (f"{report.read} rows before it were read: {report.added} added, "
                f"{report.updated} updated, {report.unchanged} unchanged, "
                f"{report.merged} merged, {report.rejected} rejected")
        if report.dry_run:
            after = "dry run, nothing was written"
        else:
            after = (f"the {report.imported} imported are stored. Fix the file and run the "
                     "same command again to import the rest: rows already stored are "
                     "updated, never added twice")
        super().__init__(f"{cause}\n{done}; {after}")


class ImportInterrupted(KeyboardInterrupt):
    """Ctrl-C during an import: the batch in progress was rolled back, earlier ones stay."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__(f"interrupted after {report.committed} rows")
        self.report = report


@dataclass
class _Batch:
    rows: dict[str, SubscriberRow] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)  # warnings too, by their level
    read: int = 0
    merged: int = 0
    failure: ImportFileError | None = None  # the file broke after this batch's rows
    offset: int = 0  # bytes of the file read when this batch was complete
    staged: StagedText | None = None  # its COPY text, built ahead (PostgreSQL)


def _batches(records: Iterator[Any], checker: RowChecker, size: int
             ) -> Generator[_Batch, None, None]:
    """Batches of checked rows; when the file breaks part-way, the rows read before
    the break come as a last batch carrying the failure, to be written first."""
    batch = _Batch()
    try:
        for record in records:
            batch.read += 1
            row = checker.check(record)
            if isinstance(row, RowError):
                batch.errors.append(row)
                continue
            batch.errors.extend(row.warnings)
            if (earlier := batch.rows.get(row.key)) is not None:
                batch.merged += 1
                batch.rows[row.key] = earlier.then(row)
            else:
                batch.rows[row.key] = row
            if len(batch.rows) >= size:
                yield batch
                batch = _Batch()
    except ImportFileError as exc:
        if not batch.read:
            raise
        batch.failure = exc
    if batch.read:
        yield batch


_SWITCH = {"users": 0, "before": 0.0}
_SWITCH_LOCK = threading.Lock()


@contextlib.contextmanager
def _quick_handoffs(seconds: float = 0.0005) -> Iterator[None]:
    """A shorter GIL switch interval while an import runs. With the read-ahead thread
    busy checking rows, each reply from the database waited up to the default 5 ms for
    the writing thread to get the GIL back: ~10 round trips a batch, 5 s of a 1M-row
    import. Restored when the last import in this process ends."""
    with _SWITCH_LOCK:
        if _SWITCH["users"] == 0:
            _SWITCH["before"] = sys.getswitchinterval()
            sys.setswitchinterval(min(seconds, _SWITCH["before"]))
        _SWITCH["users"] += 1
    try:
        yield
    finally:
        with _SWITCH_LOCK:
            _SWITCH["users"] -= 1
            if _SWITCH["users"] == 0:
                sys.setswitchinterval(_SWITCH["before"])


class _ReadAhead:
    """The batches of `batches`, read and checked by a thread while the caller writes
    the one before: the database's half of the work (a first import of 1M rows into
    PostgreSQL: ~11 s of server CPU) then overlaps the reading and checking (~10 s of
    Python), which otherwise wait for each other. The database drivers let go of the
    GIL while they wait for the server.

    At most two batches are alive at once (the one being written and the next), so
    memory stays flat. An exception in the thread (a file that cannot be read at all)
    reaches the caller at the batch where it happened. `close()` stops the thread.
    `prepare`, when given, is run on each batch in the thread too while `prepare_next`
    is true (the writer's guess that the next batch will want it)."""

    def __init__(self, batches: Generator[_Batch, None, None], count: ByteCount,
                 prepare: Callable[[_Batch], None] | None = None, *,
                 prepare_first: bool = True) -> None:
        self._batches, self._count, self._prepare = batches, count, prepare
        self.prepare_next = prepare_first
        self._slots = threading.Semaphore(2)
        self._ready: queue.Queue[_Batch | BaseException | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="import-read-ahead",
                                        daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                self._slots.acquire()
                if self._stop.is_set():
                    return
                batch = next(self._batches, None)
                if batch is not None:
                    batch.offset = self._count.value
                    if self._prepare is not None and self.prepare_next:
                        self._prepare(batch)
                self._ready.put(batch)
                if batch is None:
                    return
        except BaseException as exc:  # handed to the caller, which raises it
            self._ready.put(exc)

    def __iter__(self) -> Iterator[_Batch]:
        while True:
            item = self._ready.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
            self._slots.release()  # written: the thread may read the one after the next

    def close(self) -> None:
        """Stop the thread and close the reading, so that the readers' own clean-up
        (a text decoder let go of the caller's stream) runs now, not whenever the
        garbage collector gets to it, when the caller may have closed the stream."""
        self._stop.set()
        self._slots.release()
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._batches.close()


def check_rows(stream: BinaryIO, options: ImportOptions) -> Iterator[SubscriberRow | RowError]:
    """Validate a file without a database: each record as a clean row or its error."""
    checker = RowChecker(strict=options.strict)
    records = read_records(stream, options.format, delimiter=options.delimiter,
                           encoding=options.encoding)
    return (checker.check(record) for record in records)


def _settings(session: Session, options: ImportOptions, default_language: str) -> BatchSettings:
    """Check the options and find the list, before a single row is read."""
    if options.format not in FORMATS:
        raise ImportOptionError(f"unknown format {options.format!r}: use {', '.join(FORMATS)}")
    if options.batch_size < 1:
        raise ImportOptionError("the batch size must be at least 1")
    if options.consent_text is not None and len(options.consent_text) > MAX_CONSENT_TEXT:
        raise ImportOptionError(
            f"the consent text is the VERSION of the wording (e.g. 2024-05), at most "
            f"{MAX_CONSENT_TEXT} characters, not the wording itself"
        )
    if len(options.consent_method) > MAX_CONSENT_METHOD:
        raise ImportOptionError(f"the consent method is longer than {MAX_CONSENT_METHOD} "
                                "characters")
    list_id, double = None, False
    if options.list_name is not None:
        found = session.execute(
            select(MailingList.id, MailingList.opt_in).where(MailingList.name == options.list_name)
        ).first()
        if found is None:
            raise UnknownListError(
                f"no list called {options.list_name!r}: create it first with "
                f"`newsletter lists create {options.list_name}`, or leave out --list"
            )
        list_id, double = found.id, found.opt_in == "double"
    elif options.preconfirm:
        raise ImportOptionError("--preconfirm is about a double opt-in list: give --list too")
    return BatchSettings(
        now=datetime.now(UTC).replace(tzinfo=None), default_language=default_language,
        consent_method=options.consent_method, consent_text=options.consent_text,
        list_id=list_id, double_opt_in=double, resubscribe=options.resubscribe,
        preconfirm=options.preconfirm,
    )


def _suppression_error(row: SubscriberRow, reason: str) -> RowError:
    return RowError(
        row.row, "email", row.email,
        f"is suppressed ({reason}): it is never mailed again; use --resubscribe if the "
        "person asked to subscribe again",
    )


def _record(report: ImportReport, batch: _Batch, result: BatchResult,
            on_error: Callable[[RowError], None] | None) -> None:
    """Count a written batch and hand on its errors and warnings, in row order."""
    errors = batch.errors + [_suppression_error(r, why) for r, why in result.suppressed]
    errors.sort(key=lambda e: e.row)
    for error in errors:
        if error.level == "error":
            report.reject(error)
        else:
            report.warn(error)
        if on_error is not None:
            on_error(error)
    report.read += batch.read
    report.committed += batch.read
    report.merged += batch.merged + result.merged
    report.suppressed += len(result.suppressed)
    for name in ("added", "updated", "unchanged", "resubscribed", "inactive", "subscribed"):
        setattr(report, name, getattr(report, name) + getattr(result, name))


def import_subscribers(
    sessions: sessionmaker[Session],
    stream: BinaryIO,
    options: ImportOptions,
    *,
    default_language: str,
    on_error: Callable[[RowError], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a whole file, committing every batch; `progress` gets the bytes read.

    Raises ImportFileError (nothing more is read) for a problem with the file as a
    whole: ImportStopped, carrying the report of what is stored, when rows were read
    before it. Raises ImportInterrupted (a KeyboardInterrupt) on Ctrl-C, after rolling
    back the batch in progress (a Ctrl-C during its commit waits for the commit, then
    counts it); the report it carries counts the committed rows.
    """
    report = ImportReport(dry_run=options.dry_run)
    count = ByteCount()
    ctrl_c = _CtrlC()
    with sessions() as session, _quick_handoffs(), ctrl_c.installed():
        with session.begin():
            settings = _settings(session, options, default_language)
            # into an empty table, every row is new: stage each batch whole from the
            # start; else look the first batch up (a re-import), then do what the last
            # batch called for
            lookup_first = session.scalar(select(Subscriber.id).limit(1)) is not None
        settings = replace(settings, checkpoint_pages=BULK_CHECKPOINT_PAGES)
        records = read_records(stream, options.format, delimiter=options.delimiter,
                               encoding=options.encoding, count=count)
        prepare = None
        if session.get_bind().dialect.name == "postgresql":
            def prepare(batch: _Batch) -> None:
                batch.staged = staged_text(batch.rows.values(), settings)
        ahead = _ReadAhead(_batches(records, RowChecker(strict=options.strict),
                                    options.batch_size), count, prepare,
                           prepare_first=not lookup_first)
        del records  # the thread's: closed with it, while the stream is still open
        shown = 0
        try:
            for batch in ahead:
                result = _write(session, batch, settings, lookup_first=lookup_first)
                with ctrl_c.held():  # committed and counted, or neither
                    if options.dry_run:
                        session.rollback()
                    else:
                        session.commit()
                    _record(report, batch, result, on_error)
                lookup_first = result.added < result.updated + result.unchanged + result.merged
                ahead.prepare_next = not lookup_first  # the next batch will be staged whole
                if progress is not None:
                    progress(batch.offset - shown)
                    shown = batch.offset
                if batch.failure is not None:
                    raise batch.failure
        except ImportFileError as exc:
            if not report.read:
                raise
            raise ImportStopped(exc, report) from exc
        except KeyboardInterrupt:
            raise ImportInterrupted(report) from None
        finally:
            ahead.close()
            with contextlib.suppress(SQLAlchemyError), session.begin():
                end_bulk(session)  # housekeeping: never hides the error that got us here
    return report


def _write(session: Session, batch: _Batch, settings: BatchSettings, *,
           lookup_first: bool) -> BatchResult:
    """One batch's statements in one transaction, left open for the caller to commit;
    retried when another process got in the way. `lookup_first` when the last batch
    found most of its rows stored already."""
    for attempt in range(1, RETRIES + 1):
        session.begin()
        try:
            return write_batch(session, batch.rows.values(), settings,
                               lookup_first=lookup_first, staged=batch.staged)
        except ConcurrentChange:
            session.rollback()
            if attempt == RETRIES:
                raise
        except BaseException:
            _discard(session)
            raise
    raise AssertionError("unreachable")


def _discard(session: Session) -> None:
    """Roll the batch back. After Ctrl-C in the middle of a statement the driver may
    still be busy with it (psycopg: "another command is already in progress"): the
    connection is then closed instead, which rolls the transaction back on the server."""
    try:
        session.rollback()
    except SQLAlchemyError:
        session.invalidate()


class _CtrlC:
    """Ctrl-C, held back while a written batch is committed and counted: an interrupt
    that lands in the COMMIT could leave it committed but not counted ("interrupted
    after 5,000 rows" with 10,000 stored). A second Ctrl-C is not held back. Only in
    the main thread, and only over Python's own handler (nobody else's is replaced)."""

    def __init__(self) -> None:
        self.holding = False
        self.pending = False

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.holding and not self.pending:
            self.pending = True
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if (threading.current_thread() is not threading.main_thread()
                or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
            yield
            return
        signal.signal(signal.SIGINT, self._handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


def import_csv(
    session: Session,
    data: bytes | str,
    *,
    default_language: str,
    options: ImportOptions | None = None,
) -> ImportReport:
    """Import CSV text in the caller's transaction (no commits): for small, in-memory data.

    Every error is kept in the report. `options.dry_run` is not honoured here: the
    caller owns the transaction and can roll it back.
    """
    options = options or ImportOptions()
    raw = data if isinstance(data, bytes) else data.encode("utf-8")
    session.flush()
    settings = _settings(session, options, default_language)
    report = ImportReport(max_errors=2**62)
    records = read_records(io.BytesIO(raw), options.format, delimiter=options.delimiter,
                           encoding=options.encoding)
    for batch in _batches(records, RowChecker(strict=options.strict),
                          options.batch_size):
        _record(report, batch, write_batch(session, batch.rows.values(), settings), None)
        if batch.failure is not None:
            raise batch.failure
    return report
