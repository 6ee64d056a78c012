"""What a validation rule sees: member, order, events, redemptions and the time.

`member_facts` loads everything about a member in a fixed number of queries (whatever the number of
rules), and `rule_context` assembles the dict the rule language reads (see `loyalty.rules.SCHEMA`).
Past redemptions belong to the rewards app, which passes them in (dependencies point one way).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.db.models import Count, Exists, F, OuterRef, Q, Sum
from django.utils import timezone

from members.models import CustomEvent, Member, Segment
from members.selectors import segment_members

EVENTS_LOOKBACK_DAYS = 400
EVENTS_MAX = 500
SPEND_WINDOWS = (30, 90, 365)


@dataclass
class MemberFacts:
    member: Member
    tier: dict[str, Any] | None = None
    segments: list[str] = field(default_factory=list)
    spend: dict[str, Decimal] = field(default_factory=dict)
    orders_count: int = 0
    points_balance: int | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


def _as_datetime(value) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)


def _model(app_label: str, name: str):
    try:
        return apps.get_model(app_label, name)
    except LookupError:
        return None


def _spend(member: Member, now: dt.datetime) -> tuple[dict[str, Decimal], int]:
    """Lifetime spend (net of returns), spend in the last 30/90/365 days and order count: one aggregate query."""
    model = _model("loyalty", "Order")
    if model is None:
        return {}, 0
    net = F("amount") - F("returned_amount")
    aggregates = {"lifetime_spend": Sum(net), "orders_count": Count("pk")}
    for days in SPEND_WINDOWS:
        aggregates[f"spend_{days}d"] = Sum(net, filter=Q(occurred_at__gte=now - dt.timedelta(days=days)))
    row = model.objects.filter(tenant_id=member.tenant_id, member=member).aggregate(**aggregates)
    count = row.pop("orders_count") or 0
    return {k: (v or Decimal("0")) for k, v in row.items()}, count


def _tier(member: Member) -> dict[str, Any] | None:
    """The member's best current tier over the tenant's programs (`loyalty.MemberTier`)."""
    model = _model("loyalty", "MemberTier")
    if model is None:
        return None
    row = (
        model.objects.filter(tenant_id=member.tenant_id, member=member, tier__isnull=False)
        .select_related("tier")
        .order_by("-tier__rank", "-tier__threshold")
        .first()
    )
    if row is None:
        return None
    return {"code": row.tier.code, "name": row.tier.name, "rank": row.tier.rank}


def _segments(member: Member) -> list[str]:
    """Codes of the segments (static and dynamic) the member is in: two queries whatever their number."""

    segments = list(Segment.objects.for_tenant(member.tenant_id).order_by("code"))
    if not segments:
        return []
    flags = {f"in_{seg.pk}": Exists(segment_members(seg).filter(pk=OuterRef("pk")).values("pk")) for seg in segments}
    row = Member.objects.filter(pk=member.pk).annotate(**flags).values(*flags).first() or {}
    return [seg.code for seg in segments if row.get(f"in_{seg.pk}")]


FACTS = ("spend", "tier", "segments", "events", "redemptions")
_NEEDS = {
    "spend": re.compile(r"\b(lifetime_spend|spend_\d+d|orders_count)\b"),
    "tier": re.compile(r"\btier\b"),
    "segments": re.compile(r"\bsegments\b"),
    "events": re.compile(r"\bevents\b"),
    "redemptions": re.compile(r"\bredemptions\b"),
}


def facts_needed(rules) -> set[str]:
    """Which member facts the rules read, so that only those are queried (at most one query each)."""
    text = "\n".join(r for r in rules if r)
    return {name for name, pattern in _NEEDS.items() if pattern.search(text)}


def member_facts(
    member: Member, *, now: dt.datetime | None = None, points_balance: int | None = None, needs=FACTS
) -> MemberFacts:
    now = now or timezone.now()
    spend, orders_count = _spend(member, now) if "spend" in needs else ({}, 0)
    events = []
    if "events" in needs:
        events = [
            {"name": e.name, "metadata": e.metadata, "occurred_at": e.occurred_at}
            for e in CustomEvent.objects.filter(
                tenant_id=member.tenant_id,
                member=member,
                occurred_at__gte=now - dt.timedelta(days=EVENTS_LOOKBACK_DAYS),
            ).order_by("-occurred_at")[:EVENTS_MAX]
        ]
    return MemberFacts(
        member=member,
        tier=_tier(member) if "tier" in needs else None,
        segments=_segments(member) if "segments" in needs else [],
        spend=spend,
        orders_count=orders_count,
        points_balance=points_balance,
        events=events,
    )


def member_document(facts: MemberFacts, now: dt.datetime) -> dict[str, Any]:
    m = facts.member
    age = None
    if m.birth_date:
        today = now.date()
        age = today.year - m.birth_date.year - ((today.month, today.day) < (m.birth_date.month, m.birth_date.day))
    doc = {
        "external_id": m.external_id,
        "email": m.email,
        "name": m.name,
        "phone": m.phone,
        "country": m.country or None,
        "city": m.city or None,
        "birth_date": _as_datetime(m.birth_date),
        "age": age,
        "attributes": m.attributes or {},
        "marketing_consent": m.marketing_consent,
        "tier": facts.tier,
        "segments": facts.segments,
        "orders_count": facts.orders_count,
        "points_balance": facts.points_balance,
        "created_at": m.created_at,
        "referral_code": m.referral_code,
    }
    doc.update(facts.spend)
    return doc


def order_document(order: dict[str, Any]) -> dict[str, Any]:
    items = [
        {
            "sku": str(i.get("sku") or ""),
            "category": str(i.get("category") or ""),
            "quantity": Decimal(str(i.get("quantity") or 1)),
            "unit_price": Decimal(str(i.get("unit_price") or "0")),
        }
        for i in order.get("items") or ()
    ]
    amount = order.get("amount")
    amount = (
        Decimal(str(amount))
        if amount is not None
        else sum((i["unit_price"] * i["quantity"] for i in items), Decimal(0))
    )
    return {
        "order_id": order.get("order_id"),
        "amount": amount,
        "currency": order.get("currency"),
        "location": order.get("location"),
        "channel": order.get("channel"),
        "items": items,
        "quantity": sum((i["quantity"] for i in items), Decimal(0)),
    }


def rule_context(
    *,
    order: dict[str, Any],
    now: dt.datetime,
    tz=None,
    facts: MemberFacts | None = None,
    redemptions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    local_now = now.astimezone(tz) if tz else now
    return {
        "member": member_document(facts, local_now) if facts else None,
        "order": order_document(order),
        "event": None,
        "events": facts.events if facts else [],
        "redemptions": redemptions or [],
        "now": local_now,
    }
