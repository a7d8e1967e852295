"""Sending from a long-running process (the newsroom under `newsletter serve`).

With a broker, starting a send only plans the ledger and hands batches to the workers:
quick, so it runs in the request. Without one, Celery runs each batch in the calling
process (`task_always_eager`), which would hold the request for the whole send: the
work goes to a daemon thread of the serve process instead. The ledger is the state, so
nothing is lost if that process stops: what was sent stays sent, `issues send SLUG` (or
Resume on the progress page) picks up the rest, and nobody gets the issue twice.

This module keeps one Runtime per process (the CLI's `delivering` does the same for one
command): tasks run by Celery in this process find it through worker.runtime.current.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from newsletter.approval import waiting_for
from newsletter.errors import N_
from newsletter.models import Issue
from newsletter.settings import Settings
from worker.delivery import SendError, send_issue
from worker.runtime import Runtime, configure, transport_for

log = logging.getLogger(__name__)
_lock = threading.Lock()
_runtime: Runtime | None = None
_threads: list[threading.Thread] = []


def runtime_for(settings: Settings, sessions: sessionmaker[Session]) -> Runtime:
    """This process's runtime for `settings` (made once, and made the one tasks use)."""
    global _runtime
    from worker.app import app as celery_app
    from worker.app import configure_app

    with _lock:
        if _runtime is None or _runtime.settings is not settings \
                or _runtime.sessions is not sessions:
            configure_app(celery_app, settings)
            _runtime = Runtime(settings, sessions, transport_for(settings))
            configure(_runtime)
        return _runtime


def forget_runtime() -> None:
    """Close this process's runtime (tests; a clean shutdown)."""
    global _runtime
    with _lock:
        if _runtime is not None:
            configure(None)
            _runtime.transport.close()
            _runtime = None


def check_can_send(settings: Settings, issue: Issue, now: datetime, *,
                   preflight: bool = True) -> None:
    """Raise SendError when the issue may not be sent now as `issues send` would refuse
    it: what `newsletter doctor` blocks on (worker.preflight; `preflight=False`: the
    caller asked already), a schedule still ahead, paused or cancelled, or approval
    missing."""
    from worker.preflight import mailing_blocker

    problem = mailing_blocker(settings) if preflight else None
    if problem:
        raise SendError(problem)
    if issue.status == "scheduled" and issue.send_at and issue.send_at > now:
        raise SendError.translatable(
            N_("issue %(slug)s is scheduled: unschedule it first to send it now"),
            slug=issue.slug)
    if issue.status in ("cancelled", "paused"):
        raise SendError.translatable(
            N_("issue %(slug)r is paused; resume it first") if issue.status == "paused" else
            N_("issue %(slug)r is cancelled; it cannot be sent"), slug=issue.slug)
    why = waiting_for(issue)
    if why:
        raise SendError.translatable(N_("issue %(slug)r %(why)s"), slug=issue.slug, why=why,
                                     hint=why.hint)


def run(runtime: Runtime, work: Callable[[], object], name: str) -> threading.Thread | None:
    """Run `work` now when a broker takes the batches, else on a daemon thread (returned).
    A failure on the thread is logged (the issue's status and the ledger show where the
    send stands)."""
    if runtime.settings.broker_url:
        work()
        return None

    def guarded() -> None:
        try:
            work()
        except Exception:  # noqa: BLE001 - a thread has nobody else to tell
            log.exception("background %s failed", name)

    thread = threading.Thread(target=guarded, name=f"newsletter-{name}", daemon=True)
    with _lock:
        _threads[:] = [t for t in _threads if t.is_alive()]
        _threads.append(thread)
    thread.start()
    return thread


def start_send(runtime: Runtime, slug: str) -> threading.Thread | None:
    """Start sending `slug` without waiting: send_issue(wait=False) with a broker, on a
    thread without one (check_can_send first, in the request, for an answer at once)."""
    return run(runtime, lambda: send_issue(runtime, slug, wait=False), f"send-{slug}")


def join_all(timeout: float = 30.0) -> bool:
    """Wait for this process's background work (tests); True if none is left running."""
    with _lock:
        running = list(_threads)
    for thread in running:
        thread.join(timeout)
    return not any(t.is_alive() for t in running)
