"""Support sets a tier by hand; a protection date holds off downgrades, not upgrades."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from common.errors import ApplicationError
from loyalty.models import MemberTier, TierChange
from loyalty.services.tiers import tier_assign, tier_evaluate
from rewards.services.checkout import order_checkout
from tests.factories import TierFactory, UserFactory, earning_setup
from tests.rewards.test_member_story import agent_of

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


@pytest.fixture
def club(tenant):
    program, _rule, member = earning_setup(tenant)
    tiers = {
        code: TierFactory(program=program, code=code, name=code.title(), threshold=threshold)
        for code, threshold in (("basic", 0), ("silver", 100), ("gold", 1000))
    }
    return program, member, tiers


@time_machine.travel(START, tick=False)
def test_a_protected_tier_is_not_downgraded_before_its_date(club):
    _program, member, tiers = club
    agent = UserFactory()
    status = tier_assign(
        member=member,
        tier=tiers["gold"],
        reason="VIP complaint",
        staff_user=agent,
        protected_until=START + dt.timedelta(days=30),
    )
    assert status.tier == tiers["gold"]
    change = TierChange.objects.get()
    assert (change.reason, change.staff_user) == ("manual: VIP complaint", agent)
    assert tier_evaluate(member=member, now=START + dt.timedelta(days=10)) == tiers["gold"]  # 0 points, protected
    assert tier_evaluate(member=member, now=START + dt.timedelta(days=31)) == tiers["basic"]  # protection over
    assert TierChange.objects.count() == 2


@time_machine.travel(START, tick=False)
def test_without_protection_the_next_evaluation_may_downgrade_and_upgrades_always_apply(club):
    _program, member, tiers = club
    tier_assign(member=member, tier=tiers["silver"], reason="goodwill", staff_user=None)
    assert tier_evaluate(member=member) == tiers["basic"]
    tier_assign(
        member=member,
        tier=tiers["silver"],
        reason="goodwill",
        staff_user=None,
        protected_until=START + dt.timedelta(days=30),
    )
    order_checkout(tenant=member.tenant, member=member, order_id="big", amount="1500.00", currency="EUR")
    assert MemberTier.objects.get(member=member).tier == tiers["gold"]


def test_a_protection_in_the_past_or_no_reason_is_refused(club):
    _program, member, tiers = club
    with pytest.raises(ApplicationError) as refused:
        tier_assign(
            member=member,
            tier=tiers["gold"],
            reason=" ",
            staff_user=None,
            protected_until=timezone.now() - dt.timedelta(days=1),
        )
    assert set(refused.value.details) == {"reason", "protected_until"}
    assert not TierChange.objects.exists()


def test_an_agent_sets_the_tier_from_the_member_story_and_an_analyst_cannot(client, tenant, club):
    _program, member, tiers = club
    agent = agent_of(tenant)
    client.force_login(agent)
    url = reverse("admin:members_member_tier", args=[member.pk])
    done = client.post(
        url, {"tier": tiers["silver"].pk, "reason": "lost receipts", "protected_until": "2099-01-01T00:00"}
    )
    assert done.status_code == 302, done.content
    status = MemberTier.objects.get(member=member)
    assert status.tier == tiers["silver"] and status.protected_until.year == 2099
    story = client.get(reverse("admin:members_member_story", args=[member.pk])).content.decode()
    assert "Protected from downgrades until" in story and f"by {agent.username}" in story
    client.force_login(agent_of(tenant, role="Analyst"))
    assert client.post(url, {"tier": tiers["gold"].pk, "reason": "x"}).status_code == 403
    assert MemberTier.objects.get(member=member).tier == tiers["silver"]
