"""Members, ledger, member rewards and reward redemptions through the API."""

import pytest

from tests.api.conftest import assert_error, client_for
from tests.factories import (
    MemberFactory,
    RewardFactory,
    TierFactory,
    api_key_for,
    earning_setup,
)

pytestmark = pytest.mark.django_db


def test_put_creates_then_updates_a_member(api, tenant):
    body = {"email": "ada@b.example", "name": "Ada", "country": "gb", "attributes": {"vip": True}}
    created = api.put("/api/v1/members/c-42", body, format="json")
    assert created.status_code == 201, created.content
    member = created.json()
    assert member["external_id"] == "c-42" and member["country"] == "GB" and member["attributes"] == {"vip": True}
    assert member["points"] == {"balance": 0, "pending": 0, "lifetime_earned": 0, "expiring": []}
    assert member["tier"] is None and member["referral_code"] and member["created_at"]
    updated = api.put("/api/v1/members/c-42/", {"name": "Ada L.", "marketing_consent": True}, format="json")
    assert updated.status_code == 200
    assert updated.json()["name"] == "Ada L." and updated.json()["marketing_consent"] is True
    assert updated.json()["email"] == "ada@b.example"


def test_put_without_email_on_create_or_with_bad_fields_is_400_and_creates_nothing(api, tenant):
    error = assert_error(api.put("/api/v1/members/c-1", {"name": "No Mail"}, format="json"), 400, "invalid_member")
    assert "email" in error["details"]
    error = assert_error(
        api.put("/api/v1/members/c-1", {"email": "x@y.example", "country": "ZZ"}, format="json"), 400, "invalid_member"
    )
    assert "country" in error["details"]
    assert_error(api.put("/api/v1/members/c-1", {"birth_date": "not a date"}, format="json"), 400, "validation_error")
    assert_error(api.get("/api/v1/members/c-1"), 404, "member_not_found")


def test_a_read_only_key_cannot_upsert(tenant):
    _, raw = api_key_for(tenant, scopes=["read"])
    assert_error(
        client_for(raw).put("/api/v1/members/c-1", {"email": "a@b.example"}, format="json"), 403, "insufficient_scope"
    )


def test_get_returns_the_member_with_tier_and_points(api, tenant):
    from rewards.services.checkout import order_checkout

    program, _, member = earning_setup(tenant)
    TierFactory(program=program, code="bronze", name="Bronze", threshold=0)
    order_checkout(tenant=tenant, member=member.external_id, order_id="o-1", amount="120.00", currency="EUR")
    body = api.get(f"/api/v1/members/{member.external_id}").json()
    assert body["points"]["balance"] == 120 and body["points"]["lifetime_earned"] == 120
    assert body["tier"] == {"code": "bronze", "name": "Bronze"}
    assert_error(api.get("/api/v1/members/nobody"), 404, "member_not_found")


def test_the_ledger_is_newest_first_and_cursor_paginated(api, tenant):
    from rewards.services.checkout import order_checkout

    _, _, member = earning_setup(tenant)
    for n in range(5):
        order_checkout(tenant=tenant, member=member.external_id, order_id=f"o-{n}", amount="10.00", currency="EUR")
    first = api.get(f"/api/v1/members/{member.external_id}/ledger", {"limit": 3}).json()
    assert set(first) == {"results", "next"}
    assert len(first["results"]) == 3 and first["next"]
    assert [e["order_id"] for e in first["results"]] == ["o-4", "o-3", "o-2"]
    entry = first["results"][0]
    assert set(entry) == {
        "id",
        "kind",
        "points",
        "balance_after",
        "reason",
        "order_id",
        "campaign",
        "created_at",
        "expires_at",
    }
    assert entry["kind"] == "earn" and entry["points"] == 10 and entry["balance_after"] == 50
    second = api.get(first["next"]).json()
    assert [e["order_id"] for e in second["results"]] == ["o-1", "o-0"] and second["next"] is None
    assert_error(api.get("/api/v1/members/nobody/ledger"), 404, "member_not_found")


def test_member_rewards_lists_affordable_catalog_rewards_and_checks_the_status(api, tenant):
    member = MemberFactory(tenant=tenant)
    response = api.get(f"/api/v1/members/{member.external_id}/rewards", {"status": "available"})
    assert response.status_code == 200 and response.json() == {"results": [], "next": None}
    assert_error(api.get(f"/api/v1/members/{member.external_id}/rewards", {"status": "lost"}), 400, "validation_error")
    assert_error(api.get("/api/v1/members/nobody/rewards"), 404, "member_not_found")


def _member_with_points(tenant, points):
    from rewards.services.checkout import order_checkout

    _, _, member = earning_setup(tenant)
    order_checkout(tenant=tenant, member=member.external_id, order_id="o-p", amount=f"{points}.00", currency="EUR")
    return member


def test_a_reward_redemption_spends_points_and_returns_what_was_issued(api, tenant):
    member = _member_with_points(tenant, 800)
    reward = RewardFactory(tenant=tenant, points_cost=500, type="product", sku="MUG", stock=3)
    response = api.post(
        f"/api/v1/members/{member.external_id}/reward-redemptions", {"reward": str(reward.pk)}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["type"] == "product" and body["points"] == 500 and body["fulfilment_id"] and body["sku"] == "MUG"
    assert api.get(f"/api/v1/members/{member.external_id}").json()["points"]["balance"] == 300
    catalog = api.get("/api/v1/rewards", {"member": member.external_id}).json()["results"]
    assert catalog[0]["stock"] == 2 and catalog[0]["affordable"] is False


@pytest.mark.parametrize(
    "reward_kwargs,points,code",
    [
        ({"points_cost": 500}, 100, "points_insufficient"),
        ({"points_cost": 10, "stock": 0}, 100, "reward_out_of_stock"),
        ({"points_cost": 10, "tier_codes": ["gold"]}, 100, "tier_required"),
    ],
)
def test_a_reward_redemption_is_refused_with_the_reason_and_spends_nothing(api, tenant, reward_kwargs, points, code):
    member = _member_with_points(tenant, points)
    reward = RewardFactory(tenant=tenant, **reward_kwargs)
    response = api.post(
        f"/api/v1/members/{member.external_id}/reward-redemptions", {"reward": str(reward.pk)}, format="json"
    )
    assert_error(response, 422, code)
    assert api.get(f"/api/v1/members/{member.external_id}").json()["points"]["balance"] == points


def test_a_reward_redemption_of_an_unknown_reward_or_member_is_404(api, tenant, other_tenant):
    member = _member_with_points(tenant, 100)
    theirs = RewardFactory(tenant=other_tenant, points_cost=1)
    url = f"/api/v1/members/{member.external_id}/reward-redemptions"
    assert_error(api.post(url, {"reward": str(theirs.pk)}, format="json"), 404, "reward_not_found")
    assert_error(api.post(url, {"reward": "abc"}, format="json"), 404, "reward_not_found")
    assert_error(api.post(url, {}, format="json"), 400, "validation_error")
    assert_error(
        api.post("/api/v1/members/nobody/reward-redemptions", {"reward": "1"}, format="json"), 404, "member_not_found"
    )


def test_the_catalog_lists_rewards_with_affordability(api, tenant):
    RewardFactory(tenant=tenant, points_cost=50, type="cashback", value="5.00")
    anonymous = api.get("/api/v1/rewards").json()
    assert anonymous["next"] is None and anonymous["results"][0]["affordable"] is None
    member = _member_with_points(tenant, 60)
    listed = api.get("/api/v1/rewards/", {"member": member.external_id}).json()["results"]
    assert listed[0]["affordable"] is True and listed[0]["type"] == "cashback" and listed[0]["value"] == "5.00"
    assert_error(api.get("/api/v1/rewards", {"member": "nobody"}), 404, "member_not_found")
