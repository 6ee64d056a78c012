"""The rule context: member fields, attributes, tier, segments, spend windows, events, redemptions, time."""

import datetime as dt
from decimal import Decimal as D

import pytest
import time_machine

from campaigns.context import facts_needed, member_facts, rule_context
from loyalty.models import MemberTier, Order
from loyalty.rules import rule_matches
from members.models import CustomEvent, Segment, SegmentMember
from rewards.services.redemption import validate
from tests.factories import CodeFactory, EngineMemberFactory, ProgramFactory, TierFactory

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)


@time_machine.travel(NOW, tick=False)
def test_member_facts_feed_the_rule_language(tenant):
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
        Order.objects.create(
            tenant=tenant,
            member=member,
            order_id=f"o-{days}",
            amount=D(amount),
            currency="EUR",
            occurred_at=NOW - dt.timedelta(days=days),
        )
    CustomEvent.objects.create(tenant=tenant, member=member, name="review_written", occurred_at=NOW)

    facts = member_facts(member, now=NOW)
    ctx = rule_context(order={"amount": "80.00"}, now=NOW, tz=tenant.tz, facts=facts, redemptions=[])
    assert ctx["member"]["tier"] == {"code": "gold", "name": "Gold", "rank": 3}
    assert sorted(ctx["member"]["segments"]) == ["brits", "vips"]
    assert ctx["member"]["lifetime_spend"] == D("1300.00") and ctx["member"]["spend_30d"] == D("100.00")
    assert ctx["member"]["spend_90d"] == D("300.00") and ctx["member"]["orders_count"] == 3
    for rule, expected in [
        ("member.tier.code == 'gold' and 'vips' in member.segments", True),
        ("'french' in member.segments", False),
        ("member.spend_90d >= 300 and member.lifetime_spend > 1000", True),
        ("member.attributes['vip'] and member.country == 'GB'", True),
        ("[e for e in events if e.name == 'review_written']", True),
        ("now.hour == 13", True),  # the tenant's local time (Berlin, UTC+1)
    ]:
        assert rule_matches(rule, ctx) is expected, rule


def test_only_the_facts_a_rule_reads_are_loaded():
    assert facts_needed(["member.country == 'GB'", ""]) == set()
    assert facts_needed(["member.spend_30d > 1", "member.tier.code == 'x'"]) == {"spend", "tier"}
    assert facts_needed(["'a' in member.segments and [e for e in events]", "not redemptions"]) == {
        "segments",
        "events",
        "redemptions",
    }


def test_a_segment_rule_in_validation(tenant):
    member = EngineMemberFactory(tenant=tenant, country="GB")
    Segment.objects.create(tenant=tenant, code="brits", name="Brits", criteria={"country": ["GB"]})
    code = CodeFactory(campaign__tenant=tenant, campaign__rule="'brits' in member.segments")
    assert validate(tenant=tenant, member=member, order={"amount": "10"}, codes=[code.code]).valid
    other = EngineMemberFactory(tenant=tenant, country="DE")
    body = validate(tenant=tenant, member=other, order={"amount": "10"}, codes=[code.code]).as_dict()
    assert body["codes"][0]["reason"] == "rule_not_met"
