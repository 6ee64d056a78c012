import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.test import RequestFactory

from config.demo import ROLE_USERS, load_demo
from loyalty.models import LedgerEntry, Order
from members.admin_tenancy import tenants_for_user
from members.models import Member, Tenant
from rewards.models import ReferralGrant


@pytest.mark.django_db
def test_demo_loader_is_idempotent():
    first = load_demo(member_count=25)
    counts_after_first = dict(first.counts)
    assert counts_after_first["members"] == 25
    assert counts_after_first["orders"] >= 25
    assert counts_after_first["campaigns"] == 6
    second = load_demo(member_count=25)
    assert Tenant.objects.filter(slug="demo").count() == 1
    assert second.counts == counts_after_first
    assert get_user_model().objects.filter(username__in=ROLE_USERS).count() == len(ROLE_USERS)


@pytest.mark.django_db
def test_demo_logins_work_and_are_scoped_to_the_demo_tenant():
    logins = load_demo(member_count=3)
    for username, role in ROLE_USERS.items():
        user = authenticate(
            RequestFactory().post("/admin/login/"), username=username, password=logins.passwords[username]
        )
        assert user is not None, username
        assert user.groups.get().name == role
        assert list(tenants_for_user(user)) == [logins.tenant]


@pytest.mark.django_db
def test_load_demo_command_prints_the_logins(capsys):
    call_command("load_demo", members=3, address="127.0.0.1:8801")
    out = capsys.readouterr().out
    assert "Admin: http://127.0.0.1:8801/admin/" in out and "http://127.0.0.1:8801/api/v1/docs" in out
    api_key = out.strip().splitlines()[-1]
    from integrations.models import IntegrationAPIKey

    assert IntegrationAPIKey.objects.is_valid(api_key)
    assert "Demo tenant: Demo Outfitters (demo)" in out
    for username in ROLE_USERS:
        assert f"login {username}" in out


@pytest.mark.django_db
def test_demo_orders_go_through_the_checkout_and_reward_referrers():
    """The demo records its orders with `order_checkout`: a referred member's first order reaching the
    referral campaign's minimum rewards the referrer once, as `POST /api/v1/orders` does."""
    logins = load_demo(member_count=60)
    tenant = logins.tenant
    referred = list(Member.objects.for_tenant(tenant).filter(referred_by__isnull=False))
    assert referred
    first_orders = {o.member_id: o for o in Order.objects.for_tenant(tenant).filter(order_id__endswith="-o1")}
    expected = {m.pk for m in referred if first_orders[m.pk].amount >= 30}
    assert expected  # the demo shows referral rewards
    grants = list(ReferralGrant.objects.filter(tenant=tenant).select_related("referred"))
    assert {g.referred_id for g in grants} == expected
    for grant in grants:
        assert grant.referrer_id == grant.referred.referred_by_id and grant.points == 300
        assert grant.order_id == f"{grant.referred.external_id}-o1"
        assert LedgerEntry.objects.filter(pk=grant.points_entry_id, account__member_id=grant.referrer_id).exists()
    load_demo(member_count=60)  # loaded again: the orders are replays, nobody is rewarded twice
    assert ReferralGrant.objects.filter(tenant=tenant).count() == len(grants)


@pytest.mark.django_db
def test_the_demo_support_agent_may_give_apology_coupons_of_the_welcome_campaign():
    from campaigns.selectors import campaigns_usable_by

    logins = load_demo(member_count=3)
    support = get_user_model().objects.get(username="support")
    assert [c.name for c in campaigns_usable_by(support, logins.tenant)] == ["Welcome 10"]
