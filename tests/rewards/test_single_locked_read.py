"""A redemption reads its codes' campaigns once, locked (`campaigns.sql.campaigns_and_codes_for_update`),
after judging the live promotions: the rule context then grows with the facts the codes' rules name."""

import pytest

from rewards.services.redemption import redeem
from tests.factories import CampaignFactory, CodeFactory, EngineMemberFactory

pytestmark = pytest.mark.django_db

ORDER = {"amount": "50.00", "items": [{"sku": "MUG", "category": "home", "quantity": 1, "unit_price": "50.00"}]}


@pytest.mark.parametrize("with_promotion", [False, True])
def test_a_code_rule_reading_member_spend_is_judged_with_that_fact(tenant, with_promotion):
    member = EngineMemberFactory(tenant=tenant)
    code = CodeFactory(
        campaign__tenant=tenant,
        campaign__rule="member.spend_365d >= 0",
        campaign__discount={"type": "amount", "value": "3.00"},
    )
    if with_promotion:  # judged first, with a context that needs no member fact
        CampaignFactory(
            tenant=tenant, type="promotion", rule="order.amount >= 10", discount={"type": "amount", "value": "5.00"}
        )
    redemption = redeem(tenant=tenant, member=member, order_id="o-1", order=ORDER, codes=[code.code])
    applied = {line.campaign_id: line.discount for line in redemption.lines.all()}
    assert applied[code.campaign_id] == 3
    assert len(applied) == (2 if with_promotion else 1)
    code.refresh_from_db()
    assert code.redeemed_count == 1


def test_codes_of_several_campaigns_are_all_locked_and_redeemed(tenant):
    member = EngineMemberFactory(tenant=tenant)
    codes = [
        CodeFactory(campaign__tenant=tenant, campaign__discount={"type": "amount", "value": "1.00"}) for _ in range(3)
    ]
    redemption = redeem(tenant=tenant, member=member, order_id="o-2", order=ORDER, codes=[c.code for c in codes])
    assert sorted(line.code_id for line in redemption.lines.all()) == sorted(c.pk for c in codes)
    for code in codes:
        code.campaign.refresh_from_db()
        assert code.campaign.redemptions_count == 1
