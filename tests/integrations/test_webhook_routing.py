"""One routing rule (`integrations.sql._wants`) decides which endpoints get a delivery of an event: the event's
tenant's, enabled, with the type among their event types. The suite runs on SQLite and on PostgreSQL, so both
halves of the rule (json_each and jsonb `@>`) are held to the same answers here."""

import pytest

from common.events import EVENT_TYPES
from integrations import webhooks
from integrations.models import Event, WebhookDelivery
from tests.factories import WebhookEndpointFactory

pytestmark = pytest.mark.django_db


def test_only_the_endpoints_that_want_the_type_get_a_delivery(tenant, other_tenant, monkeypatch):
    monkeypatch.setattr(webhooks.deliver_webhook, "delay", lambda delivery_id: None)
    kind = "points.earned"
    similar = next(t for t in EVENT_TYPES if t != kind and t.startswith("points."))
    endpoints = {
        "wants it": WebhookEndpointFactory(tenant=tenant, event_types=[kind]),
        "wants it among others": WebhookEndpointFactory(tenant=tenant, event_types=["member.created", kind]),
        "wants another type": WebhookEndpointFactory(tenant=tenant, event_types=[similar]),
        "disabled": WebhookEndpointFactory(tenant=tenant, event_types=[kind], enabled=False),
        "of another tenant": WebhookEndpointFactory(tenant=other_tenant, event_types=[kind]),
    }
    event_id = webhooks.webhook_event_record(tenant, kind, {"points": 5})
    event = Event.objects.get(pk=event_id)
    assert (event.tenant_id, event.type, event.data) == (tenant.pk, kind, {"points": 5})
    deliveries = WebhookDelivery.objects.filter(event=event)
    assert {d.endpoint_id for d in deliveries} == {
        endpoints["wants it"].pk,
        endpoints["wants it among others"].pk,
    }
    for delivery in deliveries:
        assert (delivery.tenant_id, delivery.status, delivery.attempts) == (tenant.pk, "pending", 0)
        assert delivery.next_attempt_at == delivery.created_at == event.created_at


def test_an_event_nobody_wants_is_still_written_and_announces_nothing(tenant, monkeypatch):
    sent = []
    monkeypatch.setattr(webhooks.deliver_webhook, "delay", sent.append)
    WebhookEndpointFactory(tenant=tenant, event_types=["member.created"])
    event_id = webhooks.webhook_event_record(tenant, "points.earned", {})
    assert Event.objects.filter(pk=event_id).exists()
    assert not WebhookDelivery.objects.exists() and sent == []
