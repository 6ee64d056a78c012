import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine

from campaigns.models import Campaign, CampaignAlert, CampaignUsage
from campaigns.services import breaker_sweep
from campaigns.tasks import circuit_breaker_sweep
from campaigns.windows import minute_key
from rewards.services.redemption import redeem, validate
from tests.factories import CampaignFactory, CodeFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 26, 12, 0, 30, tzinfo=dt.UTC)


def normal_traffic(campaign, per_minute: int, minutes: int, start_minutes_ago: int):
    """The counters past redemptions left: `per_minute` for `minutes` minutes until `start_minutes_ago`."""
    CampaignUsage.objects.bulk_create(
        [
            CampaignUsage(
                campaign=campaign,
                key=minute_key(NOW - dt.timedelta(minutes=start_minutes_ago + m)),
                count=per_minute,
                discount=D("5.00") * per_minute,
            )
            for m in range(minutes)
        ]
    )


def burst(tenant, code, n):
    for i in range(n):
        redeem(tenant=tenant, member=None, order_id=f"burst-{i}", order={"amount": "50.00"}, codes=[code.code])


@time_machine.travel(NOW, tick=False)
def test_an_abnormal_redemption_rate_pauses_the_campaign_and_tells_marketers(tenant, published):
    campaign = CampaignFactory(
        tenant=tenant,
        breaker_enabled=True,
        breaker_multiple=D("5"),
        breaker_window_minutes=5,
        breaker_min_redemptions=20,
        discount={"type": "amount", "value": "5.00"},
    )
    code = CodeFactory(campaign=campaign, usage_limit=None)
    normal_traffic(campaign, per_minute=1, minutes=120, start_minutes_ago=6)
    burst(tenant, code, 40)  # 40 in a minute against a normal 1 a minute
    assert circuit_breaker_sweep.delay().get() == [campaign.pk]
    campaign.refresh_from_db()
    assert not campaign.enabled and campaign.disabled_reason.startswith("circuit_breaker")
    alert = CampaignAlert.objects.get(campaign=campaign)
    assert alert.kind == "circuit_breaker" and "paused automatically" in alert.message
    disabled = [d for k, d in published if k == "campaign.disabled"]
    assert disabled[0]["automatic"] is True and "redemption rate" in disabled[0]["reason"]
    entry = validate(tenant=tenant, order={"amount": "50"}, codes=[code.code]).as_dict()["codes"][0]
    assert entry["reason"] == "campaign_disabled"
    assert breaker_sweep() == []  # already paused: nothing more


@time_machine.travel(NOW, tick=False)
def test_budget_burn_counts_too(tenant):
    campaign = CampaignFactory(
        tenant=tenant,
        breaker_enabled=True,
        breaker_multiple=D("3"),
        breaker_window_minutes=5,
        breaker_min_redemptions=20,
        discount={"type": "amount", "value": "50.00"},
    )
    code = CodeFactory(campaign=campaign, usage_limit=None)
    normal_traffic(campaign, per_minute=10, minutes=60, start_minutes_ago=6)  # 10/min at 5.00 each
    burst(tenant, code, 25)  # fewer redemptions than usual, but ten times the discount each
    assert breaker_sweep() == [campaign.pk]
    assert "budget burn" in Campaign.objects.get(pk=campaign.pk).disabled_reason


@time_machine.travel(NOW, tick=False)
def test_normal_traffic_new_campaigns_and_switched_off_breakers_are_left_alone(tenant):
    steady = CampaignFactory(tenant=tenant, breaker_enabled=True, discount={"type": "amount", "value": "5.00"})
    normal_traffic(steady, per_minute=8, minutes=60, start_minutes_ago=6)
    burst(tenant, CodeFactory(campaign=steady, usage_limit=None), 25)  # 25 vs a normal 8/min: under 5x
    fresh = CampaignFactory(tenant=tenant, breaker_enabled=True)
    burst(tenant, CodeFactory(campaign=fresh, usage_limit=None, code="FRESH-1"), 30)  # no normal rate yet
    off = CampaignFactory(tenant=tenant, breaker_enabled=False)
    normal_traffic(off, per_minute=1, minutes=60, start_minutes_ago=6)
    burst(tenant, CodeFactory(campaign=off, usage_limit=None, code="OFF-1"), 30)
    assert breaker_sweep() == []
    assert Campaign.objects.filter(enabled=True).count() == 3


@time_machine.travel(NOW, tick=False)
def test_old_minute_counters_are_pruned(tenant):
    campaign = CampaignFactory(tenant=tenant)
    normal_traffic(campaign, per_minute=1, minutes=3, start_minutes_ago=26 * 60)
    breaker_sweep()
    assert not CampaignUsage.objects.filter(key__startswith="min:").exists()


@pytest.mark.parametrize("breaker_enabled", [True, False])
def test_only_a_campaign_with_the_breaker_on_counts_its_minutes(tenant, breaker_enabled):
    campaign = CampaignFactory(tenant=tenant, breaker_enabled=breaker_enabled)
    code = CodeFactory(campaign=campaign)
    with time_machine.travel(NOW, tick=False):
        redeem(tenant=tenant, member=None, order_id="o-1", order={"amount": "50.00"}, codes=[code.code])
    minutes = CampaignUsage.objects.filter(campaign=campaign, key=minute_key(NOW))
    assert minutes.exists() is breaker_enabled
