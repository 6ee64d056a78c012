"""Building the rule context for earning rules (the names of `loyalty.rules.SCHEMA`) in a fixed number of queries.

Spend figures are net of returns and do not include the order being recorded. `events` holds the member's
last 100 custom events; `redemptions` is empty here (the redemption engine fills it for campaign rules);
`member.segments` lists the member's static segment codes.
"""

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import Count, DecimalField, F, Q, Sum, Value
from django.db.models.functions import Coalesce

from loyalty.models import Order
from members.models import CustomEvent, Member, SegmentMember

RECENT_EVENTS = 100
_ZERO = Value(Decimal("0.00"), output_field=DecimalField(max_digits=14, decimal_places=2))


def spend_summary(member: Member, now: dt.datetime) -> dict[str, Any]:
    """Lifetime and 30/90/365-day net spend and order count: one aggregate query."""
    net = F("amount") - F("returned_amount")

    def window(days: int):
        return Coalesce(Sum(net, filter=Q(occurred_at__gte=now - dt.timedelta(days=days))), _ZERO)

    return Order.objects.filter(tenant_id=member.tenant_id, member=member).aggregate(
        lifetime_spend=Coalesce(Sum(net), _ZERO),
        spend_30d=window(30),
        spend_90d=window(90),
        spend_365d=window(365),
        orders_count=Count("pk"),
    )


def _as_datetime(day: dt.date | None) -> dt.datetime | None:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) if day else None


def _age(birth: dt.date | None, today: dt.date) -> float | None:
    if not birth:
        return None
    return float(today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day)))


SPEND_NAMES = ("lifetime_spend", "spend_30d", "spend_90d", "spend_365d", "orders_count")
_NO_SPEND = {name: Decimal("0.00") for name in SPEND_NAMES} | {"orders_count": 0}


def member_context(
    member: Member, *, tier, now: dt.datetime, points_balance: int = 0, rules_text: str | None = None
) -> dict[str, Any]:
    """The `member` object; with `rules_text`, figures no rule names are not queried (they cannot matter)."""
    wanted = (lambda *names: True) if rules_text is None else (lambda *names: any(n in rules_text for n in names))
    spend = spend_summary(member, now) if wanted(*SPEND_NAMES) else _NO_SPEND
    segments = (
        list(SegmentMember.objects.filter(member=member).values_list("segment__code", flat=True))
        if wanted("segments")
        else []
    )
    return {
        "external_id": member.external_id,
        "email": member.email,
        "name": member.name,
        "phone": member.phone,
        "country": member.country,
        "city": member.city,
        "birth_date": _as_datetime(member.birth_date),
        "age": _age(member.birth_date, now.date()),
        "attributes": member.attributes or {},
        "marketing_consent": member.marketing_consent,
        "tier": {"code": tier.code, "name": tier.name, "rank": float(tier.rank)} if tier else None,
        "segments": segments,
        "lifetime_spend": spend["lifetime_spend"],
        "spend_30d": spend["spend_30d"],
        "spend_90d": spend["spend_90d"],
        "spend_365d": spend["spend_365d"],
        "orders_count": float(spend["orders_count"]),
        "points_balance": float(points_balance),
        "created_at": member.created_at,
        "referral_code": member.referral_code,
    }


def order_context(
    *, order_id: str, amount: Decimal, currency: str, location: str, channel: str, items: list[dict]
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "amount": Decimal(amount),
        "currency": currency,
        "location": location,
        "channel": channel,
        "items": [
            {
                "sku": i.get("sku", ""),
                "category": i.get("category", ""),
                "quantity": Decimal(int(i.get("quantity", 1))),
                "unit_price": Decimal(str(i.get("unit_price", "0"))),
            }
            for i in items
        ],
        "quantity": Decimal(sum(int(i.get("quantity", 1)) for i in items)),
    }


def recent_events(member: Member) -> list[dict[str, Any]]:
    rows = CustomEvent.objects.filter(tenant_id=member.tenant_id, member=member).order_by("-occurred_at", "-pk")
    return [
        {"name": e.name, "metadata": e.metadata, "occurred_at": e.occurred_at}
        for e in rows.only("name", "metadata", "occurred_at")[:RECENT_EVENTS]
    ]


def build_rule_context(
    *,
    member: Member,
    tier,
    now: dt.datetime,
    points_balance: int = 0,
    order: dict[str, Any] | None = None,
    event: dict[str, Any] | None = None,
    rules_text: str | None = None,
) -> dict[str, Any]:
    """The whole context: member (with spend windows), order or event, recent events, now. At most three queries.

    `rules_text` (the text of the rules about to be evaluated) lets it skip the queries of names no rule uses.
    """
    return {
        "member": member_context(member, tier=tier, now=now, points_balance=points_balance, rules_text=rules_text),
        "order": order,
        "event": event,
        "events": recent_events(member) if rules_text is None or "events" in rules_text else [],
        "redemptions": [],
        "now": now,
    }
