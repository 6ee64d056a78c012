"""Real outages for tests, no mocks: Redis addresses where nothing listens, and a throwaway redis-server.

The machine's shared Redis and PostgreSQL are never stopped: "Redis down" is either an address with no
server (`DEAD_REDIS`) or a redis-server of the test's own, on a free port, that the test stops and starts.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

DEAD_REDIS = "redis://127.0.0.1:1/0"  # port 1: nothing listens, the connection is refused at once


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_cache(url: str) -> dict:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": f"outage-test-{os.getpid()}",
            "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0},
        }
    }


class ThrowawayRedis:
    """A redis-server of this test's own on a free port (no persistence), stopped and started at will."""

    def __init__(self):
        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("REQUIRE_SERVICES") == "1":
                pytest.fail("REQUIRE_SERVICES=1 but redis-server is not installed")
            pytest.skip("needs the redis-server binary")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="throwaway-redis-")
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--dir", self.dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("the throwaway redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # our own process, by its handle
            self.process.wait(timeout=10)
            self.process = None

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)


@contextlib.contextmanager
def celery_broker(url: str):
    """Publish tasks to `url` (not eagerly) for the block: the app's connection pools are rebuilt around it."""
    from config.celery import app

    def reset_pools():  # kombu keeps the pools per URL: forget the app's, do not close them
        app._pool = None
        with contextlib.suppress(AttributeError, KeyError):
            app.__dict__["amqp"]._producer_pool = None

    saved = app.conf.broker_url, app.conf.task_always_eager
    reset_pools()
    app.conf.broker_url, app.conf.task_always_eager = url, False
    try:
        yield app
    finally:
        reset_pools()
        app.conf.broker_url, app.conf.task_always_eager = saved
