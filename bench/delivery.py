"""End-to-end delivery speed against the ceiling of raw SMTP on the same machine.

    .venv/bin/python bench/delivery.py [--subscribers 100000] [--workers 2] [--plan 1000000]

Starts private PostgreSQL and Redis servers (tests/servers.py) and Postfix's
`smtp-sink` on loopback; imports N subscribers across 16 (country, language)
segments; runs `newsletter issues send` with W `newsletter worker -c 1` processes and
times it until the ledger shows every message accepted. In the same run, Postfix's
`smtp-source` sends the same number of messages of the same size to the same sink:
that is the ceiling. Then plans an issue for --plan subscribers and times it.
Needs Postfix's tools: apt-get install postfix (no configuration needed).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, text  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--plan", type=int, default=1_000_000)
    args = parser.parse_args()
    sink_bin, source_bin = tool("smtp-sink"), tool("smtp-source")
    tmp = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    pg = start_postgres(tmp / "pg")
    redis = start_redis(tmp / "redis")
    sink_port = free_port()
    sink = subprocess.Popen([sink_bin, "-u", "root", "-c", f"127.0.0.1:{sink_port}", "1000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        pg.create_database("bench")
        db_url = pg.url_for("bench")
        engine = make_engine(db_url)
        upgrade(engine)
        sessions = session_factory(engine)
        with sessions() as session, session.begin():
            store_items(session, parse_text(sample_items_text(), "sample"))
            create_issue(session, "bench", date(2019, 9, 1), date(2019, 10, 31))
        fill_subscribers(db_url, args.subscribers)
        env = {**os.environ, "NEWSLETTER_DATABASE_URL": db_url,
               "NEWSLETTER_BROKER_URL": redis.url,
               "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{sink_port}",
               "NEWSLETTER_SECRET_KEY": "bench-secret", "NEWSLETTER_VAR_DIR": str(tmp / "var"),
               "NEWSLETTER_BATCH_SIZE": "500"}
        for _ in range(args.workers):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "newsletter", "worker", "-c", "1", "--loglevel",
                 "WARNING"], env=env, cwd=tmp, start_new_session=True))
        time.sleep(4)  # let the workers connect
        watch = RssWatch([p.pid for p in procs])
        watch.start()
        started = time.monotonic()
        send = subprocess.Popen([sys.executable, "-m", "newsletter", "issues", "send", "bench",
                                 "--no-wait"], env=env, cwd=tmp)
        watch.roots.append(send.pid)
        send.wait()
        n = args.subscribers
        while True:
            with sessions() as session:
                sent = session.scalar(select(func.count()).select_from(Delivery)
                                      .where(Delivery.status == "sent")) or 0
            if sent >= n:
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        watch.stop.set()
        with sessions() as session:
            variants = session.scalar(select(func.count()).select_from(IssueVariant))
            sample = session.scalars(select(IssueVariant).limit(1)).one()
            size = len(message_bytes(sample))
        size_kb = max(1, round(size / 1024))
        # the ceiling: smtp-source, same count, same size, same sink, one connection
        t0 = time.monotonic()
        subprocess.run([source_bin, "-s", "1", "-l", str(size_kb * 1024), "-m", str(n),
                        "-f", "news@example.org", "-t", "person@example.org",
                        f"127.0.0.1:{sink_port}"], check=True)
        raw = time.monotonic() - t0
        ours, ceiling = n / elapsed, n / raw
        print(f"\nDelivery: {n:,} subscribers, {variants} variants, {args.workers} worker "
              f"processes, PostgreSQL + Redis, smtp-sink on loopback, {size:,}-byte messages")
        print(f"  newsletter end to end : {elapsed:8.2f} s  {ours:9,.0f} msg/s")
        print(f"  smtp-source (ceiling) : {raw:8.2f} s  {ceiling:9,.0f} msg/s")
        print(f"  ratio                 : {ours / ceiling:8.2f} x smtp-source")
        peaks = sorted(watch.peaks.items())
        print("  peak RSS per process  : " + ", ".join(f"{pid}: {mb:.0f} MB"
                                                       for pid, mb in peaks if mb))
        # planning at scale: --plan subscribers, one INSERT ... SELECT
        if args.plan:
            with engine.begin() as conn:
                conn.execute(text("TRUNCATE deliveries"))
            fill_subscribers(db_url, max(0, args.plan - n), first=n + 1)
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            t0 = time.monotonic()
            with sessions() as session, session.begin():
                issue = get_issue(session, "bench")
                planned = ledger.plan(session, issue.id, languages=LANGUAGES,
                                      default_language="en",
                                      focus_countries=sorted(countries_of(issue)),
                                      audience=audience_of(session, issue))
            took = time.monotonic() - t0
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"\nPlanning {planned:,} deliveries (one INSERT ... SELECT): {took:.2f} s; "
                  f"this process's peak RSS {before:.0f} MB before, {after:.0f} MB after")
        engine.dispose()
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            p.wait(timeout=30)
        sink.terminate()
        redis.stop()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
