"""Idempotency-Key: replay, reuse with another body, bounds, expiry, 5xx, and a real-thread race."""

import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from api import idempotency
from api.views import tenant as views_tenant
from integrations.idempotency import idempotency_records_purge
from integrations.models import IdempotencyRecord
from tests.api.conftest import assert_error, client_for
from tests.factories import api_key_for


@pytest.fixture
def calls(monkeypatch):
    """Counts the service calls behind POST /tenant/freeze."""
    real = views_tenant.tenant_set_frozen
    made = []

    def counting(**kwargs):
        made.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(views_tenant, "tenant_set_frozen", counting)
    return made


def freeze(client, body, key="k-1", **extra):
    return client.post("/api/v1/tenant/freeze", body, format="json", HTTP_IDEMPOTENCY_KEY=key, **extra)


@pytest.mark.django_db
def test_a_retry_with_the_same_key_and_body_replays_the_first_response_and_changes_nothing(api, calls):
    first = freeze(api, {"reason": "a"})
    second = freeze(api, {"reason": "a"})
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert second["Idempotent-Replayed"] == "true"
    assert len(calls) == 1


@pytest.mark.django_db
def test_key_order_whitespace_and_trailing_slash_do_not_make_another_request(api, calls):
    api.post(
        "/api/v1/tenant/freeze",
        data=b'{"reason": "a", "x": 1}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    again = api.post(
        "/api/v1/tenant/freeze/",
        data=b'{ "x":1,"reason":"a" }',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert len(calls) == 1


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_409_and_changes_nothing(api, calls):
    freeze(api, {"reason": "a"})
    response = freeze(api, {"reason": "b"})
    assert_error(response, 409, "idempotency_key_reused")
    assert len(calls) == 1


@pytest.mark.django_db
def test_the_same_key_on_another_path_is_409(api, calls):
    freeze(api, {"reason": "a"}, key="shared")
    response = api.post("/api/v1/tenant/unfreeze", {"reason": "a"}, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    assert_error(response, 409, "idempotency_key_reused")


@pytest.mark.django_db
def test_keys_are_scoped_per_integration(tenant, calls):
    _, raw_a = api_key_for(tenant)
    _, raw_b = api_key_for(tenant)
    freeze(client_for(raw_a), {"reason": "a"}, key="same")
    response = freeze(client_for(raw_b), {"reason": "b"}, key="same")
    assert response.status_code == 200 and "Idempotent-Replayed" not in response
    assert len(calls) == 2


@pytest.mark.django_db
def test_without_a_key_every_request_runs(api, calls):
    api.post("/api/v1/tenant/freeze", {"reason": "a"}, format="json")
    api.post("/api/v1/tenant/freeze", {"reason": "a"}, format="json")
    assert len(calls) == 2
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "x" * 256])
def test_a_key_outside_1_to_255_characters_is_400(api, calls, key):
    assert_error(freeze(api, {"reason": "a"}, key=key), 400, "invalid_idempotency_key")
    assert calls == []


@pytest.mark.django_db
def test_an_error_response_is_replayed_too(api, calls):
    first = freeze(api, {"reason": "x" * 301})
    second = freeze(api, {"reason": "x" * 301})
    assert first.status_code == second.status_code == 400
    assert first.content == second.content and second["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_a_500_is_not_stored_so_a_retry_runs_again(api, monkeypatch, calls):
    real = views_tenant.tenant_set_frozen

    def fail_once(**kwargs):
        monkeypatch.setattr(views_tenant, "tenant_set_frozen", real)
        raise RuntimeError("database went away")

    monkeypatch.setattr(views_tenant, "tenant_set_frozen", fail_once)
    assert freeze(api, {"reason": "a"}).status_code == 500
    retry = freeze(api, {"reason": "a"})
    assert retry.status_code == 200 and "Idempotent-Replayed" not in retry


@pytest.mark.django_db
def test_records_are_kept_at_least_24_hours_then_purged(api, calls):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        freeze(api, {"reason": "a"})
    with time_machine.travel(start + timedelta(hours=24), tick=False):
        assert freeze(api, {"reason": "a"})["Idempotent-Replayed"] == "true"
        assert idempotency_records_purge() == 0
    with time_machine.travel(start + timedelta(hours=49), tick=False):
        assert idempotency_records_purge() == 1
        assert "Idempotent-Replayed" not in freeze(api, {"reason": "a"})
    assert len(calls) == 2


@pytest.mark.django_db
def test_a_claim_abandoned_by_a_crashed_request_is_taken_over(api, key_pair, calls):
    api_key, _ = key_pair
    now = timezone.now()
    IdempotencyRecord.objects.create(
        tenant=api_key.integration.tenant,
        integration=api_key.integration,
        key="crashed",
        method="POST",
        path="/api/v1/tenant/freeze",
        request_hash=idempotency.fingerprint("POST", "/api/v1/tenant/freeze", b'{"reason":"a"}'),
        created_at=now - timedelta(minutes=5),
        locked_until=now - timedelta(minutes=4),
    )
    assert freeze(api, {"reason": "a"}, key="crashed").status_code == 200
    assert len(calls) == 1


@pytest.mark.django_db
def test_a_twin_still_running_past_the_wait_is_409_in_progress(api, key_pair, settings, calls):
    settings.IDEMPOTENCY_WAIT_SECONDS = 0.1
    api_key, _ = key_pair
    now = timezone.now()
    IdempotencyRecord.objects.create(
        tenant=api_key.integration.tenant,
        integration=api_key.integration,
        key="running",
        method="POST",
        path="/api/v1/tenant/freeze",
        request_hash=idempotency.fingerprint("POST", "/api/v1/tenant/freeze", b'{"reason":"a"}'),
        created_at=now,
        locked_until=now + timedelta(minutes=1),
    )
    assert_error(freeze(api, {"reason": "a"}, key="running"), 409, "idempotency_request_in_progress")
    assert calls == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_requests_have_one_effect_and_the_same_response(tenant, monkeypatch):
    """8 real threads post the same request with the same key at once: one runs, all get its answer."""
    _, raw = api_key_for(tenant)
    real = views_tenant.tenant_set_frozen
    made = []

    def slow(**kwargs):
        made.append(kwargs)
        time.sleep(0.3)  # keep the winner busy while the others arrive
        return real(**kwargs)

    monkeypatch.setattr(views_tenant, "tenant_set_frozen", slow)
    history_before = tenant.history.count()
    barrier = threading.Barrier(8)
    results = []
    lock = threading.Lock()

    def worker():
        try:
            client = client_for(raw)
            barrier.wait()
            response = freeze(client, {"reason": "race"}, key="race-1")
            with lock:
                results.append((response.status_code, response.content))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 8
    assert len(made) == 1
    assert {status for status, _ in results} == {200}
    assert len({content for _, content in results}) == 1
    assert tenant.history.count() == history_before + 1
