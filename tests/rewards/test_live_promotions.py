"""One rule decides which promotions apply by themselves, for every reader: validation, redemption, the
member's rewards list (service and API). A promotion that is disabled, out of its dates, outside its active
hours or of a frozen tenant is neither validated, nor redeemed, nor listed."""

import datetime as dt

import pytest
import time_machine

from common.errors import ApplicationError
from members.services import tenant_set_frozen
from rewards.selectors import member_rewards
from rewards.services.redemption import redeem, validate
from tests.api.conftest import client_for
from tests.factories import CampaignFactory, EngineMemberFactory, api_key_for

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 4, 12, 0, 30, 250000, tzinfo=dt.UTC)  # a Wednesday, 13:00 in Berlin
ORDER = {"amount": "50.00", "items": [{"sku": "MUG", "category": "home", "quantity": 1, "unit_price": "50.00"}]}

CASES = {
    "live": {},
    "live_since_this_instant_until_later": {"starts_at": NOW, "ends_at": NOW + dt.timedelta(microseconds=1)},
    "within_its_active_hours": {"active_hours": [{"weekdays": [2], "from": "13:00", "to": "14:00"}]},
    "disabled": {"enabled": False},
    "not_started": {"starts_at": NOW + dt.timedelta(microseconds=1)},
    "ended_this_instant": {"ends_at": NOW},
    "ended": {"ends_at": NOW - dt.timedelta(days=1)},
    "outside_its_active_hours": {"active_hours": [{"weekdays": [2], "from": "20:00", "to": "22:00"}]},
    "of_a_frozen_tenant": {},
}
LIVE = {"live", "live_since_this_instant_until_later", "within_its_active_hours"}


def _applied_by_redeem(tenant, member, promotion) -> bool:
    try:
        redemption = redeem(tenant=tenant, member=member, order_id="o-1", order=ORDER, codes=[])
    except ApplicationError:
        return False
    return promotion.pk in {line.campaign_id for line in redemption.lines.all()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_rule_decides_what_validation_redemption_and_the_rewards_list_see(tenant, case):
    member = EngineMemberFactory(tenant=tenant)
    promotion = CampaignFactory(
        tenant=tenant, type="promotion", discount={"type": "amount", "value": "5.00"}, **CASES[case]
    )
    if case == "of_a_frozen_tenant":
        tenant_set_frozen(tenant=tenant, frozen=True, reason="test")
    key = str(promotion.pk)
    with time_machine.travel(NOW, tick=False):
        validated = [
            p["campaign"] for p in validate(tenant=tenant, member=member, order=ORDER, codes=[]).as_dict()["promotions"]
        ]
        listed = [i["campaign"] for i in member_rewards(tenant=tenant, member=member) if i["type"] == "promotion"]
        response = client_for(api_key_for(tenant)[1]).get(f"/api/v1/members/{member.external_id}/rewards")
        listed_by_api = [i["campaign"] for i in response.json()["results"] if i["type"] == "promotion"]
        redeemed = _applied_by_redeem(tenant, member, promotion)
    expected = case in LIVE
    assert (key in validated, key in listed, key in listed_by_api, redeemed) == (expected,) * 4


def test_the_rewards_list_pages_past_promotions_left_out_by_their_active_hours(tenant):
    member = EngineMemberFactory(tenant=tenant)
    hours = {"outside": [{"from": "20:00", "to": "22:00"}], "inside": [{"from": "13:00", "to": "14:00"}]}
    promotions = [
        CampaignFactory(tenant=tenant, type="promotion", active_hours=hours["outside" if n % 2 else "inside"])
        for n in range(6)
    ]
    client = client_for(api_key_for(tenant)[1])
    url, seen = f"/api/v1/members/{member.external_id}/rewards", []
    with time_machine.travel(NOW, tick=False):
        response = client.get(url, {"limit": 2})
        while True:
            body = response.json()
            seen += [i["campaign"] for i in body["results"] if i["type"] == "promotion"]
            if body["next"] is None:
                break
            response = client.get(body["next"])
    assert seen == [str(p.pk) for n, p in enumerate(promotions) if n % 2 == 0]
