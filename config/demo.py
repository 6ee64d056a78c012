"""The demo tenant behind `make demo`: deterministic, and safe to load any number of times.

Everything goes through the same services the admin and the API use, so the demo also shows that a
whole program can be set up from the public surface. Its past (18 months of orders, redemptions, returns,
expiry, tier moves: `config.demo_history`) is replayed through them with the clock at each step's date, and
the reports' rollups are folded at the end so the dashboard shows figures at once. Passwords and the demo API
key are renewed on each load (only a hash of a key is ever stored, so an old one cannot be shown again).
"""

import datetime as dt
import random
import secrets
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection, transaction
from guardian.shortcuts import assign_perm

from campaigns.models import Campaign
from campaigns.services import campaign_create
from config.demo_history import Replay, Window, history_campaigns, plan_history, plan_members
from integrations.keys import api_key_create, api_key_revoke, integration_get_or_create
from integrations.models import IntegrationAPIKey
from loyalty.models import Order, OrderReturn
from loyalty.services.program import program_declare
from members.admin_tenancy import ACCESS_TENANT
from members.models import Member, Tenant
from members.services import tenant_create
from reports.rollups import rollups_fold
from rewards.models import Redemption, Reward

DEMO_TENANT = {"slug": "demo", "name": "Demo Outfitters", "currency": "EUR", "time_zone": "Europe/Berlin"}
ROLE_USERS = {
    "admin": "Admin",
    "marketer": "Marketer",
    "junior": "Junior marketer",
    "support": "Support agent",
    "lead": "Support lead",
    "analyst": "Analyst",
}


@dataclass
class DemoLogins:
    tenant: Tenant
    passwords: dict[str, str] = field(default_factory=dict)
    api_key: str = ""
    counts: dict[str, int] = field(default_factory=dict)


def _ensure_staff(tenant: Tenant) -> dict[str, str]:
    User = get_user_model()
    passwords = {}
    for username, role in ROLE_USERS.items():
        password = secrets.token_urlsafe(9)
        with transaction.atomic():
            user, _ = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@demo.example", "is_staff": True}
            )
            user.is_staff = True
            user.is_superuser = username == "admin"
            user.set_password(password)
            user.save()
            user.groups.set([Group.objects.get(name=role)])
            if role != "Admin":
                assign_perm(ACCESS_TENANT, user, tenant)
        passwords[username] = password
    return passwords


PROGRAM = {
    "name": "Outfitters Club",
    "currency": "EUR",
    "points_name": "points",
    # One year to the quarter's end: within the 18 months of history some points expired, some expire soon.
    "expiry": {"policy": "rolling_quarter", "years": 1},
    "tiers": [
        {"code": "bronze", "name": "Bronze", "threshold": 0, "multiplier": "1.0"},
        {"code": "silver", "name": "Silver", "threshold": 1000, "multiplier": "1.5"},
        {
            "code": "gold",
            "name": "Gold",
            "threshold": 5000,
            "multiplier": "2.0",
            "expiry": {"policy": "days", "days": 1095},
        },
    ],
    "earning_rules": [
        {
            "code": "spend",
            "trigger": "order_paid",
            "points_per_unit": "1",
            "unit_amount": "1.00",
            "rule": "order.amount >= 10",
            "happy_hours": [{"weekdays": [5, 6], "from": "17:00", "to": "20:00", "multiplier": "2"}],
        },
        {
            "code": "newsletter",
            "trigger": "event",
            "event": "newsletter_subscribed",
            "points": 50,
            "cap": {"points": 50, "per": "lifetime"},
        },
        {
            "code": "social",
            "trigger": "event",
            "event": "social_liked",
            "points": 10,
            "cap": {"points": 100, "per": "month"},
        },
    ],
}

MEMBER_COUNT = 300
HISTORY_MONTHS = 18


def _campaigns(now: dt.datetime, since: dt.datetime) -> list[dict]:
    """Today's campaigns; those a shop keeps running (welcome, gift cards, referrals, club rewards) ran from
    the history's start `since`."""
    starts, ends = (now - dt.timedelta(days=30)).isoformat(), (now + dt.timedelta(days=180)).isoformat()
    always = since.isoformat()
    return [
        {
            "name": "Spring 15",
            "type": "discount",
            "discount": {"type": "percent", "value": "15", "max_amount": "30.00"},
            "starts_at": starts,
            "ends_at": ends,
            "rule": "order.amount >= 50",
            "limits": {"redemptions_total": 500, "redemptions_per_member": 1, "discount_total": "5000.00"},
            "stacking": {"category": "seasonal", "exclusive": False, "combinable_with": ["loyalty", "gift_card"]},
            "codes": {"count": 200, "pattern": "SPR-####-????"},
        },
        {
            "name": "Welcome 10",
            "type": "discount",
            "discount": {"type": "amount", "value": "10.00"},
            "starts_at": always,
            "ends_at": ends,
            "rule": "order.amount >= 40",
            "limits": {"redemptions_per_member": 1},
            "stacking": {"category": "welcome", "exclusive": True},
            "codes": {"code": "WELCOME10"},
        },
        {
            "name": "Gift card 50",
            "type": "gift_card",
            "gift_card": {"amount": "50.00"},
            "starts_at": always,
            "ends_at": (now + dt.timedelta(days=730)).isoformat(),
            "stacking": {"category": "gift_card", "combinable_with": ["seasonal", "loyalty", "promotion"]},
            "codes": {"count": 50, "pattern": "GC-????-????"},
        },
        {
            "name": "Free shipping over 75",
            "type": "promotion",
            "discount": {"type": "free_shipping", "value": "4.90", "min_order_amount": "75.00"},
            "starts_at": starts,
            "ends_at": ends,
            "stacking": {"category": "promotion", "combinable_with": ["seasonal", "gift_card", "loyalty"]},
        },
        {
            "name": "Refer a friend",
            "type": "referral",
            "referral": {"min_order_amount": "30.00", "points": 300},
            "starts_at": always,
            "ends_at": (now + dt.timedelta(days=365)).isoformat(),
        },
        {
            "name": "Club reward 5 EUR",
            "type": "loyalty_reward",
            "discount": {"type": "amount", "value": "5.00"},
            "starts_at": always,
            "ends_at": (now + dt.timedelta(days=365)).isoformat(),
            "stacking": {"category": "loyalty", "combinable_with": ["seasonal", "gift_card", "promotion"]},
            "codes": {"count": 100, "pattern": "CLUB-????-????"},
        },
    ]


def _ensure_campaigns(tenant: Tenant, window: Window) -> None:
    """Run at the history's start (the clock set there), so that the past could redeem them."""
    # The demo marketer owns them: a marketer reaches the campaigns they own or were granted.
    marketer = get_user_model().objects.filter(username="marketer").first()
    for data in _campaigns(window.end, window.start) + history_campaigns(window):
        if not Campaign.objects.for_tenant(tenant).filter(name=data["name"]).exists():
            campaign_create(tenant=tenant, data=data, user=marketer)
    _grant_apology_campaigns(tenant)
    club = Campaign.objects.for_tenant(tenant).get(name="Club reward 5 EUR")
    Reward.objects.get_or_create(
        tenant=tenant,
        name="5 EUR voucher",
        defaults={"type": Reward.Type.COUPON, "points_cost": 500, "campaign": club},
    )
    Reward.objects.get_or_create(
        tenant=tenant,
        name="Club tote bag",
        defaults={"type": Reward.Type.PRODUCT, "points_cost": 1500, "sku": "TOTE", "stock": 100},
    )


def _renew_api_key(tenant: Tenant) -> str:
    integration, _ = integration_get_or_create(tenant=tenant, name="demo-web-shop", description="Demo web shop")
    for old in IntegrationAPIKey.objects.filter(integration=integration, revoked=False):
        api_key_revoke(api_key=old)
    _, raw_key = api_key_create(integration=integration, name="demo")
    return raw_key


APOLOGY_CAMPAIGNS = ("Welcome 10", "Apology 10 EUR")


def _grant_apology_campaigns(tenant: Tenant) -> None:
    """Support may give codes of these campaigns as apology coupons (the per-campaign right)."""
    User = get_user_model()
    for username in ("support", "lead"):
        user = User.objects.get(username=username)
        for campaign in Campaign.objects.for_tenant(tenant).filter(name__in=APOLOGY_CAMPAIGNS):
            assign_perm("campaigns.use_campaign", user, campaign)


def _window(tenant: Tenant, months: int) -> Window:
    """The history ends where the first load found the clock (the tenant's creation, to the hour): a later
    load plans the very same past, so it finds every step done."""
    end = tenant.created_at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return Window(end=end, months=months)


def load_demo(*, member_count: int = MEMBER_COUNT, months: int = HISTORY_MONTHS) -> DemoLogins:
    """Load the demo tenant with `member_count` members and `months` of history (smaller in the tests)."""
    if connection.vendor == "sqlite" and not connection.in_atomic_block:
        # Thousands of small durable transactions: without a disk flush at each commit the load takes a
        # fraction of the time. Only this process's connection; an OS crash mid-load may need a fresh demo.
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous = OFF")
    tenant, _ = tenant_create(**DEMO_TENANT)
    logins = DemoLogins(tenant=tenant)
    logins.passwords = _ensure_staff(tenant)
    program_declare(tenant=tenant, code="club", document=PROGRAM)
    window = _window(tenant, months)
    rng = random.Random(20261126)  # the same demo every time
    members = plan_members(rng, member_count, window)
    steps = plan_history(rng, members, window)
    Replay(tenant, window, on_campaigns=lambda: _ensure_campaigns(tenant, window)).run(steps)
    rollups_fold(settle_seconds=0)  # the whole past was just written: the dashboard shows it at once
    logins.api_key = _renew_api_key(tenant)
    logins.counts = {
        "members": Member.objects.for_tenant(tenant).count(),
        "orders": Order.objects.for_tenant(tenant).count(),
        "campaigns": Campaign.objects.for_tenant(tenant).count(),
        "rewards": Reward.objects.for_tenant(tenant).count(),
        "redemptions": Redemption.objects.filter(tenant_id=tenant.pk).count(),
        "returns": OrderReturn.objects.filter(order__tenant=tenant).count(),
    }
    return logins
