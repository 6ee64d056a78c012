"""Throttling per API key (api/throttling.py): 429 with Retry-After, a counter per key, atomic on Redis."""

import pytest

from tests.api.conftest import assert_error, client_for
from tests.factories import api_key_for

pytestmark = pytest.mark.django_db


def test_throttling_answers_429_with_retry_after(tenant):
    _, raw = api_key_for(tenant, throttle_rate="3/min")
    client = client_for(raw)
    assert [client.get("/api/v1/tenant").status_code for _ in range(3)] == [200, 200, 200]
    response = client.get("/api/v1/tenant")
    error = assert_error(response, 429, "throttled")
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 61
    assert error["details"] == {"retry_after": retry_after}


def test_throttling_is_per_key(tenant):
    _, raw_a = api_key_for(tenant, throttle_rate="1/min")
    _, raw_b = api_key_for(tenant, throttle_rate="1/min")
    assert client_for(raw_a).get("/api/v1/tenant").status_code == 200
    assert client_for(raw_a).get("/api/v1/tenant").status_code == 429
    assert client_for(raw_b).get("/api/v1/tenant").status_code == 200


@pytest.mark.redis
def test_the_throttle_counter_on_redis_is_atomic_and_expires():
    """Threads incrementing one counter see every count once; the window's key dies with the window."""
    import threading
    import uuid

    from django.core.cache import caches

    from api.throttling import _increment

    assert type(caches["default"]).__name__ == "RedisCache"
    key = f"throttle:test:{uuid.uuid4().hex}"
    backend = caches["default"]
    backend._cache.get_client(key, write=True).script_flush()  # as after a Redis restart: EVAL again
    seen: list[int] = []
    lock = threading.Lock()

    def hit():
        for _ in range(25):
            count = _increment(key, 30)
            with lock:
                seen.append(count)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == list(range(1, 201))
    full_key = backend.make_and_validate_key(key)
    assert 0 < backend._cache.get_client(full_key).ttl(full_key) <= 30
