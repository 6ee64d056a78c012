from decimal import Decimal as D

import pytest

from campaigns.models import Code
from common.errors import ApplicationError
from loyalty.ledger import account_for, points_adjust
from loyalty.models import MemberTier
from rewards.models import GiftCardTransaction, RewardPurchase
from rewards.selectors import member_rewards, reward_catalog
from rewards.services.catalog import reward_purchase, reward_purchase_document
from rewards.services.redemption import validate
from tests.factories import (
    CampaignFactory,
    CodeFactory,
    EngineMemberFactory,
    ProgramFactory,
    RewardFactory,
    TierFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def program(tenant):
    return ProgramFactory(tenant=tenant)


@pytest.fixture
def member(tenant, program):
    member = EngineMemberFactory(tenant=tenant)
    points_adjust(points=1000, reason="welcome", staff_user=UserFactory(), member=member, program=program)
    return member


def balance(member, program):
    return account_for(member=member, program=program).balance


def test_coupon_reward_spends_points_and_issues_a_code_of_the_loyalty_campaign(tenant, member, program):
    campaign = CampaignFactory(
        tenant=tenant, type="loyalty_reward", discount={"type": "amount", "value": "5.00"}, code_pattern="LR-####-????"
    )
    reward = RewardFactory(tenant=tenant, type="coupon", campaign=campaign, points_cost=400)
    purchase = reward_purchase(tenant=tenant, member=member, reward=reward)
    assert balance(member, program) == 600
    code = purchase.code
    assert code.member == member and code.campaign == campaign and code.code.startswith("LR-")
    doc = reward_purchase_document(purchase)
    assert doc["code"] == code.code and doc["points"] == 400
    # The issued code is the member's to use.
    assert validate(tenant=tenant, member=member, order={"amount": "20"}, codes=[code.code]).valid
    available = member_rewards(tenant=tenant, member=member, status="available")
    assert {"code": code.code, "status": "available", "value": "5.00"}.items() <= available[0].items()


def test_gift_card_credit_product_and_cashback(tenant, member, program):
    cards = CampaignFactory(tenant=tenant, type="gift_card", discount={}, gift_card_amount=D("50.00"))
    credit = reward_purchase(
        tenant=tenant,
        member=member,
        reward=RewardFactory(tenant=tenant, type="gift_card_credit", campaign=cards, value=D("10.00"), points_cost=100),
    )
    assert credit.code.balance == D("10.00") and credit.code.member == member
    assert GiftCardTransaction.objects.get(code=credit.code).kind == "issue"
    assert reward_purchase_document(credit)["gift_card"] == {"code": credit.code.code, "balance": "10.00"}

    product = reward_purchase(tenant=tenant, member=member, reward=RewardFactory(tenant=tenant, points_cost=100))
    assert product.status == "pending" and reward_purchase_document(product)["fulfilment_id"] == str(product.pk)
    cashback = reward_purchase(
        tenant=tenant,
        member=member,
        reward=RewardFactory(tenant=tenant, type="cashback", value=D("2.50"), points_cost=100),
    )
    assert reward_purchase_document(cashback)["cashback"] == "2.50"
    assert balance(member, program) == 700


def test_points_insufficient_changes_nothing(tenant, member, program):
    reward = RewardFactory(tenant=tenant, points_cost=5000, stock=3)
    with pytest.raises(ApplicationError) as caught:
        reward_purchase(tenant=tenant, member=member, reward=reward)
    assert caught.value.code == "points_insufficient"
    reward.refresh_from_db()
    assert reward.stock == 3 and balance(member, program) == 1000 and not RewardPurchase.objects.exists()


def test_reward_out_of_stock(tenant, member, program):
    reward = RewardFactory(tenant=tenant, points_cost=100, stock=1)
    reward_purchase(tenant=tenant, member=member, reward=reward)
    with pytest.raises(ApplicationError) as caught:
        reward_purchase(tenant=tenant, member=member, reward=reward)
    assert caught.value.code == "reward_out_of_stock"
    assert balance(member, program) == 900


def test_tier_required(tenant, member, program):
    gold = TierFactory(program=program, code="gold")
    reward = RewardFactory(tenant=tenant, points_cost=100, tier_codes=["gold"])
    with pytest.raises(ApplicationError) as caught:
        reward_purchase(tenant=tenant, member=member, reward=reward)
    assert caught.value.code == "tier_required"
    assert [r["affordable"] for r in reward_catalog(tenant=tenant, member=member)] == [False]
    MemberTier.objects.create(tenant=tenant, member=member, program=program, tier=gold)
    assert [r["affordable"] for r in reward_catalog(tenant=tenant, member=member)] == [True]
    reward_purchase(tenant=tenant, member=member, reward=reward)


def test_member_rewards_lists_by_status(tenant, member):
    campaign = CampaignFactory(tenant=tenant)
    used = CodeFactory(campaign=campaign, member=member, redeemed_count=1)
    fresh = CodeFactory(campaign=campaign, member=member)
    from django.utils import timezone

    from campaigns.models import Publication

    for code in (used, fresh):
        Publication.objects.create(
            tenant=tenant, campaign=campaign, code=code, member=member, channel="email", published_at=timezone.now()
        )
    statuses = {i["code"]: i["status"] for i in member_rewards(tenant=tenant, member=member, status="published")}
    assert statuses == {used.code: "redeemed", fresh.code: "available"}
    assert Code.objects.count() == 2


def test_member_rewards_available_redeemed_and_expired(tenant, member):
    import datetime as dt

    from django.utils import timezone

    from campaigns.services import publication_create
    from rewards.services.redemption import redeem

    campaign = CampaignFactory(tenant=tenant, discount={"type": "percent", "value": "15"})
    for _ in range(3):
        CodeFactory(campaign=campaign)
    used, _ = publication_create(tenant=tenant, campaign=campaign, member=member, channel="email")
    redeem(tenant=tenant, member=member, order_id="o-1", order={"amount": "40"}, codes=[used.code.code])
    fresh, _ = publication_create(tenant=tenant, campaign=campaign, member=member, channel="sms")
    late = CodeFactory(campaign=campaign, member=member, expires_at=timezone.now() - dt.timedelta(days=1))
    from campaigns.models import Publication

    Publication.objects.create(
        tenant=tenant, campaign=campaign, code=late, member=member, channel="push", published_at=timezone.now()
    )
    CampaignFactory(tenant=tenant, type="promotion", discount={"type": "amount", "value": "2.00"})

    redeemed = member_rewards(tenant=tenant, member=member, status="redeemed")
    assert [(i["code"], i["discount"]) for i in redeemed] == [(used.code.code, "6.00")]
    expired = member_rewards(tenant=tenant, member=member, status="expired")
    assert [i["code"] for i in expired] == [late.code] and expired[0]["expires_at"]
    available = member_rewards(tenant=tenant, member=member, status="available")
    assert [(i["code"], i["type"], i["value"]) for i in available] == [
        (fresh.code.code, "discount", "15%"),
        (None, "promotion", "2.00"),
    ]
    assert len(member_rewards(tenant=tenant, member=member)) == 4
