"""The campaign page's figures that live in this app's records: validations, rollbacks, failed attempts by
reason, and the daily series of the last 90 days.

Here and not in `campaigns`, which may not import this app (campaigns < rewards): the campaign console gets
them through its `campaign_activity` hook, which `rewards.admin.campaign_numbers` fills with this selector.
A fixed number of queries whatever the number of redemptions or traces: three aggregates.

Traces hold no campaign column (an append-only log on the hot path): their per-code lines name the campaign in
the JSON document, so the trace aggregate unnests the lines in SQL (`jsonb_array_elements` on PostgreSQL,
`json_each` on SQLite), over the tenant's traces of the window (the `trace_recent` index).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from campaigns.models import Campaign
from common.money import money_str
from rewards.models import EvaluationTrace, RedemptionCode

DAYS = 90

_TRACE_LINES = {
    "postgresql": """
        SELECT t.kind, (line->>'valid')::boolean, COALESCE(line->>'reason', ''),
               (t.created_at AT TIME ZONE %(tz)s)::date, COUNT(*)
        FROM {table} t CROSS JOIN LATERAL jsonb_array_elements(t.document->'lines') AS line
        WHERE t.tenant_id = %(tenant)s AND t.created_at >= %(since)s AND line->>'campaign' = %(campaign)s
        GROUP BY 1, 2, 3, 4
    """,
    "sqlite": """
        SELECT t.kind, json_extract(line.value, '$.valid'), COALESCE(json_extract(line.value, '$.reason'), ''),
               date(t.created_at), COUNT(*)
        FROM {table} t, json_each(t.document, '$.lines') AS line
        WHERE t.tenant_id = %(tenant)s AND t.created_at >= %(since)s
          AND json_extract(line.value, '$.campaign') = %(campaign)s
        GROUP BY 1, 2, 3, 4
    """,
}


def _trace_lines(campaign: Campaign, since, tz_name: str) -> list[tuple]:
    """(kind, valid, reason, day, count) of the campaign's lines in the tenant's traces since `since`.

    SQLite groups by the UTC day (it has no time zones); PostgreSQL by the tenant's."""
    sql = _TRACE_LINES.get(connection.vendor)
    if sql is None:
        return []
    if connection.vendor == "sqlite":  # stored as naive UTC text
        since = since.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ")
    with connection.cursor() as cursor:
        cursor.execute(
            sql.format(table=EvaluationTrace._meta.db_table),
            {"tz": tz_name, "tenant": campaign.tenant_id, "since": since, "campaign": str(campaign.pk)},
        )
        rows = cursor.fetchall()
    return [
        (kind, bool(valid), reason, day if isinstance(day, dt.date) else dt.date.fromisoformat(day), n)
        for kind, valid, reason, day, n in rows
    ]


def campaign_activity(campaign: Campaign, *, now: dt.datetime | None = None, days: int = DAYS) -> dict[str, Any]:
    """Validations, rollbacks, failed attempts by reason (all time within the traces kept, or the window) and
    one row per day of the last `days` days: redemptions, discount, validations, failed attempts."""
    now = now or timezone.now()
    tz = campaign.tenant.tz
    today = now.astimezone(tz).date()
    first = today - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(first, dt.time.min, tzinfo=tz)

    lines = RedemptionCode.objects.filter(campaign=campaign)
    totals = lines.aggregate(rollbacks=Count("pk", filter=Q(rolled_back=True)))
    per_day = (
        lines.filter(created_at__gte=since, rolled_back=False)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day")
        .annotate(n=Count("pk"), discount=Sum("discount"))
    )
    series: dict[dt.date, dict[str, Any]] = defaultdict(
        lambda: {"redemptions": 0, "discount": Decimal("0"), "validations": 0, "failed": 0}
    )
    for row in per_day:
        series[row["day"]]["redemptions"] = row["n"]
        series[row["day"]]["discount"] = row["discount"] or Decimal("0")

    validations = refused_validations = 0
    failed: dict[str, dict[str, int]] = defaultdict(lambda: {"validation": 0, "redemption": 0})
    for kind, valid, reason, day, n in _trace_lines(campaign, since, campaign.tenant.time_zone):
        if kind == EvaluationTrace.Kind.VALIDATION:
            validations += n
            if first <= day <= today:
                series[day]["validations"] += n
        if not valid:
            refused_validations += n if kind == EvaluationTrace.Kind.VALIDATION else 0
            failed[reason or "unknown"][kind] += n
            if first <= day <= today:
                series[day]["failed"] += n

    chart_days = [first + dt.timedelta(days=i) for i in range(days)]
    return {
        "validations": validations,
        "validations_refused": refused_validations,
        "rollbacks": totals["rollbacks"],
        "failed_by_reason": sorted(
            ({"reason": reason, **counts, "total": sum(counts.values())} for reason, counts in failed.items()),
            key=lambda row: (-row["total"], row["reason"]),
        ),
        "chart": {
            "days": [d.isoformat() for d in chart_days],
            "redemptions": [series[d]["redemptions"] if d in series else 0 for d in chart_days],
            "discount": [money_str(series[d]["discount"]) if d in series else "0.00" for d in chart_days],
            "validations": [series[d]["validations"] if d in series else 0 for d in chart_days],
            "failed": [series[d]["failed"] if d in series else 0 for d in chart_days],
        },
        "window_days": days,
    }


def last_redemption_at(campaign_ids) -> dict[int, dt.datetime]:
    """The time of the latest redemption line of each campaign (the list's "last activity")."""
    rows = (
        RedemptionCode.objects.filter(campaign_id__in=list(campaign_ids))
        .values("campaign_id")
        .annotate(at=Max("created_at"))
    )
    return {row["campaign_id"]: row["at"] for row in rows}
