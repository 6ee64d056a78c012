import pytest
from django.conf import settings


@pytest.mark.django_db
def test_healthz_reports_database_broker_and_cache(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["broker"] == ("ok" if settings.REDIS_URL else "eager")
    assert body["cache"] == ("ok" if settings.REDIS_URL else "local")


# Redis down (200 "degraded"): tests/config/test_dependencies_down.py.
