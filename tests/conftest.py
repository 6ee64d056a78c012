"""Shared fixtures, and the rule for tests that need real services.

`@pytest.mark.postgres` tests need DATABASE_URL to point at PostgreSQL; `@pytest.mark.redis` tests need
REDIS_URL and start a real Celery worker; `@pytest.mark.browser` tests need Debian's chromium. Without them
these tests are skipped with a reason naming the missing service, unless REQUIRE_SERVICES=1 (CI), where a
missing service is a failure instead.
"""

import importlib.util
import os
import shutil

import pytest
from django.conf import settings

from tests import factories

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def _is_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "config.postgresql"


def pytest_collection_modifyitems(config, items):
    missing = {}
    if not _is_postgres():
        missing["postgres"] = "needs PostgreSQL: set DATABASE_URL=postgres://..."
    if not settings.REDIS_URL:
        missing["redis"] = "needs Redis: set REDIS_URL=redis://..."
    if shutil.which("chromium") is None:
        missing["browser"] = "needs a browser: apt-get install chromium (Debian's; never a browser download)"
    elif importlib.util.find_spec("playwright") is None:
        missing["browser"] = "needs Playwright for Python: pip install -e '.[dev]' (it drives Debian's chromium)"
    for item in items:
        for marker, reason in missing.items():
            if marker in item.keywords:
                if REQUIRE_SERVICES:
                    item.add_marker(
                        pytest.mark.xfail(reason=f"REQUIRE_SERVICES=1 but {reason}", run=False, strict=True)
                    )
                else:
                    item.add_marker(pytest.mark.skip(reason=reason))


def pytest_report_header(config):
    db = "PostgreSQL" if _is_postgres() else "SQLite (no DATABASE_URL): PostgreSQL-only tests are skipped"
    tasks = "Redis + real worker" if settings.REDIS_URL else "in-process (no REDIS_URL): worker tests are skipped"
    return [f"database: {db}", f"tasks: {tasks}"]


def pytest_sessionstart(session):
    # The cockpit's catalogs are compiled, not committed (`make messages` does the same): a bare `pytest` too.
    from django.core.management import call_command

    call_command("compile_translations", verbosity=0)
    if REQUIRE_SERVICES and (not _is_postgres() or not settings.REDIS_URL):
        raise pytest.UsageError("REQUIRE_SERVICES=1 but DATABASE_URL is not PostgreSQL or REDIS_URL is unset")


@pytest.fixture
def tenant(db):
    return factories.TenantFactory()


@pytest.fixture
def other_tenant(db):
    return factories.TenantFactory()


@pytest.fixture
def celery_worker_app(transactional_db):
    """A real Celery worker thread consuming from REDIS_URL for the duration of one test."""
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    app.conf.update(task_always_eager=False)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            yield app
    finally:
        app.conf.update(task_always_eager=True)


@pytest.fixture(autouse=True)
def _fresh_api_key_cache():
    """Each test sees its keys as the database has them (the per-process key cache starts empty)."""
    from integrations.keys import forget_cached_keys

    forget_cached_keys()
    yield
    forget_cached_keys()


@pytest.fixture(autouse=True)
def _fresh_trigger_kinds():
    """Each test sees its tenants' triggers as the database has them (ids come again after a rollback)."""
    from campaigns.triggers import forget_listened_kinds

    forget_listened_kinds()
    yield
    forget_listened_kinds()
