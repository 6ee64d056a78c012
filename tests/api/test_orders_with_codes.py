"""`POST /api/v1/orders` with `codes`: redeemed with the order in one transaction; the referral reward."""

import pytest

from campaigns.services import campaign_create
from loyalty.models import LedgerEntry, Order
from rewards.models import Redemption, ReferralGrant
from tests.api.conftest import assert_error, client_for
from tests.factories import CodeFactory, EngineMemberFactory, api_key_for, earning_setup

pytestmark = pytest.mark.django_db

ITEMS = [{"sku": "TSHIRT", "category": "apparel", "quantity": 2, "unit_price": "50.00"}]


def order(member, order_id="o-1", amount="100.00", **extra):
    return {
        "order_id": order_id,
        "member": member.external_id,
        "amount": amount,
        "currency": "EUR",
        "items": ITEMS,
        **extra,
    }


def code_of(tenant, value="15", usage_limit=1):
    return CodeFactory(
        campaign__tenant=tenant, campaign__discount={"type": "percent", "value": value}, usage_limit=usage_limit
    )


def test_an_order_with_a_valid_code_is_discounted_and_earns_on_what_was_paid(api, tenant):
    _, _, member = earning_setup(tenant)
    code = code_of(tenant, usage_limit=3)
    first = api.post("/api/v1/orders", order(member, codes=[code.code]), format="json")
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["points_earned"] == 85
    redemption = Redemption.objects.get()
    assert body["redemption"]["id"] == str(redemption.pk) and body["redemption"]["order_id"] == "o-1"
    assert body["redemption"]["order"]["discount"] == "15.00" and body["redemption"]["order"]["total"] == "85.00"
    assert [c["code"] for c in body["redemption"]["codes"]] == [code.code]
    again = api.post("/api/v1/orders/", order(member, codes=[code.code]), format="json")
    assert again.status_code == 200 and again.json() == body
    code.refresh_from_db()
    assert code.redeemed_count == 1 and Redemption.objects.count() == 1
    assert api.get(f"/api/v1/members/{member.external_id}").json()["points"]["balance"] == 85


def test_an_order_without_codes_answers_as_before(api, tenant):
    _, _, member = earning_setup(tenant)
    response = api.post("/api/v1/orders", order(member), format="json")
    assert response.status_code == 201
    assert response.json()["points_earned"] == 100 and "redemption" not in response.json()


def test_a_refused_code_is_422_and_writes_nothing(api, tenant):
    _, _, member = earning_setup(tenant)
    good = code_of(tenant)
    response = api.post("/api/v1/orders", order(member, codes=[good.code, "NOPE-0000"]), format="json")
    error = assert_error(response, 422, "redemption_failed")
    assert error["details"]["valid"] is False
    assert {c["code"]: c.get("reason") for c in error["details"]["codes"]}["NOPE-0000"] == "code_not_found"
    assert not Order.objects.exists() and not Redemption.objects.exists() and not LedgerEntry.objects.exists()
    good.refresh_from_db()
    assert good.redeemed_count == 0
    assert api.get(f"/api/v1/members/{member.external_id}").json()["points"]["balance"] == 0
    # The same body as POST /redemptions refuses with.
    same = api.post(
        "/api/v1/redemptions",
        {
            "order_id": "o-1",
            "member": member.external_id,
            "order": {"amount": "100.00", "items": ITEMS},
            "codes": [good.code, "NOPE-0000"],
        },
        format="json",
    )
    assert same.status_code == 422 and same.json()["error"]["details"] == error["details"]


def test_codes_need_the_redeem_scope(tenant):
    _, _, member = earning_setup(tenant)
    code = code_of(tenant)
    earn_only = client_for(api_key_for(tenant, scopes=["earn"])[1])
    assert_error(
        earn_only.post("/api/v1/orders", order(member, codes=[code.code]), format="json"), 403, "insufficient_scope"
    )
    assert not Order.objects.exists()
    assert earn_only.post("/api/v1/orders", order(member), format="json").status_code == 201


def test_the_referrer_is_rewarded_once_on_the_first_qualifying_order(api, tenant):
    program, _, _ = earning_setup(tenant)
    campaign_create(
        tenant=tenant,
        data={"name": "Refer a friend", "type": "referral", "referral": {"min_order_amount": "50.00", "points": 500}},
    )
    referrer = EngineMemberFactory(tenant=tenant)
    friend = EngineMemberFactory(tenant=tenant, referred_by=referrer)
    small = EngineMemberFactory(tenant=tenant, referred_by=referrer)
    assert api.post("/api/v1/orders", order(friend, "f-1", "60.00"), format="json").status_code == 201
    assert api.post("/api/v1/orders", order(friend, "f-2", "90.00"), format="json").status_code == 201
    assert api.post("/api/v1/orders", order(small, "s-1", "49.99"), format="json").status_code == 201
    assert api.post("/api/v1/orders", order(small, "s-2", "99.00"), format="json").status_code == 201
    assert api.get(f"/api/v1/members/{referrer.external_id}").json()["points"]["balance"] == 500
    grant = ReferralGrant.objects.get()
    assert (grant.referred, grant.order_id) == (friend, "f-1")
