"""Staff adjustments stay within the limits of the agent's role or their own, per adjustment and per day."""

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.urls import reverse
from guardian.shortcuts import assign_perm

from common.errors import ApplicationError
from loyalty import ledger
from loyalty.ledger.adjustments import points_adjust, staff_adjustment_limit
from loyalty.models import AdjustmentLimit, AdjustmentUsage, LedgerEntry
from tests.concurrency.test_ledger_concurrency import run_threads
from tests.factories import MemberFactory, ProgramFactory, UserFactory

pytestmark = pytest.mark.django_db


def agent(role="Support agent"):
    user = UserFactory()
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def member(tenant):
    ProgramFactory(tenant=tenant)
    return MemberFactory(tenant=tenant)


def test_the_support_role_has_a_default_limit_and_admins_none(member):
    limit = staff_adjustment_limit(agent())
    assert (limit.per_action, limit.per_day) == (500, 2000)
    assert staff_adjustment_limit(agent("Admin")) is None
    assert staff_adjustment_limit(UserFactory(is_superuser=True)) is None


@time_machine.travel("2026-03-02 10:00:00+00:00", tick=False)
def test_an_agent_is_refused_above_the_limit_per_adjustment_and_per_day(member):
    user = agent()
    with pytest.raises(ApplicationError) as refused:
        points_adjust(member=member, points=501, reason="goodwill", staff_user=user)
    assert refused.value.code == "adjustment_over_limit" and refused.value.status == 403
    for _ in range(4):
        points_adjust(member=member, points=-100 if _ == 3 else 500, reason="goodwill", staff_user=user)
    with pytest.raises(ApplicationError) as refused:  # 1,600 used: 500 more would pass 2,000
        points_adjust(member=member, points=401, reason="goodwill", staff_user=user)
    assert refused.value.details == {"per_day": 2000, "used": 1600}
    points_adjust(member=member, points=400, reason="goodwill", staff_user=user)  # exactly the limit
    assert LedgerEntry.objects.filter(staff_user=user).count() == 5
    assert ledger.account_for(member=member).balance == 1500 - 100 + 400
    with time_machine.travel("2026-03-03 09:00:00+00:00", tick=False):  # a new day
        points_adjust(member=member, points=500, reason="goodwill", staff_user=user)


def test_a_users_own_limit_replaces_their_roles(member):
    user = agent()
    AdjustmentLimit.objects.create(user=user, per_action=10, per_day=10)
    with pytest.raises(ApplicationError):
        points_adjust(member=member, points=11, reason="goodwill", staff_user=user)
    trusted = agent()
    AdjustmentLimit.objects.create(user=trusted, per_action=5000, per_day=5000)
    points_adjust(member=member, points=5000, reason="big fix", staff_user=trusted)


def test_a_refused_adjustment_changes_nothing(member):
    user = agent()
    with pytest.raises(ApplicationError):
        points_adjust(member=member, points=-501, reason="goodwill", staff_user=user)
    assert not LedgerEntry.objects.exists() and not AdjustmentUsage.objects.filter(points__gt=0).exists()


def test_the_admin_page_shows_the_limit_and_refuses_a_direct_post_above_it(client, tenant, member):
    user = agent()
    assign_perm("members.access_tenant", user, tenant)
    client.force_login(user)
    account = ledger.account_for(member=member)
    url = reverse("admin:loyalty_account_adjust", args=[account.pk])
    assert "500 points per adjustment, 2000 per day (0 used today)" in client.get(url).content.decode()
    page = client.post(url, {"points": 900, "reason": "goodwill"})
    assert page.status_code == 200 and "above your limit of 500" in page.content.decode()
    assert not LedgerEntry.objects.exists()
    story = reverse("admin:members_member_story", args=[member.pk])
    done = client.post(f"{url}?next={story}", {"points": 50, "reason": "goodwill"})
    assert done.status_code == 302 and done["Location"] == story
    outside = client.post(f"{url}?next=https://evil.example/", {"points": 5, "reason": "goodwill"})
    assert outside["Location"] == reverse("admin:loyalty_account_change", args=[account.pk])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_adjustments_never_pass_the_days_limit():
    from tests.factories import TenantFactory

    tenant = TenantFactory()
    ProgramFactory(tenant=tenant)
    members = [MemberFactory(tenant=tenant) for _ in range(20)]
    user = agent()
    AdjustmentLimit.objects.create(user=user, per_action=100, per_day=1000)

    def adjust(i):
        return points_adjust(member=members[i], points=100, reason="race", staff_user=user)

    outcomes, errors = run_threads(adjust, n=20)
    assert len(outcomes) == 10 and len(errors) == 10
    assert all(isinstance(e, ApplicationError) and e.code == "adjustment_over_limit" for e in errors)
    assert AdjustmentUsage.objects.get(user=user).points == 1000
    assert LedgerEntry.objects.filter(staff_user=user).count() == 10
