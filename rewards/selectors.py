"""Reads for the member's rewards list, the reward catalog and redemptions (a fixed number of queries each)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db.models import BooleanField, Case, CharField, F, Func, Q, QuerySet, Sum, Value, When
from django.db.models.expressions import RawSQL
from django.utils import timezone

from campaigns.models import Campaign, CampaignType, Publication
from campaigns.sql import applying_promotion_ids
from campaigns.windows import live_refusal
from common.money import money_str
from loyalty.models import Account
from members.models import Member, Tenant
from rewards.models import Redemption, RedemptionCode, Reward
from rewards.services.catalog import member_tier_codes

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


def _with_status(publications: QuerySet[Publication], now) -> QuerySet[Publication]:
    """Each published code's status (`reward_status`), in SQL so that a page can filter by it.

    Expired once its own expiry or its campaign's end has passed; a gift card is available while it has a
    balance, a code until it is used up; a disabled campaign's unused code is only `published`.
    """
    gift_card = Q(campaign__type=CampaignType.GIFT_CARD)
    return publications.annotate(
        reward_status=Case(
            When(Q(code__expires_at__lte=now) | Q(campaign__ends_at__lte=now), then=Value("expired")),
            When(gift_card & Q(code__balance__gt=0, campaign__enabled=True), then=Value("available")),
            When(gift_card, then=Value("redeemed")),
            When(
                code__usage_limit__isnull=False,
                code__redeemed_count__gte=F("code__usage_limit"),
                then=Value("redeemed"),
            ),
            When(campaign__enabled=True, then=Value("available")),
            default=Value("published"),
            output_field=CharField(),
        )
    )


def applying_promotions(tenant: Tenant, now) -> QuerySet[Campaign]:
    """The promotions that apply by themselves now, as validation sees them: live by `campaigns.sql.live`, the
    tenant not frozen; their active hours are the section's `keep` (`campaigns.windows.live_refusal`, the
    engine's own check)."""
    return Campaign.objects.filter(pk__in=RawSQL(*applying_promotion_ids(tenant.pk, now)))


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


@dataclass(frozen=True)
class ListSection:
    """One source of a list made of several (the member's rewards), answered after the ones before it.

    `queryset` builds the rows only when a page reaches the section; `ordering` is unique (it ends with the
    primary key) so that a cursor can name the last row answered; `render` makes an item without a query.
    """

    name: str
    queryset: Callable[[], QuerySet]
    ordering: tuple[str, ...]
    render: Callable[[Any], dict[str, Any]]
    # The part of a rule SQL cannot say (active hours, in the tenant's time zone): rows must also pass it.
    # A section with `keep` is read whole, then filtered, so keep it for sections of a few rows.
    keep: Callable[[Any], bool] | None = None

    def rows(self, queryset: QuerySet, limit: int | None = None) -> list:
        """The rows of `queryset` (this section's, ordered, maybe after a cursor) that `keep` keeps, at most `limit`."""
        if self.keep is None:
            return list(queryset if limit is None else queryset[:limit])
        return [row for row in queryset if self.keep(row)][:limit]


def member_reward_sections(*, tenant: Tenant, member: Member, status: str | None = None) -> list[ListSection]:
    """What the member holds or can get, as sections to page through (one query per section read).

    `available`: usable now (codes not used up and gift cards with balance, newest first; running promotions;
    catalog rewards the member can afford, cheapest first); `published`: every code handed to the member, with
    its own status; `redeemed`: codes the member used, newest first; `expired`: codes past their expiry or
    their campaign's end. Without `status`: available, then redeemed, then expired.
    """
    if status is not None and status not in STATUSES:
        raise ValueError(status)
    now = timezone.now()

    def codes(*statuses: str) -> QuerySet[Publication]:
        publications = _with_status(
            Publication.objects.filter(tenant=tenant, member=member).select_related("code", "campaign"), now
        )
        return publications.filter(reward_status__in=statuses) if statuses else publications

    def code_item(publication: Publication) -> dict[str, Any]:
        return _item(code=publication.code, campaign=publication.campaign, status=publication.reward_status)

    viewer = cache(lambda: catalog_member(tenant=tenant, member=member))
    sections = {
        "published": ListSection("codes", codes, ("-pk",), code_item),
        "available": ListSection("available_codes", lambda: codes("available"), ("-pk",), code_item),
        "promotions": ListSection(
            "promotions",
            lambda: applying_promotions(tenant, now),
            ("pk",),
            lambda campaign: _item(campaign=campaign, status="available"),
            keep=lambda campaign: live_refusal(campaign, now, tenant.tz) is None,
        ),
        "catalog": ListSection(
            "catalog",
            lambda: affordable_rewards(tenant=tenant, viewer=viewer()),
            CATALOG_ORDERING,
            lambda reward: {**catalog_item(reward, viewer()), "status": "available"},
        ),
        "redeemed": ListSection(
            "redeemed",
            lambda: RedemptionCode.objects.filter(
                tenant=tenant, member=member, rolled_back=False, code__isnull=False
            ).select_related("code", "campaign"),
            ("-created_at", "-pk"),
            lambda line: _item(
                code=line.code,
                campaign=line.campaign,
                status="redeemed",
                redeemed_at=line.created_at.isoformat(),
                discount=money_str(line.discount),
            ),
        ),
        "expired": ListSection("expired_codes", lambda: codes("expired"), ("-pk",), code_item),
    }
    names = {
        None: ["available", "promotions", "catalog", "redeemed", "expired"],
        "published": ["published"],
        "available": ["available", "promotions", "catalog"],
        "redeemed": ["redeemed"],
        "expired": ["expired"],
    }[status]
    return [sections[name] for name in names]


def member_rewards(*, tenant: Tenant, member: Member, status: str | None = None) -> list[dict[str, Any]]:
    """Every item of `member_reward_sections` at once (the API pages them instead)."""
    return [
        section.render(row)
        for section in member_reward_sections(tenant=tenant, member=member, status=status)
        for row in section.rows(section.queryset().order_by(*section.ordering))
    ]


# Cheapest first; the primary key breaks ties so that a cursor never skips or repeats a reward.
CATALOG_ORDERING = ("points_cost", "pk")


@dataclass(frozen=True)
class CatalogMember:
    """What the catalog needs of a member to say `affordable` and `eligible`."""

    balance: int
    tiers: frozenset[str]


def catalog_member(*, tenant: Tenant, member: Member) -> CatalogMember:
    """The member's points (all programs) and tier codes, in two queries."""

    balance = Account.objects.filter(tenant=tenant, member=member).aggregate(total=Sum("balance"))["total"]
    return CatalogMember(balance=balance or 0, tiers=frozenset(member_tier_codes(member)))


def catalog_rewards(*, tenant: Tenant) -> QuerySet[Reward]:
    """The active catalog (a queryset: paginate it by CATALOG_ORDERING; render with `catalog_item`)."""
    return Reward.objects.for_tenant(tenant).filter(active=True).order_by(*CATALOG_ORDERING)


class _HoldsAny(Func):
    """True when a JSON array of strings holds one of `values` (PostgreSQL's `?|`, SQLite's `json_each`)."""

    output_field = BooleanField()

    def __init__(self, expression, values):
        super().__init__(expression)
        self.values = list(values)

    def as_sql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        marks = ", ".join(["%s"] * len(self.values))
        return f"EXISTS (SELECT 1 FROM json_each({sql}) WHERE json_each.value IN ({marks}))", (*params, *self.values)

    def as_postgresql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"({sql} ?| %s::text[])", (*params, self.values)


def affordable_rewards(*, tenant: Tenant, viewer: CatalogMember) -> QuerySet[Reward]:
    """The rewards `catalog_item` calls affordable (cost, tier) and in stock, filtered in SQL for paging."""
    eligible = Q(tier_codes=[])
    if viewer.tiers:
        eligible |= _HoldsAny(F("tier_codes"), sorted(viewer.tiers))
    return catalog_rewards(tenant=tenant).filter(
        eligible, Q(stock__isnull=True) | Q(stock__gt=0), points_cost__lte=viewer.balance
    )


def catalog_item(reward: Reward, viewer: CatalogMember | None) -> dict[str, Any]:
    """A catalog reward in the contract's shape, with `eligible`/`affordable` when a member is given."""
    eligible = not reward.tier_codes or bool(viewer is not None and viewer.tiers & set(reward.tier_codes))
    return {
        "id": str(reward.pk),
        "name": reward.name,
        "type": reward.type,
        "points_cost": reward.points_cost,
        "value": money_str(reward.value) if reward.value is not None else None,
        "stock": reward.stock,
        "in_stock": reward.stock is None or reward.stock > 0,
        "tiers": reward.tier_codes,
        "eligible": eligible if viewer is not None else None,
        "affordable": viewer.balance >= reward.points_cost and eligible if viewer is not None else None,
        "code": None,
        "campaign": str(reward.campaign_id) if reward.campaign_id else None,
        "expires_at": None,
    }


def reward_catalog(*, tenant: Tenant, member: Member | None = None) -> list[dict[str, Any]]:
    """The whole catalog with `affordable` (and tier eligibility) for `member` (the API pages it instead)."""
    viewer = catalog_member(tenant=tenant, member=member) if member is not None else None
    return [catalog_item(reward, viewer) for reward in catalog_rewards(tenant=tenant)]


def redemption_get(*, tenant: Tenant, redemption_id) -> Redemption | None:
    try:
        return Redemption.objects.for_tenant(tenant).select_related("member").get(pk=int(redemption_id))
    except (Redemption.DoesNotExist, ValueError, TypeError):
        return None
