"""The delivery journal: lines that survive their process, read back only when it is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from worker.journal import MAKING, SUFFIX, UNBORN_SECONDS, Journal, JournalError, Reply, recover
from worker.recording import journal_directory

AT = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)


def reply(delivery_id: int, status: str = "sent", **fields: object) -> Reply:
    values: dict[str, object] = {
        "attempts": 1, "reply": "250 2.0.0 Ok: queued", "message_id": f"<{delivery_id}@x>",
        "code": 250, "relay": "127.0.0.1:25", "next_attempt_at": None, "at": AT,
        **fields}
    return Reply(delivery_id=delivery_id, status=status, **values)  # type: ignore[arg-type]


replies = st.builds(
    Reply,
    delivery_id=st.integers(1, 2**62), attempts=st.integers(0, 1000),
    status=st.sampled_from(["sent", "deferred", "bounced", "failed"]),
    reply=st.text(max_size=300), message_id=st.none() | st.text(max_size=80),
    code=st.none() | st.integers(200, 599), relay=st.none() | st.text(max_size=40),
    next_attempt_at=st.none() | st.datetimes(timezones=st.just(UTC)),
    at=st.datetimes(timezones=st.just(UTC)), suppress=st.booleans(),
    subscriber_id=st.integers(0, 2**62), email=st.text(max_size=80),
)


@settings(max_examples=150, deadline=None)
@given(replies)
def test_a_reply_comes_back_from_its_line_unchanged(r: Reply) -> None:
    line = r.line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # one line, whatever the reply says
    assert Reply.parse(line) == r


def collect(directory: Path) -> tuple[list[Reply], int]:
    applied: list[Reply] = []
    count = recover(directory, applied.extend)
    return applied, count


def test_a_finished_batch_leaves_no_file_and_a_live_one_is_not_read(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        journal.write(reply(1))
        assert journal.path.name.endswith(SUFFIX)
        assert collect(tmp_path) == ([], 0), "a running batch's journal is its own"
        journal.clear()
    assert list(tmp_path.iterdir()) == []


def test_a_batch_that_ends_unrecorded_leaves_its_replies_for_the_next(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:  # the database was away: the group never went in
        journal.write(reply(1))
        journal.write(reply(2, "deferred", code=451, next_attempt_at=AT + timedelta(minutes=5)))
    applied, count = collect(tmp_path)
    assert count == 2 and [r.delivery_id for r in applied] == [1, 2]
    assert applied[1].next_attempt_at == AT + timedelta(minutes=5)
    assert list(tmp_path.iterdir()) == [] and collect(tmp_path) == ([], 0)


CHILD = textwrap.dedent("""
    import os, signal, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from worker.journal import Journal, Reply
    journal = Journal(Path(sys.argv[1]))
    first = int(sys.argv[2])
    for n in range(first, first + 3):
        journal.write(Reply(n, 1, "sent", "250 ok", None, 250, None, None,
                            datetime.now(UTC)))
    print("written", flush=True)
    if sys.argv[3] == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.read()  # alive until the test closes our stdin
""")


def test_only_the_journals_of_dead_processes_are_recovered(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    alive = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), "10", "live"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        assert alive.stdout is not None and alive.stdout.readline() == b"written\n"
        dead = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), "20", "die"],
                              capture_output=True, env=env, timeout=60)
        assert dead.returncode == -signal.SIGKILL and dead.stdout == b"written\n"
        applied, _ = collect(tmp_path)
        assert sorted(r.delivery_id for r in applied) == [20, 21, 22]
        assert len(list(tmp_path.glob(f"*{SUFFIX}"))) == 1, "the live one stays"
    finally:
        alive.kill()
        alive.wait()
    applied, _ = collect(tmp_path)
    assert sorted(r.delivery_id for r in applied) == [10, 11, 12]
    assert list(tmp_path.iterdir()) == []


def test_a_torn_last_line_and_garbage_cost_only_themselves(tmp_path: Path) -> None:
    good = reply(7).line()
    (tmp_path / f"crashed{SUFFIX}").write_bytes(
        b"not json\n" + b'{"delivery_id": "7"}\n' + good + reply(8).line()[:-10])
    applied, count = collect(tmp_path)
    assert count == 1 and applied == [reply(7)]
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=200) | replies.map(Reply.line), max_size=8))
def test_any_bytes_in_a_journal_never_raise(tmp_path: Path, chunks: list[bytes]) -> None:
    path = tmp_path / f"fuzz{SUFFIX}"
    path.write_bytes(b"".join(chunks))
    applied, count = collect(tmp_path)
    assert count == len(applied)
    assert all(r.status in ("sent", "deferred", "bounced", "failed") for r in applied)
    assert not path.exists()


def test_the_journal_directory_may_not_exist_yet(tmp_path: Path) -> None:
    assert collect(tmp_path / "not-yet") == ([], 0)


def test_an_unwritable_journal_directory_says_which_and_what_to_do(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(JournalError, match=f"in {blocked / 'journal'}: .*NEWSLETTER_JOURNAL_DIR"):
        Journal(blocked / "journal")


def test_each_database_has_its_own_journals() -> None:
    """A journal applied to another database could mark someone else's delivery sent."""
    base = Path("/srv/journal")
    one = journal_directory(base, make_url("postgresql://news:secret@db/news"))
    assert one == journal_directory(base, make_url("postgresql://news:other@db/news"))
    assert one != journal_directory(base, make_url("postgresql://news:secret@db/staging"))
    assert one != journal_directory(base, make_url("sqlite:///var/newsletter.db"))
    assert one.parent == base


def test_a_journal_whose_process_died_before_locking_it_is_cleared(tmp_path: Path) -> None:
    old, fresh = tmp_path / f"a{MAKING}", tmp_path / f"b{MAKING}"
    old.write_bytes(b"")
    fresh.write_bytes(b"")
    os.utime(old, (time.time() - UNBORN_SECONDS - 1,) * 2)
    assert collect(tmp_path) == ([], 0)
    assert not old.exists() and fresh.exists(), "a new one may be about to be locked"


def test_a_reply_longer_than_the_ledger_holds_is_not_applied(tmp_path: Path) -> None:
    (tmp_path / f"x{SUFFIX}").write_bytes(
        reply(1, message_id="<" + "m" * 300 + ">").line() + reply(2).line())
    applied, _ = collect(tmp_path)
    assert [r.delivery_id for r in applied] == [2]
