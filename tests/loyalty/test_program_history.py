"""A program's tiers and earning rules put back to an earlier version through the admin (program_declare)."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from guardian.shortcuts import assign_perm

from loyalty.models import EarningRule, Program, Tier
from loyalty.services.program import program_declare
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def document(*, gold_threshold: int, rule_points: int, with_silver: bool = True) -> dict:
    tiers = [{"code": "base", "name": "Base", "threshold": 0, "multiplier": "1"}]
    if with_silver:
        tiers.append({"code": "silver", "name": "Silver", "threshold": 500, "multiplier": "1.5"})
    tiers.append({"code": "gold", "name": "Gold", "threshold": gold_threshold, "multiplier": "2"})
    return {
        "name": "Club",
        "currency": "EUR",
        "expiry": {"policy": "never"},
        "tiers": tiers,
        "earning_rules": [{"code": "spend", "trigger": "order_paid", "points": rule_points}],
    }


def staff(role, tenant):
    user = UserFactory()
    user.groups.add(Group.objects.get(name=role))
    assign_perm("members.access_tenant", user, tenant)
    return user


def test_program_revert_restores_tiers_and_rules_of_that_version(client, tenant):
    program = program_declare(tenant=tenant, code="club", document=document(gold_threshold=1000, rule_points=5))
    first = program.history.latest()
    program_declare(
        tenant=tenant, code="club", document=document(gold_threshold=2000, rule_points=9, with_silver=False)
    )
    assert not Tier.objects.filter(code="silver").exists()
    admin = staff("Admin", tenant)
    client.force_login(admin)
    url = reverse("admin:loyalty_program_history_revert", args=[program.pk, first.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert client.post(url, {"reason": "gold too far"}).status_code == 302
    assert dict(Tier.objects.filter(program=program).values_list("code", "threshold")) == {
        "base": 0,
        "silver": 500,
        "gold": 1000,
    }
    assert EarningRule.objects.get(program=program).points == 5
    gold = Tier.objects.get(code="gold")
    assert gold.history.latest().history_user == admin and "gold too far" in gold.history.latest().history_change_reason


def test_one_tier_reverted_alone_and_refused_without_program_rights(client, tenant):
    program = program_declare(tenant=tenant, code="club", document=document(gold_threshold=1000, rule_points=5))
    gold = Tier.objects.get(code="gold")
    first = gold.history.latest()
    program_declare(tenant=tenant, code="club", document=document(gold_threshold=3000, rule_points=7))
    url = reverse("admin:loyalty_tier_history_revert", args=[gold.pk, first.pk])
    analyst = staff("Analyst", tenant)
    client.force_login(analyst)
    assert client.post(url, {"reason": "x"}).status_code == 403
    assert Tier.objects.get(code="gold").threshold == 3000
    client.force_login(staff("Admin", tenant))
    assert client.post(url, {"reason": "back"}).status_code == 302
    assert Tier.objects.get(code="gold").threshold == 1000
    assert Tier.objects.get(code="gold").multiplier == Decimal("2.000")
    assert EarningRule.objects.get(program=program).points == 7  # the rest of the declaration is as it was
    assert Program.objects.count() == 1


def test_earning_rule_revert_keeps_the_members_cap_usage(tenant):
    from loyalty.models import EarningCapUsage
    from loyalty.services.program import earning_rule_revert
    from tests.factories import MemberFactory

    program = program_declare(tenant=tenant, code="club", document=document(gold_threshold=1000, rule_points=5))
    rule = EarningRule.objects.get(program=program)
    first = rule.history.latest()
    program_declare(tenant=tenant, code="club", document=document(gold_threshold=1000, rule_points=9))
    member = MemberFactory(tenant=tenant)
    usage = EarningCapUsage.objects.create(
        tenant=tenant, rule=rule, member=member, period_start="2026-01-01", points=40
    )
    earning_rule_revert(rule=rule, history_id=first.pk, reason="too generous")
    assert EarningRule.objects.get(pk=rule.pk).points == 5
    usage.refresh_from_db()
    assert usage.points == 40
    assert "too generous" in EarningRule.history.filter(id=rule.pk).latest().history_change_reason
