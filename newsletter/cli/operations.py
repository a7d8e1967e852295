"""`newsletter worker`, `newsletter scheduler`, `newsletter limits`: running delivery."""

from __future__ import annotations

import click

from newsletter.cli.context import App, pass_app, refuse_insecure_mailing, user_errors
from newsletter.cli.output import emit_json, table


def _need_broker(app: App) -> None:
    if not app.settings.broker_url:
        raise click.ClickException(
            "NEWSLETTER_BROKER_URL is not set: without a broker, `issues send` delivers "
            "in-process and no worker is needed. Set it, e.g. redis://localhost:6379/0"
        )


@click.command()
@click.option("-c", "--concurrency", type=int, default=None,
              help="Worker processes (default: one per CPU).")
@click.option("--loglevel", default="INFO", show_default=True)
@pass_app
def worker(app: App, concurrency: int | None, loglevel: str) -> None:
    """Start a Celery worker that delivers batches (needs NEWSLETTER_BROKER_URL).

    Run as many as you like, on any host; each process keeps one SMTP connection
    per relay and shares the rate limits with the others through Redis.

    \b
    Example:
      NEWSLETTER_BROKER_URL=redis://localhost:6379/0 newsletter worker -c 2
    """
    _need_broker(app)
    refuse_insecure_mailing(app)
    from worker.app import QUEUE
    from worker.app import app as celery_app

    argv = ["worker", "-Q", QUEUE, "--loglevel", loglevel, "--without-gossip",
            "--without-mingle"]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    celery_app.worker_main(argv)


@click.command()
@click.option("--loglevel", default="INFO", show_default=True)
@pass_app
def scheduler(app: App, loglevel: str) -> None:
    """Run the periodic sweep (Celery beat): retries that are due, expired leases, lost batches.

    Run exactly one. Without it, deferred messages wait for the next `issues send`.

    \b
    Example:
      NEWSLETTER_BROKER_URL=redis://localhost:6379/0 newsletter scheduler
    """
    _need_broker(app)
    from worker.app import app as celery_app

    schedule = app.settings.var_dir / "celerybeat-schedule"
    schedule.parent.mkdir(parents=True, exist_ok=True)
    celery_app.start(["beat", "--loglevel", loglevel, "--schedule", str(schedule)])


@click.group()
def limits() -> None:
    """Global sending rate limits, shared by all workers, changed without restarts.

    \b
    Example:
      newsletter limits set --per-second 20 --per-hour 50000
    """


def _redis(app: App) -> object:
    url = app.settings.resolved_redis_url
    if not url:
        raise click.ClickException(
            "live limits need Redis (NEWSLETTER_BROKER_URL=redis://... or NEWSLETTER_REDIS_URL); "
            "without it, set NEWSLETTER_RATE_PER_SECOND / NEWSLETTER_RATE_PER_HOUR"
        )
    import redis

    return redis.Redis.from_url(url)


@limits.command("set")
@click.option("--per-second", type=float, default=None,
              help="Messages per second (0: no limit). Not given: unchanged.")
@click.option("--per-hour", type=int, default=None,
              help="Messages per hour (0: no limit). Not given: unchanged.")
@click.option("--relay", default="*", show_default=True,
              help="host:port of one relay, or * for each relay.")
@pass_app
@user_errors
def limits_set(app: App, per_second: float | None, per_hour: int | None, relay: str) -> None:
    """Set the rate limits; running workers follow within seconds.

    \b
    Example:
      newsletter limits set --per-second 14 --relay smtp.example.org:587
    """
    from worker.ratelimit import set_limits

    if per_second is None and per_hour is None:
        raise click.UsageError("give --per-second, --per-hour or both")
    set_limits(_redis(app), relay, per_second=per_second, per_hour=per_hour)
    shown = [f"{v or 'no limit'} per {unit}" for v, unit in ((per_second, "second"),
                                                           (per_hour, "hour")) if v is not None]
    click.echo(f"limits for {relay}: {', '.join(shown)}")


@limits.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
@user_errors
def limits_show(app: App, as_json: bool) -> None:
    """Show the rate limits in force.

    \b
    Example:
      newsletter limits show
    """
    from worker.ratelimit import stored_limits

    stored = stored_limits(_redis(app))
    data = {"settings": {"per_second": app.settings.rate_per_second,
                         "per_hour": app.settings.rate_per_hour}, "live": stored}
    if as_json:
        emit_json(data)
        return
    table("rate limits (live values override the settings)", ["where", "value"],
          [("settings per_second", app.settings.rate_per_second),
           ("settings per_hour", app.settings.rate_per_hour),
           *sorted(stored.items())])
