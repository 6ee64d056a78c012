"""Stacking: conflicts, the documented order of application, and a total that never goes below zero."""

from decimal import Decimal as D

import pytest

from campaigns.stacking import Stackable, conflicts, select
from rewards.services.redemption import redeem, validate
from tests.factories import CampaignFactory, CodeFactory, GiftCardCodeFactory

ORDER = {"amount": "100.00"}


@pytest.mark.parametrize(
    ("a", "b", "clash"),
    [
        (Stackable("A", "seasonal"), Stackable("B", "loyalty"), False),
        (Stackable("A", "seasonal", exclusive=True), Stackable("B", "loyalty"), True),
        (Stackable("A", "seasonal"), Stackable("B", "loyalty", exclusive=True), True),
        (Stackable("A", "seasonal", combinable_with=("loyalty",)), Stackable("B", "loyalty"), False),
        (Stackable("A", "seasonal", combinable_with=("loyalty",)), Stackable("B", "flash"), True),
        (Stackable("A", "seasonal"), Stackable("B", "flash", combinable_with=("loyalty",)), True),
        (
            Stackable("A", "seasonal", combinable_with=("flash",)),
            Stackable("B", "flash", combinable_with=("seasonal",)),
            False,
        ),
    ],
)
def test_conflicts(a, b, clash):
    assert conflicts(a, b) is clash
    assert conflicts(b, a) is clash


def test_select_is_greedy_in_the_order_given_and_honours_the_maximum():
    outcome = select([Stackable("A", "x", max_codes=2), Stackable("B", "y"), Stackable("C", "z"), Stackable("A", "x")])
    assert [s.key for s in outcome.accepted] == ["A", "B"]
    assert outcome.refused[2] == {"conflicts_with": ["A", "B"], "max_codes_per_order": 2}
    assert outcome.refused[3]["duplicate"] is True


@pytest.mark.django_db
def test_combinable_with_names_the_categories_an_order_may_mix(tenant):
    seasonal = CodeFactory(
        campaign__tenant=tenant,
        campaign__stacking_category="seasonal",
        campaign__combinable_with=["loyalty", "gift_card"],
    )
    loyalty = CodeFactory(campaign__tenant=tenant, campaign__stacking_category="loyalty")
    flash = CodeFactory(campaign__tenant=tenant, campaign__stacking_category="flash")
    card = GiftCardCodeFactory(campaign__tenant=tenant)
    body = validate(tenant=tenant, order=ORDER, codes=[seasonal.code, loyalty.code, card.code]).as_dict()
    assert body["valid"], body
    body = validate(tenant=tenant, order=ORDER, codes=[seasonal.code, flash.code]).as_dict()
    assert body["codes"][1] | {"message": ""} == {
        "code": flash.code,
        "valid": False,
        "reason": "stacking_not_allowed",
        "message": "",
        "details": {"conflicts_with": [seasonal.code]},
        "campaign": str(flash.campaign_id),
        "campaign_name": flash.campaign.name,
    }


@pytest.mark.django_db
def test_documented_order_promotions_then_discounts_then_gift_cards_then_points(tenant):
    CampaignFactory(tenant=tenant, type="promotion", discount={"type": "percent", "value": "10"}, priority=0)
    amount = CodeFactory(campaign__tenant=tenant, campaign__discount={"type": "amount", "value": "20.00"})
    percent = CodeFactory(campaign__tenant=tenant, campaign__discount={"type": "percent", "value": "50"})
    card = GiftCardCodeFactory(campaign__tenant=tenant)  # 50.00
    # Given in any order: the gift card pays last, what is left after the discounts.
    body = validate(tenant=tenant, order=ORDER, codes=[card.code, amount.code, percent.code]).as_dict()
    assert body["promotions"][0]["discount"] == "10.00"  # 10 % of 100
    by_code = {c["code"]: c["discount"] for c in body["codes"]}
    assert by_code[amount.code] == "20.00"
    assert by_code[percent.code] == "50.00"  # 50 % of the items, not compounded
    assert by_code[card.code] == "20.00"  # only what was left to pay
    assert body["order"] == {
        "amount": "100.00",
        "discount": "80.00",
        "gift_cards": "20.00",
        "points_value": "0.00",
        "total": "0.00",
    }


@pytest.mark.django_db
def test_the_total_never_goes_below_zero(tenant):
    big = CodeFactory(campaign__tenant=tenant, campaign__discount={"type": "amount", "value": "80.00"})
    bigger = CodeFactory(campaign__tenant=tenant, campaign__discount={"type": "percent", "value": "90"})
    redemption = redeem(tenant=tenant, member=None, order_id="o-1", order=ORDER, codes=[big.code, bigger.code])
    assert redemption.total == D("0.00") and redemption.discount == D("100.00")
    assert sorted(line.discount for line in redemption.lines.all()) == [D("20.00"), D("80.00")]


@pytest.mark.django_db
def test_a_conflicting_promotion_yields_to_the_code(tenant):
    CampaignFactory(tenant=tenant, type="promotion", discount={"type": "amount", "value": "5.00"})
    exclusive = CodeFactory(campaign__tenant=tenant, campaign__exclusive=True)
    body = validate(tenant=tenant, order=ORDER, codes=[exclusive.code]).as_dict()
    assert body["valid"] and body["promotions"] == []
    body = validate(tenant=tenant, order=ORDER, codes=[]).as_dict()
    assert [p["discount"] for p in body["promotions"]] == ["5.00"]


@pytest.mark.django_db
def test_promotions_apply_by_themselves_when_their_rule_holds(tenant):
    CampaignFactory(
        tenant=tenant, type="promotion", discount={"type": "percent", "value": "5"}, rule="order.amount >= 150"
    )
    assert validate(tenant=tenant, order=ORDER, codes=[]).as_dict()["promotions"] == []
    body = validate(tenant=tenant, order={"amount": "200.00"}, codes=[]).as_dict()
    assert [p["discount"] for p in body["promotions"]] == ["10.00"]
    redemption = redeem(tenant=tenant, member=None, order_id="o-1", order={"amount": "200.00"}, codes=[])
    assert redemption.discount == D("10.00") and redemption.lines.get().kind == "promotion"


@pytest.mark.django_db
def test_max_codes_per_order(tenant):
    first = CodeFactory(campaign__tenant=tenant, campaign__max_codes_per_order=1)
    second = CodeFactory(campaign__tenant=tenant)
    body = validate(tenant=tenant, order=ORDER, codes=[first.code, second.code]).as_dict()
    assert body["codes"][1]["reason"] == "stacking_not_allowed"
    assert body["codes"][1]["details"]["max_codes_per_order"] == 1
