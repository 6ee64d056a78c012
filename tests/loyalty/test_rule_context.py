"""The one rule context (loyalty/rule_context.py): what a rule sees, what it costs, and that a rule text means the
same as an earning rule (through the earning service) and as a campaign rule (through validation)."""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine

from loyalty import rule_context
from loyalty.ledger import points_adjust
from loyalty.models import LedgerEntry, MemberTier, Order, Program
from loyalty.rule_context import FACTS, Standing, build_rule_context, facts_named, order_context
from loyalty.rules import SCHEMA, rule_matches
from members.models import CustomEvent, Segment, SegmentMember
from rewards.services.checkout import order_checkout
from rewards.services.redemption import validate
from tests.factories import (
    CodeFactory,
    EarningRuleFactory,
    EngineMemberFactory,
    MemberFactory,
    ProgramFactory,
    TierFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
ITEMS = [
    {"sku": "TSHIRT", "category": "apparel", "quantity": 2, "unit_price": "30.00"},
    {"sku": "MUG", "category": "", "quantity": 1, "unit_price": "40.00"},
]


def _order(tenant, member, order_id, days_ago, amount="100.00"):
    return Order.objects.create(
        tenant=tenant,
        member=member,
        order_id=order_id,
        amount=D(amount),
        currency=tenant.currency,
        occurred_at=NOW - dt.timedelta(days=days_ago),
    )


@time_machine.travel(NOW, tick=False)
def test_the_context_feeds_the_rule_language(tenant):
    member = EngineMemberFactory(tenant=tenant, country="GB", attributes={"vip": True})
    program = ProgramFactory(tenant=tenant)
    MemberTier.objects.create(
        tenant=tenant, member=member, program=program, tier=TierFactory(program=program, code="gold", rank=3)
    )
    vip = Segment.objects.create(tenant=tenant, code="vips", name="VIPs", kind="static")
    SegmentMember.objects.create(segment=vip, member=member)
    Segment.objects.create(tenant=tenant, code="brits", name="Brits", criteria={"country": ["GB"]})
    Segment.objects.create(tenant=tenant, code="french", name="French", criteria={"country": ["FR"]})
    for days, amount in ((10, "100.00"), (60, "200.00"), (400, "1000.00")):
        _order(tenant, member, f"o-{days}", days, amount)
    CustomEvent.objects.create(tenant=tenant, member=member, name="review_written", occurred_at=NOW)

    ctx = build_rule_context(member=member, tz=tenant.tz, now=NOW, order=order_context(amount="80.00"))
    assert ctx["member"]["tier"] == {"code": "gold", "name": "Gold", "rank": 3}
    assert ctx["member"]["segments"] == ["brits", "vips"]  # the dynamic one too, in code order
    assert ctx["member"]["lifetime_spend"] == D("1300.00") and ctx["member"]["spend_30d"] == D("100.00")
    assert ctx["member"]["spend_90d"] == D("300.00")
    assert ctx["member"]["orders_count"] == 3 and type(ctx["member"]["orders_count"]) is int
    assert ctx["member"]["points_balance"] == 0 and ctx["redemptions"] == []  # no account, no loader
    assert ctx["now"] == NOW and ctx["now"].utcoffset() == dt.timedelta(hours=1)  # Berlin
    for rule, expected in [
        ("member.tier.code == 'gold' and 'vips' in member.segments", True),
        ("'french' in member.segments", False),
        ("member.spend_90d >= 300 and member.lifetime_spend > 1000", True),
        ("member.attributes['vip'] and member.country == 'GB'", True),
        ("[e for e in events if e.name == 'review_written']", True),
        ("now.hour == 13", True),  # the tenant's local time (Berlin, UTC+1)
    ]:
        assert rule_matches(rule, ctx) is expected, rule


def test_the_context_has_exactly_the_names_of_the_schema_and_documents_each():
    member = MemberFactory.build(tenant_id=1, birth_date=dt.date(1990, 5, 17))
    ctx = build_rule_context(
        member=member,
        tz=dt.UTC,
        now=NOW,
        rules=[],
        order=order_context(amount="1", items=ITEMS),
        event={"name": "x", "metadata": {}, "occurred_at": NOW},
        standing=Standing(tier=None, points_balance=0),
    )
    assert set(ctx) == set(SCHEMA)
    for name in ("member", "order", "event"):
        assert set(ctx[name]) == set(SCHEMA[name]), name
    assert set(ctx["order"]["items"][0]) == {"sku", "category", "quantity", "unit_price"}
    doc = rule_context.__doc__
    for name, spec in SCHEMA.items():
        assert name in doc, name
        for attribute in spec if isinstance(spec, dict) else ():
            assert f".{attribute}" in doc or f"{attribute}:" in doc or f" {attribute}," in doc, attribute


def test_numbers_are_ints_and_decimals_and_missing_values_are_null():
    member = MemberFactory.build(tenant_id=1, country="", city="", phone="", birth_date=dt.date(1990, 11, 27))
    ctx = build_rule_context(
        member=member,
        tz=dt.UTC,
        now=NOW,
        rules=[],
        order=order_context(items=ITEMS),
        standing=Standing(tier=None, points_balance=120),
    )
    m, order = ctx["member"], ctx["order"]
    assert (m["country"], m["city"], m["phone"], m["tier"]) == (None, None, None, None)
    assert m["age"] == 35 and type(m["age"]) is int  # 36 tomorrow
    assert m["points_balance"] == 120 and type(m["points_balance"]) is int
    assert order["amount"] == D("100.00")  # no amount given: the items' sum, as the engine prices it
    assert order["quantity"] == 3 and type(order["quantity"]) is int
    assert order["items"][1] == {"sku": "MUG", "category": None, "quantity": 1, "unit_price": D("40.00")}
    assert (order["order_id"], order["currency"], ctx["event"]) == (None, None, None)
    assert m["spend_30d"] is None and m["segments"] is None and ctx["events"] is None  # not named: not read
    for rule in (
        "member.country == null and not member.city",
        "member.points_balance == 120 and member.points_balance.to_str == '120'",
        "order.quantity == 3 and order.amount == 100",
        "[i for i in order.items if i.category == null]",
    ):
        assert rule_matches(rule, ctx), rule


def test_only_the_facts_a_rule_names_are_read():
    assert facts_named(["member.country == 'GB'", "", None]) == set()
    assert facts_named(["member.spend_30d > 1", "member.tier.code == 'x'"]) == {"spend", "standing"}
    assert facts_named(["member.orders_count == 1 or member.points_balance > 0"]) == {"spend", "standing"}
    assert facts_named(["'a' in member.segments and [e for e in events]", "not redemptions"]) == {
        "segments",
        "events",
        "redemptions",
    }
    assert facts_named(["event.name == 'x'"]) == set()  # `event` is given, `events` is a query
    assert facts_named(None) == FACTS


@time_machine.travel(NOW, tick=False)
def test_each_named_fact_costs_its_queries_and_nothing_else(tenant, django_assert_num_queries):
    member = MemberFactory(tenant=tenant)
    ProgramFactory(tenant=tenant)
    Segment.objects.create(tenant=tenant, code="vips", name="VIPs", kind="static")
    Segment.objects.create(tenant=tenant, code="brits", name="Brits", criteria={"country": ["GB"]})
    order = order_context(amount="10.00")
    loader_calls = []

    def loader():
        loader_calls.append(1)
        return []

    for rules, queries in [
        (["member.country == 'GB' and order.amount > 1 and now.hour > 1"], 0),
        (["member.lifetime_spend > 1", "member.spend_30d > 1 and member.orders_count > 1"], 1),
        (["member.tier.rank > 1 and member.points_balance > 1"], 1),
        (["'vips' in member.segments"], 2),  # the segments, then one row of EXISTS for the dynamic one
        (["[e for e in events]"], 1),
        (["redemptions"], 0),  # the caller's loader (its one query is the caller's)
        ([" ".join(["member.spend_30d member.tier member.segments events redemptions"] * 20)], 5),
    ]:
        with django_assert_num_queries(queries):
            build_rule_context(member=member, tz=tenant.tz, now=NOW, rules=rules, order=order, redemptions=loader)
    assert len(loader_calls) == 2
    with django_assert_num_queries(0):  # the earning path holds the standing under its account lock
        ctx = build_rule_context(
            member=member, tz=tenant.tz, now=NOW, rules=["member.tier"], standing=Standing(None, 7), order=order
        )
    assert ctx["member"]["points_balance"] == 7


# The same rule text, for the same member and order, as an earning rule and as a campaign rule.


def _verdicts(tenant, member, rules, order_id="o-new"):
    """{rule: (earns through the earning service, valid through the redemption engine)} for one order."""
    program = Program.objects.get(tenant=tenant)
    codes = {}
    for n, rule in enumerate(rules):
        EarningRuleFactory(program=program, code=f"r{n}", rule=rule)
        codes[rule] = CodeFactory(campaign__tenant=tenant, campaign__rule=rule).code
    order = {"order_id": order_id, "amount": "100.00", "currency": tenant.currency, "items": ITEMS}
    campaign = {}
    for rule, code in codes.items():  # validation writes nothing: before the order is recorded, like a checkout
        body = validate(tenant=tenant, member=member, order=order, codes=[code]).as_dict()
        assert body["valid"] or body["codes"][0]["reason"] == "rule_not_met", body
        campaign[rule] = body["valid"]
    order_checkout(tenant=tenant, member=member, **order)
    earned = set(LedgerEntry.objects.filter(order_id=order_id, kind="earn").values_list("rule_code", flat=True))
    return {rule: (f"r{n}" in earned, campaign[rule]) for n, rule in enumerate(rules)}


def _assert_same_verdicts(tenant, member, expected: dict[str, bool]):
    got = _verdicts(tenant, member, list(expected))
    assert got == {rule: (verdict, verdict) for rule, verdict in expected.items()}


def test_a_dynamic_segment_means_the_same_to_earning_and_campaign_rules(tenant):
    ProgramFactory(tenant=tenant)
    member = MemberFactory(tenant=tenant, country="GB")
    listed = Segment.objects.create(tenant=tenant, code="listed", name="Listed", kind="static")
    SegmentMember.objects.create(segment=listed, member=member)
    Segment.objects.create(tenant=tenant, code="brits", name="Brits", criteria={"country": ["GB"]})
    Segment.objects.create(tenant=tenant, code="french", name="French", criteria={"country": ["FR"]})
    _assert_same_verdicts(
        tenant,
        member,
        {
            "'brits' in member.segments": True,
            "'listed' in member.segments and 'brits' in member.segments": True,
            "'french' in member.segments": False,
            "member.segments.length == 2": True,
        },
    )


@time_machine.travel(dt.datetime(2026, 11, 27, 2, 30, tzinfo=dt.UTC), tick=False)
def test_now_is_the_shops_time_for_earning_and_campaign_rules(tenant):
    # 02:30 UTC on Friday the 27th is 21:30 on Thursday the 26th in New York.
    tenant.time_zone = "America/New_York"
    tenant.save()
    ProgramFactory(tenant=tenant)
    member = MemberFactory(tenant=tenant)
    _assert_same_verdicts(
        tenant,
        member,
        {
            "now.hour == 21 and now.minute == 30": True,
            "now.hour >= 18": True,
            "now.hour == 2": False,
            "now.day == 26 and now.weekday == 'Thursday'": True,
            "now >= d'2026-11-27'": False,  # a date literal is the shop's midnight too, not UTC's
            "now >= d'2026-11-26 21:00:00'": True,
        },
    )


@time_machine.travel(NOW, tick=False)
def test_orders_count_tier_rank_and_points_compare_with_integer_literals_in_both(tenant):
    program = ProgramFactory(tenant=tenant)
    member = MemberFactory(tenant=tenant)
    points_adjust(points=150, reason="welcome", staff_user=UserFactory(), member=member, program=program)
    MemberTier.objects.create(
        tenant=tenant, member=member, program=program, tier=TierFactory(program=program, code="silver", rank=2)
    )
    for days in (5, 50, 500):
        _order(tenant, member, f"past-{days}", days)
    _assert_same_verdicts(
        tenant,
        member,
        {
            "member.orders_count == 3": True,
            "member.orders_count == 4": False,  # the order being recorded is not counted yet
            "member.orders_count.to_str == '3' and member.tier.rank.to_str == '2'": True,
            "member.tier.rank == 2 and member.tier.code == 'silver'": True,
            "member.tier.rank in [2, 3]": True,
            "member.tier.rank > 2": False,
            "member.points_balance == 150": True,
            "member.spend_365d == 200 and member.lifetime_spend == 300.00": True,
        },
    )


@time_machine.travel(NOW, tick=False)
def test_events_are_the_same_window_for_earning_and_campaign_rules(tenant):
    tenant.time_zone = "America/New_York"
    tenant.save()
    ProgramFactory(tenant=tenant)
    member = MemberFactory(tenant=tenant)
    for days in (1, 20, 300):
        CustomEvent.objects.create(
            tenant=tenant, member=member, name="review_written", occurred_at=NOW - dt.timedelta(days=days)
        )
    CustomEvent.objects.create(tenant=tenant, member=member, name="signup", occurred_at=NOW - dt.timedelta(days=450))
    _assert_same_verdicts(
        tenant,
        member,
        {
            "[e for e in events if e.name == 'review_written'].length == 3": True,
            "[e for e in events if e.name == 'signup']": False,  # older than the 400 days of history
            "events[0].occurred_at.hour == 7": True,  # 12:00 UTC is 07:00 in New York
            "[e for e in events if e.occurred_at > now - t'P30D']": True,
        },
    )


def test_a_member_without_a_country_means_the_same_to_earning_and_campaign_rules(tenant):
    ProgramFactory(tenant=tenant)
    member = MemberFactory(tenant=tenant, country="", city="")
    _assert_same_verdicts(
        tenant,
        member,
        {
            "member.country == null": True,
            "not member.country": True,
            "member.country != 'GB'": True,
            "member.country == ''": False,  # missing is null, never an empty text
            "member.country in ['GB', 'FR']": False,
            "member.city == null and [i for i in order.items if i.category == null]": True,
        },
    )


def test_a_segment_rule_in_validation(tenant):
    member = EngineMemberFactory(tenant=tenant, country="GB")
    Segment.objects.create(tenant=tenant, code="brits", name="Brits", criteria={"country": ["GB"]})
    code = CodeFactory(campaign__tenant=tenant, campaign__rule="'brits' in member.segments")
    assert validate(tenant=tenant, member=member, order={"amount": "10"}, codes=[code.code]).valid
    other = EngineMemberFactory(tenant=tenant, country="DE")
    body = validate(tenant=tenant, member=other, order={"amount": "10"}, codes=[code.code]).as_dict()
    assert body["codes"][0]["reason"] == "rule_not_met"
