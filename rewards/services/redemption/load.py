"""What an evaluation reads: campaigns and codes of the request, live promotions, usage, the rule context."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection
from django.db.models import Q

from campaigns import engine
from campaigns.models import Campaign, CampaignType, CampaignUsage, Code
from common.errors import ApplicationError
from common.plain_sql import instance, instances, select_list, width
from loyalty.ledger import default_program
from loyalty.models import Account
from loyalty.rule_context import HISTORY_DAYS, HISTORY_MAX, build_rule_context, order_context
from members.models import Member, Tenant
from rewards.models import RedemptionCode


def _promotions_qs(tenant, now):

    return Campaign.objects.for_tenant(tenant).filter(
        Q(starts_at__isnull=True) | Q(starts_at__lte=now),
        Q(ends_at__isnull=True) | Q(ends_at__gt=now),
        type=CampaignType.PROMOTION,
        enabled=True,
    )


def _is_live_promotion(campaign: Campaign, now) -> bool:
    """The filter of `_promotions_qs`, on a loaded row."""
    return (
        campaign.type == CampaignType.PROMOTION
        and campaign.enabled
        and (campaign.starts_at is None or campaign.starts_at <= now)
        and (campaign.ends_at is None or campaign.ends_at > now)
    )


def _placeholders(values) -> str:
    return ", ".join(["%s"] * len(values))


def campaigns_and_frozen(tenant, texts, now) -> tuple[bool, list[Campaign], list[Campaign]]:
    """One query (unlocked): the tenant's kill switch, the campaigns of the codes `texts`, the live promotions.

    Returns (frozen, campaigns of the codes, live promotions). The tenant flag is read fresh, so the kill
    switch takes effect at once whatever object the caller holds.
    """
    campaign_table, code_table = Campaign._meta.db_table, Code._meta.db_table
    columns = select_list(Campaign, "c")
    frozen_sql = f"(SELECT t.frozen FROM {Tenant._meta.db_table} t WHERE t.id = %s)"
    # Two index scans (the codes' unique (tenant, code), the campaigns' (tenant, type, enabled)), not one OR.
    branches, params = [], []
    texts = sorted(texts)
    if texts:
        branches.append(
            f"SELECT {columns}, {frozen_sql}, 1 FROM {campaign_table} c WHERE c.tenant_id = %s AND c.id IN "
            f"(SELECT k.campaign_id FROM {code_table} k WHERE k.tenant_id = %s AND k.code IN ({_placeholders(texts)}))"
        )
        params += [tenant.pk, tenant.pk, tenant.pk, *texts]
    branches.append(
        f"SELECT {columns}, {frozen_sql}, 0 FROM {campaign_table} c WHERE c.tenant_id = %s AND c.type = %s "
        "AND c.enabled = %s AND (c.starts_at IS NULL OR c.starts_at <= %s) AND (c.ends_at IS NULL OR c.ends_at > %s)"
    )
    params += [tenant.pk, tenant.pk, str(CampaignType.PROMOTION), True, now, now]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(branches) + " ORDER BY 1", params)
        fetched = cursor.fetchall()
    n = width(Campaign)
    rows = []
    for row in fetched:
        campaign = instance(Campaign, "c", row[:n])
        campaign.tenant_frozen, campaign.for_code = row[n], row[n + 1]
        rows.append(campaign)
    frozen = bool(rows[0].tenant_frozen) if rows else _frozen(tenant)
    code_campaigns = [c for c in rows if c.for_code]
    promotions = [c for c in rows if not c.for_code]
    # A promotion that also has codes comes twice: one instance per role is fine (same row, read once).
    return frozen, code_campaigns, promotions


def codes_by_text(tenant, texts, *, campaign_ids=None, lock: bool = False) -> list[Code]:
    """The tenant's codes named `texts` (optionally only of `campaign_ids`), locked in primary key order."""
    if not texts:
        return []
    texts = sorted(texts)
    sql = f"FROM {Code._meta.db_table} t WHERE t.tenant_id = %s AND t.code IN ({_placeholders(texts)})"
    params: list[Any] = [tenant.pk, *texts]
    if campaign_ids is not None:
        if not campaign_ids:
            return []
        ids = sorted(campaign_ids)
        sql += f" AND t.campaign_id IN ({_placeholders(ids)})"
        params += ids
    sql += " ORDER BY t.id"
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return instances(Code, sql, params)


def usage_counts(campaigns: list[Campaign], member_id, now, tz) -> dict[tuple[int, str], int]:
    wanted = engine.wanted_usage_keys(campaigns, member_id, now, tz)
    if not wanted:
        return {}
    ids, keys = sorted({c for c, _ in wanted}), sorted({k for _, k in wanted})
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT campaign_id, key, count FROM {CampaignUsage._meta.db_table} "
            f"WHERE campaign_id IN ({_placeholders(ids)}) AND key IN ({_placeholders(keys)})",
            [*ids, *keys],
        )
        rows = cursor.fetchall()
    return {(c, k): n for c, k, n in rows}


def member_redemptions(member: Member, now) -> list[dict[str, Any]]:
    """The member's past redemptions as the rule language sees them (`redemptions`): one query.

    The window of the context's history (`loyalty.rule_context`): the last `HISTORY_DAYS`, newest first, at most
    `HISTORY_MAX` rows, like `events`.
    """
    rows = (
        RedemptionCode.objects.filter(
            tenant_id=member.tenant_id,
            member=member,
            rolled_back=False,
            created_at__gte=now - dt.timedelta(days=HISTORY_DAYS),
        )
        .order_by("-created_at", "-pk")
        .values("campaign_id", "campaign__name", "campaign__type", "code__code", "discount", "created_at")[:HISTORY_MAX]
    )
    return [
        {
            "campaign": str(r["campaign_id"]),
            "campaign_id": r["campaign_id"],
            "campaign_name": r["campaign__name"],
            "campaign_type": r["campaign__type"],
            "code": r["code__code"],
            "discount": r["discount"],
            "created_at": r["created_at"],
        }
        for r in rows
    ]


def rule_context_for(tenant, member, order, now, rules=None) -> dict[str, Any]:
    """The rule context (`loyalty.rule_context`) of a checked order (`parse_request`), with the member's past
    redemptions; only the facts `rules` name are read (None: all of them)."""
    return build_rule_context(
        member=member,
        tz=tenant.tz,
        now=now,
        rules=rules,
        order=order_context(
            order_id=order.get("order_id"),
            amount=order.get("amount"),
            currency=order.get("currency"),
            location=order.get("location"),
            channel=order.get("channel"),
            items=order.get("items") or (),
        ),
        redemptions=(lambda: member_redemptions(member, now)) if member else None,
    )


def context_loader(tenant, member, order, now, rules):
    """The rule context, built once (on first use) with only the member facts the rules read."""
    cache: dict[str, Any] = {}

    def load() -> dict[str, Any]:
        if "ctx" not in cache:
            cache["ctx"] = rule_context_for(tenant, member, order, now, rules)
        return cache["ctx"]

    return load


def points_request_for(tenant, member, points: int):
    """(PointsRequest, account or None) for `points` requested; reads only (no account is created here)."""
    if points <= 0:
        return None, None
    if member is None:
        return engine.PointsRequest(requested=points, balance=None, member_present=False), None

    program = default_program(tenant)
    if program is None:
        return engine.PointsRequest(requested=points, balance=0), None
    account = Account.objects.filter(tenant=tenant, member=member, program=program).first()
    return (
        engine.PointsRequest(
            requested=points,
            balance=account.balance if account else 0,
            points_per=program.points_value_points,
            amount_per=program.points_value_amount,
        ),
        account,
    )


def _frozen(tenant) -> bool:
    """Read fresh: the tenant kill switch takes effect at once, whatever object the caller holds."""
    return bool(Tenant.objects.filter(pk=tenant.pk).values_list("frozen", flat=True).first())


def check_member(tenant, member):
    if member is not None and member.tenant_id != tenant.pk:
        raise ApplicationError("member_not_found", "No such member.", status=404)
