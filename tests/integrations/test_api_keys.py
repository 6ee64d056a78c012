"""API keys: the create_api_key command, the admin (raw key shown once), revocation, webhook admin."""

import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from integrations.models import Event, Integration, IntegrationAPIKey, WebhookDelivery
from integrations.webhooks import webhook_endpoint_disable
from tests.factories import IntegrationFactory, UserFactory, WebhookEndpointFactory, api_key_for

pytestmark = pytest.mark.django_db


def run_command(*args) -> list[str]:
    out = io.StringIO()
    call_command("create_api_key", *args, stdout=out)
    return out.getvalue().rstrip("\n").split("\n")


def authenticates(raw: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client.get("/api/v1/tenant").status_code == 200


def test_the_command_prints_the_raw_key_alone_on_the_last_line(tenant):
    lines = run_command(tenant.slug, "web-shop", "--scopes", "read,redeem")
    raw = lines[-1]
    assert " " not in raw and "." in raw
    assert authenticates(raw)
    api_key = IntegrationAPIKey.objects.get_from_key(raw)
    assert api_key.integration.tenant == tenant and api_key.integration.name == "web-shop"
    assert api_key.scopes == ["read", "redeem"]
    assert raw not in api_key.hashed_key


def test_the_command_gives_all_scopes_by_default_and_reuses_the_integration(tenant):
    first = run_command(tenant.slug, "pos-berlin")[-1]
    second = run_command(tenant.slug, "pos-berlin")[-1]
    assert first != second and authenticates(first) and authenticates(second)
    assert Integration.objects.filter(tenant=tenant, name="pos-berlin").count() == 1
    assert IntegrationAPIKey.objects.get_from_key(first).scopes == ["read", "redeem", "earn", "manage"]


@pytest.mark.parametrize(
    "args,message",
    [
        (("no-such-tenant", "x"), "No tenant"),
        (("{slug}", "x", "--scopes", "read,fly"), "fly"),
        (("{slug}", "x", "--throttle-rate", "fast"), "not a rate"),
    ],
)
def test_the_command_refuses_bad_input(tenant, args, message):
    args = [a.format(slug=tenant.slug) for a in args]
    with pytest.raises(CommandError, match=message):
        run_command(*args)
    assert not IntegrationAPIKey.objects.exists()


@pytest.fixture
def admin_client(client):
    user = UserFactory(is_superuser=True)
    client.force_login(user)
    return client


def test_a_key_created_in_the_admin_is_shown_once(admin_client, tenant):
    integration = IntegrationFactory(tenant=tenant)
    response = admin_client.post(
        "/admin/integrations/integrationapikey/add/",
        {"integration": integration.pk, "name": "till 3", "scopes": ["read", "earn"], "throttle_rate": "50/s"},
        follow=True,
    )
    assert response.status_code == 200
    api_key = IntegrationAPIKey.objects.get()
    shown = [str(m) for m in response.context["messages"]]
    raw = next(m for m in shown if api_key.prefix in m).split("<code>")[1].split("</code>")[0]
    assert authenticates(raw)
    assert api_key.scopes == ["read", "earn"] and api_key.throttle_rate == "50/s"
    page = admin_client.get(f"/admin/integrations/integrationapikey/{api_key.pk}/change/")
    assert page.status_code == 200 and raw not in page.content.decode()
    assert api_key.history.count() == 1


def test_revoking_in_the_admin_locks_the_key_out(admin_client, tenant):
    api_key, raw = api_key_for(tenant)
    response = admin_client.post(
        "/admin/integrations/integrationapikey/",
        {"action": "revoke_keys", "_selected_action": [api_key.pk]},
        follow=True,
    )
    assert response.status_code == 200
    api_key.refresh_from_db()
    assert api_key.revoked and not authenticates(raw)


def test_the_admin_flags_endpoints_disabled_by_failures(admin_client, tenant):
    endpoint = WebhookEndpointFactory(tenant=tenant, event_types=["points.earned"])
    webhook_endpoint_disable(endpoint=endpoint, reason="Disabled after 6 failed attempts")
    response = admin_client.get("/admin/integrations/webhookendpoint/")
    text = response.content.decode()
    assert "disabled after failing deliveries" in text
    assert "Disabled after 6 failed attempts" in text


def test_a_tenant_admin_sees_only_their_tenants_endpoints(client, tenant, other_tenant):
    from django.contrib.auth.models import Group
    from guardian.shortcuts import assign_perm

    from config.roles import sync_roles

    sync_roles()
    user = UserFactory()
    user.groups.add(Group.objects.get(name="Marketer"))
    from django.contrib.auth.models import Permission

    user.user_permissions.add(*Permission.objects.filter(codename__endswith="webhookendpoint"))
    assign_perm("members.access_tenant", user, tenant)
    mine = WebhookEndpointFactory(tenant=tenant, url="http://127.0.0.1:9/mine")
    WebhookEndpointFactory(tenant=other_tenant, url="http://127.0.0.1:9/theirs")
    webhook_endpoint_disable(endpoint=mine, reason="Disabled after 6 failed attempts")
    client.force_login(user)
    text = client.get("/admin/integrations/webhookendpoint/").content.decode()
    assert "/mine" in text and "/theirs" not in text
    assert "disabled after failing deliveries" in text


def test_a_delivery_can_be_resent_from_the_admin(admin_client, tenant, monkeypatch, django_capture_on_commit_callbacks):
    from integrations import webhooks

    sent = []
    monkeypatch.setattr(webhooks.deliver_webhook, "delay", lambda delivery_id: sent.append(delivery_id))
    endpoint = WebhookEndpointFactory(tenant=tenant, event_types=["points.earned"])
    event = Event.objects.create(tenant=tenant, type="points.earned", data={})
    delivery = WebhookDelivery.objects.create(
        tenant=tenant, event=event, endpoint=endpoint, status=WebhookDelivery.Status.FAILED
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/integrations/webhookdelivery/", {"action": "resend", "_selected_action": [delivery.pk]}, follow=True
        )
    assert response.status_code == 200
    resent = WebhookDelivery.objects.exclude(pk=delivery.pk).get()
    assert resent.resent_from == delivery and resent.status == WebhookDelivery.Status.PENDING
    assert sent == [resent.pk]
    page = admin_client.get(f"/admin/integrations/webhookdelivery/{delivery.pk}/change/")
    assert page.status_code == 200


def test_support_agents_cannot_see_api_keys_or_webhook_endpoints():
    from django.contrib.auth.models import Group

    from config.roles import sync_roles

    sync_roles()
    codenames = set(Group.objects.get(name="Support agent").permissions.values_list("codename", flat=True))
    assert not {c for c in codenames if "apikey" in c or "webhookendpoint" in c or c.endswith("_integration")}
    admin_codenames = set(Group.objects.get(name="Admin").permissions.values_list("codename", flat=True))
    assert {"add_integrationapikey", "change_webhookendpoint"} <= admin_codenames
