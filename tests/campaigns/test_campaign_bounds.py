"""A campaign document whose numbers would break later requests is refused, by the API and by the admin."""

import pytest
from django.urls import reverse

from campaigns.models import Campaign
from tests.api.conftest import assert_error, client_for
from tests.campaigns.test_admin import add_form
from tests.factories import UserFactory, api_key_for

pytestmark = pytest.mark.django_db

BIG = 10**12
PERCENT = {"type": "percent", "value": "10"}


@pytest.fixture
def api(tenant):
    return client_for(api_key_for(tenant)[1])


def campaign(**fields):
    return {"name": "Bounded", "type": "discount", "discount": PERCENT, **fields}


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (campaign(discount={"type": "amount", "value": "1e30"}), "discount.value"),
        (campaign(discount={"type": "amount", "value": "10.001"}), "discount.value"),
        (campaign(discount={"type": "percent", "value": "10", "max_amount": "1e30"}), "discount.max_amount"),
        (campaign(discount={"type": "percent", "value": "10.00001"}), "discount.value"),
        (campaign(discount={"type": "free_shipping", "min_order_amount": "1e30"}), "discount.min_order_amount"),
        (campaign(discount={"type": "unit", "sku": "MUG", "quantity": BIG}), "discount.quantity"),
        (
            campaign(discount={"type": "bogo", "buy_sku": "A", "buy_quantity": BIG, "get_quantity": 1}),
            "discount.buy_quantity",
        ),
        (
            campaign(discount={"type": "volume", "tiers": [{"min_quantity": 1, "percent": "5"}] * 51}),
            "discount.tiers",
        ),
        (campaign(discount={"type": "amount", "value": "5", "skus": ["A"] * 1001}), "discount.skus"),
        (campaign(active_hours=[{"from": "09:00", "to": "17:00"}] * 51), "active_hours"),
        (campaign(limits={"redemptions_total": 2**31}), "limits.redemptions_total"),
        (campaign(limits={"redemptions_per_member": BIG}), "limits.redemptions_per_member"),
        (campaign(limits={"discount_total": "1e15"}), "limits.discount_total"),
        (campaign(stacking={"max_codes_per_order": 40000}), "stacking.max_codes_per_order"),
        (campaign(stacking={"priority": -99999}), "stacking.priority"),
        (campaign(stacking={"combinable_with": ["x" * 51]}), "stacking.combinable_with"),
        (campaign(priority=99999), "priority"),  # a SmallIntegerField: a 500 on PostgreSQL before
        (campaign(circuit_breaker={"window_minutes": 99999}), "circuit_breaker.window_minutes"),
        (campaign(circuit_breaker={"min_redemptions": 2**31}), "circuit_breaker.min_redemptions"),
        (campaign(circuit_breaker={"multiple": "1e9"}), "circuit_breaker.multiple"),
        (campaign(codes={"count": 10, "pattern": "????-####", "usage_limit": 2**31}), "codes.usage_limit"),
        (campaign(codes={"count": 10, "pattern": "?" * 51}), "codes.pattern"),
        (campaign(codes={"code": "X" * 61}), "codes.code"),
        (campaign(description="x" * 10_001), "description"),
        ({"name": "Ref", "type": "referral", "referral": {"points": 2**31}}, "referral.points"),
        (
            {"name": "Ref", "type": "referral", "referral": {"points": 10, "min_order_amount": "1e30"}},
            "referral.min_order_amount",
        ),
    ],
)
def test_a_number_past_its_bound_is_400_through_the_api(api, tenant, document, field):
    error = assert_error(api.post("/api/v1/campaigns", document, format="json"), 400, "validation_error")
    assert field in error["details"], error
    assert isinstance(error["details"][field], list) and error["details"][field][0]
    assert not Campaign.objects.filter(tenant=tenant).exists()


def test_the_bounds_themselves_are_accepted(api, tenant):
    document = campaign(
        discount={"type": "amount", "value": "9999999999.99"},
        priority=32767,
        stacking={"max_codes_per_order": 100},
        circuit_breaker={"window_minutes": 1440, "min_redemptions": 1_000_000},
        limits={"redemptions_total": 2**31 - 1},
    )
    response = api.post("/api/v1/campaigns", document, format="json")
    assert response.status_code == 201, response.content


def test_a_patch_past_a_bound_is_400_and_changes_nothing(api, tenant):
    created = api.post("/api/v1/campaigns", campaign(), format="json").json()
    error = assert_error(
        api.patch(f"/api/v1/campaigns/{created['id']}", {"priority": 99999}, format="json"), 400, "validation_error"
    )
    assert "priority" in error["details"]
    assert Campaign.objects.get(pk=int(created["id"])).priority == 0


def test_the_admin_refuses_numbers_past_their_bounds_with_form_errors(client, tenant):
    client.force_login(UserFactory(is_superuser=True))
    url = reverse("admin:campaigns_campaign_add")
    response = client.post(url, add_form(tenant, discount_type="amount", discount_value="1e30"))
    assert response.status_code == 200
    assert "at most" in str(response.context["adminform"].form.errors["discount_value"])
    window = {"hours_1_days": ["0", "1"], "hours_1_from": "09:00", "hours_1_to": "17:00"}
    response = client.post(url, add_form(tenant, **window))
    assert response.status_code == 302  # one window is fine
    response = client.post(url, add_form(tenant, name="Bad window", **{**window, "hours_1_to": "25:00"}))
    assert response.status_code == 200 and "hours_1_days" in response.context["adminform"].form.errors
    response = client.post(url, add_form(tenant, name="Huge rule", rule=" or ".join(["order.amount > 1"] * 600)))
    assert response.status_code == 200 and "at most" in str(response.context["adminform"].form.errors["rule"])
    assert list(Campaign.objects.values_list("name", flat=True)) == ["Admin made"]


def test_the_admin_change_form_refuses_a_priority_past_its_column(client, tenant):
    client.force_login(UserFactory(is_superuser=True))
    client.post(reverse("admin:campaigns_campaign_add"), add_form(tenant))
    created = Campaign.objects.get()
    url = reverse("admin:campaigns_campaign_change", args=[created.pk])
    response = client.post(url, add_form(tenant, priority="99999", breaker_window_minutes="99999"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "priority" in errors and "breaker_window_minutes" in errors
    created.refresh_from_db()
    assert created.priority == 0 and created.breaker_window_minutes == 5
