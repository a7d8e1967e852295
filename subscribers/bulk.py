"""The bulk SQL of an import, in one place: one batch of valid rows per call.

Per batch: the suppressions, the subscribers already stored (by `email_key`), the
decisions in Python (what changes, which status, which consent), then set-based
writes. SQLite looks the batch up first and adds the new subscribers with a plain
executemany. PostgreSQL COPYs the whole batch into a temporary table, inserts it
(`INSERT ... SELECT ... ON CONFLICT (email_key) DO NOTHING RETURNING email_key`) and
looks up only the rows that were not inserted; after a batch that was mostly stored
already (a re-import), and for the first batch into a table that holds people already,
it looks up first and stages only the new rows. Inserts are counted, so a row another
process added meanwhile is never doubled or lost: SQLite raises `ConcurrentChange`,
PostgreSQL looks it up and updates it.

The statements go through the DB-API cursor of the session's own connection (same
transaction): at a million rows SQLAlchemy's per-row parameter processing would
cost more than the database does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from newsletter.errors import NewsletterError
from subscribers.models import STICKY_STATUSES
from subscribers.rows import SubscriberRow
from subscribers.tokens import new_salts

_COLUMNS = ("email", "email_key", "email_hash", "name", "country", "language", "status",
            "attributes", "consent_at", "consent_method", "consent_text", "token_salt")
SQLITE_CHECKPOINT_PAGES = 1000  # SQLite's default
BULK_CHECKPOINT_PAGES = 50_000  # 200 MB of 4 KB pages
_STICKY = ", ".join(f"'{s}'" for s in STICKY_STATUSES)


def pg_text_array(values: Iterable[str]) -> str:
    """A PostgreSQL text[] literal: every element double-quoted, `\\` and `"` escaped."""
    return "{" + ",".join(
        ['"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]
    ) + "}"


_COPY_NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(rows: Iterable[tuple[Any, ...]], lines_per_block: int = 1000) -> Iterator[str]:
    """The first 12 values (`_COLUMNS`) of each new-subscriber row as COPY text, in
    blocks of `lines_per_block` rows: psycopg's `write_row` adapts value by value in
    Python, which cost more than this per row; one block for the whole batch cost
    RSS. Only name, attributes and the consent fields may hold a backslash (none holds
    a tab or a line break after validation); a row that does takes the escaping path."""
    times: dict[Any, str] = {}
    lines: list[str] = []
    for row in rows:
        email, key, hashed, name, country, language, status, attributes, when = row[:9]
        method, wording, salt = row[9:12]
        stamp = times.get(when)
        if stamp is None:
            stamp = times[when] = _COPY_NULL if when is None else when.isoformat(" ")
        line = (f"{email}\t{key}\t{hashed}\t{name}\t"
                f"{_COPY_NULL if country is None else country}\t{language}\t{status}\t"
                f"{attributes}\t{stamp}\t{_COPY_NULL if method is None else method}\t"
                f"{_COPY_NULL if wording is None else wording}\t{salt}")
        nulls = (country is None) + (when is None) + (method is None) + (wording is None)
        if (line.count("\\") != nulls or line.count("\t") != len(_COLUMNS) - 1
                or "\n" in line or "\r" in line):
            line = _escaped_line(row[:len(_COLUMNS)])
        lines.append(line)
        if len(lines) == lines_per_block:
            lines.append("")
            yield "\n".join(lines)
            lines = []
    if lines:
        lines.append("")
        yield "\n".join(lines)


def _escaped_line(values: Sequence[Any]) -> str:
    return "\t".join(
        _COPY_NULL if v is None
        else (v.isoformat(" ") if isinstance(v, datetime) else str(v)).translate(_COPY_ESCAPES)
        for v in values
    )


def stored_time(when: datetime | None, *, sqlite: bool) -> Any:
    """A timestamp as SQLAlchemy stores it: text on SQLite, a datetime on PostgreSQL."""
    if when is None or not sqlite:
        return when
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")


class ConcurrentChange(NewsletterError):
    """Another process changed some of this batch's subscribers meanwhile: retry the batch."""


@dataclass(frozen=True)
class BatchSettings:
    now: datetime  # one instant per import: consent time, created_at and updated_at
    default_language: str
    consent_method: str
    consent_text: str | None = None
    list_id: int | None = None
    double_opt_in: bool = False
    resubscribe: bool = False
    preconfirm: bool = False
    # SQLite: let the write-ahead log grow to this many pages before copying it back.
    # Each batch touches pages all over the email_key and email_hash indexes; copying
    # (and fsyncing) them after every commit doubled the wall time of a 1M-row import.
    checkpoint_pages: int | None = None
    by: str = "import"  # who, in each person's history (subscriber_events)

    @property
    def new_status(self) -> str:
        return "pending" if self.double_opt_in and not self.preconfirm else "active"

    @property
    def subscription_status(self) -> str:
        return "unconfirmed" if self.double_opt_in and not self.preconfirm else "confirmed"


@dataclass
class BatchResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0  # the address was already written earlier in this same import
    resubscribed: int = 0  # suppression lifted or sticky status reactivated (--resubscribe)
    inactive: int = 0  # existing subscribers left unsubscribed, bounced or complained
    subscribed: int = 0  # new list subscriptions
    suppressed: list[tuple[SubscriberRow, str]] = field(default_factory=list)


@dataclass(frozen=True)
class StagedText:
    """The COPY text that stages a batch on PostgreSQL (`_Bulk.stage`), built ahead of
    the write, on the import's reading thread, so that the writing thread only sends it
    (~2 s of Python for 1M rows off the path that waits for the server)."""

    keys: tuple[str, ...]  # the batch's keys, in the order staged: this text is for them
    settings: BatchSettings  # ...as these settings store them
    blocks: tuple[str, ...]


def staged_text(rows: Iterable[SubscriberRow], s: BatchSettings) -> StagedText:
    """What `write_batch` would stage for these rows on PostgreSQL, as COPY text."""
    batch = sorted(rows, key=lambda r: r.key)
    return StagedText(tuple(r.key for r in batch), s,
                      tuple(copy_text(_new_rows(batch, s, sqlite=False))))


@dataclass(frozen=True, slots=True)
class _Existing:
    id: int
    name: str
    country: str | None
    language: str
    status: str
    attributes: str | None  # JSON text: decoded only when a row brings attributes to merge
    this_run: bool  # created or updated at this import's instant: by an earlier batch


class _Bulk:
    """The dialect-specific statements, on the DB-API cursor of the session's connection."""

    def __init__(self, session: Session, *, lock: bool = True) -> None:
        connection = session.connection()
        self.sqlite = connection.dialect.name == "sqlite"
        self.raw = connection.connection
        self.cursor = self.raw.cursor()
        self.mark = "?" if self.sqlite else "%s"
        # SQLite: take the write lock now, so nobody changes these rows between read and write
        driver: Any = self.raw.driver_connection
        if lock and self.sqlite and not driver.in_transaction:
            self.cursor.execute("BEGIN IMMEDIATE")

    def checkpoint_every(self, pages: int) -> None:
        if self.sqlite:
            self.cursor.execute(f"PRAGMA wal_autocheckpoint = {int(pages)}")

    def time(self, when: datetime | None) -> Any:
        return stored_time(when, sqlite=self.sqlite)

    def any_of(self, column: str) -> str:
        """`column` is one of a list given as ONE parameter (no limit on the list's length)."""
        if self.sqlite:
            return f"{column} IN (SELECT value FROM json_each(?))"
        return f"{column} = ANY(%s::text[])"

    def many(self, values: Sequence[str]) -> str:
        """The list as one parameter: JSON text on SQLite, an array literal on PostgreSQL
        (psycopg adapts a Python list element by element in Python: 20,000 keys cost
        more to send that way than the lookup costs the server)."""
        if self.sqlite:
            return json.dumps(list(values))
        return pg_text_array(values)

    def suppressions(self, hashes: Sequence[str]) -> dict[str, str]:
        self.cursor.execute(
            f"SELECT email_hash, reason FROM suppressions WHERE {self.any_of('email_hash')}",
            (self.many(hashes),),
        )
        return dict(self.cursor.fetchall())

    def lift_suppressions(self, hashes: Sequence[str]) -> None:
        self.cursor.execute(
            f"DELETE FROM suppressions WHERE {self.any_of('email_hash')}", (self.many(hashes),)
        )

    def existing(self, keys: Sequence[str], now: datetime) -> dict[str, _Existing]:
        """The stored subscribers among these keys. The attributes come as text and the
        timestamps as one comparison: decoding a JSON and two timestamps per row cost
        half the client's time of a re-import."""
        m, when = self.mark, self.time(now)
        attributes = "attributes" if self.sqlite else "attributes::text"
        self.cursor.execute(
            f"SELECT id, email_key, name, country, language, status, {attributes}, "
            f"(created_at = {m} OR updated_at = {m}) "
            f"FROM subscribers WHERE {self.any_of('email_key')}",
            (when, when, self.many(keys)),
        )
        return {key: _Existing(sid, name, country, language, status, attrs, bool(this_run))
                for sid, key, name, country, language, status, attrs, this_run
                in self.cursor.fetchall()}

    def insert(self, rows: list[tuple[Any, ...]]) -> int:
        """SQLite: add these new-subscriber rows (`_COLUMNS`, created_at, updated_at)."""
        columns = ", ".join(_COLUMNS)
        marks = ", ".join("?" * len(_COLUMNS))
        self.cursor.executemany(
            f"INSERT INTO subscribers ({columns}, created_at, updated_at) "
            f"VALUES ({marks}, ?, ?) ON CONFLICT (email_key) DO NOTHING",
            rows,
        )
        return int(self.cursor.rowcount)

    # --- PostgreSQL: the whole batch is staged first, then inserted before it is looked up

    def stage(self, rows: Iterable[tuple[Any, ...]] | StagedText) -> None:
        """COPY every row of the batch, as a new subscriber would be stored, into a
        temporary table (no indexes, no WAL, dropped at commit); or the COPY text of
        those rows, built beforehand (`staged_text`)."""
        self.cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS import_rows (email text, email_key text, "
            "email_hash text, name text, country text, language text, status text, "
            "attributes text, consent_at timestamp, consent_method text, consent_text text, "
            "token_salt text) "
            "ON COMMIT DROP"
        )
        self.cursor.execute("TRUNCATE import_rows")
        blocks = rows.blocks if isinstance(rows, StagedText) else copy_text(rows)
        with self.cursor.copy(f"COPY import_rows ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
            for block in blocks:
                copy.write(block)

    def staged_suppressions(self) -> dict[str, str]:
        self.cursor.execute(
            "SELECT s.email_hash, s.reason FROM suppressions s "
            "JOIN import_rows i ON i.email_hash = s.email_hash"
        )
        return dict(self.cursor.fetchall())

    def unstage(self, hashes: Sequence[str]) -> None:
        self.cursor.execute(
            f"DELETE FROM import_rows WHERE {self.any_of('email_hash')}", (self.many(hashes),)
        )

    def insert_staged(self, now: datetime) -> set[str]:
        """Add the staged rows whose address is not stored yet; their keys. The unique
        index on email_key is probed once per row here, instead of once by a lookup
        beforehand and again by the insert."""
        columns = ", ".join(_COLUMNS)
        # no ORDER BY: the rows come sorted by email_key (`_write`), and a fresh temporary
        # table is read back in the order it was written; sorting again cost the server
        # an on-disk sort per batch (20,000 rows are more than the default work_mem)
        selected = columns.replace("attributes", "attributes::json")
        self.cursor.execute(
            f"INSERT INTO subscribers ({columns}, created_at, updated_at) "
            f"SELECT {selected}, %s, %s FROM import_rows "
            "ON CONFLICT (email_key) DO NOTHING RETURNING email_key",
            (now, now),
        )
        return {key for (key,) in self.cursor.fetchall()}

    def update(self, rows: list[tuple[Any, ...]]) -> int:
        """(name, country, language, attributes, status, consent?, consent_at, consent_method,
        consent_text, updated_at, id, old status) per row; consent is written when flagged."""
        m = self.mark
        cast = "" if self.sqlite else "::json"
        self.cursor.executemany(
            f"UPDATE subscribers SET name = {m}, country = {m}, language = {m}, "
            f"attributes = {m}{cast}, status = {m}, "
            f"consent_at = CASE WHEN {m} THEN {m} ELSE consent_at END, "
            f"consent_method = CASE WHEN {m} THEN {m} ELSE consent_method END, "
            f"consent_text = CASE WHEN {m} THEN {m} ELSE consent_text END, "
            f"updated_at = {m} WHERE id = {m} AND status = {m}",
            [(n, c, lang, a, st, f, ca, f, cm, f, ct, u, i, old)
             for n, c, lang, a, st, f, ca, cm, ct, u, i, old in rows],
        )
        return int(self.cursor.rowcount)

    def subscribe(self, keys: Sequence[str], s: BatchSettings) -> int:
        """Put these subscribers on the list (those not unsubscribed everywhere)."""
        m, now = self.mark, self.time(s.now)
        people = f"SELECT id FROM subscribers WHERE {self.any_of('email_key')}"
        if s.resubscribe:
            self.cursor.execute(
                f"UPDATE subscriptions SET status = {m}, updated_at = {m} WHERE list_id = {m} "
                f"AND status = 'unsubscribed' AND subscriber_id IN ({people})",
                (s.subscription_status, now, s.list_id, self.many(keys)),
            )
        if s.preconfirm:
            self.cursor.execute(
                f"UPDATE subscriptions SET status = 'confirmed', updated_at = {m} "
                f"WHERE list_id = {m} AND status = 'unconfirmed' AND subscriber_id IN ({people})",
                (now, s.list_id, self.many(keys)),
            )
        self.cursor.execute(
            "INSERT INTO subscriptions (list_id, subscriber_id, status, created_at, updated_at) "
            f"SELECT {m}, id, {m}, {m}, {m} FROM subscribers WHERE {self.any_of('email_key')} "
            f"AND status NOT IN ({_STICKY}) ON CONFLICT (list_id, subscriber_id) DO NOTHING",
            (s.list_id, s.subscription_status, now, now, self.many(keys)),
        )
        return int(self.cursor.rowcount)

    # --- the people's histories (subscriber_events): set-based, a few statements a batch

    def status_events(self, changes: Sequence[tuple[int, str, str]], s: BatchSettings) -> None:
        """(subscriber id, old status, new status) of existing people whose status changed."""
        m, now = self.mark, self.time(s.now)
        self.cursor.executemany(
            "INSERT INTO subscriber_events (subscriber_id, at, kind, detail, by) "
            f"VALUES ({m}, {m}, 'status', {m}, {m})",
            [(sid, now, f"{old} -> {new} (import)", s.by) for sid, old, new in changes],
        )

    def unsuppressed_events(self, hashes: Sequence[str], s: BatchSettings) -> None:
        m = self.mark
        self.cursor.execute(
            "INSERT INTO subscriber_events (subscriber_id, at, kind, detail, by) "
            f"SELECT id, {m}, 'unsuppressed', 'import with --resubscribe', {m} "
            f"FROM subscribers WHERE {self.any_of('email_hash')}",
            (self.time(s.now), s.by, self.many(hashes)),
        )

    def list_events(self, keys: Sequence[str], s: BatchSettings) -> None:
        """A `list-added` event for each subscription of these people that this import
        created, confirmed or renewed (updated now), once even when an address repeats.

        Not for the people this import added: their row and subscriptions, created at the
        same instant, are the record (`subscribers.report.history` reads them), and
        writing an event per new row made a 100k-row import 10-30% slower."""
        m, now = self.mark, self.time(s.now)
        self.cursor.execute(f"SELECT name FROM lists WHERE id = {m}", (s.list_id,))
        found = self.cursor.fetchone()
        name = str(found[0]) if found else f"list {s.list_id}"
        self.cursor.execute(
            "INSERT INTO subscriber_events (subscriber_id, at, kind, detail, by) "
            f"SELECT p.subscriber_id, {m}, 'list-added', CAST({m} AS TEXT) || ' (' || p.status "
            f"|| ')', {m} "
            f"FROM subscriptions p WHERE p.list_id = {m} AND p.updated_at = {m} "
            "AND p.subscriber_id IN (SELECT id FROM subscribers WHERE "
            f"{self.any_of('email_key')} AND created_at <> {m}) "
            "AND NOT EXISTS (SELECT 1 FROM subscriber_events e WHERE "
            f"e.subscriber_id = p.subscriber_id AND e.at = {m} AND e.kind = 'list-added')",
            (now, name, s.by, s.list_id, now, self.many(keys), now, now),
        )

    def loads(self, stored: Any) -> dict[str, object]:
        value = json.loads(stored) if isinstance(stored, str) else stored
        return dict(value) if isinstance(value, dict) else {}


def _dumps(attributes: dict[str, object]) -> str:
    return json.dumps(attributes, ensure_ascii=False)


def end_bulk(session: Session) -> None:
    """After the last batch: SQLite's usual checkpoint interval, and a checkpoint now."""
    db = _Bulk(session, lock=False)
    if db.sqlite:
        db.checkpoint_every(SQLITE_CHECKPOINT_PAGES)
        db.cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
    db.cursor.close()


def write_batch(session: Session, rows: Iterable[SubscriberRow], s: BatchSettings, *,
                lookup_first: bool = False, staged: StagedText | None = None) -> BatchResult:
    """Write one batch of rows (one per address) in the session's transaction;
    `lookup_first` when most of them are probably stored already (see `_write`);
    `staged`: their COPY text, built beforehand (`staged_text`), used if it stages."""
    db = _Bulk(session)
    try:
        return _write(db, rows, s, lookup_first=lookup_first, prepared=staged)
    finally:
        db.cursor.close()


def _write(db: _Bulk, rows: Iterable[SubscriberRow], s: BatchSettings, *,
           lookup_first: bool = False, prepared: StagedText | None = None) -> BatchResult:
    """SQLite: look the batch up, then insert the new rows and update the others.
    PostgreSQL: stage the whole batch, insert it (the rows already stored are left
    out by ON CONFLICT), then look up only the rows that were not inserted: on a first
    import, the few repeats from earlier batches instead of every row. `lookup_first`
    (for a batch that is expected to be mostly stored already, as in a re-import):
    look up first and stage only the new rows, as SQLite does."""
    if s.checkpoint_pages:
        db.checkpoint_every(s.checkpoint_pages)
    result = BatchResult()
    batch = sorted(rows, key=lambda r: r.key)  # index order: fewer pages touched
    if not batch:
        return result
    staged = not db.sqlite and not lookup_first
    if staged:
        if (prepared is None or prepared.settings != s
                or prepared.keys != tuple(r.key for r in batch)):
            prepared = None  # not built for these rows and settings: build it here
        db.stage(prepared or _new_rows(batch, s, sqlite=False))
    suppressed = db.staged_suppressions() if staged else db.suppressions([r.hash for r in batch])
    lifted: set[str] = set()
    if suppressed and s.resubscribe:
        db.lift_suppressions(list(suppressed))
        db.unsuppressed_events(list(suppressed), s)
        lifted = set(suppressed)
    elif suppressed:
        result.suppressed = [(r, suppressed[r.hash]) for r in batch if r.hash in suppressed]
        batch = [r for r in batch if r.hash not in suppressed]
        if staged:
            db.unstage(list(suppressed))
    existing = {} if staged else db.existing([r.key for r in batch], s.now)
    new = [] if staged else list(_new_rows([r for r in batch if r.key not in existing], s,
                                           sqlite=db.sqlite))
    if db.sqlite:
        if new:
            result.added = db.insert(new)
            if result.added != len(new):
                raise ConcurrentChange(
                    f"{len(new) - result.added} of these addresses were added by someone "
                    "else while this batch was written: run the import again"
                )
        added = {n[1] for n in new}
    else:
        if new:
            db.stage(new)
        added = db.insert_staged(s.now) if staged or new else set()
        result.added = len(added)
        # rows already stored (or just added by someone else): looked up now
        rest = [r.key for r in batch if r.key not in added and r.key not in existing]
        if rest:
            existing.update(db.existing(rest, s.now))
        if len(added) + len(existing) != len(batch):
            raise ConcurrentChange(
                "some of these subscribers were removed by someone else while this batch "
                "was written: run the import again"
            )
    changes = _changes(db, batch, existing, s, result, lifted)
    result.resubscribed += sum(1 for r in batch if r.hash in lifted and r.key in added)
    if changes and db.update(changes) != len(changes):
        raise ConcurrentChange(
            "some of these subscribers changed status while this batch was written: "
            "run the import again"
        )
    moved = [(c[-2], c[-1], c[4]) for c in changes if c[4] != c[-1]]
    if moved:
        db.status_events(moved, s)
    if s.list_id is not None:
        result.subscribed = db.subscribe([r.key for r in batch], s)
        db.list_events([r.key for r in batch], s)
    return result


def _new_rows(rows: list[SubscriberRow], s: BatchSettings, *, sqlite: bool
              ) -> Iterator[tuple[Any, ...]]:
    """The rows as new subscribers (`_COLUMNS`, created_at, updated_at), one at a time."""
    this_run = stored_time(s.now, sqlite=sqlite)
    new_status = s.new_status
    return (
        (r.email, r.key, r.hash, r.name, r.country, r.language or s.default_language,
         r.status or new_status, _dumps(r.attributes) if r.attributes else "{}",
         stored_time(r.consent_at, sqlite=sqlite) if r.consent_at else this_run,
         r.consent_method or s.consent_method, r.consent_text or s.consent_text,
         salt, this_run, this_run)
        for r, salt in zip(rows, new_salts(len(rows)), strict=True)
    )


def _changes(db: _Bulk, batch: list[SubscriberRow], existing: dict[str, _Existing],
             s: BatchSettings, result: BatchResult, lifted: set[str]) -> list[tuple[Any, ...]]:
    """The UPDATE parameters of the rows already stored, counted into `result`."""
    changes: list[tuple[Any, ...]] = []
    for r in batch:
        current = existing.get(r.key)
        if current is None:
            continue
        change, reactivated = _decide(db, r, current, s)
        if change is not None:
            changes.append(change)
        if current.this_run:
            result.merged += 1  # written by an earlier batch of this import
        elif change is not None:
            result.updated += 1
        else:
            result.unchanged += 1
        result.resubscribed += reactivated or r.hash in lifted
        result.inactive += (change[4] if change else current.status) in STICKY_STATUSES
    return changes


def _decide(
    db: _Bulk, r: SubscriberRow, current: _Existing, s: BatchSettings
) -> tuple[tuple[Any, ...] | None, bool]:
    """The UPDATE parameters `r` calls for (None: nothing changes), and whether it
    reactivates someone who had left."""
    status, reactivated = current.status, False
    if r.status in STICKY_STATUSES and status not in STICKY_STATUSES:
        status = r.status  # the file says they left: believe it
    elif s.resubscribe and status in STICKY_STATUSES and r.status not in STICKY_STATUSES:
        status, reactivated = s.new_status, True
    elif s.preconfirm and status == "pending":
        status = "active"
    attributes = None
    if r.attributes:
        stored = db.loads(current.attributes)
        merged = {**stored, **r.attributes}
        if merged != stored:
            attributes = _dumps(merged)
    fields = (r.name or current.name, r.country or current.country,
              r.language or current.language)
    if (attributes is None and status == current.status
            and fields == (current.name, current.country, current.language)):
        return None, False
    if attributes is None:
        attributes = current.attributes
    return (
        *fields, attributes, status, reactivated, db.time(r.consent_at or s.now),
        r.consent_method or s.consent_method, r.consent_text or s.consent_text,
        db.time(s.now), current.id, current.status,
    ), reactivated
