"""Keeping the daily rollups (reports.models): an incremental fold and a nightly re-check against raw rows.

The fold takes, per source table, the rows above its watermark (by id) and adds them to their days in one
set-based `INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE` per tenant time zone, then moves the
watermark, all in one transaction that holds the watermark's row lock: two folds at once run one after the
other, and a fold that crashes leaves nothing half done. A row lands in the day of its own time (an order in
the day of its `occurred_at`, however late it arrives), in its tenant's zone.

Ids are handed out before commit, so a row with a lower id may commit after a higher one was folded. The fold
therefore stops below the first row younger than `settle_seconds` (rows commit within a transaction's time),
and the re-check recomputes the recent days from raw rows and repairs (and reports) any drift that is left.
"""

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import connections, transaction
from django.db.models import Count, F, Max, Min, QuerySet, Sum
from django.db.models.functions import Abs, TruncDate
from django.utils import timezone

from loyalty.models import LedgerEntry, Order, OrderReturn
from members.models import Tenant
from reports.models import DailyOrders, DailyPoints, DailyRedemptions, RollupWatermark
from rewards.models import Redemption, RedemptionRollback

logger = logging.getLogger("reports")

SETTLE_SECONDS = 60
RECHECK_DAYS = 7


@dataclass(frozen=True)
class Part:
    """One source table's contribution to a rollup: the grouped SELECT (keys `k0..`, values `v_<column>`)."""

    source: str
    model: type
    values: tuple[str, ...]
    select: Callable[[QuerySet, dt.tzinfo], QuerySet]


@dataclass(frozen=True)
class Rollup:
    model: type
    keys: tuple[str, ...]
    values: tuple[str, ...]
    parts: tuple[Part, ...]


def _orders(qs, tz):
    return (
        qs.annotate(k0=F("tenant_id"), k1=TruncDate("occurred_at", tzinfo=tz), k2=F("location"))
        .values("k0", "k1", "k2")
        .annotate(v_orders=Count("id"), v_value=Sum("amount"))
        .order_by()
    )


def _returns(qs, tz):
    return (
        qs.annotate(k0=F("tenant_id"), k1=TruncDate("created_at", tzinfo=tz), k2=F("order__location"))
        .values("k0", "k1", "k2")
        .annotate(v_returned=Sum("amount"))
        .order_by()
    )


def _entries(qs, tz):
    return (
        qs.annotate(k0=F("tenant_id"), k1=TruncDate("created_at", tzinfo=tz), k2=F("kind"))
        .values("k0", "k1", "k2")
        .annotate(v_points=Sum("points"), v_abs_points=Sum(Abs("points")), v_entries=Count("id"))
        .order_by()
    )


def _redemptions(qs, tz):
    return (
        qs.annotate(k0=F("tenant_id"), k1=TruncDate("created_at", tzinfo=tz), k2=F("integration_name"))
        .values("k0", "k1", "k2")
        .annotate(v_redemptions=Count("id"))
        .order_by()
    )


def _rollbacks(qs, tz):
    """A rollback takes its redemption back out of the day the redemption was made."""
    return (
        qs.annotate(
            k0=F("tenant_id"),
            k1=TruncDate("redemption__created_at", tzinfo=tz),
            k2=F("redemption__integration_name"),
        )
        .values("k0", "k1", "k2")
        .annotate(v_redemptions=-Count("id"))
        .order_by()
    )


ROLLUPS = (
    Rollup(
        DailyOrders,
        ("tenant_id", "day", "location"),
        ("orders", "value", "returned"),
        (
            Part("order", Order, ("orders", "value"), _orders),
            Part("order_return", OrderReturn, ("returned",), _returns),
        ),
    ),
    Rollup(
        DailyPoints,
        ("tenant_id", "day", "kind"),
        ("points", "abs_points", "entries"),
        (Part("ledger_entry", LedgerEntry, ("points", "abs_points", "entries"), _entries),),
    ),
    Rollup(
        DailyRedemptions,
        ("tenant_id", "day", "integration_name"),
        ("redemptions",),
        (
            Part("redemption", Redemption, ("redemptions",), _redemptions),
            Part("redemption_rollback", RedemptionRollback, ("redemptions",), _rollbacks),
        ),
    ),
)


def _time_zones() -> list[str]:
    return sorted(set(Tenant.objects.values_list("time_zone", flat=True)))


def _upsert(rollup: Rollup, part: Part, grouped: QuerySet) -> None:
    table = rollup.model._meta.db_table
    inner, params = grouped.query.sql_with_params()
    keys = [f"s.k{i}" for i in range(len(rollup.keys))]
    values = [f"s.v_{v}" if v in part.values else "0" for v in rollup.values]
    sets = ", ".join(f"{v} = {table}.{v} + excluded.{v}" for v in part.values)
    sql = (
        f"INSERT INTO {table} ({', '.join(rollup.keys + rollup.values)}) "
        f"SELECT {', '.join(keys + values)} FROM ({inner}) AS s WHERE true "
        f"ON CONFLICT ({', '.join(rollup.keys)}) DO UPDATE SET {sets}"
    )
    with connections["default"].cursor() as cursor:
        cursor.execute(sql, params)


def _watermark(source: str) -> RollupWatermark:
    RollupWatermark.objects.get_or_create(source=source)  # outside the lock: get_or_create handles the race
    return RollupWatermark.objects.select_for_update().get(source=source)


def fold_part(rollup: Rollup, part: Part, *, settle_seconds: float = SETTLE_SECONDS) -> int:
    """Fold the part's new rows; returns how many rows were folded."""
    with transaction.atomic():
        mark = _watermark(part.source)
        pending = part.model.objects.filter(id__gt=mark.last_id)
        upto = pending.aggregate(m=Max("id"))["m"]
        if upto is None:
            return 0
        if settle_seconds:
            young = pending.filter(created_at__gte=timezone.now() - dt.timedelta(seconds=settle_seconds))
            first_young = young.aggregate(m=Min("id"))["m"]
            if first_young is not None:
                upto = first_young - 1
        if upto <= mark.last_id:
            return 0
        rows = part.model.objects.filter(id__gt=mark.last_id, id__lte=upto)
        folded = rows.count()
        for zone in _time_zones():
            _upsert(rollup, part, part.select(rows.filter(tenant__time_zone=zone), ZoneInfo(zone)))
        mark.last_id = upto
        mark.folded_at = timezone.now()
        mark.save(update_fields=["last_id", "folded_at"])
        return folded


def rollups_fold(*, settle_seconds: float = SETTLE_SECONDS) -> dict[str, int]:
    """Fold every source's new rows into the rollups; returns the rows folded per source."""
    return {
        part.source: fold_part(rollup, part, settle_seconds=settle_seconds)
        for rollup in ROLLUPS
        for part in rollup.parts
    }


def _raw(rollup: Rollup, marks: dict[str, int], since: dt.date) -> dict[tuple, dict[str, Decimal | int]]:
    """The rollup's rows recomputed from raw rows up to the watermarks, for the days from `since`."""
    out: dict[tuple, dict[str, Decimal | int]] = {}
    earliest = dt.datetime.combine(since - dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    for part in rollup.parts:
        time_field = {"order": "occurred_at", "redemption_rollback": "redemption__created_at"}.get(
            part.source, "created_at"
        )
        rows = part.model.objects.filter(id__lte=marks[part.source], **{f"{time_field}__gte": earliest})
        for zone in _time_zones():
            grouped = part.select(rows.filter(tenant__time_zone=zone), ZoneInfo(zone)).filter(k1__gte=since)
            for row in grouped:
                key = tuple(row[f"k{i}"] for i in range(len(rollup.keys)))
                figures = out.setdefault(key, dict.fromkeys(rollup.values, 0))
                for name in part.values:
                    figures[name] += row[f"v_{name}"] or 0
    return out


def rollups_recheck(*, days: int = RECHECK_DAYS) -> int:
    """Recompute the last `days` days of every rollup from raw rows, repair what differs, and return (and log)
    how many rollup rows had drifted."""
    since = timezone.now().date() - dt.timedelta(days=days)
    drifted = 0
    for rollup in ROLLUPS:
        with transaction.atomic():
            marks = {part.source: _watermark(part.source).last_id for part in rollup.parts}  # in ROLLUPS' order
            expected = _raw(rollup, marks, since)
            stored = {
                tuple(getattr(row, k) for k in rollup.keys): row for row in rollup.model.objects.filter(day__gte=since)
            }
            for key, figures in expected.items():
                row = stored.pop(key, None)
                nonzero = any(figures.values())
                if row is None and not nonzero:
                    continue
                if row is not None and all(getattr(row, v) == figures[v] for v in rollup.values):
                    continue
                drifted += 1
                logger.warning("rollup drift in %s at %s: %s, not %s", rollup.model.__name__, key, figures, row)
                rollup.model.objects.update_or_create(**dict(zip(rollup.keys, key, strict=True)), defaults=figures)
            for key, row in stored.items():  # rows for which no raw row is left
                if any(getattr(row, v) for v in rollup.values):
                    drifted += 1
                    logger.warning("rollup drift in %s at %s: no raw rows", rollup.model.__name__, key)
                row.delete()
    if drifted:
        logger.warning("rollups re-check repaired %d rows", drifted)
    return drifted
