"""The health check of a reused PostgreSQL connection (config/postgresql/base.py): no round trip while the
connection is healthy, and a connection the server ended is replaced before the request uses it."""

import pytest
from django.db import connection

from tests.api.test_idempotency_crashes import kill_this_connection

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def asks(monkeypatch):
    """The times the check asked the server (`is_usable`, Django's `SELECT 1`)."""
    connection.close()  # a new connection, far from its CONN_MAX_AGE (the suite's may be older than that)
    made = []
    real = connection.is_usable

    def asking():
        made.append(True)
        return real()

    monkeypatch.setattr(connection, "is_usable", asking)
    return made


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _next_request() -> None:
    """What `close_old_connections` does between two requests: the next use runs the health check."""
    connection.close_if_unusable_or_obsolete()


def test_a_healthy_connection_is_reused_without_asking_the_server(asks):
    first = _backend_pid()
    assert connection.health_check_enabled and connection.close_at is not None  # persistent and checked
    for _ in range(3):
        _next_request()
        assert _backend_pid() == first
    assert asks == []


def test_a_connection_the_server_ended_is_replaced_before_the_request_uses_it(asks):
    first = _backend_pid()
    kill_this_connection()
    _next_request()
    assert _backend_pid() != first  # the request's first query ran on a new connection, without an error
    assert asks == [True]  # the server's goodbye was on the socket: asked, found dead, replaced
