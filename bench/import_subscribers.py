"""Benchmark: import, stats and export of generated subscribers, on SQLite and PostgreSQL.

    .venv/bin/python bench/import_subscribers.py [--rows 1000000] [--skip-sqlite|--skip-postgres]

Generates a deterministic CSV (16 countries of the region as codes or names, en/es/fr
tags such as es-GT, ~1% bad rows, ~1% repeats of an earlier address in another case),
then per database:

* imports it with the real CLI in a child process (`newsletter subscribers import
  FILE --silent`): wall time, rows/s and the child's peak RSS (os.wait4);
* times `subscribers.queries.stats` (the `subscribers stats` query) in this process;
* exports everything with `subscribers.export` in a child process, recording its RSS
  after 10% of the rows and at the end (flat memory: the two are close);
* a baseline in the same run: the raw cost of loading the same rows without
  validation or upsert (SQLite: executemany of a plain INSERT into an empty table
  without indexes; PostgreSQL: COPY of the file into an unlogged table).

PostgreSQL is a private server from tests/servers.py (fsync, synchronous_commit and
full_page_writes off, as in the test suite), or NEWSLETTER_BENCH_PG_URL.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COUNTRIES = [("CR", "Costa Rica"), ("NI", "Nicaragua"), ("SV", "El Salvador"),
             ("HN", "Honduras"), ("GT", "Guatemala"), ("BZ", "Belice"), ("PA", "Panamá"),
             ("MX", "México"), ("DO", "República Dominicana"), ("HT", "Haiti"), ("CU", "Cuba"),
             ("JM", "Jamaica"), ("CO", "Colombia"), ("VE", "Venezuela"), ("US", "United States"),
             ("CA", "Canada")]
LANGUAGES = ["es", "es", "es-GT", "es-MX", "es-CR", "ES", "en", "en-US", "en", "fr", "fr-HT", ""]
FIRST = ["Ana", "José", "María", "Luis", "Sofía", "Andrés", "Lucía", "Marvin", "Daniela",
         "Óscar", "Carmen", "Kevin", "Jean", "Marie", "Wilner", "Yolanda", "Ñusta", "Keisha"]
LAST = ["Rodríguez", "Hernández", "Pérez", "Castillo", "Ramírez", "Flores", "Núñez", "Morales",
        "Gómez", "Young", "Pierre", "Baptiste", "Campbell", "Zúñiga", "Joseph", "Ortiz"]
DOMAINS = (["gmail.com", "hotmail.com", "yahoo.com", "outlook.com", "racsa.co.cr", "ice.co.cr",
            "claro.com.ni", "tigo.com.hn", "prodigy.net.mx", "une.net.co", "cantv.net",
            "iom.int", "unicef.org", "correo.españa.es"] + [f"org{i}.org" for i in range(300)])
BAD = ["not-an-address", "maria@", "@example.org", "luis@@example.org", "ana gomez@example.org",
       "jose@localhost"]


def generate(path: Path, rows: int, seed: int = 2019) -> int:
    """Write the CSV; returns how many distinct valid addresses it holds."""
    rnd = random.Random(seed)
    seen: list[str] = []
    valid = 0
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "name", "country", "language"])
        for i in range(rows):
            first, last = rnd.choice(FIRST), rnd.choice(LAST)
            code, name = rnd.choice(COUNTRIES)
            country = name if rnd.random() < 0.2 else code
            language = rnd.choice(LANGUAGES)
            roll = rnd.random()
            if roll < 0.01 and seen:  # the same person again, typed in another case
                email = rnd.choice(seen[-50_000:]).upper()
            elif roll < 0.02:  # a bad row: address, country, language or name
                kind = rnd.randrange(4)
                email = f"{first}.{last}.{i}@example.org" if kind else rnd.choice(BAD)
                country = "Atlantis" if kind == 1 else country
                language = "de" if kind == 2 else language
                first = "=?utf-8?q?Bcc:?=" if kind == 3 else first
            else:
                local = unicodedata.normalize("NFKD", f"{first}.{last}.{i}".lower())
                email = f"{local.encode('ascii', 'ignore').decode()}@{rnd.choice(DOMAINS)}"
                seen.append(email)
                valid += 1
            writer.writerow([email, f"{first} {last}", country, language])
    return valid


CHILD_CPU: dict[str, float] = {}  # "last": CPU seconds of the last child run
POSTMASTER: dict[str, Path] = {}  # "pid_file": the private server's postmaster.pid


def postmaster_cpu() -> float | None:
    """CPU seconds of the private PostgreSQL server so far: the postmaster's own and that
    of its exited children (the backends, which it waits for); None when not ours."""
    pid_file = POSTMASTER.get("pid_file")
    if pid_file is None:
        return None
    pid = pid_file.read_text().split()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


# The child reports its own VmHWM at exit: ru_maxrss from wait4 would also count the
# pages of this (larger) parent that the child had between fork and exec.
HWM = ("import atexit, os, runpy, sys\n"
       "def hwm():\n"
       "    with open('/proc/self/status') as f, open(os.environ['BENCH_HWM_FILE'], 'w') as o:\n"
       "        o.write(next(x for x in f if x.startswith('VmHWM')).split()[1])\n"
       "atexit.register(hwm)\n"
       "sys.argv = sys.argv[1:]\n"
       "runpy.run_path(sys.argv[0], run_name='__main__') if sys.argv[0].endswith('.py') "
       "else runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n")


def peak_rss_of(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run `python ARGV` in a child: (wall seconds, its peak RSS in MB, its stdout).
    The child's CPU time (user + sys) is added to CHILD_CPU[argv[0]]."""
    hwm_file = Path(tempfile.mkstemp(prefix="hwm-")[1])
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-c", HWM, *argv], cwd=ROOT, capture_output=True,
                          env=dict(env, BENCH_HWM_FILE=str(hwm_file)), check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CHILD_CPU["last"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 2):
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr.decode()}")
    peak = int(hwm_file.read_text()) / 1024
    hwm_file.unlink()
    return wall, peak, proc.stdout.decode()


def export_child(url: str, out_path: str, sample_at: int) -> None:
    """In a child: export everything, reporting RSS after `sample_at` rows and at the end."""
    from newsletter.db import make_engine, session_factory
    from subscribers.export import export_subscribers
    from subscribers.filters import Filter

    def rss() -> float:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    state = {"rows": 0, "sampled": 0.0}

    def progress(n: int) -> None:
        state["rows"] += n
        if not state["sampled"] and state["rows"] >= sample_at:
            state["sampled"] = rss()

    sessions = session_factory(make_engine(url))
    start = time.perf_counter()
    with sessions() as session, open(out_path, "w", newline="", encoding="utf-8") as out:
        written = export_subscribers(session, Filter(), "csv", out, progress)
    print(json.dumps({"rows": written, "seconds": time.perf_counter() - start,
                      "rss_sample": state["sampled"], "rss_end": rss()}))


def baseline_sqlite(csv_path: Path, db_path: Path) -> float:
    con = sqlite3.connect(db_path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE raw (email TEXT, name TEXT, country TEXT, language TEXT)")
    start = time.perf_counter()
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        while chunk := [row for _, row in zip(range(20_000), reader, strict=False)]:
            con.executemany("INSERT INTO raw VALUES (?, ?, ?, ?)", chunk)
            con.commit()
    seconds = time.perf_counter() - start
    con.close()
    return seconds


def baseline_postgres(csv_path: Path, url: str) -> float:
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    with psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                         dbname=u.database) as con:
        con.execute("CREATE UNLOGGED TABLE raw (email text, name text, country text, "
                    "language text)")
        start = time.perf_counter()
        with con.cursor() as cur, cur.copy("COPY raw FROM STDIN (FORMAT csv, HEADER)") as copy,\
                csv_path.open("rb") as f:
            while data := f.read(1 << 20):
                copy.write(data)
        con.commit()
        seconds = time.perf_counter() - start
        con.execute("DROP TABLE raw")
    return seconds


def bench(kind: str, url: str, csv_path: Path, rows: int, valid: int, tmp: Path,
          ) -> dict[str, Any]:
    from sqlalchemy import func, select

    from newsletter.db import make_engine, session_factory, upgrade
    from subscribers.models import Subscriber
    from subscribers.queries import stats

    engine = make_engine(url)
    upgrade(engine)
    env = dict(os.environ, NEWSLETTER_DATABASE_URL=url, NEWSLETTER_LANGUAGES='["en","es","fr"]',
               PYTHONPATH=str(ROOT))
    argv = ["newsletter", "subscribers", "import", str(csv_path),
            "--silent", "--errors", str(tmp / f"errors-{kind}.csv")]
    server_before = postmaster_cpu() if kind == "postgresql" else None
    wall, rss, summary = peak_rss_of(argv, env)
    cpu = CHILD_CPU["last"]
    server_after = postmaster_cpu() if kind == "postgresql" else None
    server_cpu = ("-" if server_before is None or server_after is None
                  else f"{server_after - server_before:.1f} s")
    sessions = session_factory(engine)
    with sessions() as session:
        stored = session.scalar(select(func.count()).select_from(Subscriber))
        timings = []
        for _ in range(3):
            start = time.perf_counter()
            stats(session)
            timings.append(time.perf_counter() - start)
    again_wall, again_rss, again_summary = peak_rss_of(argv, env)  # re-run: nothing new
    again_cpu = CHILD_CPU["last"]
    export_argv = [__file__, "--export-child", url, str(tmp / "export.csv"),
                   str(max(1, rows // 10))]
    export_wall, export_rss, export_out = peak_rss_of(export_argv, env)
    exported = json.loads(export_out)
    engine.dispose()
    baseline = (baseline_sqlite(csv_path, tmp / "baseline.db") if kind == "sqlite"
                else baseline_postgres(csv_path, url))
    return {
        "db": kind, "rows": rows, "stored": stored, "expected": valid,
        "import_s": wall, "rows_per_s": rows / wall, "import_rss_mb": rss,
        "import_cpu_s": cpu, "server_cpu_s": server_cpu,
        "summary": summary.strip(), "reimport_s": again_wall, "reimport_rss_mb": again_rss,
        "reimport_cpu_s": again_cpu,
        "reimport_summary": again_summary.strip(),
        "stats_first_s": timings[0], "stats_best_s": min(timings),
        "export_s": exported["seconds"], "export_rss_10pct_mb": exported["rss_sample"],
        "export_rss_end_mb": exported["rss_end"], "export_peak_mb": export_rss,
        "baseline_s": baseline, "ratio": wall / baseline,
    }


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--export-child":
        export_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    skip = parser.add_mutually_exclusive_group()
    skip.add_argument("--skip-sqlite", action="store_true")
    skip.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-import-") as name:
        tmp = Path(name)
        csv_path = tmp / "people.csv"
        start = time.perf_counter()
        valid = generate(csv_path, args.rows)
        print(f"generated {args.rows:,} rows ({csv_path.stat().st_size / 2**20:.0f} MB, "
              f"{valid:,} distinct valid addresses) in {time.perf_counter() - start:.1f}s",
              flush=True)
        if not args.skip_sqlite:
            results.append(bench("sqlite", f"sqlite:///{tmp / 'bench.db'}", csv_path,
                                 args.rows, valid, tmp))
            print(json.dumps(results[-1]), flush=True)
        if not args.skip_postgres:
            results.append(postgres(csv_path, args.rows, valid, tmp))
            print(json.dumps(results[-1]), flush=True)
    report(results)


def postgres(csv_path: Path, rows: int, valid: int, tmp: Path) -> dict[str, Any]:
    url = os.environ.get("NEWSLETTER_BENCH_PG_URL")
    if url:
        return bench("postgresql", url, csv_path, rows, valid, tmp)
    from tests.servers import start_postgres

    server = start_postgres(tmp / "pg")
    try:
        server.create_database("bench")
        POSTMASTER["pid_file"] = Path(server.data_dir) / "postmaster.pid"
        return bench("postgresql", server.url_for("bench"), csv_path, rows, valid, tmp)
    finally:
        server.stop()


def report(results: list[dict[str, Any]]) -> None:
    lines = [
        ("rows in the file", "{rows:,}"),
        ("subscribers stored (expected)", "{stored:,} ({expected:,})"),
        ("import wall time", "{import_s:.1f} s"), ("import rows/s", "{rows_per_s:,.0f}"),
        ("import CPU (user+sys): command, server", "{import_cpu_s:.1f} s, {server_cpu_s}"),
        ("import peak RSS", "{import_rss_mb:.0f} MB"),
        ("baseline: raw load, no validation", "{baseline_s:.1f} s"),
        ("import / baseline", "{ratio:.1f}x"),
        ("re-import (nothing new)", "{reimport_s:.1f} s, {reimport_rss_mb:.0f} MB"),
        ("re-import CPU of the command", "{reimport_cpu_s:.1f} s"),
        ("stats query (first, best of 3)", "{stats_first_s:.3f} s, {stats_best_s:.3f} s"),
        ("export wall time", "{export_s:.1f} s"),
        ("export RSS at 10% / at 100% / peak",
         "{export_rss_10pct_mb:.0f} / {export_rss_end_mb:.0f} / {export_peak_mb:.0f} MB"),
    ]
    width = max(len(label) for label, _ in lines)
    print()
    print(" " * width + "".join(f"  {r['db']:>24}" for r in results))
    for label, fmt in lines:
        print(label.ljust(width) + "".join(f"  {fmt.format(**r):>24}" for r in results))
    for r in results:
        print(f"{r['db']}: {r['summary']}\n{r['db']} again: {r['reimport_summary']}")


if __name__ == "__main__":
    main()
