"""Celery tasks. They take ids, re-read the ledger, and are safe to run twice."""

from __future__ import annotations

from typing import Any

from newsletter.db import utcnow
from worker.app import app
from worker.control import sweep as sweep_issues
from worker.delivery import deliver_range
from worker.runtime import current
from worker.scheduler import run_round


@app.task(name="newsletter.deliver_batch")  # type: ignore[untyped-decorator]
def deliver_batch(issue_id: int, lo: int, hi: int) -> dict[str, int]:
    """Send the claimable deliveries of `issue_id` with ids in [lo, hi]."""
    return deliver_range(current(), issue_id, lo, hi)


@app.task(name="newsletter.sweep")  # type: ignore[untyped-decorator]
def sweep() -> dict[str, int]:
    """Requeue expired leases, due retries and lost batches (run by `newsletter scheduler`)."""
    return sweep_issues(current())


@app.task(name="newsletter.round")  # type: ignore[untyped-decorator]
def scheduler_round() -> dict[str, Any]:
    """One scheduler round (feeds, series, scheduled sends, sweep), sent by `newsletter
    scheduler`'s beat; the round lease in the database lets only one run at a time."""
    return run_round(current(), utcnow()).as_dict()
