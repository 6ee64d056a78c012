import json

import pytest
from django.urls import reverse

from loyalty.models import EarningRule, Program
from loyalty.services.program import program_declare
from tests.factories import ProgramFactory, UserFactory
from tests.loyalty.test_program_declare import CONTRACT_EXAMPLE

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_superuser=True))
    return client


def test_program_pages_load(admin_client, tenant):
    program = program_declare(tenant=tenant, code="club", document=CONTRACT_EXAMPLE)
    assert admin_client.get(reverse("admin:loyalty_program_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:loyalty_program_change", args=[program.pk])).status_code == 200
    assert admin_client.get(reverse("admin:loyalty_earningrule_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:loyalty_tier_changelist")).status_code == 200


def test_export_action_downloads_the_document(admin_client, tenant):
    program = program_declare(tenant=tenant, code="club", document=CONTRACT_EXAMPLE)
    response = admin_client.post(
        reverse("admin:loyalty_program_changelist"),
        {"action": "export_documents", "_selected_action": [program.pk]},
    )
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert json.loads(response.content)["tiers"][1]["code"] == "silver"


def test_import_view_declares_the_document(admin_client, tenant):
    url = reverse("admin:loyalty_program_import")
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"tenant": tenant.pk, "code": "club", "document": json.dumps(CONTRACT_EXAMPLE)})
    assert response.status_code == 302
    assert Program.objects.for_tenant(tenant).get().code == "club"
    bad = dict(CONTRACT_EXAMPLE, earning_rules=[{"code": "x", "rule": "member.contry == 'GB'"}])
    response = admin_client.post(url, {"tenant": tenant.pk, "code": "club2", "document": json.dumps(bad)})
    assert response.status_code == 200 and b"contry" in response.content


def test_earning_rule_is_checked_on_save(admin_client, tenant):
    program = ProgramFactory(tenant=tenant)
    data = {
        "tenant": tenant.pk,
        "program": program.pk,
        "code": "spend",
        "trigger": "order_paid",
        "points": 0,
        "points_per_unit": "1",
        "unit_amount": "1.00",
        "rounding": "down",
        "categories": "[]",
        "rule": "order.amout >= 10",
        "apply_tier_multiplier": "on",
        "tier_multipliers": "{}",
        "happy_hours": "[]",
        "pending_days": 0,
        "priority": 0,
        "active": "on",
    }
    response = admin_client.post(reverse("admin:loyalty_earningrule_add"), data)
    assert response.status_code == 200 and not EarningRule.objects.exists()
    assert b"amout" in response.content
    data["rule"] = "order.amount >= 10"
    response = admin_client.post(reverse("admin:loyalty_earningrule_add"), data)
    assert response.status_code == 302 and EarningRule.objects.get().rule == "order.amount >= 10"
