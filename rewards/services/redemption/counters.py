"""Usage counters of campaigns, codes and members: added to (redeem) or taken back (rollback) with F()."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import F

from campaigns.events import campaign_budget_exhausted
from campaigns.models import Campaign, CampaignUsage, Code
from rewards.models import RedemptionCode
from rewards.services.redemption.parse import ZERO


def apply_campaign_deltas(deltas: dict[int, tuple[int, Decimal, Decimal]]) -> None:
    if not deltas:
        return
    if connection.vendor == "postgresql":
        table = Campaign._meta.db_table
        values = ", ".join(["(%s::bigint, %s::int, %s::numeric, %s::numeric)"] * len(deltas))
        params: list[Any] = []
        for pk, (n, discount, order_value) in sorted(deltas.items()):
            params += [pk, n, discount, order_value]
        with connection.cursor() as cursor:
            cursor.execute(
                f"""UPDATE {table} AS c SET redemptions_count = c.redemptions_count + v.n,
                        discount_used = c.discount_used + v.d, order_value_used = c.order_value_used + v.o
                    FROM (VALUES {values}) AS v(id, n, d, o) WHERE c.id = v.id""",
                params,
            )
        return
    for pk, (n, discount, order_value) in deltas.items():
        Campaign.objects.filter(pk=pk).update(
            redemptions_count=F("redemptions_count") + n,
            discount_used=F("discount_used") + discount,
            order_value_used=F("order_value_used") + order_value,
        )


def apply_code_deltas(deltas: dict[int, tuple[int, Decimal]]) -> None:
    if not deltas:
        return
    if connection.vendor == "postgresql":
        table = Code._meta.db_table
        values = ", ".join(["(%s::bigint, %s::int, %s::numeric)"] * len(deltas))
        params: list[Any] = []
        for pk, (n, balance) in sorted(deltas.items()):
            params += [pk, n, balance]
        with connection.cursor() as cursor:
            cursor.execute(
                f"""UPDATE {table} AS c SET redeemed_count = c.redeemed_count + v.n,
                        balance = CASE WHEN c.balance IS NULL THEN NULL ELSE c.balance + v.b END
                    FROM (VALUES {values}) AS v(id, n, b) WHERE c.id = v.id""",
                params,
            )
        return
    for pk, (n, balance) in deltas.items():
        Code.objects.filter(pk=pk).update(redeemed_count=F("redeemed_count") + n)
        Code.objects.filter(pk=pk, balance__isnull=False).update(balance=F("balance") + balance)


def apply_usage_deltas(deltas: dict[tuple[int, str], tuple[int, Decimal]]) -> None:
    if not deltas:
        return
    table = CampaignUsage._meta.db_table
    rows = sorted(deltas.items())
    if connection.vendor == "postgresql":
        values = ", ".join(["(%s::bigint, %s, %s::int, %s::numeric)"] * len(rows))
    else:
        values = ", ".join(["(%s, %s, %s, %s)"] * len(rows))
    params: list[Any] = []
    for (campaign_id, key), (n, discount) in rows:
        params += [campaign_id, key, n, discount]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {table} (campaign_id, key, count, discount) VALUES {values}
                ON CONFLICT (campaign_id, key) DO UPDATE SET count = {table}.count + EXCLUDED.count,
                    discount = {table}.discount + EXCLUDED.discount""",
            params,
        )


def line_deltas(lines: list[RedemptionCode], sign: int, gift_debits: dict[int, Decimal]):
    campaign_d: dict[int, list] = defaultdict(lambda: [0, ZERO, ZERO])
    code_d: dict[int, list] = defaultdict(lambda: [0, ZERO])
    usage_d: dict[tuple[int, str], list] = defaultdict(lambda: [0, ZERO])
    for line in lines:
        c = campaign_d[line.campaign_id]
        c[0] += sign
        c[1] += sign * line.discount
        c[2] += sign * line.order_amount
        if line.code_id:
            code_d[line.code_id][0] += sign
        for key in line.usage_keys:
            u = usage_d[(line.campaign_id, key)]
            u[0] += sign
            u[1] += sign * line.discount
    for code_id, debit in gift_debits.items():
        code_d[code_id][1] += -sign * debit
    return (
        {k: tuple(v) for k, v in campaign_d.items()},
        {k: tuple(v) for k, v in code_d.items()},
        {k: tuple(v) for k, v in usage_d.items()},
    )


def exhausted_limit(campaign: Campaign) -> str:
    """Which limit of `campaign` (with its counters as they now stand) is used up, if any."""
    if campaign.redemptions_total is not None and campaign.redemptions_count >= campaign.redemptions_total:
        return "redemptions_total"
    if campaign.discount_total is not None and campaign.discount_used >= campaign.discount_total:
        return "discount_total"
    if campaign.order_value_total is not None and campaign.order_value_used >= campaign.order_value_total:
        return "order_value_total"
    return ""


def mark_exhausted(campaign: Campaign, limit: str, now) -> None:
    """Set `budget_exhausted_at` once and emit `campaign.budget_exhausted` (inside the caller's transaction)."""
    if Campaign.objects.filter(pk=campaign.pk, budget_exhausted_at__isnull=True).update(budget_exhausted_at=now):
        campaign.budget_exhausted_at = now
        campaign_budget_exhausted(campaign, limit=limit)
