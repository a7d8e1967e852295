"""The Celery application. Without a broker URL, tasks run in-process (the same task code).

Start workers with `newsletter worker` (or `celery -A worker.app worker -Q newsletter`).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from newsletter.settings import Settings, get_settings

QUEUE = "newsletter"


def beat_schedule(settings: Settings, interval: float | None = None) -> dict[str, Any]:
    """What `newsletter scheduler` sends with a broker: the round (feeds, series, scheduled
    sends and the sweep) every `interval` seconds, and the sweep on its own, more often,
    as before. A round not picked up within its interval expires: the next one comes."""
    every = float(interval or settings.scheduler_seconds)
    return {
        "round": {"task": "newsletter.round", "schedule": every,
                  "options": {"expires": max(every, 1.0)}},
        "sweep": {"task": "newsletter.sweep", "schedule": float(settings.sweep_seconds)},
    }


def configure_app(app: Celery, settings: Settings) -> None:
    eager = not settings.broker_url
    app.conf.update(
        broker_url=settings.broker_url or "memory://localhost//",
        task_always_eager=eager,
        task_eager_propagates=True,
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # a batch may be redelivered if its worker dies: tasks are idempotent (the ledger)
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        # unacked tasks come back after this: longer than any batch can take
        broker_transport_options={"visibility_timeout": max(3600, settings.lease_seconds * 2)},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule=beat_schedule(settings),
    )


app = Celery("newsletter", include=["worker.tasks"])
configure_app(app, get_settings())
