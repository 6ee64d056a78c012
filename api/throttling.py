"""Throttling per API key: a fixed-window counter in the Django cache (Redis when configured).

DRF's `SimpleRateThrottle` keeps a list of timestamps per client and rewrites it on every request
(read-modify-write, racy across processes, O(rate) memory). A counter incremented atomically by the
cache (`INCR` in a Lua script on Redis) needs one round trip and holds under concurrency. The rate is the key's own
`throttle_rate` or `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["api_key"]`; a refusal is a 429 with
`Retry-After` (seconds until the window ends).

Redis down: the API keeps answering. The counter falls back to this process's own memory (a per-process
limit: the key's limit divided by `API_THROTTLE_FALLBACK_PROCESSES`, the number of web processes sharing
the traffic, 1 by default), the outage is logged once, Redis is probed again every few seconds, and the
shared counter is used again as soon as it answers (`common.outage.Circuit`).
"""

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import NoScriptError, RedisError
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from common.outage import Circuit
from integrations.models import parse_rate

redis_circuit = Circuit("Redis (API throttle counters)", fallback="throttling per process until it is back")
# This process's counters while Redis is down (LocMemCache: atomic incr under a lock, entries expire).
_local = LocMemCache("api-throttle-fallback", {"OPTIONS": {"MAX_ENTRIES": 100_000}})


def default_rate() -> str:
    return (api_settings.DEFAULT_THROTTLE_RATES or {}).get("api_key") or "6000/min"


# INCR and, for a new counter, EXPIRE: atomic on the server, one round trip (EVALSHA).
_INCREMENT_LUA = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""
_INCREMENT_SHA = hashlib.sha1(_INCREMENT_LUA.encode()).hexdigest()


def _redis_increment(backend: RedisCache, key: str, timeout: int) -> int:
    full_key = backend.make_and_validate_key(key)
    # Django builds a new redis-py client on every get_client() (~0.4 ms of CPU: it copies the
    # command callbacks): keep one per backend (they are per thread; the client is thread-safe).
    client = backend.__dict__.get("_throttle_client")
    if client is None:
        client = backend._throttle_client = backend._cache.get_client(full_key, write=True)
    try:
        return int(client.evalsha(_INCREMENT_SHA, 1, full_key, timeout))
    except NoScriptError:  # a restarted Redis has forgotten the script
        return int(client.eval(_INCREMENT_LUA, 1, full_key, timeout))


def _local_increment(backend, key: str, timeout: int) -> int:
    # add() is a no-op when the counter exists; incr() is atomic in the local cache too.
    backend.add(key, 0, timeout=timeout)
    try:
        return backend.incr(key)
    except ValueError:  # expired between add and incr
        backend.add(key, 1, timeout=timeout)
        return 1


def _increment(key: str, timeout: int) -> int:
    """Add 1 to the counter `key` (created with `timeout`) and return it; atomic, one round trip on Redis."""
    return _count(key, timeout)[0]


def _count(key: str, timeout: int) -> tuple[int, bool]:
    """(the counter after adding 1, whether it is the shared one); this process's own while Redis is down."""
    backend = caches["default"]  # the backend itself (`cache` is a proxy to it)
    if not isinstance(backend, RedisCache):
        return _local_increment(backend, key, timeout), True  # no Redis configured: the cache is the counter
    if redis_circuit.should_try():
        try:
            count = _redis_increment(backend, key, timeout)
        except RedisError as exc:  # down, timing out, out of memory, read-only replica: count here instead
            redis_circuit.failed(exc)
        else:
            redis_circuit.succeeded()
            return count, True
    return _local_increment(_local, key, timeout), False


def fallback_limit(limit: int) -> int:
    """The per-process share of `limit` while the shared counter is unreachable."""
    processes = max(1, int(getattr(settings, "API_THROTTLE_FALLBACK_PROCESSES", 1)))
    return max(1, math.ceil(limit / processes))


class ApiKeyRateThrottle(BaseThrottle):
    cache_prefix = "throttle:key"

    def allow_request(self, request, view) -> bool:
        api_key = getattr(request, "auth", None)
        if api_key is None:
            return True  # unauthenticated requests are refused before they cost anything
        try:
            limit, period = parse_rate(api_key.throttle_rate or default_rate())
        except ValueError:
            limit, period = parse_rate(default_rate())
        now = time.time()
        window = int(now // period)
        key = f"{self.cache_prefix}:{api_key.prefix}:{period}:{window}"
        count, shared = _count(key, period + 1)
        self._wait = (window + 1) * period - now
        return count <= (limit if shared else fallback_limit(limit))

    def wait(self):
        return max(1, math.ceil(self._wait))
