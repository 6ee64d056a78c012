"""Reads of the members app: segment membership as one query."""

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import DecimalField, Exists, F, OuterRef, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from common.errors import NotFound
from common.plain_sql import instances
from common.validation import FieldErrors
from members.models import CustomEvent, Member, Segment, SegmentMember, Tenant

CRITERIA = ("country", "city", "tiers", "attributes", "marketing_consent", "min_spend", "spend_days", "event")
MAX_DAYS = 36_500  # `spend_days` and `event.days`; a larger stored value is read as this
MAX_SPEND = Decimal("999999999999.99")  # an order amount's column


def validate_criteria(criteria: Any) -> dict[str, Any]:
    """Check a dynamic segment's criteria document; 400 `invalid_segment` with `{criterion: message}`."""
    errors = FieldErrors()
    if errors.mapping(criteria, "criteria", required=True) is None:
        errors.raise_if_any("invalid_segment", "Criteria must be an object.")
    for key in criteria:
        errors.check(key in CRITERIA, key, f"unknown criterion; use {', '.join(CRITERIA)}")
    for key in ("country", "city", "tiers"):
        errors.texts(criteria.get(key), key)
    if "attributes" in criteria:
        errors.mapping(criteria["attributes"], "attributes", required=True)
    if "marketing_consent" in criteria:
        errors.boolean(criteria["marketing_consent"], "marketing_consent", required=True)
    if "min_spend" in criteria:
        errors.decimal(criteria["min_spend"], "min_spend", minimum=None, maximum=MAX_SPEND, required=True)
    errors.whole(criteria.get("spend_days"), "spend_days", minimum=1, maximum=MAX_DAYS)
    event = criteria.get("event")
    if event is not None:
        errors.check(
            isinstance(event, dict) and isinstance(event.get("name"), str),
            "event",
            'must be an object like {"name": "review_written", "days": 30}',
        )
        if isinstance(event, dict):
            errors.whole(event.get("days"), "event.days", minimum=1, maximum=MAX_DAYS)
    errors.raise_if_any("invalid_segment", "The segment criteria are not valid.")
    return criteria


def members_matching(tenant, criteria: dict[str, Any], now: dt.datetime | None = None) -> QuerySet[Member]:
    """Members of `tenant` meeting every criterion, as one SQL query (spend and tier via reverse relations)."""
    now = now or timezone.now()
    qs = Member.objects.for_tenant(tenant)
    if criteria.get("country"):
        qs = qs.filter(country__in=[c.upper() for c in criteria["country"]])
    if criteria.get("city"):
        qs = qs.filter(city__in=criteria["city"])
    if "marketing_consent" in criteria:
        qs = qs.filter(marketing_consent=criteria["marketing_consent"])
    for key, value in (criteria.get("attributes") or {}).items():
        qs = qs.filter(**{f"attributes__{key}": value})
    if criteria.get("tiers"):
        qs = qs.filter(tier_statuses__tier__code__in=criteria["tiers"]).distinct()
    if criteria.get("min_spend") is not None:
        window = Q()
        if criteria.get("spend_days"):
            days = min(int(criteria["spend_days"]), MAX_DAYS)
            window = Q(orders__occurred_at__gte=now - dt.timedelta(days=days))
        zero = Value(Decimal("0"), output_field=DecimalField(max_digits=14, decimal_places=2))
        qs = qs.annotate(
            segment_spend=Coalesce(Sum(F("orders__amount") - F("orders__returned_amount"), filter=window), zero)
        ).filter(segment_spend__gte=Decimal(str(criteria["min_spend"])))
    event = criteria.get("event")
    if event:
        events = CustomEvent.objects.filter(member=OuterRef("pk"), name=event["name"])
        if event.get("days"):
            days = min(int(event["days"]), MAX_DAYS)
            events = events.filter(occurred_at__gte=now - dt.timedelta(days=days))
        qs = qs.filter(Exists(events))
    return qs


def segment_members(segment: Segment, now: dt.datetime | None = None) -> QuerySet[Member]:
    if segment.kind == Segment.Kind.STATIC:
        return Member.objects.for_tenant(segment.tenant_id).filter(
            Exists(SegmentMember.objects.filter(segment=segment, member=OuterRef("pk")))
        )
    return members_matching(segment.tenant_id, segment.criteria or {}, now)


def member_segments(member: Member, now: dt.datetime | None = None) -> list[str]:
    """Codes of every segment the member is in, static lists and dynamic criteria alike, in code order.

    One query (the tenant's segments, each with the member's place on its static list), and a second one when
    the tenant has dynamic segments (the member's row with one EXISTS per dynamic segment), whatever their number.
    """
    listed = SegmentMember.objects.filter(segment=OuterRef("pk"), member=member)
    segments = list(Segment.objects.for_tenant(member.tenant_id).annotate(listed=Exists(listed)).order_by("code"))
    dynamic = {f"in_{s.pk}": s for s in segments if s.kind != Segment.Kind.STATIC}
    flags: dict[str, bool] = {}
    if dynamic:
        exists = {
            name: Exists(segment_members(s, now).filter(pk=OuterRef("pk")).values("pk")) for name, s in dynamic.items()
        }
        flags = Member.objects.filter(pk=member.pk).annotate(**exists).values(*exists).first() or {}
    return [s.code for s in segments if (s.listed if s.kind == Segment.Kind.STATIC else flags.get(f"in_{s.pk}"))]


def member_for(tenant: Tenant, member: Member | str) -> Member:
    """The tenant's member (an instance of the tenant, or an external id); 404 `member_not_found` otherwise."""
    if isinstance(member, Member):
        if member.tenant_id != tenant.pk:
            raise NotFound("member_not_found", "No such member.", {"member": member.external_id})
        return member
    # Plain SQL: every order and earning looks the member up (see `common.plain_sql`).
    found = instances(
        Member,
        f"FROM {Member._meta.db_table} t WHERE t.tenant_id = %s AND t.external_id = %s ORDER BY t.id LIMIT 1",
        [tenant.pk, member],
    )
    if not found:
        raise NotFound("member_not_found", "No such member.", {"member": member})
    return found[0]
