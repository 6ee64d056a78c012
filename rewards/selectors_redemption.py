"""Reads for the member's rewards list, the reward catalog and redemptions (a fixed number of queries each)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.utils import timezone

from campaigns.models import Campaign, CampaignType, Publication
from common.money import money_str
from members.models import Member, Tenant
from rewards.models import Redemption, RedemptionCode, Reward

STATUSES = ("available", "published", "redeemed", "expired")


def incentive_value(campaign: Campaign, code=None) -> str | None:
    """A short human value: "15%", "10.00", "free_shipping", a gift card's balance..."""
    if campaign.type == CampaignType.GIFT_CARD:
        balance = code.balance if code is not None and code.balance is not None else campaign.gift_card_amount
        return money_str(balance) if balance is not None else None
    discount = campaign.discount or {}
    kind = discount.get("type")
    if kind == "percent":
        return f"{discount.get('value')}%"
    if kind == "amount":
        return money_str(discount.get("value") or 0)
    return kind


def _expiry(code, campaign):
    ends = [t for t in (code.expires_at if code else None, campaign.ends_at) if t]
    return min(ends) if ends else None


def _code_status(code, campaign, now) -> str:
    expires = _expiry(code, campaign)
    if expires and expires <= now:
        return "expired"
    if campaign.type == CampaignType.GIFT_CARD:
        return "available" if (code.balance or 0) > 0 and campaign.enabled else "redeemed"
    if code.usage_limit is not None and code.redeemed_count >= code.usage_limit:
        return "redeemed"
    return "available" if campaign.enabled else "published"


def _item(*, code=None, campaign, status, points_cost=None, value=None, expires_at=None, **extra) -> dict[str, Any]:
    expires = expires_at if expires_at is not None else _expiry(code, campaign) if campaign else None
    item = {
        "code": code.code if code is not None else None,
        "campaign": str(campaign.pk) if campaign is not None else None,
        "campaign_name": campaign.name if campaign is not None else None,
        "type": campaign.type if campaign is not None else None,
        "value": value if value is not None else (incentive_value(campaign, code) if campaign else None),
        "expires_at": expires.isoformat() if expires else None,
        "status": status,
        "points_cost": points_cost,
    }
    item.update(extra)
    return item


def member_rewards(*, tenant: Tenant, member: Member, status: str | None = None) -> list[dict[str, Any]]:
    """What the member holds or can get: published codes and gift cards, promotions, affordable rewards.

    `available`: usable now (codes not used up, gift cards with balance, running promotions, catalog rewards
    the member can afford); `published`: every code handed to the member, with its own status; `redeemed`:
    codes the member used; `expired`: codes past their expiry or their campaign's end.
    """
    if status is not None and status not in STATUSES:
        raise ValueError(status)
    now = timezone.now()
    publications = list(
        Publication.objects.filter(tenant=tenant, member=member).select_related("code", "campaign").order_by("-pk")
    )
    codes = [(p.code, p.campaign, _code_status(p.code, p.campaign, now)) for p in publications]
    items: list[dict[str, Any]] = []
    if status == "published":
        return [_item(code=c, campaign=k, status=s) for c, k, s in codes]
    if status in (None, "available"):
        items += [_item(code=c, campaign=k, status=s) for c, k, s in codes if s == "available"]
        promotions = Campaign.objects.for_tenant(tenant).filter(
            Q(starts_at__isnull=True) | Q(starts_at__lte=now),
            Q(ends_at__isnull=True) | Q(ends_at__gt=now),
            type=CampaignType.PROMOTION,
            enabled=True,
        )
        items += [_item(campaign=p, status="available") for p in promotions]
        items += [
            {**r, "status": "available"}
            for r in reward_catalog(tenant=tenant, member=member)
            if r["affordable"] and r["eligible"] and r["in_stock"]
        ]
    if status in (None, "redeemed"):
        lines = (
            RedemptionCode.objects.filter(tenant=tenant, member=member, rolled_back=False, code__isnull=False)
            .select_related("code", "campaign")
            .order_by("-created_at")[:200]
        )
        items += [
            _item(
                code=line.code,
                campaign=line.campaign,
                status="redeemed",
                redeemed_at=line.created_at.isoformat(),
                discount=money_str(line.discount),
            )
            for line in lines
        ]
    if status in (None, "expired"):
        items += [_item(code=c, campaign=k, status=s) for c, k, s in codes if s == "expired"]
    return items


def reward_catalog(*, tenant: Tenant, member: Member | None = None) -> list[dict[str, Any]]:
    """The catalog with `affordable` (and tier eligibility) for `member`."""
    balance = None
    tiers: set[str] = set()
    if member is not None:
        from rewards.models import Account
        from rewards.services.catalog import member_tier_codes

        balance = sum(Account.objects.filter(tenant=tenant, member=member).values_list("balance", flat=True))
        tiers = member_tier_codes(member)
    rewards = Reward.objects.for_tenant(tenant).filter(active=True).select_related("campaign").order_by("points_cost")
    out = []
    for reward in rewards:
        eligible = not reward.tier_codes or bool(tiers & set(reward.tier_codes))
        out.append(
            {
                "id": str(reward.pk),
                "name": reward.name,
                "type": reward.type,
                "points_cost": reward.points_cost,
                "value": money_str(reward.value) if reward.value is not None else None,
                "stock": reward.stock,
                "in_stock": reward.stock is None or reward.stock > 0,
                "tiers": reward.tier_codes,
                "eligible": eligible if member is not None else None,
                "affordable": (balance is not None and balance >= reward.points_cost and eligible)
                if member is not None
                else None,
                "code": None,
                "campaign": str(reward.campaign_id) if reward.campaign_id else None,
                "expires_at": None,
            }
        )
    return out


def redemption_get(*, tenant: Tenant, redemption_id) -> Redemption | None:
    try:
        return Redemption.objects.for_tenant(tenant).select_related("member").get(pk=int(redemption_id))
    except (Redemption.DoesNotExist, ValueError, TypeError):
        return None
