from decimal import Decimal as D

import pytest

from campaigns.services import campaign_create
from loyalty.ledger import account_for
from rewards.models import ReferralGrant
from rewards.services.catalog import referral_reward_grant
from rewards.services.checkout import order_checkout
from tests.factories import EngineMemberFactory, ProgramFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(tenant):
    program = ProgramFactory(tenant=tenant)
    campaign_create(
        tenant=tenant,
        data={"name": "Refer a friend", "type": "referral", "referral": {"min_order_amount": "50.00", "points": 500}},
    )
    referrer = EngineMemberFactory(tenant=tenant)
    friend = EngineMemberFactory(tenant=tenant, referred_by=referrer)
    return program, referrer, friend


def test_referrer_is_rewarded_once_for_the_first_qualifying_order(setup):
    program, referrer, friend = setup
    grants = referral_reward_grant(member=friend, order_id="f-1", amount=D("50.00"))
    assert len(grants) == 1 and grants[0].points == 500
    assert account_for(member=referrer, program=program).balance == 500
    assert referral_reward_grant(member=friend, order_id="f-1", amount=D("50.00")) == []  # retried: once
    assert ReferralGrant.objects.count() == 1
    assert account_for(member=referrer, program=program).balance == 500


def test_a_first_order_below_the_minimum_gives_nothing(setup):
    program, referrer, friend = setup
    assert referral_reward_grant(member=friend, order_id="f-1", amount=D("49.99")) == []
    assert account_for(member=referrer, program=program).balance == 0


def test_only_referred_members_and_first_orders_count(setup, tenant):
    program, referrer, friend = setup
    loner = EngineMemberFactory(tenant=tenant)
    assert referral_reward_grant(member=loner, order_id="l-1", amount=D("80.00")) == []
    order_checkout(tenant=tenant, member=friend, order_id="f-0", amount="10.00", currency="EUR")  # below the minimum
    assert referral_reward_grant(member=friend, order_id="f-1", amount=D("80.00")) == []
    assert not ReferralGrant.objects.exists()
