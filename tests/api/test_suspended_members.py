"""A suspended member (the contract's "Suspended members"): codes refused, nothing earned, no publications."""

import pytest

from campaigns.models import Publication
from loyalty import ledger
from members.models import Member
from members.services import member_set_status
from rewards.models import Redemption
from tests.api.conftest import assert_error
from tests.factories import CampaignFactory, CodeFactory, EarningRuleFactory, RewardFactory, earning_setup

pytestmark = pytest.mark.django_db


@pytest.fixture
def suspended(tenant):
    program, _rule, member = earning_setup(tenant)
    EarningRuleFactory(program=program, trigger="event", event_name="review_written", points=10, points_per_unit="0")
    ledger.points_adjust(member=member, points=500, reason="opening", staff_user=None)
    campaign = CampaignFactory(tenant=tenant, discount={"type": "amount", "value": "5.00"})
    CodeFactory(campaign=campaign, code="SUS-1")
    member = member_set_status(member=member, suspended=True, reason="fraud check")
    return member, campaign


def order(member, **extra):
    return {"member": member.external_id, "order": {"amount": "40.00"}, "codes": ["SUS-1"], **extra}


def test_the_member_object_says_suspended(api, suspended):
    member, _ = suspended
    assert api.get(f"/api/v1/members/{member.external_id}").json()["status"] == "suspended"


def test_validations_and_redemptions_refuse_every_code_and_points(api, suspended):
    member, _ = suspended
    answer = api.post("/api/v1/validations", order(member, points=100), format="json").json()
    assert answer["valid"] is False
    assert [c["reason"] for c in answer["codes"]] == ["member_suspended"]
    refused = api.post("/api/v1/redemptions", order(member, order_id="o-1"), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert assert_error(refused, 422, "redemption_failed")["details"]["codes"][0]["reason"] == "member_suspended"
    assert not Redemption.objects.exists()


def test_orders_and_events_are_recorded_but_earn_nothing(api, suspended):
    member, _ = suspended
    body = {"member": member.external_id, "order_id": "o-9", "amount": "80.00", "currency": "EUR"}
    answer = api.post("/api/v1/orders", body, format="json", HTTP_IDEMPOTENCY_KEY="o-9")
    assert answer.status_code == 201, answer.content
    assert (answer.json()["points_earned"], answer.json()["reason"]) == (0, "member_suspended")
    event = api.post(
        "/api/v1/events",
        {"member": member.external_id, "event": "review_written"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="e-1",
    )
    assert event.status_code == 201 and event.json()["points_earned"] == 0
    assert event.json()["reason"] == "member_suspended"
    assert ledger.account_for(member=member).balance == 500  # only the opening adjustment


def test_publications_and_reward_purchases_are_refused(api, tenant, suspended):
    member, campaign = suspended
    published = api.post(
        "/api/v1/publications",
        {"campaign": str(campaign.pk), "member": member.external_id},
        format="json",
        HTTP_IDEMPOTENCY_KEY="p-1",
    )
    assert_error(published, 422, "member_suspended")
    assert not Publication.objects.exists()
    reward = RewardFactory(tenant=tenant, points_cost=100)
    bought = api.post(
        f"/api/v1/members/{member.external_id}/reward-redemptions",
        {"reward": str(reward.pk)},
        format="json",
        HTTP_IDEMPOTENCY_KEY="r-1",
    )
    assert_error(bought, 422, "member_suspended")


def test_reactivation_restores_everything(api, suspended):
    member, _ = suspended
    member_set_status(member=member, suspended=False, reason="cleared")
    assert Member.objects.get(pk=member.pk).status == "active"
    answer = api.post("/api/v1/validations", order(member), format="json").json()
    assert answer["valid"] is True
    history = list(Member.history.filter(id=member.pk).values_list("history_change_reason", flat=True)[:2])
    assert history == ["active: cleared", "suspended: fraud check"]
