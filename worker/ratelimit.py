"""Global rate limits: messages per second and per hour per relay, shared by all workers.

A token bucket in Redis (one Lua script, Redis's own clock) holds the per-second
limit; a counter per clock hour holds the hourly one. The limits live in a Redis
hash that `newsletter limits set` writes and workers re-read every few seconds, so
a change takes effect without restarting anything. Without Redis (in-process
sending) the same limits apply within the one process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

LIMITS_KEY = "newsletter:limits"
DEFAULT_RELAY = "*"
REFRESH_SECONDS = 2.0

BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate / 1000000)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) * 1000000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], 60000)
return wait
"""

HOURLY = """
local limit = tonumber(ARGV[1])
local t = redis.call('TIME')
local hour = math.floor(tonumber(t[1]) / 3600)
local key = KEYS[1] .. ':' .. hour
local used = redis.call('INCR', key)
redis.call('EXPIRE', key, 3700)
if used > limit then
  redis.call('DECR', key)
  return (hour + 1) * 3600 - tonumber(t[1])
end
return 0
"""


@dataclass(frozen=True)
class Limits:
    per_second: float = 0.0
    per_hour: int = 0


class Limiter(Protocol):
    def acquire(self, relay: str) -> None: ...


class Unlimited:
    def acquire(self, relay: str) -> None:
        return None


class LocalLimiter:
    """The limits within one process (in-process sending has no Redis to share)."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[float, float]] = {}
        self._hours: dict[tuple[str, int], int] = {}

    def acquire(self, relay: str) -> None:
        while True:
            wait = self._try(relay)
            if wait <= 0:
                return
            time.sleep(wait)

    def _try(self, relay: str) -> float:
        with self._lock:
            rate = self.limits.per_second
            if self.limits.per_hour:
                hour = int(time.time() // 3600)
                used = self._hours.get((relay, hour), 0)
                if used >= self.limits.per_hour:
                    return (hour + 1) * 3600 - time.time()
            if rate > 0:
                now = self.clock()
                tokens, last = self._tokens.get(relay, (max(rate, 1.0), now))
                tokens = min(max(rate, 1.0), tokens + (now - last) * rate)
                if tokens < 1:
                    self._tokens[relay] = (tokens, now)
                    return (1 - tokens) / rate
                self._tokens[relay] = (tokens - 1, now)
            if self.limits.per_hour:
                self._hours[(relay, hour)] = used + 1
            return 0.0


class RedisLimiter:
    """Shared by every worker through Redis; limits re-read every couple of seconds."""

    def __init__(self, client: Any, defaults: Limits, prefix: str = "newsletter:rate") -> None:
        self.client = client
        self.defaults = defaults
        self.prefix = prefix
        self._bucket = client.register_script(BUCKET)
        self._hourly = client.register_script(HOURLY)
        self._cache: tuple[float, dict[str, str]] = (0.0, {})

    def limits_for(self, relay: str) -> Limits:
        fetched_at, table = self._cache
        if time.monotonic() - fetched_at > REFRESH_SECONDS:
            raw = self.client.hgetall(LIMITS_KEY)
            table = {_text(k): _text(v) for k, v in raw.items()}
            self._cache = (time.monotonic(), table)
        return parse_limits(table, relay, self.defaults)

    def acquire(self, relay: str) -> None:
        """First a token from the per-second bucket, then one unit of the hour: each is
        taken once per message (a wait never spends the hourly quota twice)."""
        while True:
            limits = self.limits_for(relay)
            if limits.per_second <= 0:
                break
            burst = max(limits.per_second, 1.0)
            wait_us = int(self._bucket(keys=[f"{self.prefix}:bucket:{relay}"],
                                       args=[limits.per_second, burst]))
            if wait_us <= 0:
                break
            time.sleep(wait_us / 1_000_000)
        while True:
            limits = self.limits_for(relay)
            if not limits.per_hour:
                return
            wait = int(self._hourly(keys=[f"{self.prefix}:hour:{relay}"],
                                    args=[limits.per_hour]))
            if wait <= 0:
                return
            time.sleep(min(wait, REFRESH_SECONDS))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_limits(table: dict[str, str], relay: str, defaults: Limits) -> Limits:
    """A relay's own limits, else the ones for every relay ('*'), else the settings'."""
    def pick(field: str, fallback: float) -> float:
        for key in (f"{relay}:{field}", f"{DEFAULT_RELAY}:{field}"):
            if key in table:
                return float(table[key])
        return fallback

    return Limits(per_second=pick("per_second", defaults.per_second),
                  per_hour=int(pick("per_hour", defaults.per_hour)))


def set_limits(
    client: Any, relay: str, *, per_second: float | None = None, per_hour: int | None = None
) -> None:
    """Store the limits given for a relay ('*': all); workers pick them up within seconds.
    A limit not given stays as it was (0 means no limit)."""
    mapping = {f"{relay}:{name}": str(value)
               for name, value in (("per_second", per_second), ("per_hour", per_hour))
               if value is not None}
    if mapping:
        client.hset(LIMITS_KEY, mapping=mapping)


def stored_limits(client: Any) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in client.hgetall(LIMITS_KEY).items()}
