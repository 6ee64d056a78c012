"""Reads of campaigns that need more than a one-line queryset."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import F, Q, QuerySet
from django.db.models.lookups import GreaterThan
from django.utils import timezone
from guardian.shortcuts import get_objects_for_user

from campaigns.models import Campaign, CampaignAlert, CampaignType, Code
from campaigns.windows import schedule_refusal
from common.money import money_str


def campaigns_for_tenant(tenant):
    return Campaign.objects.for_tenant(tenant)


def campaign_get(*, tenant, campaign_id) -> Campaign | None:
    try:
        return Campaign.objects.for_tenant(tenant).get(pk=int(campaign_id))
    except (Campaign.DoesNotExist, ValueError, TypeError):
        return None


_STATUS_OF_REFUSAL = {"campaign_not_started": "scheduled", "campaign_ended": "ended"}


def campaign_status(campaign: Campaign, now=None) -> str:
    """The campaign's state by the one liveness rule (`campaigns.windows.schedule_refusal`), then its budget."""
    refusal = schedule_refusal(campaign, now or timezone.now())
    if refusal is not None and refusal[0] == "campaign_disabled":
        return "paused" if campaign.disabled_reason.startswith("circuit_breaker") else "disabled"
    if refusal is not None:
        return _STATUS_OF_REFUSAL[refusal[0]]
    if campaign.budget_exhausted_at:
        return "exhausted"
    return "active"


def _money(value):
    return money_str(value) if value is not None else None


def campaign_stats(campaign: Campaign) -> dict[str, Any]:
    return {
        "published": campaign.published_count,
        "redeemed": campaign.redemptions_count,
        "redemptions_failed": campaign.redemptions_failed,
        "discount_total": money_str(campaign.discount_used),
        "order_value_total": money_str(campaign.order_value_used),
    }


# --- the console's figures and flags --------------------------------------------------------------------

ENDS_SOON = dt.timedelta(days=7)
# A limit is "running out" with under 5 % left: used * 20 > limit * 19 (integers and decimals compare exactly).
LOW_NUMERATOR, LOW_DENOMINATOR = 19, 20
# (label, counter, limit) of the limits a campaign's counters are held to.
BUDGETS = (
    ("redemptions", "redemptions_count", "redemptions_total"),
    ("discount", "discount_used", "discount_total"),
    ("order value", "order_value_used", "order_value_total"),
)
STATUSES = ("active", "scheduled", "ended", "exhausted", "paused", "disabled")


def _live_q(now) -> Q:
    return (
        Q(enabled=True)
        & (Q(starts_at__isnull=True) | Q(starts_at__lte=now))
        & (Q(ends_at__isnull=True) | Q(ends_at__gt=now))
    )


def campaign_status_q(status: str, now) -> Q:
    """`campaign_status` as a filter, for the list's status filter (the same rule, in SQL)."""
    paused = Q(enabled=False, disabled_reason__startswith="circuit_breaker")
    return {
        "disabled": Q(enabled=False) & ~paused,
        "paused": paused,
        "scheduled": Q(enabled=True, starts_at__gt=now),
        "ended": Q(enabled=True, ends_at__lte=now) & (Q(starts_at__isnull=True) | Q(starts_at__lte=now)),
        "exhausted": _live_q(now) & Q(budget_exhausted_at__isnull=False),
        "active": _live_q(now) & Q(budget_exhausted_at__isnull=True),
    }[status]


def ends_soon_q(now) -> Q:
    return Q(ends_at__gt=now, ends_at__lte=now + ENDS_SOON)


def budget_low_q() -> Q:
    q = Q(pk__in=[])
    for _label, used, limit in BUDGETS:
        q |= Q(**{f"{limit}__isnull": False}) & Q(GreaterThan(F(used) * LOW_DENOMINATOR, F(limit) * LOW_NUMERATOR))
    return q


def budget_bars(campaign: Campaign) -> list[dict[str, Any]]:
    """Each limit the campaign has, with how much of it is used (for the small bars) and whether it runs out."""
    bars = []
    for label, used_field, limit_field in BUDGETS:
        limit = getattr(campaign, limit_field)
        if limit is None:
            continue
        used = getattr(campaign, used_field)
        percent = min(Decimal(100), Decimal(used) * 100 / limit) if limit else Decimal(100)
        bars.append(
            {
                "label": label,
                "used": used,
                "limit": limit,
                "left": max(limit - used, 0),
                "percent": int(percent),
                "low": used * LOW_DENOMINATOR > limit * LOW_NUMERATOR,
            }
        )
    return bars


def campaign_flags(campaign: Campaign, now=None) -> list[str]:
    """`ends_soon` (ends within 7 days) and `budget_low` (a limit under 5 % left): what a marketer should see."""
    now = now or timezone.now()
    flags = []
    if campaign.ends_at and now < campaign.ends_at <= now + ENDS_SOON:
        flags.append("ends_soon")
    if any(bar["low"] for bar in budget_bars(campaign)):
        flags.append("budget_low")
    return flags


def campaigns_needing_attention(*, campaigns: QuerySet[Campaign], now=None, limit: int = 20) -> list[Campaign]:
    """The enabled campaigns among `campaigns` (already scoped to the user) that end soon or run out of budget."""
    now = now or timezone.now()
    return list(
        campaigns.filter(_live_q(now))
        .filter(ends_soon_q(now) | budget_low_q())
        .select_related("tenant")
        .order_by("ends_at", "pk")[:limit]
    )


def campaign_numbers(campaign: Campaign) -> dict[str, Any]:
    """The figures the campaign's own counters hold (no query): what the campaign page shows first."""
    published, redeemed = campaign.published_count, campaign.redemptions_count
    budget_left = campaign.discount_total - campaign.discount_used if campaign.discount_total is not None else None
    return {
        "published": published,
        "redeemed": redeemed,
        "conversion": f"{Decimal(redeemed) * 100 / published:.1f} %" if published else None,
        "redemptions_failed": campaign.redemptions_failed,
        "discount_given": money_str(campaign.discount_used),
        "order_value": money_str(campaign.order_value_used),
        "budget_left": money_str(budget_left) if budget_left is not None else None,
        "codes": campaign.codes_count,
        "bars": budget_bars(campaign),
        "flags": campaign_flags(campaign),
    }


def campaign_document(campaign: Campaign) -> dict[str, Any]:
    """The campaign object of the contract (`POST/GET/PATCH /api/v1/campaigns`)."""
    shared = None
    if campaign.codes_count == 1:
        shared = Code.objects.filter(campaign=campaign, is_shared=True).values_list("code", flat=True).first()
    per_period = (
        {"count": campaign.redemptions_per_member_period, "period": campaign.member_period}
        if campaign.redemptions_per_member_period
        else None
    )
    doc: dict[str, Any] = {
        "id": str(campaign.pk),
        "name": campaign.name,
        "description": campaign.description,
        "type": campaign.type,
        "status": campaign_status(campaign),
        "enabled": campaign.enabled,
        "disabled_reason": campaign.disabled_reason or None,
        "discount": campaign.discount or None,
        "starts_at": campaign.starts_at.isoformat() if campaign.starts_at else None,
        "ends_at": campaign.ends_at.isoformat() if campaign.ends_at else None,
        "active_hours": campaign.active_hours,
        "rule": campaign.rule,
        "limits": {
            "redemptions_total": campaign.redemptions_total,
            "redemptions_per_member": campaign.redemptions_per_member,
            "redemptions_per_member_per_period": per_period,
            "redemptions_per_day": campaign.redemptions_per_day,
            "redemptions_per_week": campaign.redemptions_per_week,
            "redemptions_per_month": campaign.redemptions_per_month,
            "discount_total": _money(campaign.discount_total),
            "order_value_total": _money(campaign.order_value_total),
        },
        "stacking": {
            "category": campaign.category,
            "exclusive": campaign.exclusive,
            "combinable_with": campaign.combinable_with,
            "max_codes_per_order": campaign.max_codes_per_order,
            "priority": campaign.priority,
        },
        "codes": {"count": campaign.codes_count, "code": shared, "pattern": campaign.code_pattern or None},
        "circuit_breaker": {
            "enabled": campaign.breaker_enabled,
            "multiple": str(campaign.breaker_multiple),
            "window_minutes": campaign.breaker_window_minutes,
            "min_redemptions": campaign.breaker_min_redemptions,
        },
        "stats": campaign_stats(campaign),
        "created_at": campaign.created_at.isoformat() if campaign.created_at else None,
    }
    if campaign.type == CampaignType.GIFT_CARD:
        doc["gift_card"] = {"amount": _money(campaign.gift_card_amount)}
    if campaign.type == CampaignType.REFERRAL:
        doc["referral"] = campaign.config
    return doc


def publication_document(publication) -> dict[str, Any]:
    code = publication.code
    expires = code.expires_at or publication.campaign.ends_at
    return {
        "code": code.code,
        "campaign": str(publication.campaign_id),
        "member": publication.member.external_id,
        "channel": publication.channel,
        "published_at": publication.published_at.isoformat(),
        "expires_at": expires.isoformat() if expires else None,
    }


def open_alerts(*, tenant_ids=None):
    qs = CampaignAlert.objects.filter(acknowledged=False).select_related("campaign")
    if tenant_ids is not None:
        qs = qs.filter(tenant_id__in=tenant_ids)
    return qs


def campaigns_usable_by(user, tenant):
    """The tenant's campaigns whose codes `user` may give to members: the per-campaign right (guardian) or the
    model-wide one (roles that run campaigns)."""
    return get_objects_for_user(
        user, "campaigns.use_campaign", klass=Campaign.objects.filter(tenant=tenant), accept_global_perms=True
    )


def campaign_input_document(campaign: Campaign) -> dict[str, Any]:
    """The campaign's configuration as the document `campaign_update` accepts (no counters, no `enabled`).

    The admin form checks its values with it (built on an unsaved campaign); a revert declares an earlier
    version with it, so the earlier values pass the same checks as an edit.
    """

    def iso(value):
        return value.isoformat() if value else None

    def money(value):
        return str(value) if value is not None else None

    doc: dict[str, Any] = {
        "name": campaign.name,
        "description": campaign.description,
        "starts_at": iso(campaign.starts_at),
        "ends_at": iso(campaign.ends_at),
        "active_hours": campaign.active_hours or [],
        "rule": campaign.rule,
        "priority": campaign.priority,
        "limits": {
            "redemptions_total": campaign.redemptions_total,
            "redemptions_per_member": campaign.redemptions_per_member,
            "redemptions_per_member_per_period": (
                {"count": campaign.redemptions_per_member_period, "period": campaign.member_period}
                if campaign.redemptions_per_member_period
                else None
            ),
            "redemptions_per_day": campaign.redemptions_per_day,
            "redemptions_per_week": campaign.redemptions_per_week,
            "redemptions_per_month": campaign.redemptions_per_month,
            "discount_total": money(campaign.discount_total),
            "order_value_total": money(campaign.order_value_total),
        },
        "stacking": {
            "category": campaign.stacking_category,
            "exclusive": campaign.exclusive,
            "combinable_with": campaign.combinable_with or None,
            "max_codes_per_order": campaign.max_codes_per_order,
        },
        "circuit_breaker": {
            "enabled": campaign.breaker_enabled,
            "multiple": str(campaign.breaker_multiple),
            "window_minutes": campaign.breaker_window_minutes,
            "min_redemptions": campaign.breaker_min_redemptions,
        },
    }
    if campaign.type in (CampaignType.DISCOUNT, CampaignType.PROMOTION, CampaignType.LOYALTY_REWARD):
        doc["discount"] = campaign.discount or None
    if campaign.type == CampaignType.GIFT_CARD:
        doc["gift_card"] = {"amount": money(campaign.gift_card_amount)}
    if campaign.type == CampaignType.REFERRAL:
        doc["referral"] = campaign.config or {}
    return doc
