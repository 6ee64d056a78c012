"""`GET /healthz`: what a load balancer and an operator need to know.

- 200 `{"status": "ok"}`: the database, the broker and the cache answer.
- 200 `{"status": "degraded"}`: the database answers but Redis (broker or cache) does not. The API still
  serves every request (throttling counts per process, tasks are left for their sweeps), so the instance
  stays in rotation: taking every instance out because a shared Redis is down would stop the service.
- 503 `{"status": "down"}`: the database does not answer; nothing can be served.

Each dependency is `"ok"`, `"error: <exception class>"`, or, without `REDIS_URL`, `"eager"` (broker: tasks
run in-process) and `"local"` (cache: in-process memory).
"""

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from config.celery import app


def database_ping() -> None:
    """One round trip to the database (raises when it does not answer): the health check's and the worker's."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _database_status() -> str:
    try:
        database_ping()
    except Exception as exc:  # a health check reports failures, it does not raise them
        return f"error: {exc.__class__.__name__}"
    return "ok"


def _broker_status() -> str:
    if not settings.REDIS_URL:
        return "eager"  # tasks run in-process: there is no broker to be down

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return f"error: {exc.__class__.__name__}"
    return "ok"


def _cache_status() -> str:
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return "local"
    try:
        backend._cache.get_client(write=False).ping()
    except Exception as exc:
        return f"error: {exc.__class__.__name__}"
    return "ok"


@require_GET
def healthz(request):
    """200 "ok", 200 "degraded" (Redis down, the API still serves), 503 "down" (no database)."""
    checks = {"database": _database_status(), "broker": _broker_status(), "cache": _cache_status()}
    if checks["database"] != "ok":
        status, code = "down", 503
    elif any(value.startswith("error") for value in checks.values()):
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    return JsonResponse({"status": status, **checks}, status=code)
