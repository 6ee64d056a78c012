import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from common.errors import ApplicationError
from loyalty.ledger.selectors import member_points_summary
from loyalty.models import Account, LedgerEntry, Order, TierChange
from loyalty.services.earning import custom_event_record
from members.services import tenant_set_frozen
from rewards.services.checkout import order_checkout
from tests.factories import EarningRuleFactory, MemberFactory, ProgramFactory, TierFactory, earning_setup

pytestmark = pytest.mark.django_db


def _pay(tenant, member, order_id="o-1", amount="100.00", **kw):
    return order_checkout(
        tenant=tenant, member=member, order_id=order_id, amount=amount, currency=tenant.currency, items=[], **kw
    )


def test_paid_order_earns_one_point_per_unit_rounded_down(tenant):
    _, _, member = earning_setup(tenant)
    result = _pay(tenant, member, amount="10.99")
    assert result.created and result.points_earned == 10
    assert [e["kind"] for e in result.entries] == ["earn"]
    assert member_points_summary(member)["balance"] == 10


def test_same_order_id_is_counted_once_and_returns_first_result(tenant):
    _, _, member = earning_setup(tenant)
    first = _pay(tenant, member)
    again = _pay(tenant, member, amount="999.00")
    assert not again.created
    assert again.as_dict() == first.as_dict()
    assert Order.objects.for_tenant(tenant).count() == 1
    assert Account.objects.get(member=member).balance == 100


def test_rule_condition_is_applied(tenant):
    _, _, member = earning_setup(tenant, rule="order.amount >= 50")
    assert _pay(tenant, member, "a", "49.99").points_earned == 0
    assert _pay(tenant, member, "b", "50.00").points_earned == 50


def test_category_items_rule_counts_only_those_items(tenant):
    _, _, member = earning_setup(tenant, categories=["apparel"], points_per_unit="2")
    result = order_checkout(
        tenant=tenant,
        member=member,
        order_id="o",
        amount="80.00",
        currency=tenant.currency,
        items=[
            {"sku": "T", "category": "apparel", "quantity": 2, "unit_price": "15.00"},
            {"sku": "B", "category": "books", "quantity": 1, "unit_price": "50.00"},
        ],
    )
    assert result.points_earned == 60


def test_tier_multiplier_and_upgrade_at_once(tenant):
    program, _, member = earning_setup(tenant)
    TierFactory(program=program, code="bronze", threshold=0, multiplier="1.0")
    TierFactory(program=program, code="silver", threshold=100, multiplier="1.5", rank=1)
    first = _pay(tenant, member, "a", "100.00")
    assert first.tier == {"code": "silver", "name": "Silver"}
    second = _pay(tenant, member, "b", "10.00")
    assert second.points_earned == 15
    assert list(TierChange.objects.filter(member=member).values_list("to_tier__code", flat=True)) == ["silver"]


def test_happy_hour_in_tenant_time_zone(tenant):
    # Saturday 18:30 in Berlin (tenant zone) is 16:30 UTC in summer.
    _, _, member = earning_setup(
        tenant, happy_hours=[{"weekdays": [5, 6], "from": "17:00", "to": "20:00", "multiplier": "2"}]
    )
    inside = _pay(tenant, member, "a", "10.00", occurred_at=dt.datetime(2026, 6, 6, 16, 30, tzinfo=dt.UTC))
    outside = _pay(tenant, member, "b", "10.00", occurred_at=dt.datetime(2026, 6, 6, 18, 30, tzinfo=dt.UTC))
    assert (inside.points_earned, outside.points_earned) == (20, 10)


def test_frozen_tenant_refuses_earning(tenant):
    _, _, member = earning_setup(tenant)
    tenant_set_frozen(tenant=tenant, frozen=True, reason="incident")
    with pytest.raises(ApplicationError) as exc:
        _pay(tenant, member)
    assert exc.value.code == "tenant_frozen"
    assert not LedgerEntry.objects.filter(tenant=tenant).exists()


def test_currency_must_be_the_tenants(tenant):
    _, _, member = earning_setup(tenant)
    with pytest.raises(ApplicationError) as exc:
        order_checkout(tenant=tenant, member=member, order_id="o", amount="1.00", currency="USD", items=[])
    assert exc.value.code == "invalid_order" and "currency" in exc.value.details


def test_member_of_other_tenant_is_not_found(tenant, other_tenant):
    earning_setup(tenant)
    stranger = MemberFactory(tenant=other_tenant)
    with pytest.raises(ApplicationError) as exc:
        _pay(tenant, stranger)
    assert exc.value.code == "member_not_found"


def test_event_rule_with_lifetime_cap(tenant):
    program = ProgramFactory(tenant=tenant)
    EarningRuleFactory(
        program=program,
        trigger="event",
        event_name="newsletter_subscribed",
        points=50,
        points_per_unit="0",
        cap_points=50,
        cap_period="lifetime",
    )
    member = MemberFactory(tenant=tenant)
    first = custom_event_record(tenant=tenant, member=member, event="newsletter_subscribed", metadata={})
    second = custom_event_record(tenant=tenant, member=member, event="newsletter_subscribed", metadata={})
    assert (first.points_earned, second.points_earned) == (50, 0)
    assert member.events.count() == 2


def test_monthly_cap_resets_next_month_in_tenant_zone(tenant):
    program = ProgramFactory(tenant=tenant)
    EarningRuleFactory(
        program=program,
        trigger="event",
        event_name="social_liked",
        points=10,
        points_per_unit="0",
        cap_points=20,
        cap_period="month",
    )
    member = MemberFactory(tenant=tenant)
    with time_machine.travel(dt.datetime(2026, 3, 31, 12, 0, tzinfo=dt.UTC), tick=False):
        got = [custom_event_record(tenant=tenant, member=member, event="social_liked").points_earned for _ in range(3)]
    assert got == [10, 10, 0]
    # 22:30 UTC on 31 March is already 1 April in Berlin: a new month for the cap.
    with time_machine.travel(dt.datetime(2026, 3, 31, 22, 30, tzinfo=dt.UTC), tick=False):
        assert custom_event_record(tenant=tenant, member=member, event="social_liked").points_earned == 10


def test_pending_points_are_not_spendable_until_released(tenant):
    from loyalty.ledger import pending_release_due

    _, _, member = earning_setup(tenant, pending_days=14)
    with time_machine.travel(dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC), tick=False):
        result = _pay(tenant, member)
    assert (result.points_earned, result.points_pending) == (0, 100)
    summary = member_points_summary(member)
    assert (summary["balance"], summary["pending"]) == (0, 100)
    with time_machine.travel(dt.datetime(2026, 1, 24, 11, 0, tzinfo=dt.UTC), tick=False):
        assert pending_release_due().released == 0
    with time_machine.travel(dt.datetime(2026, 1, 24, 12, 0, tzinfo=dt.UTC), tick=False):
        assert pending_release_due().released == 1
        assert pending_release_due().released == 0
    summary = member_points_summary(member)
    assert (summary["balance"], summary["pending"], summary["lifetime_earned"]) == (100, 0, 100)


def test_points_per_unit_half_up_rounding(tenant):
    _, _, member = earning_setup(tenant, points_per_unit="1", unit_amount="10.00", rounding="half_up")
    assert _pay(tenant, member, "a", "15.00").points_earned == 2
    assert _pay(tenant, member, "b", "14.99").points_earned == 1


def test_order_without_program_is_recorded_without_points(tenant):
    member = MemberFactory(tenant=tenant)
    result = _pay(tenant, member)
    assert result.points_earned == 0 and Order.objects.for_tenant(tenant).get().amount == Decimal("100.00")


def test_rule_outside_its_dates_does_not_apply(tenant):
    _, _, member = earning_setup(
        tenant,
        starts_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
        ends_at=dt.datetime(2026, 4, 1, tzinfo=dt.UTC),
    )
    before = _pay(tenant, member, "a", "10.00", occurred_at=dt.datetime(2026, 2, 28, tzinfo=dt.UTC))
    during = _pay(tenant, member, "b", "10.00", occurred_at=dt.datetime(2026, 3, 15, tzinfo=dt.UTC))
    after = _pay(tenant, member, "c", "10.00", occurred_at=dt.datetime(2026, 4, 1, tzinfo=dt.UTC))
    assert (before.points_earned, during.points_earned, after.points_earned) == (0, 10, 0)


def test_rule_on_spend_window_sees_earlier_orders(tenant):
    _, _, member = earning_setup(tenant, rule="member.spend_365d >= 100", points=25, points_per_unit="0")
    assert _pay(tenant, member, "a", "100.00").points_earned == 0
    assert _pay(tenant, member, "b", "1.00").points_earned == 25


def test_event_rule_on_metadata(tenant):
    program = ProgramFactory(tenant=tenant)
    EarningRuleFactory(
        program=program,
        trigger="event",
        event_name="social_liked",
        points=10,
        points_per_unit="0",
        rule="event.metadata.platform == 'instagram'",
    )
    member = MemberFactory(tenant=tenant)
    got = [
        custom_event_record(tenant=tenant, member=member, event="social_liked", metadata={"platform": p}).points_earned
        for p in ("instagram", "tiktok")
    ]
    assert got == [10, 0]


def test_tier_change_emits_member_tier_changed(tenant):
    from common import events

    seen = []
    events._sinks.append(lambda t, e, d: seen.append((e, d)))
    try:
        program, _, member = earning_setup(tenant)
        TierFactory(program=program, code="silver", name="Silver", threshold=50)
        _pay(tenant, member, "a", "60.00")
    finally:
        events._sinks.pop()
    [(_, data)] = [s for s in seen if s[0] == "member.tier_changed"]
    assert (data["member"], data["from"], data["to"]) == (
        member.external_id,
        None,
        {"code": "silver", "name": "Silver"},
    )


def test_earning_is_a_constant_number_of_queries(tenant, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    program, _, member = earning_setup(tenant, rule="member.spend_365d >= 0 and order.amount > 0")
    EarningRuleFactory(program=program, categories=["apparel"], points_per_unit="2")
    TierFactory(program=program, code="bronze", threshold=0)
    items = [{"sku": f"S{n}", "category": "apparel", "quantity": 1, "unit_price": "1.00"} for n in range(5)]
    counts = []
    for n in range(4):
        with CaptureQueriesContext(connection) as queries:
            order_checkout(
                tenant=tenant, member=member, order_id=f"o{n}", amount="5.00", currency="EUR", items=items * (n + 1)
            )
        counts.append(len(queries))
    # The first order creates the account and the tier status; after that, more orders, lots and items cost nothing.
    assert counts[1] == counts[2] == counts[3]
    with django_assert_max_num_queries(counts[1]):
        order_checkout(tenant=tenant, member=member, order_id="last", amount="5.00", currency="EUR", items=items * 9)


def test_an_order_matching_two_rules_one_capped_costs_at_most_seventeen_queries(tenant, django_assert_max_num_queries):
    """The bench's shape (bench/bench_earn.py): two matching rules, one with a monthly cap, a tier ladder.

    17 = BEGIN + account locked with its program (1) + order seen? (1) + tiers (1) + rules (1) + cap read and
    update (2) + the two earn entries, their lots and the balance (3) + two `points.earned` events through the
    webhook sink (4) + order and items (2) + COMMIT. Entries and lots are one INSERT each whatever the rules.
    On PostgreSQL 12: entries, lots and balance are one statement, so are the order and its items, and each
    event is one statement of the webhook sink.
    """
    from django.db import connection

    program, _, member = earning_setup(tenant, rule="order.amount >= 1")
    EarningRuleFactory(
        program=program, code="apparel", categories=["apparel"], points_per_unit="1", cap_points=500, cap_period="month"
    )
    TierFactory(program=program, code="bronze", threshold=0)
    TierFactory(program=program, code="gold", threshold=100_000, rank=1)
    items = [{"sku": "T", "category": "apparel", "quantity": 2, "unit_price": "30.00"}]
    order_checkout(tenant=tenant, member=member, order_id="first", amount="79.90", currency="EUR", items=items)
    with django_assert_max_num_queries(12 if connection.vendor == "postgresql" else 17):
        result = order_checkout(
            tenant=tenant, member=member, order_id="second", amount="79.90", currency="EUR", items=items
        )
    assert len(result.entries) == 2 and result.points_earned > 0
    assert [e["balance_after"] for e in result.entries] == sorted(e["balance_after"] for e in result.entries)
