"""Every reason code of the contract, produced through `validate` (and `redeem` refusing the same way)."""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine

from common.errors import ApplicationError
from members.services import tenant_set_frozen
from rewards.services.redemption import redeem, validate
from tests.factories import CampaignFactory, CodeFactory, EngineMemberFactory, GiftCardCodeFactory

pytestmark = pytest.mark.django_db

ORDER = {
    "amount": "120.00",
    "location": "berlin-01",
    "items": [{"sku": "TSHIRT", "category": "apparel", "quantity": 2, "unit_price": "60.00"}],
}
UTC = dt.UTC


def only_code(result):
    body = result.as_dict()
    assert len(body["codes"]) == 1
    return body["codes"][0]


def refused(tenant, code, member=None, order=ORDER, **extra):
    result = validate(tenant=tenant, member=member, order=order, codes=[code], **extra)
    entry = only_code(result)
    assert result.valid is False
    assert entry["valid"] is False
    assert entry["message"]
    return entry


@pytest.fixture
def member(tenant):
    return EngineMemberFactory(tenant=tenant)


def test_code_not_found(tenant, other_tenant):
    other = CodeFactory(campaign__tenant=other_tenant)
    assert refused(tenant, "NOPE-1234")["reason"] == "code_not_found"
    assert refused(tenant, other.code)["reason"] == "code_not_found"  # another tenant's code is invisible


def test_codes_are_matched_case_insensitively(tenant):
    CodeFactory(campaign__tenant=tenant, code="SPR-2345-ABCD")
    assert validate(tenant=tenant, order=ORDER, codes=[" spr-2345-abcd "]).valid


def test_tenant_frozen_refuses_everything(tenant, member):
    code = CodeFactory(campaign__tenant=tenant)
    tenant_set_frozen(tenant=tenant, frozen=True, reason="fraud wave")
    assert refused(tenant, code.code, member)["reason"] == "tenant_frozen"
    with pytest.raises(ApplicationError) as caught:
        redeem(tenant=tenant, member=member, order_id="o-1", order=ORDER, codes=[code.code])
    assert caught.value.code == "redemption_failed"
    assert caught.value.details["codes"][0]["reason"] == "tenant_frozen"


def test_campaign_disabled(tenant):
    code = CodeFactory(campaign__tenant=tenant, campaign__enabled=False)
    assert refused(tenant, code.code)["reason"] == "campaign_disabled"


@time_machine.travel(dt.datetime(2026, 6, 1, 12, tzinfo=UTC), tick=False)
def test_campaign_not_started_and_ended(tenant):
    early = CodeFactory(campaign__tenant=tenant, campaign__starts_at=dt.datetime(2026, 6, 2, tzinfo=UTC))
    late = CodeFactory(campaign__tenant=tenant, campaign__ends_at=dt.datetime(2026, 6, 1, 12, tzinfo=UTC))
    assert refused(tenant, early.code)["reason"] == "campaign_not_started"
    assert refused(tenant, late.code)["reason"] == "campaign_ended"


def test_outside_active_hours_in_the_tenant_time_zone(tenant):
    # Tenant in Europe/Berlin (UTC+1 in November): weekdays 09:00-17:00 local time.
    code = CodeFactory(
        campaign__tenant=tenant,
        campaign__active_hours=[{"weekdays": [0, 1, 2, 3, 4], "from": "09:00", "to": "17:00"}],
        usage_limit=None,
    )
    with time_machine.travel(dt.datetime(2026, 11, 26, 8, 30, tzinfo=UTC), tick=False):  # Thu 09:30 Berlin
        assert validate(tenant=tenant, order=ORDER, codes=[code.code]).valid
    with time_machine.travel(dt.datetime(2026, 11, 26, 7, 30, tzinfo=UTC), tick=False):  # Thu 08:30 Berlin
        assert refused(tenant, code.code)["reason"] == "outside_active_hours"
    with time_machine.travel(dt.datetime(2026, 11, 26, 16, 0, tzinfo=UTC), tick=False):  # Thu 17:00 Berlin
        assert refused(tenant, code.code)["reason"] == "outside_active_hours"
    with time_machine.travel(dt.datetime(2026, 11, 28, 10, 0, tzinfo=UTC), tick=False):  # Saturday
        assert refused(tenant, code.code)["reason"] == "outside_active_hours"


def test_active_hours_across_midnight(tenant):
    code = CodeFactory(
        campaign__tenant=tenant,
        campaign__active_hours=[{"weekdays": [4], "from": "22:00", "to": "02:00"}],  # Friday night
        usage_limit=None,
    )
    with time_machine.travel(dt.datetime(2026, 11, 28, 0, 30, tzinfo=UTC), tick=False):  # Sat 01:30 Berlin
        assert validate(tenant=tenant, order=ORDER, codes=[code.code]).valid
    with time_machine.travel(dt.datetime(2026, 11, 28, 2, 0, tzinfo=UTC), tick=False):  # Sat 03:00 Berlin
        assert refused(tenant, code.code)["reason"] == "outside_active_hours"


@time_machine.travel(dt.datetime(2026, 6, 1, 12, tzinfo=UTC), tick=False)
def test_code_expired(tenant):
    code = CodeFactory(campaign__tenant=tenant, expires_at=dt.datetime(2026, 6, 1, 11, 59, tzinfo=UTC))
    assert refused(tenant, code.code)["reason"] == "code_expired"


def test_rule_not_met_names_the_rule(tenant, member):
    rule = "member.country == 'GB' and order.amount >= 200"
    code = CodeFactory(campaign__tenant=tenant, campaign__rule=rule)
    entry = refused(tenant, code.code, member)
    assert entry["reason"] == "rule_not_met"
    assert entry["details"]["rule"] == rule
    assert validate(tenant=tenant, member=member, order={**ORDER, "amount": "250.00"}, codes=[code.code]).valid


def test_rule_over_events_and_past_redemptions(tenant, member):
    from django.utils import timezone

    from members.models import CustomEvent

    code = CodeFactory(
        campaign__tenant=tenant,
        usage_limit=None,
        campaign__rule="[e for e in events if e.name == 'newsletter_subscribed']",
    )
    assert refused(tenant, code.code, member)["reason"] == "rule_not_met"
    CustomEvent.objects.create(tenant=tenant, member=member, name="newsletter_subscribed", occurred_at=timezone.now())
    assert validate(tenant=tenant, member=member, order=ORDER, codes=[code.code]).valid

    once = CodeFactory(campaign__tenant=tenant, usage_limit=None)
    once.campaign.rule = (
        f"not [r for r in redemptions if r.campaign_id == {once.campaign_id} and r.created_at > now - t'P30D']"
    )
    once.campaign.save()
    redeem(tenant=tenant, member=member, order_id="o-1", order=ORDER, codes=[once.code])
    assert refused(tenant, once.code, member)["reason"] == "rule_not_met"


def test_member_required(tenant):
    assigned = CodeFactory(campaign__tenant=tenant, member=EngineMemberFactory(tenant=tenant))
    per_member = CodeFactory(campaign__tenant=tenant, campaign__redemptions_per_member=1)
    assert refused(tenant, assigned.code)["reason"] == "member_required"
    assert refused(tenant, per_member.code)["reason"] == "member_required"


def test_not_assigned_to_member(tenant, member):
    code = CodeFactory(campaign__tenant=tenant, member=EngineMemberFactory(tenant=tenant))
    assert refused(tenant, code.code, member)["reason"] == "not_assigned_to_member"


def test_redemptions_total_exceeded_for_code_and_campaign(tenant, member):
    code = CodeFactory(campaign__tenant=tenant, usage_limit=1)
    redeem(tenant=tenant, member=member, order_id="o-1", order=ORDER, codes=[code.code])
    entry = refused(tenant, code.code, member)
    assert entry["reason"] == "redemptions_total_exceeded" and entry["details"]["scope"] == "code"

    campaign = CampaignFactory(tenant=tenant, redemptions_total=1)
    first, second = CodeFactory(campaign=campaign), CodeFactory(campaign=campaign)
    redeem(tenant=tenant, member=member, order_id="o-2", order=ORDER, codes=[first.code])
    entry = refused(tenant, second.code, member)
    assert entry["reason"] == "redemptions_total_exceeded" and entry["details"]["scope"] == "campaign"


def test_redemptions_per_day_for_the_whole_campaign(tenant, member):
    campaign = CampaignFactory(tenant=tenant, redemptions_per_day=1)
    code = CodeFactory(campaign=campaign, usage_limit=None)
    with time_machine.travel(dt.datetime(2026, 11, 26, 22, 30, tzinfo=UTC), tick=False):  # 23:30 Berlin
        redeem(tenant=tenant, member=member, order_id="o-1", order=ORDER, codes=[code.code])
        entry = refused(tenant, code.code, member)
        assert entry["reason"] == "redemptions_total_exceeded" and entry["details"]["period"] == "day"
    with time_machine.travel(dt.datetime(2026, 11, 26, 23, 30, tzinfo=UTC), tick=False):  # next day in Berlin
        assert validate(tenant=tenant, member=member, order=ORDER, codes=[code.code]).valid


def test_redemptions_per_member_exceeded_in_total_and_per_period(tenant, member):
    campaign = CampaignFactory(tenant=tenant, redemptions_per_member=1)
    code = CodeFactory(campaign=campaign, usage_limit=None)
    redeem(tenant=tenant, member=member, order_id="o-1", order=ORDER, codes=[code.code])
    assert refused(tenant, code.code, member)["reason"] == "redemptions_per_member_exceeded"
    other = EngineMemberFactory(tenant=tenant)
    assert validate(tenant=tenant, member=other, order=ORDER, codes=[code.code]).valid

    monthly = CampaignFactory(tenant=tenant, redemptions_per_member_period=2, member_period="month")
    shared = CodeFactory(campaign=monthly, usage_limit=None)
    with time_machine.travel(dt.datetime(2026, 11, 10, 12, tzinfo=UTC), tick=False):
        redeem(tenant=tenant, member=member, order_id="m-1", order=ORDER, codes=[shared.code])
        redeem(tenant=tenant, member=member, order_id="m-2", order=ORDER, codes=[shared.code])
        entry = refused(tenant, shared.code, member)
        assert entry["reason"] == "redemptions_per_member_exceeded" and entry["details"]["period"] == "month"
    with time_machine.travel(dt.datetime(2026, 12, 1, 12, tzinfo=UTC), tick=False):
        assert validate(tenant=tenant, member=member, order=ORDER, codes=[shared.code]).valid


def test_discount_budget_exceeded(tenant, member):
    campaign = CampaignFactory(tenant=tenant, discount={"type": "amount", "value": "30.00"}, discount_total=D("50.00"))
    code = CodeFactory(campaign=campaign, usage_limit=None)
    redeem(tenant=tenant, member=member, order_id="o-1", order=ORDER, codes=[code.code])
    entry = refused(tenant, code.code, member)
    assert entry["reason"] == "discount_budget_exceeded"
    assert entry["details"]["remaining"] == "20.00"


def test_order_value_budget_exceeded(tenant, member):
    campaign = CampaignFactory(tenant=tenant, order_value_total=D("200.00"))
    code = CodeFactory(campaign=campaign, usage_limit=None)
    redeem(tenant=tenant, member=member, order_id="o-1", order=ORDER, codes=[code.code])
    assert refused(tenant, code.code, member)["reason"] == "order_value_budget_exceeded"


def test_stacking_not_allowed_names_the_conflict(tenant):
    exclusive = CodeFactory(campaign__tenant=tenant, campaign__exclusive=True, campaign__stacking_category="vip")
    seasonal = CodeFactory(campaign__tenant=tenant, campaign__stacking_category="seasonal")
    body = validate(tenant=tenant, order=ORDER, codes=[exclusive.code, seasonal.code]).as_dict()
    assert body["valid"] is False
    assert body["codes"][0]["valid"] is True
    assert body["codes"][1]["reason"] == "stacking_not_allowed"
    assert body["codes"][1]["details"]["conflicts_with"] == [exclusive.code]


def test_gift_card_insufficient_balance(tenant):
    card = GiftCardCodeFactory(campaign__tenant=tenant)  # 50.00
    entry = refused(tenant, {"code": card.code, "amount": "60.00"})
    assert entry["reason"] == "gift_card_insufficient_balance"


def test_points_insufficient_and_member_required_for_points(tenant, member):
    body = validate(tenant=tenant, member=None, order=ORDER, codes=[], points=100).as_dict()
    assert body["valid"] is False and body["points"]["reason"] == "member_required"
    body = validate(tenant=tenant, member=member, order=ORDER, codes=[], points=100).as_dict()
    assert body["valid"] is False and body["points"]["reason"] == "points_insufficient"


@pytest.mark.parametrize(
    ("field", "period", "second", "next_period"),
    [
        # Thursday 26 Nov 2026; the week starts on Monday 30 Nov, the month on 1 Dec (Berlin time).
        (
            "redemptions_per_week",
            "week",
            dt.datetime(2026, 11, 29, 22, 0, tzinfo=UTC),
            dt.datetime(2026, 11, 29, 23, 30, tzinfo=UTC),
        ),
        (
            "redemptions_per_month",
            "month",
            dt.datetime(2026, 11, 30, 22, 0, tzinfo=UTC),
            dt.datetime(2026, 11, 30, 23, 30, tzinfo=UTC),
        ),
    ],
)
def test_campaign_limits_per_week_and_month_in_the_tenant_time_zone(tenant, member, field, period, second, next_period):
    campaign = CampaignFactory(tenant=tenant, **{field: 1})
    code = CodeFactory(campaign=campaign, usage_limit=None)
    with time_machine.travel(dt.datetime(2026, 11, 26, 12, tzinfo=UTC), tick=False):
        redeem(tenant=tenant, member=member, order_id="o-1", order=ORDER, codes=[code.code])
    with time_machine.travel(second, tick=False):
        entry = refused(tenant, code.code, member)
        assert entry["reason"] == "redemptions_total_exceeded" and entry["details"]["period"] == period
    with time_machine.travel(next_period, tick=False):
        assert validate(tenant=tenant, member=member, order=ORDER, codes=[code.code]).valid
