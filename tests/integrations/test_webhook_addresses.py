"""Webhook endpoints cannot make the server call itself or its network (SSRF).

The test settings let the other webhook tests deliver to a receiver on 127.0.0.1; here the address checks
are on, as in production: a private literal address is refused at save, and a host name that resolves to
one is refused at delivery before any connection is made.
"""

import socket
from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from integrations import webhooks
from integrations.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint, is_public_address
from tests.integrations.webhook_receiver import Receiver

Status = WebhookDelivery.Status


@pytest.fixture(autouse=True)
def production_rules(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = False
    settings.WEBHOOK_ALLOW_HTTP = False
    settings.WEBHOOK_DIRECT_RETRY_MAX_SECONDS = -1  # retries are left to the sweep: one attempt per call


@pytest.fixture
def listener():
    """A bare TCP socket on 127.0.0.1: `connected(listener)` tells whether anything connected to it."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


def connected(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


def _delivery(tenant, url: str) -> WebhookDelivery:
    """An endpoint written without model validation: as if its name pointed elsewhere when it was saved."""
    endpoint = WebhookEndpoint.objects.create(tenant=tenant, url=url, event_types=["member.created"])
    event = Event.objects.create(tenant=tenant, type="member.created", data={"external_id": "c-42"})
    return WebhookDelivery.objects.create(tenant=tenant, event=event, endpoint=endpoint)


def _endpoint(tenant, url: str) -> WebhookEndpoint:
    return WebhookEndpoint(tenant=tenant, url=url, event_types=["member.created"])


# --- what counts as public ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",  # documentation
        "::1",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2001:db8::1",
    ],
)
def test_internal_addresses_are_not_public(address):
    assert not is_public_address(address)


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.216.34", "64:ff9b::808:808"]
)
def test_routed_unicast_addresses_are_public(address):
    assert is_public_address(address)


# --- at save -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hooks",
        "https://10.0.0.5:8443/hooks",
        "https://169.254.169.254/latest/meta-data/",
        "https://192.168.0.10/hooks",
        "https://0.0.0.0/hooks",
        "https://224.0.0.1/hooks",
        "https://[::1]/hooks",
        "https://[::ffff:127.0.0.1]/hooks",
        "https://[fe80::1]/hooks",
        "https://[fc00::1]/hooks",
    ],
)
@pytest.mark.django_db
def test_a_private_literal_address_is_refused_at_save(tenant, url):
    with pytest.raises(ValidationError) as refused:
        _endpoint(tenant, url).full_clean()
    assert "private, loopback" in " ".join(refused.value.message_dict["url"])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://localhost/hooks", "localhost"),
        ("https://api.localhost/hooks", "localhost"),
        ("http://hooks.example.com/loyalty", "https://"),
        ("ftp://hooks.example.com/loyalty", "https://"),
        ("https://user:secret@hooks.example.com/loyalty", "password"),
        ("https://hooks.example.com:99999/loyalty", "valid URL"),
    ],
)
@pytest.mark.django_db
def test_a_url_that_is_not_https_to_a_public_host_without_credentials_is_refused_at_save(tenant, url, message):
    with pytest.raises(ValidationError) as refused:
        _endpoint(tenant, url).full_clean()
    assert message in " ".join(refused.value.message_dict["url"])


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/loyalty",
        "https://hooks.example.com:8443/loyalty?tenant=7",
        "https://93.184.216.34/hooks",
        "https://[2606:4700:4700::1111]/hooks",
    ],
)
@pytest.mark.django_db
def test_a_public_looking_url_passes_validation(tenant, url):
    _endpoint(tenant, url).full_clean()


@pytest.mark.django_db
def test_http_and_private_addresses_pass_validation_only_where_the_settings_allow_them(tenant, settings):
    with pytest.raises(ValidationError):
        _endpoint(tenant, "http://127.0.0.1:8000/hooks").full_clean()
    settings.WEBHOOK_ALLOW_HTTP = True
    _endpoint(tenant, "http://hooks.example.com/loyalty").full_clean()
    with pytest.raises(ValidationError):
        _endpoint(tenant, "http://127.0.0.1:8000/hooks").full_clean()
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = True
    _endpoint(tenant, "http://127.0.0.1:8000/hooks").full_clean()
    _endpoint(tenant, "http://localhost:8000/hooks").full_clean()
    with pytest.raises(ValidationError):  # credentials stay out of URLs whatever the settings
        _endpoint(tenant, "http://u:p@127.0.0.1:8000/hooks").full_clean()


@pytest.mark.django_db
def test_the_admin_form_refuses_a_private_address_with_a_clear_message(admin_client, tenant):
    data = {
        "tenant": tenant.pk,
        "url": "https://169.254.169.254/latest/meta-data/",
        "description": "",
        "event_types": ["member.created"],
        "secret": "whsec_test",
        "deliveries-TOTAL_FORMS": "0",
        "deliveries-INITIAL_FORMS": "0",
    }
    response = admin_client.post(reverse("admin:integrations_webhookendpoint_add"), data)
    assert response.status_code == 200 and not WebhookEndpoint.objects.exists()
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["url"] and "may not point at a private, loopback" in errors["url"][0]
    assert "(169.254.169.254)" in errors["url"][0]
    data["url"] = "https://hooks.example.com/loyalty"
    response = admin_client.post(reverse("admin:integrations_webhookendpoint_add"), data)
    assert response.status_code == 302
    assert WebhookEndpoint.objects.get().url == "https://hooks.example.com/loyalty"


# --- at delivery -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_host_name_resolving_to_loopback_is_refused_at_delivery_and_retried_on_schedule(tenant, settings):
    settings.WEBHOOK_ALLOW_HTTP = True  # the receiver speaks plain http: the address alone is judged here
    start = timezone.now()
    with Receiver([200] * 10) as receiver, time_machine.travel(start, tick=False) as clock:
        delivery = _delivery(tenant, receiver.url.replace("127.0.0.1", "localhost"))
        for number in range(1, 7):
            result = webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)
            assert result.attempts == number and result.last_status_code is None
            if number == 1:
                first_wait = (result.next_attempt_at - timezone.now()).total_seconds()
            if number < 6:
                assert result.status == Status.RETRYING
                clock.move_to(result.next_attempt_at + timedelta(seconds=1))
    assert receiver.requests == []
    assert 0.8 * webhooks.retry_delay(1, jitter=False) <= first_wait <= 1.2 * webhooks.retry_delay(1, jitter=False)
    assert result.status == Status.FAILED
    attempts = list(WebhookAttempt.objects.filter(delivery=delivery).order_by("number"))
    assert [a.number for a in attempts] == [1, 2, 3, 4, 5, 6]
    for attempt in attempts:
        assert attempt.status_code is None and not attempt.succeeded
        assert attempt.error.startswith("Refused, not sent: localhost resolves to a private")
    assert not WebhookEndpoint.objects.get(pk=delivery.endpoint_id).enabled


@pytest.mark.django_db
def test_a_refused_host_is_never_connected_to_over_http_or_https(tenant, settings, listener):
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    port = listener.getsockname()[1]
    for url in (f"http://localhost:{port}/hooks", f"https://localhost:{port}/hooks", f"http://127.0.0.1:{port}/x"):
        delivery = _delivery(tenant, url)
        assert webhooks.webhook_delivery_attempt(delivery_id=delivery.pk).status == Status.RETRYING
        assert not connected(listener), url  # nothing to probe: an open port looks like a closed one
        assert WebhookAttempt.objects.get(delivery=delivery).error.startswith("Refused, not sent:")
    # The control: with the checks off the same delivery does connect (and times out unanswered).
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = True
    delivery = _delivery(tenant, f"http://localhost:{port}/hooks")
    webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)
    assert connected(listener)


@pytest.mark.django_db
def test_a_url_saved_before_the_rules_is_held_to_them_at_delivery(tenant, settings, listener):
    port = listener.getsockname()[1]
    for url in (f"http://localhost:{port}/hooks", f"ftp://localhost:{port}/hooks"):
        delivery = _delivery(tenant, url)
        assert webhooks.webhook_delivery_attempt(delivery_id=delivery.pk).status == Status.RETRYING
        assert "must use https://" in WebhookAttempt.objects.get(delivery=delivery).error
    settings.WEBHOOK_ALLOW_HTTP = True
    delivery = _delivery(tenant, f"http://user:pw@localhost:{port}/hooks")
    webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)
    assert "password" in WebhookAttempt.objects.get(delivery=delivery).error
    assert not connected(listener)


@pytest.mark.django_db
def test_a_proxy_from_the_environment_is_not_used(tenant, settings, monkeypatch):
    """Through a proxy the address check would judge the proxy, not the receiver: deliveries go direct."""
    settings.WEBHOOK_ALLOW_HTTP = True
    with Receiver() as proxy:
        for name in ("http_proxy", "HTTP_PROXY"):
            monkeypatch.setenv(name, proxy.url)
        for name in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        delivery = _delivery(tenant, "http://localhost:9/hooks")
        assert webhooks.webhook_delivery_attempt(delivery_id=delivery.pk).status == Status.RETRYING
        with Receiver([200]) as receiver:
            settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = True
            delivery = _delivery(tenant, receiver.url)
            assert webhooks.webhook_delivery_attempt(delivery_id=delivery.pk).status == Status.SUCCEEDED
    assert proxy.requests == [] and len(receiver.requests) == 1


@pytest.mark.django_db
def test_an_address_that_passes_the_check_is_connected_to_with_the_urls_host(tenant, settings, monkeypatch):
    """The checked path end to end: here 127.0.0.1 stands in for a public address (no internet in tests)."""
    settings.WEBHOOK_ALLOW_HTTP = True
    monkeypatch.setattr(webhooks, "is_public_address", lambda address: address == "127.0.0.1")
    with Receiver([200]) as receiver:
        delivery = _delivery(tenant, receiver.url)
        result = webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)
    assert result.status == Status.SUCCEEDED
    headers, _ = receiver.requests[0]
    assert headers["Host"] == receiver.url.split("/")[2]
    assert webhooks.verify_signature(delivery.endpoint.secret, receiver.requests[0][1], headers["Loyalty-Signature"])
