"""Rules through the API: a catastrophic regex costs nothing on the hot paths, a huge rule is refused with 400."""

import time

import pytest

from campaigns.models import Campaign
from loyalty.models import EarningRule, Program
from tests.api.conftest import assert_error
from tests.factories import CodeFactory, MemberFactory

pytestmark = pytest.mark.django_db

EVIL = "member.email =~ '^(a+)+$'"
HUGE = " or ".join(["order.amount > 1"] * 600)  # hundreds of terms: today a RecursionError (a 500)


def program(rule):
    return {
        "name": "Club",
        "currency": "EUR",
        "earning_rules": [{"code": "spend", "points_per_unit": "1", "unit_amount": "1.00", "rule": rule}],
    }


def test_a_catastrophic_regex_in_an_earning_rule_answers_the_order_at_once(api, tenant):
    assert api.put("/api/v1/programs/club", program(EVIL), format="json").status_code in (200, 201)
    evil = MemberFactory(tenant=tenant, email="a" * 240 + "!")
    good = MemberFactory(tenant=tenant, email="a" * 240)
    body = {"order_id": "o-1", "member": good.external_id, "amount": "10.00", "currency": "EUR"}
    assert api.post("/api/v1/orders", body, format="json").json()["points_earned"] == 10
    start = time.perf_counter()
    body = {"order_id": "o-2", "member": evil.external_id, "amount": "10.00", "currency": "EUR"}
    response = api.post("/api/v1/orders", body, format="json")
    assert time.perf_counter() - start < 1.0
    assert response.status_code == 201, response.content
    assert response.json()["points_earned"] == 0


def test_a_catastrophic_regex_in_a_campaign_rule_answers_the_validation_at_once(api, tenant):
    created = api.post(
        "/api/v1/campaigns",
        {"name": "A's", "type": "discount", "discount": {"type": "percent", "value": "10"}, "rule": EVIL},
        format="json",
    )
    assert created.status_code == 201, created.content
    CodeFactory(campaign=Campaign.objects.get(pk=int(created.json()["id"])), code="AAA-1")
    evil = MemberFactory(tenant=tenant, email="a" * 240 + "!")
    start = time.perf_counter()
    body = {"member": evil.external_id, "order": {"amount": "100.00"}, "codes": ["AAA-1"]}
    result = api.post("/api/v1/validations", body, format="json")
    assert time.perf_counter() - start < 1.0
    assert result.status_code == 200, result.content
    assert result.json()["valid"] is False and result.json()["codes"][0]["reason"] == "rule_not_met"


def test_a_rule_with_hundreds_of_terms_is_400_in_a_program(api, tenant):
    error = assert_error(api.put("/api/v1/programs/club", program(HUGE), format="json"), 400, "invalid_program")
    assert "at most" in error["details"]["earning_rules[0].rule"]
    assert not Program.objects.filter(tenant=tenant).exists()


def test_a_rule_with_hundreds_of_terms_is_400_in_a_campaign(api, tenant):
    document = {"name": "Huge", "type": "discount", "discount": {"type": "percent", "value": "10"}, "rule": HUGE}
    error = assert_error(api.post("/api/v1/campaigns", document, format="json"), 400, "validation_error")
    assert "at most" in error["details"]["rule"][0]
    assert not Campaign.objects.filter(tenant=tenant).exists()
    document["rule"] = "order.amount > 1"
    campaign = api.post("/api/v1/campaigns", document, format="json").json()
    error = assert_error(
        api.patch(f"/api/v1/campaigns/{campaign['id']}", {"rule": HUGE}, format="json"), 400, "validation_error"
    )
    assert "at most" in error["details"]["rule"][0]
    assert Campaign.objects.get(pk=int(campaign["id"])).rule == "order.amount > 1"


def test_a_stored_rule_the_limits_now_refuse_does_not_hold_and_the_order_is_recorded(api, tenant):
    assert api.put("/api/v1/programs/club", program("order.amount > 1"), format="json").status_code in (200, 201)
    EarningRule.objects.filter(program__tenant=tenant).update(rule=" or ".join(["order.amount > 1"] * 60))
    member = MemberFactory(tenant=tenant)
    body = {"order_id": "o-1", "member": member.external_id, "amount": "10.00", "currency": "EUR"}
    response = api.post("/api/v1/orders", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["points_earned"] == 0
