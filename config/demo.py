"""The demo tenant behind `make demo`: deterministic, and safe to load any number of times.

Everything goes through the same services the admin and the API use, so the demo also shows that a
whole program can be set up from the public surface. Passwords and the demo API key are renewed on each
load (only a hash of a key is ever stored, so an old one cannot be shown again).
"""

import datetime as dt
import random
import secrets
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm

from campaigns.models import Campaign
from campaigns.services import campaign_create, publication_create
from integrations.keys import api_key_create, api_key_revoke, integration_get_or_create
from integrations.models import IntegrationAPIKey
from loyalty.models import Order
from loyalty.services.program import program_declare
from members.admin_tenancy import ACCESS_TENANT
from members.models import Member, Tenant
from members.services import member_upsert, tenant_create
from rewards.models import Reward
from rewards.services.checkout import order_checkout

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
    "expiry": {"policy": "rolling_quarter", "years": 2},
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
FIRST_NAMES = ["Ada", "Ben", "Chloe", "Dev", "Elif", "Finn", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Luca"]
LAST_NAMES = ["Lovelace", "Novak", "Schmidt", "Rossi", "Dubois", "Kowalski", "Okafor", "Larsen", "Garcia", "Yilmaz"]
COUNTRIES = ["DE", "DE", "DE", "AT", "GB", "FR", "NL"]
CATALOG = [
    ("Apparel", "TSHIRT", Decimal("25.00")),
    ("Apparel", "HOODIE", Decimal("59.00")),
    ("Shoes", "SNEAKER", Decimal("89.00")),
    ("Accessories", "CAP", Decimal("19.00")),
    ("Accessories", "SOCKS", Decimal("9.00")),
]


def _campaigns(now: dt.datetime) -> list[dict]:
    starts, ends = (now - dt.timedelta(days=30)).isoformat(), (now + dt.timedelta(days=180)).isoformat()
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
            "starts_at": starts,
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
            "starts_at": starts,
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
            "starts_at": starts,
            "ends_at": (now + dt.timedelta(days=365)).isoformat(),
        },
        {
            "name": "Club reward 5 EUR",
            "type": "loyalty_reward",
            "discount": {"type": "amount", "value": "5.00"},
            "starts_at": starts,
            "ends_at": (now + dt.timedelta(days=365)).isoformat(),
            "stacking": {"category": "loyalty", "combinable_with": ["seasonal", "gift_card", "promotion"]},
            "codes": {"count": 100, "pattern": "CLUB-????-????"},
        },
    ]


def _ensure_members(tenant: Tenant, rng: random.Random, count: int) -> list[Member]:
    members = []
    for n in range(1, count + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        fields = {
            "email": f"{first.lower()}.{last.lower()}.{n}@demo.example",
            "name": f"{first} {last}",
            "country": rng.choice(COUNTRIES),
            "city": rng.choice(["Berlin", "Hamburg", "Munich", "Vienna", "London", "Paris", "Utrecht"]),
            "marketing_consent": rng.random() < 0.6,
            "attributes": {"vip": rng.random() < 0.05},
        }
        external_id = f"demo-{n:04d}"
        if n > 10 and rng.random() < 0.1:
            fields["referred_by"] = f"demo-{rng.randint(1, n - 1):04d}"
        member, _ = member_upsert(tenant=tenant, external_id=external_id, **fields)
        members.append(member)
    return members


def _ensure_orders(tenant: Tenant, members: list[Member], rng: random.Random, now: dt.datetime) -> None:
    """Paid orders through the one checkout service: a referred member's first order rewards the referrer."""
    for member in members:
        for k in range(rng.randint(1, 5)):
            items = []
            for category, sku, price in rng.sample(CATALOG, rng.randint(1, 3)):
                items.append(
                    {"sku": sku, "category": category, "quantity": rng.randint(1, 2), "unit_price": str(price)}
                )
            amount = sum(Decimal(i["unit_price"]) * i["quantity"] for i in items)
            order_checkout(
                tenant=tenant,
                member=member,
                order_id=f"{member.external_id}-o{k + 1}",
                amount=amount,
                currency=tenant.currency,
                items=items,
                location=rng.choice(["web", "berlin-01", "hamburg-02"]),
                occurred_at=now - dt.timedelta(days=rng.randint(0, 420), hours=rng.randint(0, 23)),
            )


def _ensure_campaigns(tenant: Tenant, members: list[Member], now: dt.datetime) -> None:
    # The demo marketer owns them: a marketer reaches the campaigns they own or were granted.
    marketer = get_user_model().objects.filter(username="marketer").first()
    for data in _campaigns(now):
        if not Campaign.objects.for_tenant(tenant).filter(name=data["name"]).exists():
            campaign_create(tenant=tenant, data=data, user=marketer)
    spring = Campaign.objects.for_tenant(tenant).get(name="Spring 15")
    for member in members[:20]:
        publication_create(tenant=tenant, campaign=spring, member=member, channel="email")
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


APOLOGY_CAMPAIGNS = ("Welcome 10",)


def _grant_apology_campaigns(tenant: Tenant) -> None:
    """Support may give codes of these campaigns as apology coupons (the per-campaign right)."""
    User = get_user_model()
    for username in ("support", "lead"):
        user = User.objects.get(username=username)
        for campaign in Campaign.objects.for_tenant(tenant).filter(name__in=APOLOGY_CAMPAIGNS):
            assign_perm("campaigns.use_campaign", user, campaign)


def load_demo(*, member_count: int = MEMBER_COUNT) -> DemoLogins:
    rng = random.Random(20261126)  # the same demo every time
    now = timezone.now()
    tenant, _ = tenant_create(**DEMO_TENANT)
    logins = DemoLogins(tenant=tenant)
    logins.passwords = _ensure_staff(tenant)
    program_declare(tenant=tenant, code="club", document=PROGRAM)
    members = _ensure_members(tenant, rng, member_count)
    _ensure_campaigns(tenant, members, now)  # before the orders: the referral campaign rewards first orders
    _grant_apology_campaigns(tenant)
    _ensure_orders(tenant, members, rng, now)
    logins.api_key = _renew_api_key(tenant)
    logins.counts = {
        "members": Member.objects.for_tenant(tenant).count(),
        "orders": Order.objects.for_tenant(tenant).count(),
        "campaigns": Campaign.objects.for_tenant(tenant).count(),
        "rewards": Reward.objects.for_tenant(tenant).count(),
    }
    return logins
