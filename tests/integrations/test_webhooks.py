"""Webhooks: the event sink, signing, delivery over real HTTP, retries, disabling, re-sending."""

import json
import time
from datetime import timedelta

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone

from common.events import publish
from integrations import webhooks
from integrations.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.factories import TenantFactory, WebhookEndpointFactory
from tests.integrations.webhook_receiver import Receiver

Status = WebhookDelivery.Status


# --- signing -------------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    import hashlib
    import hmac

    header = webhooks.sign("whsec_x", b'{"a":1}', 1700000000)
    expected = hmac.new(b"whsec_x", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_verification_accepts_the_exact_bytes_and_rejects_tampering_staleness_and_wrong_secrets():
    now = time.time()
    header = webhooks.sign("s3cret", b'{"a":1}', int(now))
    assert webhooks.verify_signature("s3cret", b'{"a":1}', header, now=now)
    assert not webhooks.verify_signature("s3cret", b'{"a":2}', header, now=now)
    assert not webhooks.verify_signature("other", b'{"a":1}', header, now=now)
    assert not webhooks.verify_signature("s3cret", b'{"a":1}', header, now=now + 301)
    assert not webhooks.verify_signature("s3cret", b'{"a":1}', "garbage", now=now)
    assert not webhooks.verify_signature("s3cret", b'{"a":1}', "", now=now)


def test_the_retry_schedule_is_exponential_with_jitter_and_spans_about_a_day():
    assert webhooks.max_attempts() >= 6
    delays = [webhooks.retry_delay(n, jitter=False) for n in range(1, webhooks.max_attempts())]
    assert all(later > earlier * 2 for earlier, later in zip(delays, delays[1:], strict=False))
    assert 20 * 3600 <= sum(delays) <= 30 * 3600
    jittered = {round(webhooks.retry_delay(3), 3) for _ in range(20)}
    assert len(jittered) > 1
    assert all(0.8 * delays[2] <= d <= 1.2 * delays[2] for d in jittered)


# --- the sink ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_publish_writes_the_event_and_deliveries_in_the_transaction_and_enqueues_after_commit(
    tenant, other_tenant, monkeypatch, django_capture_on_commit_callbacks
):
    wanted = WebhookEndpointFactory(tenant=tenant, event_types=["member.created", "points.earned"])
    WebhookEndpointFactory(tenant=tenant, event_types=["points.earned"])
    WebhookEndpointFactory(tenant=tenant, event_types=["member.created"], enabled=False)
    WebhookEndpointFactory(tenant=other_tenant, event_types=["member.created"])
    sent = []
    monkeypatch.setattr(webhooks.deliver_webhook, "delay", lambda delivery_id: sent.append(delivery_id))

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            publish(tenant, "member.created", {"external_id": "c-42"})
            event = Event.objects.get()
            assert event.tenant == tenant and event.data == {"external_id": "c-42"}
            delivery = WebhookDelivery.objects.get()
            assert delivery.endpoint == wanted and delivery.status == Status.PENDING
            assert sent == []  # not before commit
    # One delivery enqueued (campaign triggers listen to member.created too: their task is the other callback).
    assert [callback.args[0] for callback in callbacks].count(webhooks.deliver_webhook) == 1
    assert sent == [delivery.pk]


@pytest.mark.django_db
def test_a_rolled_back_transaction_announces_nothing(tenant, monkeypatch, django_capture_on_commit_callbacks):
    WebhookEndpointFactory(tenant=tenant, event_types=["member.created"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                publish(tenant, "member.created", {"external_id": "c-1"})
                raise RuntimeError("the service failed")
    assert callbacks == []
    assert not Event.objects.exists() and not WebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_the_envelope_is_the_contracts(tenant):
    from decimal import Decimal

    event_id = webhooks.webhook_event_record(tenant, "points.earned", {"points": 10, "amount": Decimal("1.50")})
    event = Event.objects.get(pk=event_id)
    document = json.loads(webhooks.envelope_bytes(event))
    assert set(document) == {"id", "type", "created_at", "tenant", "data"}
    assert document["id"] == f"evt_{event.id.hex}" and document["type"] == "points.earned"
    assert document["tenant"] == tenant.slug and document["created_at"].endswith("Z")
    assert document["data"] == {"points": 10, "amount": "1.50"}


# --- delivery, without a worker -----------------------------------------------------------------


def _delivery(tenant, url, event_type="member.created"):
    endpoint = WebhookEndpointFactory(tenant=tenant, url=url, event_types=[event_type])
    event = Event.objects.create(tenant=tenant, type=event_type, data={"external_id": "c-42"})
    return WebhookDelivery.objects.create(tenant=tenant, event=event, endpoint=endpoint)


@pytest.mark.django_db
def test_a_delivery_is_posted_signed_and_logged(tenant):
    with Receiver([200]) as receiver:
        delivery = _delivery(tenant, receiver.url)
        result = webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)
    assert result.status == Status.SUCCEEDED and result.attempts == 1 and result.succeeded_at
    headers, body = receiver.requests[0]
    assert webhooks.verify_signature(delivery.endpoint.secret, body, headers["Loyalty-Signature"])
    assert json.loads(body)["id"] == delivery.event.public_id
    assert headers["Content-Type"] == "application/json"
    attempt = WebhookAttempt.objects.get()
    assert (attempt.number, attempt.status_code, attempt.response_body) == (1, 200, "ok")
    # Already delivered: a duplicate task message sends nothing.
    assert webhooks.webhook_delivery_attempt(delivery_id=delivery.pk) is None
    assert len(receiver.requests) == 1


@pytest.mark.django_db
def test_failures_are_retried_with_backoff_then_the_endpoint_is_disabled(tenant, settings):
    settings.WEBHOOK_DIRECT_RETRY_MAX_SECONDS = -1  # leave every retry to the sweep
    start = timezone.now()
    with Receiver([500] * 10) as receiver, time_machine.travel(start, tick=False) as clock:
        delivery = _delivery(tenant, receiver.url)
        waits = []
        for number in range(1, 7):
            result = webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)
            assert result.attempts == number
            if number < 6:
                assert result.status == Status.RETRYING
                # Not due yet: neither a duplicate message nor the sweep sends it early.
                assert webhooks.webhook_delivery_attempt(delivery_id=delivery.pk) is None
                assert delivery.pk not in webhooks.webhook_deliveries_due()
                waits.append((result.next_attempt_at - timezone.now()).total_seconds())
                clock.move_to(result.next_attempt_at + timedelta(seconds=1))
                assert delivery.pk in webhooks.webhook_deliveries_due()
    assert result.status == Status.FAILED
    assert len(receiver.requests) == 6
    assert all(later > earlier for earlier, later in zip(waits, waits[1:], strict=False))
    assert 18 * 3600 < sum(waits) < 34 * 3600
    assert list(WebhookAttempt.objects.order_by("number").values_list("number", "status_code")) == [
        (n, 500) for n in range(1, 7)
    ]
    endpoint = WebhookEndpoint.objects.get(pk=delivery.endpoint_id)
    assert not endpoint.enabled and "6 failed attempts" in endpoint.disabled_reason
    assert endpoint.history.first().history_change_reason.startswith("disabled")


@pytest.mark.django_db
def test_a_timeout_or_refused_connection_is_a_logged_failed_attempt(tenant, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.2
    settings.WEBHOOK_DIRECT_RETRY_MAX_SECONDS = -1
    with Receiver([200], delay=1.0) as receiver:
        delivery = _delivery(tenant, receiver.url)
        result = webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)
    assert result.status == Status.RETRYING and result.last_status_code is None
    assert "timed out" in WebhookAttempt.objects.get().error.lower()
    refused = _delivery(tenant, "http://127.0.0.1:9/closed")
    assert webhooks.webhook_delivery_attempt(delivery_id=refused.pk).status == Status.RETRYING
    assert WebhookAttempt.objects.get(delivery=refused).error


@pytest.mark.django_db
def test_a_redirect_is_not_followed_and_counts_as_a_failure(tenant, settings):
    settings.WEBHOOK_DIRECT_RETRY_MAX_SECONDS = -1
    with Receiver([302]) as receiver:
        delivery = _delivery(tenant, receiver.url)
        result = webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)
    assert result.status == Status.RETRYING and result.last_status_code == 302
    assert len(receiver.requests) == 1


@pytest.mark.django_db
def test_a_delivery_to_a_disabled_endpoint_is_skipped(tenant):
    with Receiver() as receiver:
        delivery = _delivery(tenant, receiver.url)
        webhooks.webhook_endpoint_disable(endpoint=delivery.endpoint, reason="paused")
        assert webhooks.webhook_delivery_attempt(delivery_id=delivery.pk).status == Status.SKIPPED
    assert receiver.requests == []


@pytest.mark.django_db
def test_a_delivery_whose_worker_died_is_picked_up_again(tenant):
    with Receiver() as receiver:
        delivery = _delivery(tenant, receiver.url)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=Status.SENDING, attempts=1, locked_until=timezone.now() - timedelta(seconds=1)
        )
        assert delivery.pk in webhooks.webhook_deliveries_due()
        assert webhooks.webhook_delivery_attempt(delivery_id=delivery.pk).status == Status.SUCCEEDED


@pytest.mark.django_db
def test_resend_makes_a_new_delivery_of_the_same_event(tenant, django_capture_on_commit_callbacks):
    with Receiver() as receiver:
        delivery = _delivery(tenant, receiver.url)
        webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)
        with django_capture_on_commit_callbacks(execute=True):
            resent = webhooks.webhook_delivery_resend(delivery=delivery)
        resent.refresh_from_db()
    assert resent.pk != delivery.pk and resent.resent_from_id == delivery.pk
    assert resent.status == Status.SUCCEEDED  # delivered by the (eager) task after commit
    assert len(receiver.requests) == 2
    assert receiver.requests[0][1] == receiver.requests[1][1]


# --- a real Celery worker and Redis --------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.postgres
def test_real_worker_delivers_after_commit_and_retries_a_failure(celery_worker_app, settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 0.5
    settings.WEBHOOK_RETRY_FACTOR = 2
    tenant = TenantFactory()
    with Receiver([503, 200]) as receiver:
        endpoint = WebhookEndpointFactory(tenant=tenant, url=receiver.url, event_types=["points.earned"])
        with transaction.atomic():
            publish(tenant, "points.earned", {"member": "c-42", "points": 120})
            time.sleep(0.3)
            assert receiver.requests == []  # nothing leaves before the commit
        assert receiver.wait_for(2, timeout=30), receiver.requests
        deadline = time.monotonic() + 10
        delivery = WebhookDelivery.objects.get()
        while delivery.status != Status.SUCCEEDED and time.monotonic() < deadline:
            time.sleep(0.05)
            delivery.refresh_from_db()
    assert delivery.status == Status.SUCCEEDED and delivery.attempts == 2
    (h1, b1), (h2, b2) = receiver.requests
    assert b1 == b2
    for headers, body in receiver.requests:
        assert webhooks.verify_signature(endpoint.secret, body, headers["Loyalty-Signature"])
    document = json.loads(b2)
    assert document["type"] == "points.earned" and document["data"] == {"member": "c-42", "points": 120}
    assert list(delivery.attempt_log.values_list("number", "status_code")) == [(1, 503), (2, 200)]
