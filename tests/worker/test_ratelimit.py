"""Rate limits shared through a real Redis, changed while running, and relay failover."""

from __future__ import annotations

import threading
import time

import redis

from tests.servers import RedisServer, SmtpServer
from worker.ratelimit import Limits, LocalLimiter, RedisLimiter, parse_limits, set_limits
from worker.transports import Envelope, RelayPool, SMTPTransport


def test_limits_per_relay_override_the_defaults() -> None:
    table = {"*:per_second": "5", "mx1:25:per_second": "2", "mx1:25:per_hour": "100"}
    assert parse_limits(table, "mx1:25", Limits(1, 0)) == Limits(2, 100)
    assert parse_limits(table, "other:25", Limits(1, 7)) == Limits(5, 7)
    assert parse_limits({}, "x", Limits(3, 4)) == Limits(3, 4)


def test_a_bucket_in_redis_is_shared_by_every_limiter(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    set_limits(client, "*", per_second=20)
    # four "workers" (threads with their own limiters) taking 60 messages between them
    limiters = [RedisLimiter(redis.Redis.from_url(redis_server.url), Limits()) for _ in range(4)]
    started = time.monotonic()

    def take(limiter: RedisLimiter) -> None:
        for _ in range(15):
            limiter.acquire("relay:25")

    threads = [threading.Thread(target=take, args=(lim,)) for lim in limiters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    # a burst of 20, then 20 per second: 60 messages cannot take less than 2 seconds
    assert elapsed >= 1.9, elapsed


def test_a_new_limit_takes_effect_without_a_restart(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    limiter = RedisLimiter(redis.Redis.from_url(redis_server.url), Limits())
    started = time.monotonic()
    for _ in range(50):
        limiter.acquire("r:25")
    assert time.monotonic() - started < 1.0  # no limit yet
    set_limits(client, "*", per_second=5)
    time.sleep(2.1)  # workers re-read limits every 2 s
    started = time.monotonic()
    for _ in range(15):
        limiter.acquire("r:25")
    assert time.monotonic() - started >= 1.9


def test_hourly_limit_blocks_when_used_up(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    set_limits(client, "h:25", per_hour=3)
    limiter = RedisLimiter(redis.Redis.from_url(redis_server.url), Limits())
    for _ in range(3):
        limiter.acquire("h:25")
    done = threading.Event()
    blocked = threading.Thread(target=lambda: (limiter.acquire("h:25"), done.set()),
                               daemon=True)
    blocked.start()
    assert not done.wait(1.5)  # the fourth waits for the next clock hour


def test_local_limiter_spaces_messages() -> None:
    limiter = LocalLimiter(Limits(per_second=10))
    started = time.monotonic()
    for _ in range(25):
        limiter.acquire("x")
    assert time.monotonic() - started >= 1.4


def test_failover_to_the_next_relay_and_back(smtp_server: SmtpServer) -> None:
    backup = SmtpServer()
    backup.start()
    try:
        primary_port = smtp_server.port
        pool = RelayPool([SMTPTransport(smtp_server.url, timeout=3),
                          SMTPTransport(backup.url, timeout=3)], cooldown=1.0)
        envelope = Envelope("news@example.org", "a@example.org", b"Subject: x\r\n\r\nx\r\n",
                            "<x@example.org>")
        pool.send(envelope)
        assert pool.last_relay.endswith(f":{primary_port}")
        smtp_server.stop()
        pool.send(envelope)  # the primary is down: the backup takes it
        assert pool.last_relay == f"127.0.0.1:{backup.port}"
        assert len(backup.messages) == 1
        smtp_server.start(port=primary_port)
        time.sleep(1.1)  # after the cool-down the primary is preferred again
        pool.send(envelope)
        assert pool.last_relay.endswith(f":{primary_port}")
        pool.close()
    finally:
        backup.stop()


def test_setting_one_limit_leaves_the_other(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    set_limits(client, "*", per_hour=1000)
    set_limits(client, "mx:25", per_second=14)
    table = {k.decode(): v.decode() for k, v in client.hgetall("newsletter:limits").items()}
    assert parse_limits(table, "mx:25", Limits()) == Limits(per_second=14, per_hour=1000)


def test_waiting_for_the_bucket_does_not_spend_the_hour(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    set_limits(client, "w:25", per_second=5, per_hour=12)
    limiter = RedisLimiter(redis.Redis.from_url(redis_server.url), Limits())
    for _ in range(12):  # the bucket makes most of these wait
        limiter.acquire("w:25")
    hour_keys = client.keys("newsletter:rate:hour:w:25:*")
    assert [int(client.get(k) or 0) for k in hour_keys] == [12]
