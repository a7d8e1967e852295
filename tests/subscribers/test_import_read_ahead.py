"""The import reads and checks the next batch in a thread while the database writes the
one before: at most two batches alive, errors reach the writer at their batch, the
progress is the written batches' bytes, and the GIL's switch interval comes back."""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Generator
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from subscribers import bulk
from subscribers.importer import (
    ImportFileError,
    ImportOptions,
    ImportStopped,
    _Batch,
    _ReadAhead,
    import_subscribers,
)
from subscribers.readers import CHUNK, ByteCount
from tests.concurrency import people_csv

WAIT = 10  # seconds: a bound for a thread to get somewhere, never a pause


class Tally:
    """What the reading side did, seen from the writing side."""

    def __init__(self) -> None:
        self.started = 0  # batches the reader began to build
        self.finished = 0  # batches the writer is done with
        self.violations: list[str] = []
        self.closed = threading.Event()
        self.moved = threading.Condition()

    def batches(self, n: int, fail_at: int | None = None) -> Generator[_Batch, None, None]:
        try:
            for i in range(n):
                with self.moved:
                    self.started += 1
                    if self.started > self.finished + 2:
                        self.violations.append(f"batch {i + 1} begun with only "
                                               f"{self.finished} written")
                    self.moved.notify_all()
                if fail_at == i:
                    raise ImportFileError(f"row {i * 10 + 2}: the file broke here")
                yield _Batch(read=10)
        finally:
            self.closed.set()

    def wait_until_started(self, n: int) -> bool:
        with self.moved:
            return self.moved.wait_for(lambda: self.started >= n, timeout=WAIT)


def test_the_next_batch_is_read_while_one_is_written_never_two_ahead() -> None:
    tally = Tally()
    ahead = _ReadAhead(tally.batches(6), ByteCount())
    written = 0
    try:
        for _ in ahead:
            # the reader gets on with the next batch while this one is "written"...
            if written < 5:
                assert tally.wait_until_started(written + 2), "the reader did not read ahead"
            with tally.moved:
                written += 1
                tally.finished = written
    finally:
        ahead.close()
    assert written == 6
    assert tally.violations == []  # ...but never with two batches waiting for the writer


def test_an_error_while_reading_reaches_the_writer_after_the_batches_before_it() -> None:
    tally = Tally()
    ahead = _ReadAhead(tally.batches(5, fail_at=2), ByteCount())
    got = 0
    with pytest.raises(ImportFileError, match="row 22: the file broke here"):
        try:
            for _ in ahead:
                got += 1
                tally.finished = got
        finally:
            ahead.close()
    assert got == 2


def test_close_stops_the_thread_and_closes_the_reading() -> None:
    tally = Tally()
    ahead = _ReadAhead(tally.batches(1000), ByteCount())
    next(iter(ahead))
    ahead.close()
    assert tally.closed.is_set()  # the readers' clean-up ran, not left to the GC
    assert tally.started <= 2
    assert not any(t.name == "import-read-ahead" for t in threading.enumerate())


def test_progress_counts_the_written_batches_not_the_one_read_ahead(
    sessions: sessionmaker[Session],
) -> None:
    """The file is read in chunks of CHUNK bytes: after each batch, the progress is the
    bytes up to that batch's end, rounded up to a chunk, never the batch read ahead."""
    size, rows = 1000, 4500
    data = people_csv(rows)
    lines = data.splitlines(keepends=True)
    ends = [sum(map(len, lines[:1 + min(k * size, rows)])) for k in range(1, 6)]
    assert ends[-1] == len(data) > 2 * CHUNK  # several chunks, several batches a chunk
    steps: list[int] = []
    report = import_subscribers(sessions, io.BytesIO(data), ImportOptions(batch_size=size),
                                default_language="en", progress=steps.append)
    assert report.added == rows
    shown = [sum(steps[:k + 1]) for k in range(len(steps))]
    assert len(shown) == len(ends) and shown[-1] == len(data)
    for end, seen in zip(ends, shown, strict=True):
        assert end <= seen < end + CHUNK


def test_the_switch_interval_is_short_during_an_import_and_restored_after(
    sessions: sessionmaker[Session],
) -> None:
    before = sys.getswitchinterval()
    during: list[float] = []
    import_subscribers(sessions, io.BytesIO(people_csv(30)), ImportOptions(batch_size=10),
                       default_language="en",
                       progress=lambda _: during.append(sys.getswitchinterval()))
    assert during and max(during) <= 0.0005 < before
    assert sys.getswitchinterval() == before
    broken = people_csv(25) + b"\xff\xfe not utf-8\n"
    with pytest.raises(ImportStopped, match="25 imported are stored"):
        import_subscribers(sessions, io.BytesIO(broken), ImportOptions(batch_size=10),
                           default_language="en")
    assert sys.getswitchinterval() == before


def test_postgresql_stages_text_built_on_the_reading_thread(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first import on PostgreSQL builds each batch's COPY text while reading ahead,
    not on the thread that waits for the server; SQLite inserts rows, no text. Into a
    table that holds people already, the first batch is looked up first: no text is
    built for it (nor for the batch read meanwhile) only to be thrown away."""
    real = bulk._new_rows
    threads: list[str] = []

    def recorded(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(bulk, "_new_rows", recorded)
    report = import_subscribers(sessions, io.BytesIO(people_csv(50)), ImportOptions(batch_size=10),
                                default_language="en")
    assert report.added == 50
    with sessions() as session:
        postgres = session.get_bind().dialect.name == "postgresql"
    assert len(threads) == 5
    assert set(threads) == ({"import-read-ahead"} if postgres else {"MainThread"})
    threads.clear()  # a re-import: every batch is looked up first, none staged whole
    report = import_subscribers(sessions, io.BytesIO(people_csv(50)), ImportOptions(batch_size=10),
                                default_language="en")
    assert report.unchanged == 50
    assert threads == ["MainThread"] * 5
