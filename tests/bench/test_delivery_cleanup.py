"""bench/delivery.py stops everything it started however it ends: Ctrl-C, SIGTERM (a CI
job's timeout), or its own --timeout. A small run, interrupted once its workers are up;
every process it started (PostgreSQL, redis-server, smtp-sink, the workers and their
children) must be gone when it exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "delivery.py"


@dataclass(frozen=True)
class Seen:
    pid: int
    started: int  # clock ticks after boot: tells a process from a later one with its pid
    command: str


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process, from /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[1]), fields[0], int(fields[19])


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"


def descendants(root: int) -> list[Seen]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            parents.setdefault(stat[0], []).append(int(entry))
    found: list[Seen] = []
    queue = list(parents.get(root, []))
    while queue:
        pid = queue.pop()
        stat = _stat(pid)
        if stat is not None:
            found.append(Seen(pid, stat[2], _command(pid)))
            queue += parents.get(pid, [])
    return found


def running(seen: Seen) -> bool:
    stat = _stat(seen.pid)
    return stat is not None and stat[2] == seen.started and stat[1] != "Z"


class Bench:
    """The bench in a subprocess, its output collected and its process tree watched."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH), "--workers", "2", "--plan", "0", *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.seen: dict[tuple[int, int], Seen] = {}
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._watch, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def _watch(self) -> None:
        while self.proc.poll() is None:
            for seen in descendants(self.proc.pid):
                self.seen.setdefault((seen.pid, seen.started), seen)
            time.sleep(0.05)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the bench did not say {text!r}:\n{self.output}")
            time.sleep(0.05)
        time.sleep(0.3)  # let the watcher see the tree as it is now

    def started(self, word: str) -> list[Seen]:
        return [s for s in self.seen.values() if word in s.command]

    def leftovers(self) -> list[Seen]:
        return [s for s in self.seen.values() if running(s)]

    def kill_leftovers(self) -> None:
        """If the test failed, still leave nothing behind."""
        for seen in self.leftovers():
            try:
                os.kill(seen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_everything_the_bench_started(sig: signal.Signals) -> None:
    bench = Bench("--subscribers", "200")
    try:
        bench.wait_for("workers ready", timeout=120)
        for what in ("postgres", "redis-server", "smtp-sink", "newsletter worker"):
            assert bench.started(what), f"no {what} among {list(bench.seen.values())}"
        bench.proc.send_signal(sig)  # to the bench alone, as `kill` or a CI runner does
        status = bench.proc.wait(timeout=60)
        assert status == 128 + sig, bench.output
        assert f"interrupted by {sig.name}; stopped everything" in bench.output
        assert bench.leftovers() == []
    finally:
        bench.kill_leftovers()


def test_its_timeout_stops_everything_the_bench_started() -> None:
    bench = Bench("--subscribers", "100000", "--timeout", "12")
    try:
        status = bench.proc.wait(timeout=90)
        assert status == 1, bench.output
        assert "timed out after 12 s (--timeout); stopped everything" in bench.output
        assert bench.started("postgres") and bench.started("redis-server")
        assert bench.leftovers() == []
    finally:
        bench.kill_leftovers()
