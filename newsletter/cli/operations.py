"""`newsletter worker`, `newsletter scheduler`, `newsletter limits`: running delivery."""

from __future__ import annotations

import logging
import signal
import threading
from typing import TYPE_CHECKING

import click

from newsletter.cli.context import App, pass_app, refuse_insecure_mailing, user_errors
from newsletter.cli.output import emit_json, table
from newsletter.db import utcnow

if TYPE_CHECKING:
    from worker.scheduler import RoundReport

log = logging.getLogger("worker.scheduler")


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
@click.option("--once", is_flag=True, help="Run one round here, print what it did, and exit.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=None,
              help="Seconds between rounds (default: NEWSLETTER_SCHEDULER_SECONDS).")
@click.option("--json", "as_json", is_flag=True,
              help="With --once: print the round's report as JSON.")
@click.option("--loglevel", default="INFO", show_default=True,
              help="DEBUG also logs the rounds skipped while another process holds the lease.")
@pass_app
@user_errors
def scheduler(app: App, once: bool, interval: float | None, as_json: bool,
              loglevel: str) -> None:
    """Run the calendar: every few seconds, one round that fetches due feeds, builds due
    series issues, starts scheduled sends (unless not approved in time, or due longer
    ago than NEWSLETTER_CATCH_UP_HOURS: those are reported and not sent), and sweeps
    (due retries, expired leases, lost batches, local-time messages whose hour came).

    Without NEWSLETTER_BROKER_URL the rounds run in this process and log one line per
    thing done; with a broker this runs Celery beat, and the workers run the rounds.
    Running two is safe: a lease in the database lets one round run at a time, and
    nothing is built or sent twice (only a process killed with SIGKILL between the
    relay's answer and its record may repeat that one message). SIGTERM or Ctrl-C stops
    after the batch in hand.

    \b
    Example:
      newsletter scheduler                 # in-process rounds, every 30 s
      newsletter scheduler --once --json   # one round now, e.g. from cron
      NEWSLETTER_BROKER_URL=redis://localhost:6379/0 newsletter scheduler
    """
    level = logging.getLevelName(loglevel.upper())
    logging.getLogger("worker").setLevel(level if isinstance(level, int) else logging.INFO)
    every = interval or app.settings.scheduler_seconds
    if as_json and not once:
        raise click.UsageError("--json goes with --once (a running scheduler logs instead)")
    if once:
        log.setLevel(logging.ERROR)  # the report is printed: no second copy in the log
        refuse_insecure_mailing(app)
        run_once(app, every, as_json)
    elif app.settings.broker_url:
        run_beat(app, every, loglevel)
    else:
        refuse_insecure_mailing(app)
        run_in_process(app, every)


def _print_report(report: RoundReport, as_json: bool) -> None:
    if as_json:
        emit_json(report.as_dict())
    elif not report.ran:
        click.echo(f"round skipped: {report.held_by} holds the round lease")
    else:
        click.echo("\n".join(report.lines()) or "round done: nothing was due")


def run_once(app: App, interval: float, as_json: bool) -> None:
    """One round in this process (batches go to the workers if there is a broker)."""
    from newsletter.cli.sending import delivering
    from worker.scheduler import run_round

    app.engine  # noqa: B018  (migrates a new database before the runtime opens it)
    with delivering(app) as runtime:
        report = run_round(runtime, utcnow(), interval=interval)
    _print_report(report, as_json)
    if report.errors:
        raise click.ClickException(
            f"{len(report.errors)} step(s) of the round failed: "
            + "; ".join(f"{k}: {v}" for k, v in report.errors.items()))


def run_in_process(app: App, interval: float) -> None:
    """Rounds every `interval` seconds until SIGTERM or SIGINT: the first ends the round
    after the batch in hand, a second one stops at once."""
    from newsletter.cli.sending import delivering
    from worker.lease import this_process
    from worker.scheduler import RoundInterrupted, run_round

    stop = threading.Event()

    def ask_to_stop(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log.info("scheduler: %s received, stopping after the batch in hand",
                 signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, ask_to_stop)
    holder = this_process()
    app.engine  # noqa: B018  (migrates a new database before the runtime opens it)
    with delivering(app) as runtime:
        log.info("scheduler: rounds in this process every %g s (no broker), as %s",
                 interval, holder)
        while not stop.is_set():
            try:
                report = run_round(runtime, utcnow(), holder=holder, interval=interval,
                                   should_stop=stop.is_set)
            except RoundInterrupted:
                break
            except Exception as exc:  # the database is away, say: try again next round
                log.error("round failed: %s: %s; trying again in %g s",
                          type(exc).__name__, (str(exc).splitlines() or [""])[0][:300], interval)
                log.debug("round failed", exc_info=True)
                stop.wait(interval)
                continue
            if not report.ran:
                log.debug("round skipped: %s holds the round lease", report.held_by)
            stop.wait(interval)
    log.info("scheduler: stopped")


def run_beat(app: App, interval: float, loglevel: str) -> None:
    """Celery beat sending `newsletter.round` (and the sweep); the workers run them. The
    schedule lives in memory: what is due is in the database, not in beat's file."""
    from worker.app import app as celery_app
    from worker.app import beat_schedule

    celery_app.conf.beat_schedule = beat_schedule(app.settings, interval)
    log.info("scheduler: Celery beat sends newsletter.round every %g s", interval)
    celery_app.start(["beat", "--loglevel", loglevel, "--scheduler", "celery.beat:Scheduler"])


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
