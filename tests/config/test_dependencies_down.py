"""Dependencies down, service up: Redis (cache and broker) unreachable, the API and the admin still answer.

No mocks: the app is pointed at a Redis address where nothing listens, or at a redis-server of the test's
own that the test stops and starts again (the machine's shared Redis is never touched).
"""

import contextlib
import logging
import time

import pytest

from integrations.models import Event, WebhookDelivery
from tests.api.conftest import client_for
from tests.factories import (
    CampaignFactory,
    CodeFactory,
    MemberFactory,
    WebhookEndpointFactory,
    api_key_for,
    earning_setup,
    form_token,
)
from tests.integrations.webhook_receiver import Receiver
from tests.outage import DEAD_REDIS, ThrowawayRedis, celery_broker, redis_cache


def _reset_circuits():
    with contextlib.suppress(ImportError):
        from api.throttling import redis_circuit

        redis_circuit.reset()
    with contextlib.suppress(ImportError):
        from common.side_effects import broker_circuit

        broker_circuit.reset()


@pytest.fixture(autouse=True)
def fresh_circuits():
    _reset_circuits()
    yield
    _reset_circuits()


@pytest.fixture
def cache_down(settings):
    settings.CACHES = redis_cache(DEAD_REDIS)


@pytest.fixture
def broker_down():
    with celery_broker(DEAD_REDIS) as app:
        yield app


def _outage_logs(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]


# --- throttling and everything else that needs no broker ------------------------------------------------


@pytest.mark.django_db
def test_with_redis_down_the_api_answers_and_throttles_per_process(tenant, cache_down, caplog):
    _, raw = api_key_for(tenant, throttle_rate="3/min")
    client = client_for(raw)
    caplog.set_level(logging.WARNING)
    statuses = [client.get("/api/v1/tenant").status_code for _ in range(6)]
    assert statuses == [200, 200, 200, 429, 429, 429]
    assert len(_outage_logs(caplog)) == 1, caplog.text  # once for the outage, not once per request


@pytest.mark.django_db
def test_the_per_process_limit_is_the_keys_share_of_the_web_processes(tenant, cache_down, settings):
    settings.API_THROTTLE_FALLBACK_PROCESSES = 2
    _, raw = api_key_for(tenant, throttle_rate="4/min")
    client = client_for(raw)
    assert [client.get("/api/v1/tenant").status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.django_db
def test_with_redis_down_every_read_and_write_that_needs_no_broker_works(tenant, cache_down, settings):
    """Authentication (with its last-used bookkeeping), idempotent POSTs and writes in eager task mode."""
    api_key, raw = api_key_for(tenant)
    client = client_for(raw)
    _, _, member = earning_setup(tenant)
    assert client.get(f"/api/v1/members/{member.external_id}").status_code == 200
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None
    body = {"order_id": "o-1", "member": member.external_id, "amount": "120.00", "currency": "EUR"}
    first = client.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="order-o-1")
    assert first.status_code == 201, first.content
    again = client.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="order-o-1")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_with_redis_down_the_admin_works(admin_client, tenant, cache_down, broker_down):
    assert admin_client.get("/admin/").status_code == 200
    assert admin_client.get("/admin/members/member/").status_code == 200
    assert admin_client.get("/admin/integrations/integrationapikey/").status_code == 200


@pytest.mark.django_db
def test_the_admin_login_works_with_redis_down(client, django_user_model, cache_down, broker_down):
    django_user_model.objects.create_superuser("root", "root@example.com", "a-long-passphrase")
    response = client.post("/admin/login/?next=/admin/", {"username": "root", "password": "a-long-passphrase"})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_throttling_goes_back_to_redis_when_it_is_back(tenant, settings, caplog):
    from api.throttling import redis_circuit

    server = ThrowawayRedis()
    server.start()
    try:
        settings.CACHES = redis_cache(server.url)
        redis_circuit.retry_after = 0.2
        caplog.set_level(logging.WARNING)
        api_key, raw = api_key_for(tenant, throttle_rate="1000/min")
        client = client_for(raw)
        assert client.get("/api/v1/tenant").status_code == 200
        counters = server.client().keys(f"*throttle:key:{api_key.prefix}:*")
        assert len(counters) == 1 and int(server.client().get(counters[0])) == 1

        server.stop()
        assert [client.get("/api/v1/tenant").status_code for _ in range(3)] == [200, 200, 200]
        assert len(_outage_logs(caplog)) == 1

        server.start()  # an empty Redis, as after a restart (its scripts forgotten too)
        time.sleep(0.3)
        assert client.get("/api/v1/tenant").status_code == 200
        counters = server.client().keys(f"*throttle:key:{api_key.prefix}:*")
        assert len(counters) == 1 and int(server.client().get(counters[0])) == 1
        assert any("reachable again" in r.getMessage() for r in caplog.records), caplog.text
    finally:
        redis_circuit.retry_after = 5.0
        server.stop()


# --- /healthz ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_healthz_is_degraded_but_200_when_redis_is_down(client, settings, cache_down):
    settings.REDIS_URL = DEAD_REDIS
    with celery_broker(DEAD_REDIS):
        response = client.get("/healthz")
    assert response.status_code == 200  # the API serves: the instance stays in the load balancer's rotation
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"] == "ok"
    assert body["broker"].startswith("error") and body["cache"].startswith("error")


# --- a committed write is a success even when publishing its task fails ------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_committed_order_is_201_with_the_broker_down_and_the_sweep_delivers_it_later(caplog):
    from integrations.webhooks import dispatch_due_webhooks

    tenant = earning_setup_tenant()
    _, raw = api_key_for(tenant)
    _, _, member = earning_setup(tenant)
    with Receiver() as receiver:
        endpoint = WebhookEndpointFactory(tenant=tenant, url=receiver.url, event_types=["points.earned"])
        caplog.set_level(logging.WARNING)
        body = {"order_id": "o-1", "member": member.external_id, "amount": "120.00", "currency": "EUR"}
        with celery_broker(DEAD_REDIS):
            response = client_for(raw).post("/api/v1/orders", body, format="json")
        assert response.status_code == 201, response.content
        assert response.json()["points_earned"] == 120
        delivery = WebhookDelivery.objects.get(endpoint=endpoint)
        assert delivery.status == WebhookDelivery.Status.PENDING and delivery.attempts == 0
        assert Event.objects.filter(tenant=tenant, type="points.earned").count() == 1
        assert any("integrations.deliver_webhook" in r.getMessage() for r in caplog.records), caplog.text
        assert receiver.requests == []

        assert dispatch_due_webhooks() == 1  # beat's sweep, eager here (the broker is back)
        assert receiver.wait_for(1, timeout=10)
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED and delivery.attempts == 1


@pytest.mark.django_db(transaction=True)
def test_a_committed_redemption_is_201_with_the_broker_down():
    from rewards.models import Redemption

    tenant = earning_setup_tenant()
    _, raw = api_key_for(tenant)
    member = MemberFactory(tenant=tenant)
    campaign = CampaignFactory(tenant=tenant, discount={"type": "percent", "value": "15"})
    CodeFactory(campaign=campaign, code="SPR-1")
    CodeFactory(campaign=campaign, code="SPR-2")
    WebhookEndpointFactory(tenant=tenant, url="http://127.0.0.1:9/hook", event_types=["redemption.succeeded"])
    body = {
        "member": member.external_id,
        "order_id": "o-1",
        "order": {
            "amount": "120.00",
            "items": [{"sku": "T", "category": "apparel", "quantity": 2, "unit_price": "60.00"}],
        },
        "codes": ["SPR-1"],
    }
    started = time.monotonic()
    with celery_broker(DEAD_REDIS):
        first = client_for(raw).post("/api/v1/redemptions", body, format="json", HTTP_IDEMPOTENCY_KEY="r-1")
        # While the broker is known to be down, later writes do not wait for it again.
        second = client_for(raw).post(
            "/api/v1/redemptions", {**body, "order_id": "o-2", "codes": ["SPR-2"]}, format="json"
        )
    assert first.status_code == 201, first.content
    assert second.status_code == 201, second.content
    assert time.monotonic() - started < 10
    assert Redemption.objects.filter(tenant=tenant, order_id="o-1").count() == 1
    assert WebhookDelivery.objects.filter(tenant=tenant, status=WebhookDelivery.Status.PENDING).exists()


def earning_setup_tenant():
    from tests.factories import TenantFactory

    return TenantFactory()


@pytest.mark.django_db(transaction=True)
def test_bulk_code_generation_from_the_admin_is_recorded_with_the_broker_down(client, django_user_model, caplog):
    from django.urls import reverse

    from campaigns.models import CodeGenerationJob

    superuser = django_user_model.objects.create_superuser("root", "root@example.com", "a-long-passphrase")
    campaign = CampaignFactory(tenant=earning_setup_tenant())
    client.force_login(superuser)
    caplog.set_level(logging.WARNING)
    url = reverse("admin:campaigns_campaign_generate_codes", args=[campaign.pk])
    with celery_broker(DEAD_REDIS):
        response = client.post(url, {"count": 500, "pattern": "ADM-####-????", "form_token": form_token()})
    assert response.status_code == 302
    assert CodeGenerationJob.objects.get(campaign=campaign).status == "pending"  # waits for a worker
    assert any("generate_codes_job" in r.getMessage() for r in caplog.records), caplog.text
