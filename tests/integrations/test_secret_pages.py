"""Every role against every admin page that holds a secret: a webhook endpoint's signing secret, API key hashes,
staff accounts' password hashes. Only who manages them sees them; the others see nothing or are refused."""

import pytest
from django.urls import reverse

from integrations.models import WebhookDelivery
from tests.campaigns.test_admin_rights import staff_of
from tests.factories import WebhookEndpointFactory, api_key_for

pytestmark = pytest.mark.django_db

ROLES = ("Admin", "Marketer", "Junior marketer", "Support agent", "Support lead", "Analyst")
# Who manages webhook endpoints (and so may read their secret).
SEES_WEBHOOK_SECRET = {"Admin"}
SEES_STAFF = {"Admin"}
SEES_API_KEYS = {"Admin"}


@pytest.fixture
def secrets_of(tenant):
    endpoint = WebhookEndpointFactory(tenant=tenant, secret="whsec_do-not-leak-this-one")
    endpoint.description = "changed once, for a history record"
    endpoint.save()
    api_key, raw_key = api_key_for(tenant)
    return endpoint, api_key, raw_key


def pages(endpoint, api_key) -> dict[str, str]:
    history = endpoint.history.latest()
    return {
        "endpoints": reverse("admin:integrations_webhookendpoint_changelist"),
        "endpoint": reverse("admin:integrations_webhookendpoint_change", args=[endpoint.pk]),
        "endpoint history": reverse("admin:integrations_webhookendpoint_history", args=[endpoint.pk]),
        "endpoint history record": reverse(
            "admin:integrations_webhookendpoint_simple_history", args=[endpoint.pk, history.history_id]
        ),
        "deliveries": reverse("admin:integrations_webhookdelivery_changelist"),
        "api keys": reverse("admin:integrations_integrationapikey_changelist"),
        "api key": reverse("admin:integrations_integrationapikey_change", args=[api_key.pk]),
        "api key history": reverse("admin:integrations_integrationapikey_history", args=[api_key.pk]),
    }


@pytest.mark.parametrize("role", ROLES)
def test_no_role_reads_a_secret_it_does_not_manage(client, tenant, secrets_of, role):
    endpoint, api_key, raw_key = secrets_of
    user = staff_of(tenant, role=role)
    client.force_login(user)
    for name, url in pages(endpoint, api_key).items():
        answer = client.get(url)
        assert answer.status_code in (200, 302, 403), (role, name, answer.status_code)
        body = answer.content.decode()
        if name in ("endpoint", "endpoint history record") and role in SEES_WEBHOOK_SECRET:
            assert answer.status_code == 200 and endpoint.secret in body, (role, name)
        else:
            assert endpoint.secret not in body, (role, name)
        assert raw_key not in body, (role, name)
        if role not in SEES_API_KEYS:  # the library's key id (in its addresses) is prefix.hash
            assert api_key.hashed_key not in body, (role, name)
    viewer_can_open = client.get(pages(endpoint, api_key)["endpoint"]).status_code == 200
    assert viewer_can_open == user.has_perm("integrations.view_webhookendpoint"), role


@pytest.mark.parametrize("role", ROLES)
def test_only_admins_list_staff_accounts(client, tenant, role):
    colleague = staff_of(tenant, role="Marketer")
    client.force_login(staff_of(tenant, role=role))
    users = client.get(reverse("admin:auth_user_changelist"))
    one = client.get(reverse("admin:auth_user_change", args=[colleague.pk]))
    groups = client.get(reverse("admin:auth_group_changelist"))
    if role in SEES_STAFF:
        assert users.status_code == one.status_code == groups.status_code == 200
    else:
        assert users.status_code == one.status_code == groups.status_code == 403, role
        assert colleague.password not in one.content.decode()


def test_a_manager_still_sets_the_secret(client, tenant, secrets_of):
    endpoint, _api_key, _raw = secrets_of
    client.force_login(staff_of(tenant, role="Admin"))
    form = client.get(reverse("admin:integrations_webhookendpoint_change", args=[endpoint.pk])).content.decode()
    assert 'name="secret"' in form
    assert WebhookDelivery.objects.count() == 0
