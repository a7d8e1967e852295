"""End-to-end delivery speed against the ceiling of raw SMTP on the same machine.

    .venv/bin/python bench/delivery.py [--subscribers 100000] [--workers 2] [--batch 500]
        [--record-every 100] [--curves N] [--profile 5000] [--plan 1000000]
        [--plan-runs 3] [--timeout SECONDS]

Starts private PostgreSQL and Redis servers (tests/servers.py) and Postfix's
`smtp-sink` on loopback; imports N subscribers across 16 (country, language)
segments; runs `newsletter issues send` with W `newsletter worker -c 1` processes and
times it until the ledger shows every message accepted. In the same run, Postfix's
`smtp-source` sends the same number of messages of the same size to the same sink:
that is the ceiling. --curves N then sends N messages for each point of the scale-out
curves (1, 2 and 4 workers; batches of 100, 500, 2000; replies recorded one by one or
100 at a time), each against smtp-source with as many sessions; --profile sends in
this process (CPU a message without Celery, then cProfile). Then plans an issue for
--plan subscribers, --plan-runs times from an empty ledger, and prints each time and
the median (one run on this 2-core machine moves by a second either way).
Needs Postfix's tools: apt-get install postfix (no configuration needed).

Everything it starts (servers, workers, the sender, smtp-source) is stopped on every way
out: the end, an error, Ctrl-C, SIGTERM or SIGHUP (a CI job's timeout, a closed
terminal) and --timeout. Only SIGKILL leaves them behind.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from newsletter.cli.demo import sample_items_text  # noqa: E402
from newsletter.db import make_engine, session_factory, upgrade  # noqa: E402
from newsletter.ingest.text import parse_text  # noqa: E402
from newsletter.issues import audience_of, countries_of, create_issue, get_issue  # noqa: E402
from newsletter.items import store_items  # noqa: E402
from newsletter.models import Delivery, IssueVariant  # noqa: E402
from newsletter.render import PREFERENCES, UNSUBSCRIBE, Rendered  # noqa: E402
from tests.servers import free_port, start_postgres, start_redis  # noqa: E402
from worker import ledger  # noqa: E402
from worker.mime import MessageTemplate, Recipient  # noqa: E402

COUNTRIES = ["CR", "NI", "SV", "HN", "GT", "BZ", "MX", "PA"]
LANGUAGES = ["en", "es"]  # 8 countries x 2 languages = 16 segments
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_SECONDS = 10  # a process group gets this long after SIGTERM before SIGKILL


class Stop(BaseException):
    """A signal or --timeout: unwinds like Ctrl-C, so every started thing is stopped."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def stop_on_signals(timeout: float) -> None:
    """Turn SIGINT/SIGTERM/SIGHUP, and SIGALRM after `timeout` seconds, into Stop."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGALRM:
            raise Stop(f"timed out after {timeout:g} s (--timeout)", 1)
        raise Stop(f"interrupted by {signal.Signals(signum).name}", 128 + signum)

    for sig in (*STOP_SIGNALS, signal.SIGALRM):
        signal.signal(sig, handler)
    if timeout > 0:
        signal.setitimer(signal.ITIMER_REAL, timeout)


def stop_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal `proc`'s whole process group, wait, SIGKILL what is left, reap the leader."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the leader's children too, even if it is gone
    proc.wait()


class Started(contextlib.ExitStack):
    """What the bench started, stopped in reverse order however `main` ends.

    Signals are ignored while stopping, so a second Ctrl-C cannot cut the cleanup short
    (each step is bounded: SIGKILL after GRACE_SECONDS)."""

    def spawn(self, argv: list[str], **options: Any) -> subprocess.Popen[bytes]:
        """Start `argv` in its own process group, stopped (with its children) on exit."""
        proc: subprocess.Popen[bytes] = subprocess.Popen(argv, start_new_session=True, **options)
        self.callback(stop_group, proc)
        return proc

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig in (*STOP_SIGNALS, signal.SIGALRM):
            signal.signal(sig, signal.SIG_IGN)
        return bool(super().__exit__(exc_type, exc, tb))


def wait_ready(workers: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    """Until every worker has logged Celery's "ready." (one that exits is an error)."""
    while True:
        for proc, log in zip(workers, logs, strict=True):
            if proc.poll() is not None:
                sys.exit(f"a worker exited with status {proc.returncode} while starting; "
                         f"its log, {log}:\n{log.read_text(errors='replace')[-2000:]}")
        if all(" ready." in log.read_text(errors="replace") for log in logs):
            return
        time.sleep(0.1)


def tool(name: str) -> str:
    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists()
                                   else None)
    if not found:
        sys.exit(f"{name} not found: install Postfix's tools with `sudo apt-get install -y "
                 "postfix` (choose 'No configuration')")
    return found


def fill_subscribers(db_url: str, count: int, first: int = 1) -> None:
    """Generated subscribers straight into the table, one INSERT ... SELECT."""
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO subscribers (email, email_key, email_hash, name, country, language,
                                     status, attributes, token_salt, created_at,
                                     updated_at)
            SELECT 'person' || n || '@example.org', 'person' || n || '@example.org',
                   md5('person' || n), 'Person ' || n,
                   (ARRAY['CR','NI','SV','HN','GT','BZ','MX','PA'])[1 + n % 8],
                   (ARRAY['en','es'])[1 + (n / 8) % 2], 'active', '{}',
                   substr(md5(random()::text), 1, 22), now(), now()
            FROM generate_series(:first, :first + :count - 1) AS n
        """), {"count": count, "first": first})
    engine.dispose()


def message_bytes(variant: IssueVariant) -> bytes:
    """One real message of this variant, as the workers build it."""
    template = MessageTemplate.build(
        Rendered(variant.subject, variant.html, variant.text), from_name="Bench",
        from_email="news@example.org", list_id="bench.example.org",
        slots=(UNSUBSCRIBE, PREFERENCES),
    )
    url = "https://news.example.org/u/12345.abcdefghijklmnopqrstuvwx"
    return template.render(Recipient("Person 1", "person1@example.org",
                                     "<bench.1@example.org>", url,
                                     {UNSUBSCRIBE: url, PREFERENCES: url}))


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return []
    kids = [int(p) for p in out.split()]
    return kids + [g for k in kids for g in children(k)]


class RssWatch(threading.Thread):
    """Samples the peak RSS of a process tree while it runs (VmHWM per process)."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.roots = pids
        self.peaks: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for root in self.roots:
                for pid in [root, *children(root)]:
                    self.peaks[pid] = max(self.peaks.get(pid, 0.0), peak_rss_mb(pid))
            time.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live children (Celery's pool child)."""
    total = 0.0
    for one in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


# where a worker's time goes, by the module that spends it (tottime, not cumulative)
PROFILE_GROUPS = (
    ("ledger SQL (worker/ledger.py, SQLAlchemy, psycopg)", ("worker/ledger", "sqlalchemy",
                                                           "psycopg")),
    ("SMTP (smtplib, socket, ssl)", ("smtplib", "socket", "ssl", "_socket")),
    ("rate limiter (worker/ratelimit.py, redis)", ("worker/ratelimit", "redis")),
    ("message (worker/mime.py, links, DKIM)", ("worker/mime", "subscribers/tokens",
                                               "worker/dkim", "hmac", "hashlib", "base64")),
    ("delivery loop (worker/delivery.py)", ("worker/delivery",)),
    ("logging", ("logging",)),
)


def profile_send(db_url: str, sink_port: int, count: int, tmp: Path,
                 worker_cpu: float) -> None:
    """Send `count` more messages in this process, as one worker's batches do
    (deliver_range, the same SMTP sink, Redis off), and print the CPU they took; then
    `count` more under cProfile, and print where the time goes, grouped. `worker_cpu`
    (a worker's CPU a message in the end-to-end run, pool child included) minus this
    process's is what Celery and the rest of a worker process add."""
    import cProfile
    import pstats

    from newsletter.settings import load_settings
    from worker.delivery import deliver_range, plan_issue, render_missing_variants
    from worker.runtime import build, configure

    settings = load_settings(database_url=db_url, smtp_url=f"smtp://127.0.0.1:{sink_port}",
                             secret_key="bench-secret", var_dir=tmp / "var",
                             allow_blocked_sending=True, broker_url="", redis_url="")
    runtime = build(settings)
    configure(runtime)
    with runtime.sessions() as session, session.begin():
        issue = create_issue(session, "bench-profile", date(2019, 9, 1), date(2019, 10, 31))
        plan_issue(settings, session, issue)
        issue.status = "sending"
        issue_id = issue.id
    with runtime.sessions() as session:
        ids = sorted(session.scalars(select(Delivery.id).where(
            Delivery.issue_id == issue_id)))[:2 * count]
    with runtime.sessions() as session, session.begin():
        render_missing_variants(runtime, session, get_issue(session, "bench-profile"))
    def deliver(chunks: list[int]) -> dict[str, int]:
        done: dict[str, int] = {}
        for lo in range(0, len(chunks), 500):
            chunk = chunks[lo:lo + 500]
            for status, k in deliver_range(runtime, issue_id, chunk[0], chunk[-1]).items():
                done[status] = done.get(status, 0) + k
        return done

    # first without the profiler: this process's CPU a message, the same work a worker's
    # pool child does but for Celery (what a worker spends beyond it is Celery's)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    plain = deliver(ids[:count]).get("sent", 0)
    after = resource.getrusage(resource.RUSAGE_SELF)
    plain_cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    print(f"\nOne process sending {plain:,} messages as a worker's batches do, without "
          f"Celery: {plain_cpu / max(plain, 1) * 1e6:,.0f} us of CPU a message "
          f"(user {(after.ru_utime - usage.ru_utime) / max(plain, 1) * 1e6:,.0f}, "
          f"system {(after.ru_stime - usage.ru_stime) / max(plain, 1) * 1e6:,.0f})")
    own = plain_cpu / max(plain, 1) * 1e6
    extra = worker_cpu - own
    print(f"  a worker spent {worker_cpu:,.0f} us a message end to end: Celery, the broker "
          "and the rest of its process add "
          + (f"about {extra:,.0f} us" if extra > 0 else "nothing this run can tell from noise"))
    profiler = cProfile.Profile()
    t0 = time.monotonic()
    profiler.enable()
    done = deliver(ids[count:2 * count])
    profiler.disable()
    took = time.monotonic() - t0
    configure(None)
    stats = pstats.Stats(profiler)
    groups = dict.fromkeys([name for name, _ in PROFILE_GROUPS] + ["other"], 0.0)
    for (filename, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        tottime = row[2]
        where = filename if filename != "~" else function  # a built-in: "<method 'sendall' of ..."
        name = next((g for g, keys in PROFILE_GROUPS if any(k in where for k in keys)),
                    "other")
        groups[name] += tottime
    total = sum(groups.values()) or 1.0
    sent = done.get("sent", 0)
    print(f"Where one worker's time goes: {sent:,} messages sent in this process under "
          f"cProfile in {took:.2f} s ({sent / took:,.0f} msg/s profiled; cProfile slows "
          "Python code, so shares matter, not speed)")
    for name, seconds in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<55} {seconds / total:6.1%}  {seconds / max(sent, 1) * 1e6:8.0f} us "
              "a message")
    print("  the ten costliest functions (own time):")
    top = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:10]  # type: ignore[attr-defined]
    for (filename, line, function), row in top:
        where = f"{Path(filename).name}:{line}" if filename != "~" else "built-in"
        print(f"    {row[2] / max(sent, 1) * 1e6:7.0f} us  {row[1]:>7} calls  {function} ({where})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--plan", type=int, default=1_000_000,
                        help="then plan an issue for this many subscribers (0: skip)")
    parser.add_argument("--plan-runs", type=int, default=3,
                        help="plan it this many times, from an empty ledger each time, and "
                             "print each time and the median")
    parser.add_argument("--batch", type=int, default=500,
                        help="NEWSLETTER_BATCH_SIZE: deliveries per Celery task")
    parser.add_argument("--record-every", type=int, default=100,
                        help="NEWSLETTER_RECORD_EVERY: replies per ledger write")
    parser.add_argument("--curves", type=int, default=0, metavar="N",
                        help="then send N messages for each point of the scale-out curves "
                             "(workers 1, 2, 4; batch 100, 500, 2000; record_every 1, 100) "
                             "and print them as a table (0: skip)")
    parser.add_argument("--profile", type=int, default=5_000,
                        help="then send this many in this process under cProfile and say "
                             "where the time goes (0: skip)")
    parser.add_argument("--timeout", type=float, default=0,
                        help="stop everything and exit 1 after this many seconds (0: never)")
    args = parser.parse_args()
    sink_bin, source_bin = tool("smtp-sink"), tool("smtp-source")
    stop_on_signals(args.timeout)
    with Started() as started:
        tmp = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
        started.callback(shutil.rmtree, tmp, ignore_errors=True)
        run(args, started, tmp, sink_bin, source_bin)


@dataclass
class Setup:
    """The servers and the database every measurement of one run shares."""

    started: Started
    tmp: Path
    db_url: str
    broker_url: str
    sink_port: int
    source_bin: str
    sessions: sessionmaker[Session]
    size: int = 0  # bytes of one real message, known after the first send
    ceilings: dict[tuple[int, int], tuple[float, float]] = field(default_factory=dict)

    def env(self, batch: int, record_every: int) -> dict[str, str]:
        return {**os.environ, "NEWSLETTER_DATABASE_URL": self.db_url,
                "NEWSLETTER_BROKER_URL": self.broker_url,
                "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{self.sink_port}",
                "NEWSLETTER_SECRET_KEY": "bench-secret",
                "NEWSLETTER_VAR_DIR": str(self.tmp / "var"),
                "NEWSLETTER_BATCH_SIZE": str(batch),
                "NEWSLETTER_RECORD_EVERY": str(record_every),
                "NEWSLETTER_ALLOW_BLOCKED_SENDING": "true"}  # smtp-sink: a staging relay

    def ceiling(self, sessions_: int, n: int) -> tuple[float, float]:
        """smtp-source: `n` messages of the real size to the same sink on `sessions_`
        connections; (seconds, msg/s), measured once per (sessions, n)."""
        if (sessions_, n) not in self.ceilings:
            size_kb = max(1, round(self.size / 1024))
            t0 = time.monotonic()
            source = self.started.spawn([
                self.source_bin, "-s", str(sessions_), "-l", str(size_kb * 1024),
                "-m", str(n), "-f", "news@example.org", "-t", "person@example.org",
                f"127.0.0.1:{self.sink_port}"])
            if source.wait() != 0:
                sys.exit(f"smtp-source failed with status {source.returncode}")
            took = time.monotonic() - t0
            self.ceilings[(sessions_, n)] = (took, n / took)
        return self.ceilings[(sessions_, n)]


@dataclass
class Sent:
    """One end-to-end send: how long, and what the workers spent."""

    workers: int
    batch: int
    record_every: int
    n: int
    elapsed: float
    cpu: dict[int, float]
    peaks: dict[int, float]

    @property
    def rate(self) -> float:
        return self.n / self.elapsed


def send_all(setup: Setup, workers: int, batch: int, record_every: int, n: int) -> Sent:
    """Start `workers` processes, send the issue to its `n` subscribers, time it until the
    ledger shows every one accepted, stop the workers; the issue is left to send again."""
    env = setup.env(batch, record_every)
    procs: list[subprocess.Popen[bytes]] = []
    logs = [setup.tmp / f"worker-{workers}-{batch}-{record_every}-{i}.log"
            for i in range(workers)]
    for log in logs:
        with log.open("wb") as output:
            procs.append(setup.started.spawn(
                [sys.executable, "-m", "newsletter", "worker", "-c", "1", "--loglevel", "INFO"],
                env=env, cwd=setup.tmp, stdout=output, stderr=subprocess.STDOUT))
    wait_ready(procs, logs)
    print(f"{workers} workers ready (batch {batch}, record_every {record_every}; pids "
          f"{', '.join(str(p.pid) for p in procs)})", flush=True)
    watch = RssWatch([p.pid for p in procs])
    watch.start()
    cpu_before = {p.pid: cpu_seconds(p.pid) for p in procs}
    began = time.monotonic()
    send = setup.started.spawn([sys.executable, "-m", "newsletter", "issues", "send", "bench",
                                "--no-wait"], env=env, cwd=setup.tmp)
    watch.roots.append(send.pid)
    send.wait()
    while True:
        with setup.sessions() as session:
            sent = session.scalar(select(func.count()).select_from(Delivery)
                                  .where(Delivery.status == "sent")) or 0
        if sent >= n:
            break
        if all(p.poll() is not None for p in procs):
            sys.exit(f"every worker exited with {sent:,} of {n:,} sent; logs in {setup.tmp}")
        time.sleep(0.05)
    elapsed = time.monotonic() - began
    cpu_used = {pid: cpu_seconds(pid) - before for pid, before in cpu_before.items()}
    watch.stop.set()
    for proc in procs:
        stop_group(proc)
    with setup.sessions() as session, session.begin():
        session.execute(text("TRUNCATE deliveries CASCADE"))  # mail_reports refer to it
        session.execute(text("UPDATE issues SET status = 'draft', sent_at = NULL "
                             "WHERE slug = 'bench'"))
        if not setup.size:
            setup.size = len(message_bytes(session.scalars(select(IssueVariant).limit(1))
                                           .one()))
    return Sent(workers, batch, record_every, n, elapsed, cpu_used, dict(watch.peaks))


def run(args: argparse.Namespace, started: Started, tmp: Path, sink_bin: str,
        source_bin: str) -> None:
    pg = start_postgres(tmp / "pg")
    started.callback(pg.stop)
    redis = start_redis(tmp / "redis")
    started.callback(redis.stop)
    sink_port = free_port()
    started.spawn([sink_bin, "-u", "root", "-c", f"127.0.0.1:{sink_port}", "1000"],
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pg.create_database("bench")
    db_url = pg.url_for("bench")
    engine = make_engine(db_url)
    started.callback(engine.dispose)
    upgrade(engine)
    sessions = session_factory(engine)
    with sessions() as session, session.begin():
        store_items(session, parse_text(sample_items_text(), "sample"))
        create_issue(session, "bench", date(2019, 9, 1), date(2019, 10, 31))
    n = args.subscribers
    fill_subscribers(db_url, n)
    setup = Setup(started, tmp, db_url, redis.url, sink_port, source_bin, sessions)
    headline = send_all(setup, args.workers, args.batch, args.record_every, n)
    with sessions() as session:
        variants = session.scalar(select(func.count()).select_from(IssueVariant))
    # the ceiling: smtp-source, same count, same size, same sink, as many sessions as we
    # have sending processes (and, for the record, one session: the old, flattering one)
    raw, ceiling = setup.ceiling(args.workers, n)
    raw_one, ceiling_one = setup.ceiling(1, n)
    ours = headline.rate
    cpu_total = sum(headline.cpu.values())
    print(f"\nDelivery: {n:,} subscribers, {variants} variants, {args.workers} worker "
          f"processes (batch {args.batch}, record_every {args.record_every}), PostgreSQL + "
          f"Redis, smtp-sink on loopback, {setup.size:,}-byte messages")
    print(f"  newsletter end to end        : {headline.elapsed:8.2f} s  {ours:9,.0f} msg/s")
    print(f"  smtp-source, {args.workers} session(s)    : {raw:8.2f} s  {ceiling:9,.0f} msg/s"
          "  (the ceiling: as many sessions as sending processes)")
    print(f"  smtp-source, 1 session       : {raw_one:8.2f} s  {ceiling_one:9,.0f} msg/s")
    print(f"  ratio                        : {ours / ceiling:8.2f} x the ceiling "
          f"({ours / ceiling_one:.2f} x one session)")
    print(f"  worker CPU                   : {cpu_total:8.2f} s in all, "
          f"{cpu_total / n * 1e6:,.0f} us a message; per process: "
          + ", ".join(f"{pid}: {sec:.1f} s" for pid, sec in sorted(headline.cpu.items())))
    print("  peak RSS per process  : " + ", ".join(
        f"{pid}: {mb:.0f} MB" for pid, mb in sorted(headline.peaks.items()) if mb))
    if args.curves:
        curves(setup, args.curves)
    if args.profile:
        profile_send(db_url, sink_port, args.profile, tmp, cpu_total / n * 1e6)
    # planning at scale: --plan subscribers, one INSERT ... SELECT, --plan-runs times
    if args.plan:
        fill_subscribers(db_url, max(0, args.plan - n), first=n + 1)
        with engine.begin() as conn:
            conn.execute(text("ANALYZE subscribers"))  # as autovacuum would after the fill
        took_each: list[float] = []
        for _ in range(args.plan_runs):
            with engine.begin() as conn:
                conn.execute(text("TRUNCATE deliveries CASCADE"))  # mail_reports refer to it
            t0 = time.monotonic()
            with sessions() as session, session.begin():
                issue = get_issue(session, "bench")
                planned = ledger.plan(session, issue.id, languages=LANGUAGES,
                                      default_language="en",
                                      focus_countries=sorted(countries_of(issue)),
                                      audience=audience_of(session, issue))
            took_each.append(time.monotonic() - t0)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\nPlanning {planned:,} deliveries (one INSERT ... SELECT): median "
              f"{statistics.median(took_each):.2f} s of {len(took_each)} runs ("
              + ", ".join(f"{t:.2f}" for t in took_each)
              + f" s); this process's peak RSS {after:.0f} MB")


CURVE_POINTS = (  # (workers, batch, record_every): one knob moved at a time from (2, 500, 100)
    (1, 500, 100), (2, 500, 100), (4, 500, 100),
    (2, 100, 100), (2, 2000, 100),
    (2, 500, 1),
)


def curves(setup: Setup, n: int) -> None:
    """Every point of CURVE_POINTS on the first `n` subscribers (the others are paused
    out of the audience for the while), each against smtp-source with as many sessions."""
    with setup.sessions() as session, session.begin():
        session.execute(text("UPDATE subscribers SET status = 'unsubscribed' WHERE id > :n"),
                        {"n": n})
    rows = [send_all(setup, w, b, r, n) for w, b, r in CURVE_POINTS]
    with setup.sessions() as session, session.begin():
        session.execute(text("UPDATE subscribers SET status = 'active'"))
    print(f"\nScale-out: {n:,} messages a point, one knob moved at a time from "
          "2 workers, batch 500, record_every 100; the ceiling is smtp-source with as many "
          "sessions as worker processes, same sink, same size, same run")
    print(f"  {'workers':>7} {'batch':>6} {'record_every':>12} {'msg/s':>8} {'ceiling':>8} "
          f"{'ratio':>6} {'CPU/msg':>8} {'peak RSS':>9}")
    for row in rows:
        _, ceiling = setup.ceiling(row.workers, n)
        cpu = sum(row.cpu.values()) / n * 1e6
        peak = max(row.peaks.values(), default=0.0)
        print(f"  {row.workers:>7} {row.batch:>6} {row.record_every:>12} {row.rate:>8,.0f} "
              f"{ceiling:>8,.0f} {row.rate / ceiling:>6.2f} {cpu:>6,.0f}us {peak:>6.0f} MB")


if __name__ == "__main__":
    try:
        main()
    except Stop as stop:
        print(f"bench: {stop.reason}; stopped everything it had started", file=sys.stderr)
        sys.exit(stop.status)
