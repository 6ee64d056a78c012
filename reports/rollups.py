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
from django.db.models import Case, Count, F, IntegerField, Max, Min, OuterRef, Q, QuerySet, Subquery, Sum, Value, When
from django.db.models.functions import Abs, Coalesce, TruncDate
from django.utils import timezone

from campaigns.models import Publication
from loyalty.models import LedgerEntry, Order, OrderReturn
from members.models import Tenant
from reports.models import (
    DailyLedger,
    DailyMemberActivity,
    DailyMemberOrders,
    DailyOrders,
    DailyPoints,
    DailyRedemptions,
    DailyRefusals,
    OrderDiscount,
    PublicationFact,
    RollupWatermark,
)
from rewards.models import EvaluationTrace, Redemption, RedemptionCode, RedemptionRollback, RewardPurchase

logger = logging.getLogger("reports")

SETTLE_SECONDS = 60
RECHECK_DAYS = 7


@dataclass(frozen=True)
class Part:
    """One source table's contribution to a rollup: the grouped SELECT (keys `k0..`, values `v_<column>`), a
    QuerySet or `(sql, params)`. `source` names its watermark (one per part, so two parts may read one table);
    `rows` narrows the table to the rows the part folds, `time_field` is the time that picks a row's day."""

    source: str
    model: type
    values: tuple[str, ...]
    select: Callable[[QuerySet, dt.tzinfo], "QuerySet | tuple[str, list]"]
    time_field: str = "created_at"
    rows: Callable[[QuerySet], QuerySet] = staticmethod(lambda qs: qs)
    member: str = "member_id"  # the row's member (the per-member rollups' third key; the tier/segment filters)


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


def _ledger(qs, tz):
    return (
        qs.annotate(
            k0=F("tenant_id"),
            k1=TruncDate("created_at", tzinfo=tz),
            k2=F("account__program_id"),
            k3=Coalesce("campaign_id", Value(0)),
            k4=F("kind"),
        )
        .values("k0", "k1", "k2", "k3", "k4")
        .annotate(v_points=Sum("points"), v_abs_points=Sum(Abs("points")))
        .order_by()
    )


def _per_member(time_field: str, member: str, **values):
    """A part's select grouped by (tenant, day of `time_field`, member), with `values` as its `v_` columns."""

    def select(qs, tz):
        return (
            qs.annotate(k0=F("tenant_id"), k1=TruncDate(time_field, tzinfo=tz), k2=F(member))
            .values("k0", "k1", "k2")
            .annotate(**{f"v_{name}": value for name, value in values.items()})
            .order_by()
        )

    return select


def _member_part(
    source: str, model: type, *, time_field: str = "created_at", member: str = "member_id", rows=None, **values
) -> Part:
    """A per-member rollup's part: rows grouped by (tenant, day of `time_field`, `member`), `values` summed."""
    extra = {"rows": rows} if rows is not None else {}
    select = _per_member(time_field, member, **values)
    return Part(source, model, tuple(values), select, time_field=time_field, member=member, **extra)


def _rolled_back_acts(qs, tz):
    """A rollback takes its redemption's engaging acts (its code lines, and itself if paid with points) out of the
    day the redemption was made."""
    lines = (
        RedemptionCode.objects.filter(redemption_id=OuterRef("redemption_id"), kind=RedemptionCode.Kind.CODE)
        .values("redemption_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    acts = Coalesce(Subquery(lines, output_field=IntegerField()), Value(0)) + Case(
        When(redemption__points_used__gt=0, then=Value(1)), default=Value(0), output_field=IntegerField()
    )
    return (
        qs.annotate(
            k0=F("tenant_id"),
            k1=TruncDate("redemption__created_at", tzinfo=tz),
            k2=F("redemption__member_id"),
            acts=acts,
        )
        .values("k0", "k1", "k2")
        .annotate(v_engaged=-Sum("acts"))
        .order_by()
    )


def refusals_sql(traces: QuerySet, tz: dt.tzinfo) -> tuple[str, list]:
    """Refused attempts grouped by (tenant, day, integration, campaign, reason): each attempt once per reason it
    gave (campaign 0), and once per reason its refused lines of a campaign gave (that campaign's id, as the
    trace's `document` lines name it). SQL, as the reasons are JSON lists (PostgreSQL jsonb, or SQLite JSON)."""
    inner, params = (
        traces.annotate(d=TruncDate("created_at", tzinfo=tz))
        .values("id", "tenant_id", "d", "integration_name", "reasons", "document")
        .order_by()
        .query.sql_with_params()
    )
    if connections[traces.db].vendor == "postgresql":
        reasons = (
            "jsonb_array_elements_text(CASE WHEN jsonb_typeof(t.reasons) = 'array' THEN t.reasons "
            "ELSE '[]'::jsonb END) AS r(reason)"
        )
        lines = (
            "jsonb_array_elements(CASE WHEN jsonb_typeof(t.document -> 'lines') = 'array' "
            "THEN t.document -> 'lines' ELSE '[]'::jsonb END) AS l(line)"
        )
        campaign, reason = "(l.line ->> 'campaign')", "(l.line ->> 'reason')"
        refused = f"l.line ->> 'valid' = 'false' AND {campaign} ~ '^[0-9]{{1,18}}$'"
        reason_of = "r.reason"
    else:
        reasons = "json_each(CASE WHEN json_type(t.reasons) = 'array' THEN t.reasons ELSE '[]' END) AS r"
        lines = (
            "json_each(CASE WHEN json_type(t.document, '$.lines') = 'array' "
            "THEN json_extract(t.document, '$.lines') ELSE '[]' END) AS l"
        )
        campaign, reason = "CAST(json_extract(l.value, '$.campaign') AS TEXT)", "json_extract(l.value, '$.reason')"
        refused = (
            f"json_type(l.value, '$.valid') = 'false' AND {campaign} GLOB '[0-9]*' "
            f"AND NOT {campaign} GLOB '*[^0-9]*' AND length({campaign}) <= 18"
        )
        reason_of = "r.value"
    sql = f"""
        SELECT k0, k1, k2, k3, k4, count(*) AS v_attempts FROM (
            SELECT DISTINCT t.id, t.tenant_id AS k0, t.d AS k1, t.integration_name AS k2, 0 AS k3,
                   {reason_of} AS k4
            FROM ({inner}) t, {reasons}
            UNION ALL
            SELECT DISTINCT t.id, t.tenant_id, t.d, t.integration_name, CAST({campaign} AS BIGINT), {reason}
            FROM ({inner}) t, {lines}
            WHERE {refused} AND {reason} IS NOT NULL
        ) AS refusals GROUP BY k0, k1, k2, k3, k4"""
    return sql, [*params, *params]


def refused_attempts(qs: QuerySet) -> QuerySet:
    return qs.filter(kind=EvaluationTrace.Kind.REDEMPTION, succeeded=False)


ROLLUPS = (
    Rollup(
        DailyOrders,
        ("tenant_id", "day", "location"),
        ("orders", "value", "returned"),
        (
            Part("order", Order, ("orders", "value"), _orders, time_field="occurred_at"),
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
            Part(
                "redemption_rollback",
                RedemptionRollback,
                ("redemptions",),
                _rollbacks,
                time_field="redemption__created_at",
            ),
        ),
    ),
    Rollup(
        DailyLedger,
        ("tenant_id", "day", "program_id", "campaign_id", "kind"),
        ("points", "abs_points"),
        (Part("ledger_entry:program", LedgerEntry, ("points", "abs_points"), _ledger),),
    ),
    Rollup(
        DailyRefusals,
        ("tenant_id", "day", "integration_name", "campaign_id", "reason"),
        ("attempts",),
        (Part("evaluation_trace", EvaluationTrace, ("attempts",), refusals_sql, rows=refused_attempts),),
    ),
    Rollup(
        DailyMemberOrders,
        ("tenant_id", "day", "member_id"),
        ("orders", "value", "engaged"),
        (
            _member_part("member:order", Order, time_field="occurred_at", orders=Count("id"), value=Sum("amount")),
            _member_part(
                "member:redemption_code",
                RedemptionCode,
                rows=lambda qs: qs.filter(kind=RedemptionCode.Kind.CODE),
                engaged=Count("id"),
            ),
            _member_part(
                "member:redemption", Redemption, rows=lambda qs: qs.filter(points_used__gt=0), engaged=Count("id")
            ),
            _member_part("member:reward_purchase", RewardPurchase, engaged=Count("id")),
            Part(
                "member:redemption_rollback",
                RedemptionRollback,
                ("engaged",),
                _rolled_back_acts,
                time_field="redemption__created_at",
                member="redemption__member_id",
            ),
        ),
    ),
    Rollup(
        DailyMemberActivity,
        ("tenant_id", "day", "member_id"),
        ("acts",),
        (
            _member_part("activity:order", Order, time_field="occurred_at", acts=Count("id")),
            _member_part("activity:ledger_entry", LedgerEntry, member="account__member_id", acts=Count("id")),
        ),
    ),
)


def _time_zones() -> list[str]:
    return sorted(set(Tenant.objects.values_list("time_zone", flat=True)))


def _sql(grouped: "QuerySet | tuple[str, list]") -> tuple[str, list]:
    if isinstance(grouped, QuerySet):
        inner, params = grouped.query.sql_with_params()
        return inner, list(params)
    return grouped


def _fetch(grouped: "QuerySet | tuple[str, list]", using: str = "default") -> list[dict]:
    if isinstance(grouped, QuerySet):
        return list(grouped)
    sql, params = grouped
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        names = [c[0] for c in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:  # SQLite answers a raw statement's dates as text
        if isinstance(row.get("k1"), str):
            row["k1"] = dt.date.fromisoformat(row["k1"])
    return rows


def _upsert(rollup: Rollup, part: Part, grouped: "QuerySet | tuple[str, list]") -> None:
    table = rollup.model._meta.db_table
    inner, params = _sql(grouped)
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
        upto = _upto(part.model, mark.last_id, settle_seconds)
        if upto <= mark.last_id:
            return 0
        rows = part.rows(part.model.objects.filter(id__gt=mark.last_id, id__lte=upto))
        folded = rows.count()
        for zone in _time_zones():
            _upsert(rollup, part, part.select(rows.filter(tenant__time_zone=zone), ZoneInfo(zone)))
        mark.last_id = upto
        mark.folded_at = timezone.now()
        mark.save(update_fields=["last_id", "folded_at"])
        return folded


def rollups_fold(*, settle_seconds: float = SETTLE_SECONDS) -> dict[str, int]:
    """Fold every source's new rows into the rollups; returns the rows folded per source."""
    folded = {
        part.source: fold_part(rollup, part, settle_seconds=settle_seconds)
        for rollup in ROLLUPS
        for part in rollup.parts
    }
    folded["order_discount"] = fold_discounts(settle_seconds=settle_seconds)
    folded["publication_facts"] = fold_publications(settle_seconds=settle_seconds)
    return folded


def _raw(rollup: Rollup, marks: dict[str, int], since: dt.date) -> dict[tuple, dict[str, Decimal | int]]:
    """The rollup's rows recomputed from raw rows up to the watermarks, for the days from `since`."""
    out: dict[tuple, dict[str, Decimal | int]] = {}
    earliest = dt.datetime.combine(since - dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    for part in rollup.parts:
        rows = part.rows(part.model.objects.filter(id__lte=marks[part.source], **{f"{part.time_field}__gte": earliest}))
        for zone in _time_zones():
            grouped = part.select(rows.filter(tenant__time_zone=zone), ZoneInfo(zone))
            for row in _fetch(grouped):
                if row["k1"] < since:
                    continue
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
                if rollup.model is DailyOrders and (row.discount or row.discounted_orders):
                    rollup.model.objects.filter(pk=row.pk).update(**dict.fromkeys(rollup.values, 0))
                else:  # (a day's discounts are re-checked below)
                    row.delete()
    drifted += discounts_recheck(since)
    drifted += publications_recheck(since)
    if drifted:
        logger.warning("rollups re-check repaired %d rows", drifted)
    return drifted


# --- order discounts: recomputed per touched order ------------------------------------------------------

DISCOUNT_SOURCES = (
    ("discount:order", Order),
    ("discount:redemption", Redemption),
    ("discount:redemption_rollback", RedemptionRollback),
)
TOUCHED = "reports_touched_orders"


def _upto(model, last_id: int, settle_seconds: float, time_field: str = "created_at") -> int:
    """The highest id the fold may take: below the first row younger than `settle_seconds` (by `time_field`)."""
    pending = model.objects.filter(id__gt=last_id)
    upto = pending.aggregate(m=Max("id"))["m"]
    if upto is None:
        return last_id
    if settle_seconds:
        since = timezone.now() - dt.timedelta(seconds=settle_seconds)
        young = pending.filter(**{f"{time_field}__gte": since})
        first_young = young.aggregate(m=Min("id"))["m"]
        if first_young is not None:
            upto = first_young - 1
    return max(upto, last_id)


def _marks_move(marks: dict[str, RollupWatermark], uptos: dict[str, int]) -> None:
    for source, mark in marks.items():
        mark.last_id = uptos[source]
        mark.folded_at = timezone.now()
        mark.save(update_fields=["last_id", "folded_at"])


def touched_orders_sql(marks: dict[str, int], uptos: dict[str, int]) -> tuple[str, list]:
    """The ids of the orders (up to the order watermark `uptos`) that orders, redemptions and rollbacks with ids
    in (marks, uptos] touch: their discount may have changed."""
    order, redemption, rollback = (m._meta.db_table for _, m in DISCOUNT_SOURCES)
    sql = f"""
        SELECT o.id FROM {order} o WHERE o.id > %s AND o.id <= %s
        UNION SELECT o.id FROM {order} o JOIN {redemption} r ON r.tenant_id = o.tenant_id AND r.order_id = o.order_id
            WHERE r.id > %s AND r.id <= %s AND o.id <= %s
        UNION SELECT o.id FROM {order} o JOIN {redemption} r ON r.tenant_id = o.tenant_id AND r.order_id = o.order_id
            JOIN {rollback} b ON b.redemption_id = r.id WHERE b.id > %s AND b.id <= %s AND o.id <= %s"""
    o, r, b = (s for s, _ in DISCOUNT_SOURCES)
    return sql, [marks[o], uptos[o], marks[r], uptos[r], uptos[o], marks[b], uptos[b], uptos[o]]


def order_discount(outer: str = "order_id") -> Coalesce:
    """The discount of the order in OuterRef: its successful redemptions' (matched by tenant and order id)."""
    from django.db.models import DecimalField, OuterRef, Subquery

    money = DecimalField(max_digits=16, decimal_places=2)
    total = (
        Redemption.objects.filter(
            tenant_id=OuterRef("tenant_id"), order_id=OuterRef(outer), status=Redemption.Status.SUCCEEDED
        )
        .values("tenant_id")
        .annotate(total=Sum("discount"))
        .values("total")
    )
    return Coalesce(Subquery(total, output_field=money), Value(Decimal("0.00")), output_field=money)


def _shift_daily(cursor, sign: str) -> None:
    """Add (`+`) or take out (`-`) the kept discounts of the touched orders in `DailyOrders`."""
    table, facts = DailyOrders._meta.db_table, OrderDiscount._meta.db_table
    sets = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in ("discount", "discounted_orders", "discounted_value"))
    cursor.execute(
        f"""INSERT INTO {table} (tenant_id, day, location, orders, value, returned, discount, discounted_orders,
                                 discounted_value)
        SELECT f.tenant_id, f.day, f.location, 0, 0, 0, {sign}SUM(f.discount),
               {sign}SUM(CASE WHEN f.discount > 0 THEN 1 ELSE 0 END),
               {sign}SUM(CASE WHEN f.discount > 0 THEN f.amount ELSE 0 END)
        FROM {facts} f WHERE f.order_pk IN (SELECT id FROM {TOUCHED})
        GROUP BY f.tenant_id, f.day, f.location
        ON CONFLICT (tenant_id, day, location) DO UPDATE SET {sets}"""
    )


def _recompute(cursor, touched: tuple[str, list]) -> int:
    """Recompute the discount of the orders `touched` selects: their old figures out of the daily rollup, the
    new ones kept and put in. Returns how many kept discounts changed (new orders included)."""
    facts = OrderDiscount._meta.db_table
    cursor.execute(f"DROP TABLE IF EXISTS {TOUCHED}")
    cursor.execute(f"CREATE TEMP TABLE {TOUCHED} (id bigint PRIMARY KEY)")
    cursor.execute(f"INSERT INTO {TOUCHED} (id) {touched[0]}", touched[1])
    _shift_daily(cursor, "-")
    changed = 0
    for zone in _time_zones():
        rows = (
            Order.objects.filter(tenant__time_zone=zone)
            .extra(where=[f"{Order._meta.db_table}.id IN (SELECT id FROM {TOUCHED})"])
            .annotate(d=TruncDate("occurred_at", tzinfo=ZoneInfo(zone)), disc=order_discount())
            .values_list("id", "tenant_id", "d", "location", "amount", "disc")
            .order_by()
        )
        inner, params = rows.query.sql_with_params()
        cursor.execute(
            f"""INSERT INTO {facts} (order_pk, tenant_id, day, location, amount, discount)
            SELECT * FROM ({inner}) AS s WHERE true
            ON CONFLICT (order_pk) DO UPDATE SET discount = excluded.discount
            WHERE {facts}.discount <> excluded.discount""",
            params,
        )
        changed += cursor.rowcount
    _shift_daily(cursor, "+")
    cursor.execute(f"DROP TABLE {TOUCHED}")
    return changed


def fold_discounts(*, settle_seconds: float = SETTLE_SECONDS) -> int:
    """Fold the orders, redemptions and rollbacks written since the last run into the orders' discounts;
    returns how many orders were recomputed."""
    with transaction.atomic():
        marks = {source: _watermark(source) for source, _ in DISCOUNT_SOURCES}  # locked in this order
        last = {source: mark.last_id for source, mark in marks.items()}
        uptos = {source: _upto(model, last[source], settle_seconds) for source, model in DISCOUNT_SOURCES}
        if uptos == last:
            return 0
        with connections["default"].cursor() as cursor:
            touched = _recompute(cursor, touched_orders_sql(last, uptos))
        _marks_move(marks, uptos)
        return touched


def discounts_recheck(since: dt.date) -> int:
    """Recompute the kept discount of the orders of the days from `since` and of those that redemptions and
    rollbacks made since then name (a row that committed below a watermark after the fold passed it); repair
    them and the daily rollup; returns how many kept discounts or rollup rows had drifted."""
    earliest = dt.datetime.combine(since - dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    order, redemption, rollback = (m._meta.db_table for _, m in DISCOUNT_SOURCES)
    drifted = 0
    with transaction.atomic():
        marks = {source: _watermark(source).last_id for source, _ in DISCOUNT_SOURCES}
        top = marks["discount:order"]
        touched = (
            f"""SELECT o.id FROM {order} o WHERE o.id <= %s AND o.occurred_at >= %s
            UNION SELECT o.id FROM {order} o JOIN {redemption} r ON r.tenant_id = o.tenant_id
                AND r.order_id = o.order_id WHERE o.id <= %s AND r.created_at >= %s
            UNION SELECT o.id FROM {order} o JOIN {redemption} r ON r.tenant_id = o.tenant_id
                AND r.order_id = o.order_id JOIN {rollback} b ON b.redemption_id = r.id
                WHERE o.id <= %s AND b.created_at >= %s""",
            [top, earliest, top, earliest, top, earliest],
        )
        with connections["default"].cursor() as cursor:
            drifted += _recompute(cursor, touched)
        # The daily rollup against the kept discounts.
        kept = {
            (row["tenant_id"], row["day"], row["location"]): row
            for row in OrderDiscount.objects.filter(day__gte=since)
            .values("tenant_id", "day", "location")
            .annotate(
                d_sum=Sum("discount"),
                n_sum=Count("order_pk", filter=Q(discount__gt=0)),
                v_sum=Sum("amount", filter=Q(discount__gt=0)),
            )
        }
        names = {"discount": "d_sum", "discounted_orders": "n_sum", "discounted_value": "v_sum"}
        for row in DailyOrders.objects.filter(day__gte=since).select_for_update():
            want = kept.pop((row.tenant_id, row.day, row.location), {})
            figures = {name: want.get(key) or 0 for name, key in names.items()}
            if any(getattr(row, name) != value for name, value in figures.items()):
                drifted += 1
                logger.warning("rollup drift in DailyOrders discounts at %s: %s", (row.tenant_id, row.day), figures)
                DailyOrders.objects.filter(pk=row.pk).update(**figures)
        for (tenant_id, day, location), want in kept.items():
            if want["d_sum"] or want["n_sum"]:
                drifted += 1
                logger.warning("rollup drift in DailyOrders discounts at %s: no row", (tenant_id, day))
                DailyOrders.objects.update_or_create(
                    tenant_id=tenant_id,
                    day=day,
                    location=location,
                    defaults={name: want[key] or 0 for name, key in names.items()},
                )
    return drifted


# --- publication facts: recomputed per touched code -----------------------------------------------------

PUBLICATION_SOURCES = (
    ("publication:publication", Publication, "published_at"),
    ("publication:redemption_code", RedemptionCode, "created_at"),
    ("publication:redemption_rollback", RedemptionRollback, "created_at"),
)


def first_redeemed_day(tz: dt.tzinfo, outer: str = "code_id", before: dt.datetime | None = None) -> Subquery:
    """The day (in `tz`) of the first line not rolled back of the code in OuterRef(`outer`), or NULL."""
    lines = RedemptionCode.objects.filter(code_id=OuterRef(outer), rolled_back=False)
    if before is not None:
        lines = lines.filter(created_at__lt=before)
    first = lines.order_by("created_at").values("created_at")[:1]
    return TruncDate(Subquery(first), tzinfo=tz)


def codes_touched(lines: QuerySet, rollbacks: QuerySet) -> tuple[QuerySet, QuerySet]:
    """The codes of the redemption lines `lines`, and of the lines of the redemptions that `rollbacks` rolled
    back: two subqueries (one index each, rather than an OR across a join)."""
    of_lines = lines.filter(code_id__isnull=False).values("code_id")
    of_rollbacks = (
        RedemptionCode.objects.using(lines.db)
        .filter(redemption_id__in=rollbacks.values("redemption_id"), code_id__isnull=False)
        .values("code_id")
    )
    return of_lines, of_rollbacks


def _facts_insert(publications: QuerySet, zone: str) -> int:
    tz = ZoneInfo(zone)
    rows = (
        publications.filter(tenant__time_zone=zone)
        .annotate(d=TruncDate("published_at", tzinfo=tz), r=first_redeemed_day(tz))
        .values_list("id", "tenant_id", "d", "campaign_id", "member_id", "code_id", "r")
        .order_by()
    )
    inner, params = rows.query.sql_with_params()
    with connections["default"].cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {PublicationFact._meta.db_table}
                (publication_pk, tenant_id, day, campaign_id, member_id, code_id, redeemed_day)
            SELECT * FROM ({inner}) AS s WHERE true ON CONFLICT (publication_pk) DO NOTHING""",
            params,
        )
        return cursor.rowcount


def _facts_recompute(facts: QuerySet, zone: str) -> int:
    """Recompute `redeemed_day` of `facts` of the tenants in `zone`; returns how many changed."""
    tz = ZoneInfo(zone)
    facts = facts.filter(tenant__time_zone=zone).annotate(now_day=first_redeemed_day(tz))
    changed = facts.filter(
        (Q(now_day__isnull=True) & Q(redeemed_day__isnull=False))
        | (Q(now_day__isnull=False) & (Q(redeemed_day__isnull=True) | ~Q(redeemed_day=F("now_day"))))
    )
    pks = list(changed.values_list("publication_pk", flat=True))
    if pks:
        PublicationFact.objects.filter(publication_pk__in=pks).update(redeemed_day=first_redeemed_day(tz))
    return len(pks)


def fold_publications(*, settle_seconds: float = SETTLE_SECONDS) -> int:
    """Fold new publications into their facts and recompute the facts of the codes that new redemption lines and
    rollbacks touch; returns how many facts were written or changed."""
    with transaction.atomic():
        marks = {source: _watermark(source) for source, _, _ in PUBLICATION_SOURCES}  # locked in this order
        last = {source: mark.last_id for source, mark in marks.items()}
        uptos = {s: _upto(model, last[s], settle_seconds, field) for s, model, field in PUBLICATION_SOURCES}
        if uptos == last:
            return 0
        (p, _, _), (lo, _, _), (b, _, _) = PUBLICATION_SOURCES
        publications = Publication.objects.filter(id__gt=last[p], id__lte=uptos[p])
        touched = codes_touched(
            RedemptionCode.objects.filter(id__gt=last[lo], id__lte=uptos[lo]),
            RedemptionRollback.objects.filter(id__gt=last[b], id__lte=uptos[b]),
        )
        facts = PublicationFact.objects.filter(Q(code_id__in=touched[0]) | Q(code_id__in=touched[1]))
        written = 0
        for zone in _time_zones():
            written += _facts_insert(publications, zone)
            written += _facts_recompute(facts, zone)
        _marks_move(marks, uptos)
        return written


def publications_recheck(since: dt.date) -> int:
    """Insert the facts missing for publications up to the watermark since `since`, recompute those of the days
    from `since` and of the codes that lines and rollbacks made since then touch; returns how many had drifted."""
    earliest = dt.datetime.combine(since - dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    drifted = 0
    with transaction.atomic():
        marks = {source: _watermark(source).last_id for source, _, _ in PUBLICATION_SOURCES}
        (p, _, _), (lo, _, _), (b, _, _) = PUBLICATION_SOURCES
        missing = Publication.objects.filter(id__lte=marks[p], published_at__gte=earliest).exclude(
            id__in=PublicationFact.objects.filter(day__gte=since - dt.timedelta(days=2)).values("publication_pk")
        )
        touched = codes_touched(
            RedemptionCode.objects.filter(id__lte=marks[lo], created_at__gte=earliest),
            RedemptionRollback.objects.filter(id__lte=marks[b], created_at__gte=earliest),
        )
        facts = PublicationFact.objects.filter(
            Q(day__gte=since) | Q(code_id__in=touched[0]) | Q(code_id__in=touched[1])
        )
        for zone in _time_zones():
            drifted += _facts_insert(missing, zone) + _facts_recompute(facts, zone)
    if drifted:
        logger.warning("publication facts re-check repaired %d facts", drifted)
    return drifted
