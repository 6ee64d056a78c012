"""Each report figure against a hand-made history, its expectation worked out from the contract's definitions."""

import datetime as dt

import pytest
import time_machine

from reports.rollups import rollups_fold
from reports.selectors import Report, ReportFilters, ReportRange, period_start
from tests.factories import TenantFactory
from tests.reports import scenario
from tests.reports.scenario import FIRST, LAST, NOW, expected_orders, expected_points

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(tenant):
    return scenario.build(tenant)


def summary(tenant, **filters):
    with time_machine.travel(NOW, tick=False):
        return Report(ReportRange(tenant, FIRST, LAST), ReportFilters(**filters)).summary()


def test_order_figures_follow_the_definitions(tenant, history):
    h, _ = history
    got = summary(tenant)
    assert got["orders"] == expected_orders(h)
    # The day boundaries are Berlin's: 00:30 on March 1 counts, 23:30 on February 28 does not.
    assert got["orders"]["count"] == 4
    assert (got["from"], got["to"], got["currency"]) == ("2026-03-01", "2026-03-31", "EUR")


def test_point_figures_follow_the_definitions(tenant, history):
    h, _ = history
    got = summary(tenant)["points"]
    assert {k: v for k, v in got.items() if k != "expiring"} == expected_points(h)
    # Lots expiring from NOW: 20 within 30 days, 30 more within 60, 40 more within 90 (the rest out of reach).
    assert got["expiring"] == {"30": 20, "60": 20 + 30, "90": 20 + 30 + 40}


def test_gift_card_figures(tenant, history):
    got = summary(tenant)["gift_cards"]
    # Issued in range: g1's 50.00 (g2's 30.00 was issued in February). Spent: B's 20.00 (A's 10.00 was rolled
    # back). Left at the end: 50 + 30 - 20.
    assert got == {"issued": "50.00", "spent": "20.00", "outstanding": "60.00"}


def test_campaign_figures(tenant, history):
    h, _ = history
    got = summary(tenant)["campaigns"]
    succeeded_in_range = [r for r in h.redemptions if r.status == "succeeded" and scenario.in_range(r.created_at)]
    assert got["redemptions"] == len(succeeded_in_range) == 3
    # Published in range: k1 (A, redeemed in March) and k2 (B, redeemed in April: after `to`).
    assert (got["published"], got["redeemed"], got["conversion_rate"]) == (2, 1, "0.5000")
    # Engaged members: A (a code, points), C (a catalog reward); of the publications only A's k1, redeemed.
    assert (got["engaged_published"], got["engaged_redeemed"], got["engaged_conversion_rate"]) == (1, 1, "1.0000")
    assert got["redemptions_failed"] == {"code_expired": 2, "rule_not_met": 1}


def test_member_figures(tenant, history):
    h, n = history
    got = summary(tenant)["members"]
    in_range = [o for o in h.orders if scenario.in_range(o.occurred_at)]
    buyers = {o.member_id for o in in_range}
    repeat = {m for m in buyers if sum(o.member_id == m for o in in_range) >= 2}
    engaged_ids = {n["a"].pk, n["c"].pk}
    engaged_revenue = sum(o.amount for o in in_range if o.member_id in engaged_ids)
    regular_revenue = sum(o.amount for o in in_range if o.member_id not in engaged_ids)
    assert got == {
        "with_orders": len(buyers),
        # 30 days to the end of March: A and B ordered, C's points expired on March 20; D's order is February's.
        "active_30d": 3,
        "active_90d": 4,
        "repeat_purchase_rate": f"{len(repeat) / len(buyers):.4f}",
        "engaged": 2,
        "engaged_revenue": f"{engaged_revenue:.2f}",
        "regular_revenue": f"{regular_revenue:.2f}",
    }


def test_tier_figures(tenant, history):
    got = summary(tenant)["tiers"]
    assert got == [
        {"code": "bronze", "name": "Bronze", "members": 2, "moved_up": 1, "moved_down": 0},
        {"code": "silver", "name": "Silver", "members": 1, "moved_up": 0, "moved_down": 1},
        {"code": "gold", "name": "Gold", "members": 1, "moved_up": 1, "moved_down": 0},
    ]


def test_location_filter_narrows_orders_and_returns(tenant, history):
    h, _ = history
    got = summary(tenant, location="berlin")
    assert got["orders"] == expected_orders(h, keep=lambda o: o.location == "berlin")
    assert got["members"]["with_orders"] == 1


def test_tier_filter_narrows_everything_to_the_members_of_the_tier_now(tenant, history):
    h, n = history
    gold_member = n["a"].pk
    got = summary(tenant, tier_code="gold")
    assert got["orders"] == expected_orders(h, keep=lambda o: o.member_id == gold_member)
    points = {k: v for k, v in got["points"].items() if k != "expiring"}
    assert points == expected_points(h, keep=lambda e: e.account.member_id == gold_member)
    assert got["points"]["expiring"] == {"30": 20, "60": 20, "90": 20}
    assert [t["members"] for t in got["tiers"]] == [0, 0, 1]


def test_segment_filter(tenant, history):
    h, n = history
    b = n["b"].pk
    got = summary(tenant, segment=n["segment"])
    assert got["orders"] == expected_orders(h, keep=lambda o: o.member_id == b)
    assert got["campaigns"]["published"] == 1


def test_campaign_and_integration_filters_narrow_orders_to_their_redemptions(tenant, history):
    h, n = history
    first = h.orders[0]
    assert summary(tenant, campaign_id=n["k"].pk)["orders"] == expected_orders(h, keep=lambda o: o is first)
    assert summary(tenant, integration="web-shop")["orders"] == expected_orders(h, keep=lambda o: o is first)
    assert summary(tenant, integration="web-shop")["campaigns"]["redemptions_failed"] == {"code_expired": 1}
    assert summary(tenant, integration="nowhere")["orders"]["count"] == 0


def test_another_tenants_rows_never_count(tenant, history):
    before = summary(tenant)
    scenario.build(TenantFactory(time_zone="Europe/Berlin"))
    assert summary(tenant) == before


def test_figures_are_the_same_from_rollups(tenant, history):
    raw, raw_berlin = summary(tenant), summary(tenant, location="berlin")
    raw_web = summary(tenant, integration="web-shop")
    rollups_fold(settle_seconds=0)
    assert summary(tenant) == raw
    assert summary(tenant, location="berlin") == raw_berlin
    assert summary(tenant, integration="web-shop") == raw_web


@pytest.mark.parametrize("interval", ["day", "week", "month"])
def test_periods_add_up_to_the_summary(tenant, history, interval):
    report = Report(ReportRange(tenant, FIRST, LAST))
    got = report.timeseries(interval)
    with time_machine.travel(NOW, tick=False):
        total = report.summary()
    periods = got["periods"]
    starts = [dt.date.fromisoformat(p["start"]) for p in periods]
    expected_starts = sorted({period_start(FIRST + dt.timedelta(days=i), interval) for i in range(31)})
    assert starts == expected_starts  # every period, the empty ones too
    if interval == "week":
        assert all(s.weekday() == 0 for s in starts) and starts[0] == dt.date(2026, 2, 23)
    assert sum(p["orders"] for p in periods) == total["orders"]["count"]
    assert f"{sum(float(p['value']) for p in periods):.2f}" == total["orders"]["value"]
    assert f"{sum(float(p['discount']) for p in periods):.2f}" == total["orders"]["discount"]
    assert sum(p["points_issued"] for p in periods) == total["points"]["issued"]
    assert sum(p["points_spent"] for p in periods) == total["points"]["spent"]
    assert sum(p["points_expired"] for p in periods) == total["points"]["expired"]
    assert sum(p["redemptions"] for p in periods) == total["campaigns"]["redemptions"]


def test_summary_takes_a_constant_number_of_queries(tenant, history, django_assert_max_num_queries):
    with django_assert_max_num_queries(25) as small:
        summary(tenant)
    h, _ = history
    for i in range(20):
        member = h.member()
        order = h.order(member, "12.00", scenario.at(3, 1 + i))
        h.redemption(member, order.order_id, scenario.at(3, 1 + i), points_used=10)
        h.entry(member, "earn", 12, scenario.at(3, 1 + i))
    with django_assert_max_num_queries(len(small.captured_queries)):
        summary(tenant)


def test_dynamic_segment_filter(tenant, history):
    from members.models import Segment

    h, n = history
    # All-time spend net of returns: A 180.00, B 60.00, C 45.00, D 15.00: only A reaches 100.
    big = Segment.objects.create(tenant=tenant, code="big", name="Big", criteria={"min_spend": "100"})
    a = n["a"].pk
    got = summary(tenant, segment=big)
    assert got["orders"] == expected_orders(h, keep=lambda o: o.member_id == a)
    assert got["members"]["with_orders"] == 1
