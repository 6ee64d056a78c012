"""Usage counters of campaigns, codes and members: added to (redeem) or taken back (rollback), never read first.

The statements are `campaigns.sql.counts_sql` / `usage_sql`, the one way every caller adds to these counters.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from campaigns.events import campaign_budget_exhausted
from campaigns.models import Campaign, Code
from campaigns.sql import counts_sql, usage_sql
from common.plain_sql import execute_together
from rewards.models import RedemptionCode
from rewards.services.redemption.parse import ZERO


def counter_statements(campaign_d, code_d, usage_d) -> list[tuple[str, list]]:
    """The statements adding `line_deltas` to the counters of campaigns, codes and usage keys (`campaigns.sql`)."""
    campaigns = {
        pk: {"redemptions_count": n, "discount_used": d, "order_value_used": o} for pk, (n, d, o) in campaign_d.items()
    }
    return [
        counts_sql(Campaign, campaigns),
        counts_sql(Code, {pk: {"redeemed_count": n, "balance": b} for pk, (n, b) in code_d.items()}),
        usage_sql({key: {"count": n, "discount": d} for key, (n, d) in usage_d.items()}),
    ]


def apply_deltas(campaign_d, code_d, usage_d, *, also: list[tuple[str, list]] = ()) -> None:
    """Add the deltas to the counters (and run `also`, the caller's statements on other tables): one statement
    on PostgreSQL."""
    execute_together([*counter_statements(campaign_d, code_d, usage_d), *also])


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
