"""Validation, redemption (idempotent, all or nothing) and rollback through the API."""

import pytest

from campaigns.models import Code
from rewards.models import Redemption
from tests.api.conftest import assert_error, client_for
from tests.factories import CampaignFactory, CodeFactory, GiftCardCodeFactory, MemberFactory, api_key_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(tenant):
    member = MemberFactory(tenant=tenant)
    code = CodeFactory(
        campaign=CampaignFactory(tenant=tenant, discount={"type": "percent", "value": "15"}),
        code="SPR-1",
        usage_limit=1,
    )
    gift = GiftCardCodeFactory(campaign__tenant=tenant, tenant=tenant, code="GC-1")
    return member, code, gift


def checkout(member, codes, **extra):
    return {
        "member": member.external_id,
        "order": {
            "amount": "120.00",
            "items": [{"sku": "TSHIRT", "category": "apparel", "quantity": 2, "unit_price": "60.00"}],
        },
        "codes": codes,
        **extra,
    }


def test_validation_reports_every_code_and_changes_nothing(api, setup):
    member, code, gift = setup
    body = checkout(member, ["SPR-1", {"code": "GC-1", "amount": "25.00"}, "NOPE"])
    response = api.post("/api/v1/validations", body, format="json")
    assert response.status_code == 200, response.content
    result = response.json()
    assert result["valid"] is False
    by_code = {c["code"]: c for c in result["codes"]}
    assert by_code["SPR-1"]["valid"] is True and by_code["SPR-1"]["discount"] == "18.00"
    assert by_code["GC-1"]["valid"] is True
    assert by_code["NOPE"]["valid"] is False and by_code["NOPE"]["reason"] == "code_not_found"
    assert set(result["order"]) >= {"amount", "discount", "total"} and result["points"]["used"] == 0
    code.refresh_from_db()
    assert code.redeemed_count == 0 and not Redemption.objects.exists()


def test_validation_input_errors(api, setup):
    member, _, _ = setup
    assert_error(api.post("/api/v1/validations", {"codes": ["SPR-1"]}, format="json"), 400, "validation_error")
    assert_error(
        api.post("/api/v1/validations", checkout(member, ["SPR-1"], points=-1), format="json"), 400, "validation_error"
    )
    assert_error(api.post("/api/v1/validations", checkout(member, [12]), format="json"), 400, "validation_error")
    body = checkout(member, ["SPR-1"])
    body["member"] = "nobody"
    assert_error(api.post("/api/v1/validations", body, format="json"), 404, "member_not_found")


def test_a_redemption_redeems_all_codes_and_is_replayed_with_the_same_idempotency_key(api, setup):
    member, code, gift = setup
    body = checkout(member, ["SPR-1", {"code": "GC-1", "amount": "25.00"}], order_id="o-1")
    first = api.post("/api/v1/redemptions", body, format="json", HTTP_IDEMPOTENCY_KEY="redeem-o-1")
    assert first.status_code == 201, first.content
    redemption = first.json()
    assert redemption["order_id"] == "o-1" and redemption["member"] == member.external_id
    assert {line["code"] for line in redemption["codes"]} >= {"SPR-1", "GC-1"}
    assert redemption["order"]["discount"] == "18.00" and redemption["order"]["total"] == "77.00"
    replay = api.post("/api/v1/redemptions", body, format="json", HTTP_IDEMPOTENCY_KEY="redeem-o-1")
    assert replay.status_code == 201 and replay.json() == redemption and replay["Idempotent-Replayed"] == "true"
    assert Redemption.objects.count() == 1
    assert Code.objects.get(pk=code.pk).redeemed_count == 1
    reused = api.post(
        "/api/v1/redemptions", {**body, "order_id": "o-2"}, format="json", HTTP_IDEMPOTENCY_KEY="redeem-o-1"
    )
    assert_error(reused, 409, "idempotency_key_reused")


def test_a_refused_redemption_is_422_with_the_reasons_and_redeems_nothing(api, setup):
    member, code, gift = setup
    Code.objects.filter(pk=code.pk).update(redeemed_count=1)  # its one use is gone
    body = checkout(member, [{"code": "GC-1", "amount": "25.00"}, "SPR-1"], order_id="o-1")
    error = assert_error(api.post("/api/v1/redemptions", body, format="json"), 422, "redemption_failed")
    assert error["details"]["valid"] is False
    reasons = {c["code"]: c.get("reason") for c in error["details"]["codes"]}
    assert reasons["SPR-1"] == "redemptions_total_exceeded"
    gift.refresh_from_db()
    assert str(gift.balance) == "50.00" and not Redemption.objects.exists()


def test_redemption_input_errors_and_scope(api, setup, tenant):
    member, _, _ = setup
    assert_error(api.post("/api/v1/redemptions", checkout(member, ["SPR-1"]), format="json"), 400, "validation_error")
    assert_error(
        api.post("/api/v1/redemptions", checkout(member, [], order_id="o-1"), format="json"), 400, "validation_error"
    )
    _, raw = api_key_for(tenant, scopes=["read", "earn"])
    response = client_for(raw).post("/api/v1/redemptions", checkout(member, ["SPR-1"], order_id="o"), format="json")
    assert_error(response, 403, "insufficient_scope")


def test_a_rollback_restores_the_code_and_a_second_one_is_409(api, setup):
    member, code, gift = setup
    body = checkout(member, ["SPR-1"], order_id="o-1")
    redemption_id = api.post("/api/v1/redemptions", body, format="json").json()["id"]
    response = api.post(f"/api/v1/redemptions/{redemption_id}/rollback", {"reason": "cancelled"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "rolled_back"
    assert Code.objects.get(pk=code.pk).redeemed_count == 0
    again = api.post(f"/api/v1/redemptions/{redemption_id}/rollback/", {"reason": "again"}, format="json")
    assert_error(again, 409, "already_rolled_back")
    assert_error(api.post("/api/v1/redemptions/999999/rollback", {}, format="json"), 404, "redemption_not_found")
    assert_error(api.post("/api/v1/redemptions/abc/rollback", {}, format="json"), 404, "redemption_not_found")
