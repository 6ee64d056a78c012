import datetime as dt
from collections import Counter
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.db.models import Sum
from django.test import Client, RequestFactory
from django.utils import timezone

from campaigns.models import Campaign, Code, Publication
from config.demo import ROLE_USERS, load_demo
from loyalty.ledger.jobs import ledger_reconcile
from loyalty.models import LedgerEntry, Order, OrderReturn, PointLot, TierChange
from members.admin_tenancy import tenants_for_user
from members.models import CustomEvent, Member, Segment, Tenant
from reports.models import DailyOrders, DailyPoints
from reports.rollups import rollups_recheck
from rewards.models import EvaluationTrace, GiftCardTransaction, Redemption, ReferralGrant, RewardPurchase

# The loads are pinned to one time, so the planned calendar (a December peak, a summer) is the same each run.
DEMO_NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)


def _snapshot(tenant) -> dict[str, int]:
    """How many rows of each kind the demo wrote: a second load must leave every figure as it was."""
    return {
        "members": Member.objects.for_tenant(tenant).count(),
        "orders": Order.objects.for_tenant(tenant).count(),
        "returns": OrderReturn.objects.filter(order__tenant=tenant).count(),
        "entries": LedgerEntry.objects.filter(tenant=tenant).count(),
        "points": LedgerEntry.objects.filter(tenant=tenant).aggregate(s=Sum("points"))["s"],
        "redemptions": Redemption.objects.filter(tenant_id=tenant.pk).count(),
        "rollbacks": Redemption.objects.filter(tenant_id=tenant.pk, status="rolled_back").count(),
        "traces": EvaluationTrace.objects.filter(tenant=tenant).count(),
        "events": CustomEvent.objects.filter(tenant=tenant).count(),
        "publications": Publication.objects.filter(campaign__tenant=tenant).count(),
        "tier_changes": TierChange.objects.filter(tenant=tenant).count(),
        "gift_card_moves": GiftCardTransaction.objects.filter(tenant_id=tenant.pk).count(),
        "purchases": RewardPurchase.objects.filter(tenant=tenant).count(),
        "campaigns": Campaign.objects.for_tenant(tenant).count(),
        "daily_orders": DailyOrders.objects.filter(tenant_id=tenant.pk).aggregate(s=Sum("orders"))["s"],
    }


@pytest.mark.django_db
@time_machine.travel(DEMO_NOW, tick=False)
def test_loading_the_demo_twice_adds_nothing_the_second_time():
    first = load_demo(member_count=25, months=18)
    before = _snapshot(first.tenant)
    assert before["members"] == 25 and before["orders"] > 100 and before["campaigns"] == 9
    second = load_demo(member_count=25, months=18)
    assert Tenant.objects.filter(slug="demo").count() == 1
    assert second.counts == first.counts
    assert _snapshot(second.tenant) == before
    assert get_user_model().objects.filter(username__in=ROLE_USERS).count() == len(ROLE_USERS)


@pytest.mark.django_db
def test_a_load_days_later_plans_the_same_past_and_adds_nothing():
    """The history ends where the first load found the clock, so a later load finds every step done."""
    with time_machine.travel(DEMO_NOW, tick=False):
        tenant = load_demo(member_count=12, months=6).tenant
    before = _snapshot(tenant)
    with time_machine.travel(DEMO_NOW + dt.timedelta(days=9), tick=False):
        load_demo(member_count=12, months=6)
    assert _snapshot(tenant) == before


@pytest.mark.django_db
@time_machine.travel(DEMO_NOW, tick=False)
def test_the_demo_history_shows_a_believable_past_and_reconciles():
    """18 months through the services: seasonal orders, redemptions (some rolled back), refusals for several
    reasons, returns, earned, spent, expired and expiring points, tier moves both ways, events, segments,
    apology codes, gift cards partly spent; the ledger and the rollups check clean."""
    tenant = load_demo(member_count=40, months=18).tenant
    now = timezone.now()
    orders = Order.objects.for_tenant(tenant)
    months = Counter(at.astimezone(tenant.tz).strftime("%Y-%m") for at in orders.values_list("occurred_at", flat=True))
    assert len(months) >= 17  # spread over the whole window
    assert months["2025-12"] > max(months["2025-07"], months["2025-08"]) * 2  # the December peak
    assert months["2026-12"] <= months["2026-11"]  # nothing after the load's own time
    assert orders.filter(occurred_at__gt=now).count() == 0
    per_member = Counter(orders.values_list("member_id", flat=True))
    assert max(per_member.values()) >= 20 and min(per_member.values()) == 1  # loyal and one-off members

    assert Redemption.objects.filter(tenant_id=tenant.pk, status="succeeded").count() >= 20
    assert Redemption.objects.filter(tenant_id=tenant.pk, status="rolled_back").exists()
    reasons = {
        r
        for rs in EvaluationTrace.objects.filter(tenant=tenant, succeeded=False).values_list("reasons", flat=True)
        for r in rs
    }
    assert {"code_expired", "rule_not_met", "campaign_ended", "code_not_found"} <= reasons
    assert OrderReturn.objects.filter(order__tenant=tenant).count() >= 5

    kinds = set(LedgerEntry.objects.filter(tenant=tenant).values_list("kind", flat=True))
    assert {"earn", "redeem", "expire", "reverse"} <= kinds
    expire_days = set(
        LedgerEntry.objects.filter(tenant=tenant, kind="expire").values_list("created_at__date", flat=True)
    )
    assert len(expire_days) >= 2  # expired at different dates
    live = PointLot.objects.filter(account__tenant=tenant, remaining__gt=0)
    assert live.filter(expires_at__lt=now + dt.timedelta(days=90)).exists()  # expiring soon
    assert live.filter(expires_at__gt=now + dt.timedelta(days=180)).exists()  # and later

    reasons = set(TierChange.objects.filter(tenant=tenant).values_list("reason", flat=True))
    assert {"upgrade", "downgrade"} <= reasons
    assert set(CustomEvent.objects.filter(tenant=tenant).values_list("name", flat=True)) == {
        "newsletter_subscribed",
        "social_liked",
    }
    assert Segment.objects.filter(tenant=tenant).count() == 4
    assert Publication.objects.filter(campaign__name="Apology 10 EUR", channel="support").exists()
    gift_cards = Code.objects.filter(campaign__tenant=tenant, campaign__type="gift_card", member__isnull=False)
    assert any(Decimal("0") < c.balance < c.initial_balance for c in gift_cards)  # partly spent
    assert ReferralGrant.objects.filter(tenant=tenant).exists()

    assert ledger_reconcile(tenant=tenant) == []
    # Folded at once: the rollups hold every order, entry and redemption, and the re-check finds no drift.
    assert DailyOrders.objects.filter(tenant_id=tenant.pk).aggregate(s=Sum("orders"))["s"] == orders.count()
    assert (
        DailyPoints.objects.filter(tenant_id=tenant.pk).aggregate(s=Sum("points"))["s"]
        == (LedgerEntry.objects.filter(tenant=tenant).aggregate(s=Sum("points"))["s"])
    )
    assert rollups_recheck(days=800) == 0


@pytest.mark.django_db
def test_demo_logins_work_and_are_scoped_to_the_demo_tenant():
    logins = load_demo(member_count=3, months=2)
    for username, role in ROLE_USERS.items():
        user = authenticate(
            RequestFactory().post("/admin/login/"), username=username, password=logins.passwords[username]
        )
        assert user is not None, username
        assert user.groups.get().name == role
        assert list(tenants_for_user(user)) == [logins.tenant]


@pytest.mark.django_db
def test_load_demo_command_prints_the_logins(capsys):
    call_command("load_demo", members=3, months=2, address="127.0.0.1:8801")
    out = capsys.readouterr().out
    assert "Admin: http://127.0.0.1:8801/admin/" in out and "http://127.0.0.1:8801/api/v1/docs" in out
    lines = out.strip().splitlines()
    api_key = lines[lines.index("Demo API key (header 'Authorization: Api-Key <key>'):") + 1]
    from integrations.models import IntegrationAPIKey

    assert IntegrationAPIKey.objects.is_valid(api_key)
    assert "Demo tenant: Demo Outfitters (demo)" in out
    for username in ROLE_USERS:
        assert f"login {username}" in out
    # The printed cockpit link signs its member in (once), and the calculator's address answers.
    link = next(line for line in lines if "signed in as" in line).split(": ", 1)[1]
    assert link.startswith("http://127.0.0.1:8801/cockpit/demo/sign-in/")
    client = Client()
    assert client.get(link.removeprefix("http://127.0.0.1:8801")).headers["Location"] == "/cockpit/demo/"
    assert client.get("/cockpit/demo/").status_code == 200
    calculator = next(line for line in lines if line.startswith("Reward calculator")).split(": ", 1)[1]
    assert calculator == "http://127.0.0.1:8801/cockpit/demo/calculator"
    assert Client().get("/cockpit/demo/calculator").status_code == 200


@pytest.mark.django_db
def test_demo_orders_go_through_the_checkout_and_reward_referrers():
    """The demo records its orders with `order_checkout`: a referred member's first order reaching the
    referral campaign's minimum rewards the referrer once, as `POST /api/v1/orders` does."""
    logins = load_demo(member_count=60, months=6)
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
    load_demo(member_count=60, months=6)  # loaded again: the orders are replays, nobody is rewarded twice
    assert ReferralGrant.objects.filter(tenant=tenant).count() == len(grants)


@pytest.mark.django_db
def test_the_demo_support_agent_may_give_apology_coupons_of_the_welcome_and_apology_campaigns():
    from campaigns.selectors import campaigns_usable_by

    logins = load_demo(member_count=3, months=2)
    support = get_user_model().objects.get(username="support")
    assert sorted(c.name for c in campaigns_usable_by(support, logins.tenant)) == ["Apology 10 EUR", "Welcome 10"]
