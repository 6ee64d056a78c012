"""Reports read from the "replica" alias when `DATABASE_REPLICA_URL` configured one.

The test settings have no replica: with one, every other test would have to declare the alias
(`databases = {"default", "replica"}`) and pytest-django would set up a second test database. So this test adds a
second connection under the alias "replica", pointing at the same test database, for its own duration (as a
connection made at run time, which Django's test case allows), and commits its rows (transactional test) so the
second connection sees them.
"""

import copy
import os
import subprocess
import sys

import pytest
import time_machine
from django.db import connections
from django.db.utils import load_backend
from django.test.utils import CaptureQueriesContext

from reports.selectors import Report, ReportRange, report_database
from tests.api.conftest import client_for
from tests.factories import TenantFactory, api_key_for
from tests.reports import scenario


@pytest.fixture
def replica(transactional_db, settings):
    alias = copy.deepcopy(connections.settings["default"])
    wrapper = load_backend(alias["ENGINE"]).DatabaseWrapper(alias, "replica")
    connections["replica"] = wrapper
    settings.DATABASES = {**settings.DATABASES, "replica": alias}
    try:
        yield "replica"
    finally:
        wrapper.close()
        del connections["replica"]


def test_default_without_a_replica():
    assert report_database() == "default"


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@pytest.mark.django_db(transaction=True)
def test_reports_read_the_replica(replica):
    tenant = TenantFactory()
    scenario.build(tenant)
    assert report_database() == "replica"
    rng = ReportRange(tenant, scenario.FIRST, scenario.LAST)
    with time_machine.travel(scenario.NOW, tick=False):
        expected = Report(rng, using="default").summary()
        client = client_for(api_key_for(tenant)[1])
        with CaptureQueriesContext(connections["replica"]) as on_replica:
            with CaptureQueriesContext(connections["default"]) as on_default:
                summary = Report(rng).summary()
            response = client.get("/api/v1/reports/summary", {"from": "2026-03-01", "to": "2026-03-31"})
    assert summary == expected
    assert on_replica.captured_queries and not on_default.captured_queries
    assert response.json()["orders"] == expected["orders"]


def test_settings_create_the_replica_alias_from_the_environment(tmp_path):
    code = "from django.conf import settings; print(settings.DATABASES['replica']['NAME'])"
    env = {
        **os.environ,
        "DEBUG": "true",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_REPLICA_URL": f"sqlite:///{tmp_path}/replica.sqlite3",
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"{tmp_path}/replica.sqlite3"
