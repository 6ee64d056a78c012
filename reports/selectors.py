"""The report figures (API.md, "Reports"): a summary and a time series over a range of days in the tenant's zone.

Every figure is an aggregate in the database, never a Python sum over rows, and a fixed number of queries
whatever the volume. Where they come from:

- From the daily rollups plus the raw rows above each source's watermark (one statement per figure, so the
  rollup and its tail are read in one snapshot): order count and value, returned amounts, the discounts and the
  averages with and without one (`DailyOrders` fed by `OrderDiscount`, the tail being the orders that orders,
  redemptions or rollbacks above the `discount:*` watermarks touch: raw discount less the one folded) — all
  with no filter but `location`; points by kind (no filter but `location`/`integration`, which do not narrow
  points, or `campaign`: `DailyLedger`); the outstanding points by program (`DailyLedger`'s cumulative daily
  deltas, also under `campaign`); successful redemptions (no filter but `integration`); refused attempts by
  reason (`DailyRefusals`, also under `campaign` and `integration`).
- From the per-member rollups (`DailyMemberOrders`, `DailyMemberActivity`) plus their tails: the members
  figures (no filter but `tier`/`segment`, which narrow their rows) and the engaged set; from `PublicationFact`
  plus raw rows for the publications and codes above its watermarks: published, redeemed and their engaged
  shares (under any filter).
- From raw rows (indexed aggregates): the other figures under a `tier` or `segment` filter (a member's tier and
  segments are those of now, which a daily rollup cannot hold), order and discount figures under a `campaign`
  or `integration` filter, the members figures under `location`, `campaign` or `integration`, and always points
  expiring, gift cards and tiers.

A summary or series reads in one snapshot (`Report.snapshot`).

Filters: `tier` and `segment` narrow everything to those members. `location` narrows orders, returns and the
figures made of orders (discount, members' orders, revenue). `integration` narrows redemptions, failed attempts
and discounts, and orders to those with a successful redemption through it. `campaign` narrows redemptions,
discounts (its redemption lines), failed attempts (those in which a code of it was refused, by the reasons its
lines gave, as the trace's document records them), publications, gift cards (its codes), points (entries
naming it), and orders to those with a successful redemption of it.

Reads go to `report_database()`: the replica when `DATABASE_REPLICA_URL` is set.
"""

import datetime as dt
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.db.models import (
    Case,
    Count,
    DecimalField,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Abs, Coalesce, TruncDate
from django.utils import timezone

from campaigns.models import Code, Publication
from loyalty.models import LedgerEntry, MemberTier, Order, OrderReturn, PointLot, Program, Tier, TierChange
from members.models import Member, Segment, Tenant
from members.selectors import segment_members
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
from reports.rollups import ROLLUPS, Rollup, codes_touched, refusals_sql
from rewards.models import (
    EvaluationTrace,
    GiftCardTransaction,
    Redemption,
    RedemptionCode,
    RedemptionRollback,
    RewardPurchase,
)

CENT = Decimal("0.01")
RATE = Decimal("0.0001")
ZERO = Decimal("0.00")
EXPIRING_DAYS = (30, 60, 90)
SERIES_FIELDS = ("orders", "value", "discount", "points_issued", "points_spent", "points_expired", "redemptions")
MONEY = DecimalField(max_digits=16, decimal_places=2)


def report_database() -> str:
    """The alias reports read from: "replica" when `DATABASE_REPLICA_URL` configured one, else "default"."""
    return "replica" if "replica" in settings.DATABASES else "default"


@dataclass(frozen=True)
class ReportFilters:
    campaign_id: int | None = None
    tier_code: str | None = None
    segment: Segment | None = None
    location: str | None = None
    integration: str | None = None

    @property
    def narrows_members(self) -> bool:
        return self.tier_code is not None or self.segment is not None


@dataclass(frozen=True)
class ReportRange:
    tenant: Tenant
    first: dt.date
    last: dt.date

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.first, dt.time.min, tzinfo=self.tenant.tz)

    @property
    def end(self) -> dt.datetime:
        """The first instant after `last` (exclusive)."""
        return dt.datetime.combine(self.last + dt.timedelta(days=1), dt.time.min, tzinfo=self.tenant.tz)

    def days(self) -> list[dt.date]:
        return [self.first + dt.timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def money(value) -> str:
    return str(Decimal(value or 0).quantize(CENT, rounding=ROUND_HALF_UP))


def ratio(numerator, denominator, places: Decimal = RATE) -> str:
    if not denominator:
        return str(Decimal(0).quantize(places))
    return str((Decimal(numerator) / Decimal(denominator)).quantize(places, rounding=ROUND_HALF_UP))


def average(total, count) -> str:
    return money(Decimal(total or 0) / count) if count else money(0)


class Report:
    """The figures of one tenant, range and filters, read from one database alias."""

    def __init__(
        self, rng: ReportRange, filters: ReportFilters | None = None, *, using: str | None = None, rollups=True
    ):
        """`rollups=False` computes every figure from raw rows (what the rollups are checked against)."""
        self.rollups = rollups
        self.rng = rng
        self.tenant = rng.tenant
        self.filters = filters or ReportFilters()
        self.db = using or report_database()
        self.tz = self.tenant.tz
        self._marks: dict[str, int] | None = None  # the watermarks, inside `snapshot()`

    # --- building blocks ------------------------------------------------------------------------

    def q(self, model) -> QuerySet:
        return model.objects.using(self.db).filter(tenant_id=self.tenant.pk)

    def members(self) -> QuerySet | None:
        """The member ids the `tier`/`segment` filters allow (a subquery), or None for everyone."""
        f = self.filters
        if not f.narrows_members:
            return None
        qs = Member.objects.using(self.db).filter(tenant_id=self.tenant.pk)
        if f.tier_code is not None:
            qs = qs.filter(
                Exists(
                    MemberTier.objects.filter(member=OuterRef("pk"), tier__code=f.tier_code, tenant_id=self.tenant.pk)
                )
            )
        if f.segment is not None:
            qs = qs.filter(pk__in=segment_members(f.segment).values("pk"))
        return qs.values("pk")

    def by_member(self, qs: QuerySet, field: str = "member_id") -> QuerySet:
        members = self.members()
        return qs if members is None else qs.filter(**{f"{field}__in": members})

    def succeeded_redemptions(self) -> QuerySet:
        qs = self.q(Redemption).filter(status=Redemption.Status.SUCCEEDED)
        if self.filters.integration is not None:
            qs = qs.filter(integration_name=self.filters.integration)
        if self.filters.campaign_id is not None:
            qs = qs.filter(
                Exists(
                    RedemptionCode.objects.filter(
                        redemption=OuterRef("pk"), campaign_id=self.filters.campaign_id, rolled_back=False
                    )
                )
            )
        return qs

    def orders(self, *, in_range: bool = True) -> QuerySet:
        qs = self.by_member(self.q(Order))
        if in_range:
            qs = qs.filter(occurred_at__gte=self.rng.start, occurred_at__lt=self.rng.end)
        if self.filters.location is not None:
            qs = qs.filter(location=self.filters.location)
        if self.filters.campaign_id is not None or self.filters.integration is not None:
            qs = qs.filter(Exists(self.succeeded_redemptions().filter(order_id=OuterRef("order_id"))))
        return qs

    def order_discount(self) -> Subquery:
        """The discount of the order in `OuterRef`: its successful redemptions (their campaign's lines under a
        campaign filter)."""
        if self.filters.campaign_id is not None:
            lines = RedemptionCode.objects.filter(
                tenant_id=self.tenant.pk,
                redemption__order_id=OuterRef("order_id"),
                redemption__status=Redemption.Status.SUCCEEDED,
                campaign_id=self.filters.campaign_id,
                rolled_back=False,
            )
            if self.filters.integration is not None:
                lines = lines.filter(redemption__integration_name=self.filters.integration)
            total = lines.values("tenant_id").annotate(total=Sum("discount")).values("total")
        else:
            total = (
                self.succeeded_redemptions()
                .filter(order_id=OuterRef("order_id"))
                .values("tenant_id")
                .annotate(total=Sum("discount"))
                .values("total")
            )
        return Coalesce(Subquery(total, output_field=MONEY), Value(ZERO), output_field=MONEY)

    def day_of(self, field: str) -> TruncDate:
        return TruncDate(field, tzinfo=self.tz)

    def in_created_range(self, qs: QuerySet, field: str = "created_at") -> QuerySet:
        return qs.filter(**{f"{field}__gte": self.rng.start, f"{field}__lt": self.rng.end})

    def sql_of(self, qs: QuerySet) -> tuple[str, list]:
        """A queryset's SQL for this report's database (`sql_with_params()` compiles for the default one, which
        refuses subqueries of the replica)."""
        sql, params = qs.query.get_compiler(using=self.db).as_sql()
        return sql, list(params)

    @contextmanager
    def snapshot(self):
        """Every figure read in one snapshot (REPEATABLE READ on PostgreSQL, when not inside a caller's
        transaction), with the watermarks read once at its start: the tails then name literal ids, so the planner
        knows a tail is a few rows (a subquery's value it would guess at a third of the table), and a fold that
        commits meanwhile changes neither a rollup nor its tail. Room for the per-member aggregates too
        (`REPORT_WORK_MEM`, for this transaction only). Re-entrant."""
        if self._marks is not None:
            yield self
            return
        connection = connections[self.db]
        outermost = not connection.in_atomic_block
        with transaction.atomic(using=self.db):
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    if outermost:
                        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    # JIT compiling cost more than it saved on every report query measured (1.4 s of 3.1 s).
                    cursor.execute(
                        "SELECT set_config('work_mem', %s, true), set_config('jit', 'off', true)",
                        [settings.REPORT_WORK_MEM],
                    )
            self._marks = dict(RollupWatermark.objects.using(self.db).values_list("source", "last_id"))
            try:
                yield self
            finally:
                self._marks = None

    def tail_after(self, source: str) -> Coalesce | Value:
        """The source's watermark: the rows above it are the tail a figure adds to its rollup."""
        if self._marks is not None:
            return Value(self._marks.get(source, 0))
        mark = RollupWatermark.objects.using(self.db).filter(source=source).values("last_id")[:1]
        return Coalesce(Subquery(mark, output_field=IntegerField()), Value(0))

    # --- daily figures (the series, and the summary's additive figures) ----------------------------

    def _orders_rollup_ok(self) -> bool:
        f = self.filters
        return self.rollups and not (f.narrows_members or f.campaign_id is not None or f.integration is not None)

    def daily_orders(self) -> dict[dt.date, dict[str, Any]]:
        out: dict[dt.date, dict[str, Any]] = defaultdict(lambda: {"orders": 0, "value": ZERO})
        if self._orders_rollup_ok():
            rollup = DailyOrders.objects.using(self.db).filter(
                tenant_id=self.tenant.pk, day__gte=self.rng.first, day__lte=self.rng.last
            )
            if self.filters.location is not None:
                rollup = rollup.filter(location=self.filters.location)
            rollup = rollup.values("day").annotate(n=Sum("orders"), v=Sum("value")).values_list("day", "n", "v")
            tail = self.orders().filter(id__gt=self.tail_after("order"))
            tail = tail.annotate(d=self.day_of("occurred_at")).values("d").annotate(n=Count("id"), v=Sum("amount"))
            rows = rollup.union(tail.values_list("d", "n", "v"), all=True)
        else:
            rows = (
                self.orders()
                .annotate(d=self.day_of("occurred_at"))
                .values("d")
                .annotate(n=Count("id"), v=Sum("amount"))
                .values_list("d", "n", "v")
            )
        for day, count, value in rows:
            out[day]["orders"] += count or 0
            out[day]["value"] += Decimal(value or 0)
        return out

    def touched_orders(self) -> RawSQL:
        """The ids of the orders whose discount may differ from the one folded (`OrderDiscount`): orders above
        the `discount:order` watermark, and orders named by redemptions or rollbacks above theirs."""
        order, redemption, rollback = Order._meta.db_table, Redemption._meta.db_table, RedemptionRollback._meta.db_table
        # The watermarks as read now are a lower bound of those the statement sees (they only grow): given as
        # literals too, they let the planner see how few rows lie above them (an index range, not a scan).
        sources = ("discount:order", "discount:redemption", "discount:redemption_rollback")
        seen = dict(RollupWatermark.objects.using(self.db).filter(source__in=sources).values_list("source", "last_id"))
        low = [int(seen.get(source, 0)) for source in sources]
        mark = f"(SELECT coalesce(max(last_id), 0) FROM {RollupWatermark._meta.db_table} WHERE source = %s)"
        sql = f"""
            SELECT o.id FROM {order} o WHERE o.tenant_id = %s AND o.id > {low[0]} AND o.id > {mark}
            UNION SELECT o.id FROM {redemption} r
                JOIN {order} o ON o.tenant_id = r.tenant_id AND o.order_id = r.order_id
                WHERE r.tenant_id = %s AND r.id > {low[1]} AND r.id > {mark}
            UNION SELECT o.id FROM {rollback} b JOIN {redemption} r ON r.id = b.redemption_id
                JOIN {order} o ON o.tenant_id = r.tenant_id AND o.order_id = r.order_id
                WHERE b.tenant_id = %s AND b.id > {low[2]} AND b.id > {mark}"""
        t = self.tenant.pk
        return RawSQL(sql, [t, sources[0], t, sources[1], t, sources[2]])

    def daily_discounts(self) -> dict[dt.date, dict[str, Any]]:
        """Per day of the orders: their discount, and how many of them (and their value) had one."""
        out: dict[dt.date, dict[str, Any]] = defaultdict(lambda: {"discount": ZERO, "n": 0, "v": ZERO})
        disc = self.order_discount()
        if self._orders_rollup_ok():
            rollup = DailyOrders.objects.using(self.db).filter(
                tenant_id=self.tenant.pk, day__gte=self.rng.first, day__lte=self.rng.last
            )
            if self.filters.location is not None:
                rollup = rollup.filter(location=self.filters.location)
            rollup = rollup.values("day").annotate(
                d1=Sum("discount"), n1=Sum("discounted_orders"), v1=Sum("discounted_value")
            )
            kept = Coalesce(
                Subquery(OrderDiscount.objects.filter(order_pk=OuterRef("pk")).values("discount")[:1]),
                Value(ZERO),
                output_field=MONEY,
            )
            one = IntegerField()
            tail = (
                self.orders()
                .filter(pk__in=self.touched_orders())
                .annotate(d=self.day_of("occurred_at"), disc=disc, kept=kept)
                .values("d")
                .annotate(
                    d1=Sum(F("disc") - F("kept"), output_field=MONEY),
                    n1=Sum(Case(When(disc__gt=0, then=1), default=0, output_field=one))
                    - Sum(Case(When(kept__gt=0, then=1), default=0, output_field=one)),
                    v1=Sum(Case(When(disc__gt=0, then="amount"), default=Value(ZERO), output_field=MONEY))
                    - Sum(Case(When(kept__gt=0, then="amount"), default=Value(ZERO), output_field=MONEY)),
                )
            )
            rows = rollup.values_list("day", "d1", "n1", "v1").union(tail.values_list("d", "d1", "n1", "v1"), all=True)
        else:
            rows = (
                self.orders()
                .annotate(d=self.day_of("occurred_at"), disc=disc)
                .values("d")
                .annotate(
                    d1=Sum("disc"),
                    n1=Count("id", filter=Q(disc__gt=0)),
                    v1=Sum("amount", filter=Q(disc__gt=0)),
                )
                .values_list("d", "d1", "n1", "v1")
            )
        for day, discount, count, value in rows:
            out[day]["discount"] += Decimal(discount or 0)
            out[day]["n"] += count or 0
            out[day]["v"] += Decimal(value or 0)
        return out

    def daily_discount(self) -> dict[dt.date, Decimal]:
        return {day: row["discount"] for day, row in self.daily_discounts().items()}

    def _points_rollup_ok(self) -> bool:
        return self.rollups and not (self.filters.narrows_members or self.filters.campaign_id is not None)

    def entries(self) -> QuerySet:
        qs = self.by_member(self.q(LedgerEntry), "account__member_id")
        if self.filters.campaign_id is not None:
            qs = qs.filter(campaign_id=self.filters.campaign_id)
        return qs

    def daily_points(self) -> dict[dt.date, dict[str, int]]:
        """Per day: the signed sum and the absolute sum of each kind of entry."""
        out: dict[dt.date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        raw = self.in_created_range(self.entries())
        if self._points_rollup_ok():
            rollup, source = DailyPoints.objects.using(self.db).filter(tenant_id=self.tenant.pk), "ledger_entry"
        elif self._ledger_rollup_ok():  # a campaign filter: the entries naming it, by day and kind
            rollup, source = self.ledger_rollup(), "ledger_entry:program"
        else:
            rollup = source = None
        if rollup is not None:
            rollup = (
                rollup.filter(day__gte=self.rng.first, day__lte=self.rng.last)
                .values("day", "kind")
                .annotate(p=Sum("points"), a=Sum("abs_points"))
                .values_list("day", "kind", "p", "a")
            )
            raw = raw.filter(id__gt=self.tail_after(source))
        raw = (
            raw.annotate(d=self.day_of("created_at"))
            .values("d", "kind")
            .annotate(p=Sum("points"), a=Sum(Abs("points")))
            .values_list("d", "kind", "p", "a")
        )
        rows = raw if rollup is None else rollup.union(raw, all=True)
        for day, kind, signed, absolute in rows:
            out[day][kind] += signed or 0
            out[day][f"abs_{kind}"] += absolute or 0
        return out

    def _redemptions_rollup_ok(self) -> bool:
        return self.rollups and not (self.filters.narrows_members or self.filters.campaign_id is not None)

    def daily_redemptions(self) -> dict[dt.date, int]:
        out: dict[dt.date, int] = defaultdict(int)
        if self._redemptions_rollup_ok():
            integration = self.filters.integration
            rollup = DailyRedemptions.objects.using(self.db).filter(
                tenant_id=self.tenant.pk, day__gte=self.rng.first, day__lte=self.rng.last
            )
            made = self.in_created_range(self.q(Redemption)).filter(id__gt=self.tail_after("redemption"))
            undone = self.q(RedemptionRollback).filter(
                id__gt=self.tail_after("redemption_rollback"),
                redemption__created_at__gte=self.rng.start,
                redemption__created_at__lt=self.rng.end,
            )
            if integration is not None:
                rollup = rollup.filter(integration_name=integration)
                made = made.filter(integration_name=integration)
                undone = undone.filter(redemption__integration_name=integration)
            rows = (
                rollup.values("day")
                .annotate(n=Sum("redemptions"))
                .values_list("day", "n")
                .union(
                    made.annotate(d=self.day_of("created_at"))
                    .values("d")
                    .annotate(n=Count("id"))
                    .values_list("d", "n"),
                    undone.annotate(d=self.day_of("redemption__created_at"))
                    .values("d")
                    .annotate(n=-Count("id"))
                    .values_list("d", "n"),
                    all=True,
                )
            )
        else:
            rows = (
                self.in_created_range(self.by_member(self.succeeded_redemptions()))
                .annotate(d=self.day_of("created_at"))
                .values("d")
                .annotate(n=Count("id"))
                .values_list("d", "n")
            )
        for day, count in rows:
            out[day] += count or 0
        return out

    def daily(self) -> dict[dt.date, dict[str, Any]]:
        """Every series figure for each day of the range (empty days included)."""
        orders, discounts = self.daily_orders(), self.daily_discounts()
        discount = {day: row["discount"] for day, row in discounts.items()}
        self._split = (sum(r["n"] for r in discounts.values()), sum((r["v"] for r in discounts.values()), ZERO))
        points, redemptions = self.daily_points(), self.daily_redemptions()
        out = {}
        for day in self.rng.days():
            p = points.get(day, {})
            out[day] = {
                "orders": orders[day]["orders"] if day in orders else 0,
                "value": orders[day]["value"] if day in orders else ZERO,
                "discount": discount.get(day, ZERO),
                "points_issued": p.get("earn", 0),
                "points_spent": -p.get("redeem", 0),
                "points_expired": -p.get("expire", 0),
                "points_reversed": p.get("abs_reverse", 0),
                "points_adjusted": p.get("adjust", 0),
                "redemptions": redemptions.get(day, 0),
            }
        return out

    # --- the summary -------------------------------------------------------------------------------

    def returned(self) -> Decimal:
        if self._orders_rollup_ok():
            rollup = DailyOrders.objects.using(self.db).filter(
                tenant_id=self.tenant.pk, day__gte=self.rng.first, day__lte=self.rng.last
            )
            tail = self.in_created_range(self.q(OrderReturn)).filter(id__gt=self.tail_after("order_return"))
            if self.filters.location is not None:
                rollup = rollup.filter(location=self.filters.location)
                tail = tail.filter(order__location=self.filters.location)
            rows = (
                rollup.values("tenant_id")
                .annotate(r=Sum("returned"))
                .values_list("r")
                .union(tail.values("tenant_id").annotate(r=Sum("amount")).values_list("r"), all=True)
            )
            return sum((Decimal(r or 0) for (r,) in rows), ZERO)
        qs = self.in_created_range(self.q(OrderReturn)).filter(order__in=self.orders(in_range=False).values("pk"))
        return qs.aggregate(r=Sum("amount"))["r"] or ZERO

    def orders_block(self, days: dict) -> dict[str, Any]:
        count = sum(d["orders"] for d in days.values())
        value = sum((d["value"] for d in days.values()), ZERO)
        discount = sum((d["discount"] for d in days.values()), ZERO)
        split = getattr(self, "_split", None)  # what `daily()` read with the discounts
        if split is None:
            discounts = self.daily_discounts()
            split = (sum(r["n"] for r in discounts.values()), sum((r["v"] for r in discounts.values()), ZERO))
        n_disc, v_disc = split
        return {
            "count": count,
            "value": money(value),
            "discount": money(discount),
            "net": money(value - discount),
            "returned": money(self.returned()),
            "aov": average(value, count),
            "aov_discounted": average(v_disc, n_disc),
            "aov_full_price": average(value - v_disc, count - n_disc),
        }

    def _ledger_rollup_ok(self) -> bool:
        return self.rollups and not self.filters.narrows_members

    def ledger_rollup(self) -> QuerySet:
        qs = DailyLedger.objects.using(self.db).filter(tenant_id=self.tenant.pk)
        if self.filters.campaign_id is not None:
            qs = qs.filter(campaign_id=self.filters.campaign_id)
        return qs

    def outstanding_by_program(self) -> dict[int, int]:
        """The sum of every entry up to the end of `to`, by program: the daily ledger rollup's rows up to `to`
        (cumulative daily deltas) plus the entries above its watermark."""
        entries = self.entries().filter(created_at__lt=self.rng.end)
        out: dict[int, int] = defaultdict(int)
        if self._ledger_rollup_ok():
            rows = (
                self.ledger_rollup()
                .filter(day__lte=self.rng.last)
                .values("program_id")
                .annotate(p=Sum("points"))
                .values_list("program_id", "p")
                .union(
                    entries.filter(id__gt=self.tail_after("ledger_entry:program"))
                    .values("account__program_id")
                    .annotate(p=Sum("points"))
                    .values_list("account__program_id", "p"),
                    all=True,
                )
            )
        else:
            rows = (
                entries.values("account__program_id").annotate(p=Sum("points")).values_list("account__program_id", "p")
            )
        for program, points in rows:
            out[program] += points or 0
        return dict(out)

    def points_block(self, days: dict, now: dt.datetime) -> dict[str, Any]:
        outstanding = self.outstanding_by_program()
        programs = Program.objects.using(self.db).filter(tenant_id=self.tenant.pk, pk__in=list(outstanding))
        value = sum(
            (Decimal(outstanding[p.pk]) * p.points_value_amount / p.points_value_points for p in programs), Decimal(0)
        )
        lots = self.by_member(self.q(PointLot), "account__member_id").filter(
            remaining__gt=0, expires_at__gt=now, expires_at__lte=now + dt.timedelta(days=max(EXPIRING_DAYS))
        )
        if self.filters.campaign_id is not None:
            lots = lots.filter(entry__campaign_id=self.filters.campaign_id)
        expiring = lots.aggregate(
            **{
                f"d{n}": Coalesce(Sum("remaining", filter=Q(expires_at__lte=now + dt.timedelta(days=n))), 0)
                for n in EXPIRING_DAYS
            }
        )
        return {
            "issued": sum(d["points_issued"] for d in days.values()),
            "spent": sum(d["points_spent"] for d in days.values()),
            "expired": sum(d["points_expired"] for d in days.values()),
            "reversed": sum(d["points_reversed"] for d in days.values()),
            "adjusted": sum(d["points_adjusted"] for d in days.values()),
            "outstanding": sum(outstanding.values()),
            "outstanding_value": money(value),
            "expiring": {str(n): expiring[f"d{n}"] for n in EXPIRING_DAYS},
        }

    def gift_card_codes(self) -> QuerySet:
        qs = self.by_member(self.q(Code).filter(initial_balance__isnull=False))
        if self.filters.campaign_id is not None:
            qs = qs.filter(campaign_id=self.filters.campaign_id)
        return qs

    def gift_cards_block(self) -> dict[str, str]:
        codes = self.gift_card_codes()
        issued = self.in_created_range(codes).aggregate(v=Sum("initial_balance"))["v"] or ZERO
        before_end = GiftCardTransaction.objects.using(self.db).filter(
            tenant_id=self.tenant.pk, code__in=codes.values("pk"), created_at__lt=self.rng.end
        )
        moves = before_end.aggregate(
            spent=Sum(
                "amount",
                filter=Q(
                    kind=GiftCardTransaction.Kind.DEBIT,
                    redemption__status=Redemption.Status.SUCCEEDED,
                    redemption__created_at__gte=self.rng.start,
                    redemption__created_at__lt=self.rng.end,
                ),
            ),
            moved=Sum("amount", filter=~Q(kind=GiftCardTransaction.Kind.ISSUE)),
        )
        started = codes.filter(created_at__lt=self.rng.end).aggregate(v=Sum("initial_balance"))["v"] or ZERO
        return {
            "issued": money(issued),
            "spent": money(-(moves["spent"] or ZERO)),
            "outstanding": money(started + (moves["moved"] or ZERO)),
        }

    def engaged_members(self) -> QuerySet:
        """Members who in the range redeemed a code, paid with points or took a catalog reward."""
        start, end = self.rng.start, self.rng.end
        lines = RedemptionCode.objects.filter(
            member_id=OuterRef("pk"),
            kind=RedemptionCode.Kind.CODE,
            rolled_back=False,
            created_at__gte=start,
            created_at__lt=end,
        )
        with_points = Redemption.objects.filter(
            member_id=OuterRef("pk"),
            status=Redemption.Status.SUCCEEDED,
            points_used__gt=0,
            created_at__gte=start,
            created_at__lt=end,
        )
        rewards = RewardPurchase.objects.filter(member_id=OuterRef("pk"), created_at__gte=start, created_at__lt=end)
        qs = self.by_member(Member.objects.using(self.db).filter(tenant_id=self.tenant.pk), "pk")
        return qs.filter(Exists(lines) | Exists(with_points) | Exists(rewards))

    def engaged_ids_sql(self) -> tuple[str, list]:
        """SQL of the ids of the members engaged in the range (`engaged_members`), from the per-member rollup."""
        days, params = self.member_days(DailyMemberOrders, self.rng.first, self.rng.last, values=("engaged",))
        return f"SELECT m FROM ({days}) AS x GROUP BY m HAVING SUM(engaged) > 0", params

    def publication_counts(self) -> dict[str, int]:
        """Published in the range, redeemed by its end, and both among engaged members, from the publication facts
        plus raw rows for what is above their watermarks: publications not folded yet, and the folded ones
        whose code a redemption line or a rollback above its watermark touched."""
        if not self.rollups:
            return self.publication_counts_raw()
        campaign = self.filters.campaign_id
        facts = self.by_member(
            PublicationFact.objects.using(self.db).filter(
                tenant_id=self.tenant.pk, day__gte=self.rng.first, day__lte=self.rng.last
            )
        )
        lines = RedemptionCode.objects.using(self.db).filter(id__gt=self.tail_after("publication:redemption_code"))
        rollbacks = RedemptionRollback.objects.using(self.db).filter(
            id__gt=self.tail_after("publication:redemption_rollback")
        )
        touched = codes_touched(lines, rollbacks)
        mark = self.tail_after("publication:publication")
        facts = facts.filter(publication_pk__lte=mark).exclude(code_id__in=touched[0]).exclude(code_id__in=touched[1])
        if campaign is not None:
            facts = facts.filter(campaign_id=campaign)
        kept = facts.annotate(
            r=Case(When(redeemed_day__lte=self.rng.last, then=Value(1)), default=Value(0), output_field=IntegerField())
        ).values_list("member_id", "r")
        raw = self.in_created_range(self.by_member(self.q(Publication)), "published_at")
        if campaign is not None:
            raw = raw.filter(campaign_id=campaign)
        redeemed = Exists(
            RedemptionCode.objects.filter(code_id=OuterRef("code_id"), rolled_back=False, created_at__lt=self.rng.end)
        )
        as_rows = {
            "r": Case(When(redeemed, then=Value(1)), default=Value(0), output_field=IntegerField()),
        }
        # Not folded yet; folded, but a line or rollback above its watermark touched the code (once each: a code
        # in both sets is taken by the first). Two subqueries, not an OR: each probes the index on the code.
        tails = [
            raw.filter(id__gt=mark),
            raw.filter(id__lte=mark, code_id__in=touched[0]),
            raw.filter(id__lte=mark, code_id__in=touched[1]).exclude(code_id__in=touched[0]),
        ]
        tails = [tail.annotate(**as_rows).values_list("member_id", "r") for tail in tails]
        parts = [self.sql_of(q) for q in (kept, *tails)]
        union = " UNION ALL ".join(f"SELECT * FROM ({sql}) AS p{i}" for i, (sql, _) in enumerate(parts))
        engaged, engaged_params = self.engaged_ids_sql()
        published, redeemed_n, engaged_published, engaged_redeemed = self._fetch_one(
            f"""WITH e AS ({engaged})
            SELECT COUNT(*), COALESCE(SUM(u.r), 0),
                   COALESCE(SUM(CASE WHEN u.member_id IN (SELECT m FROM e) THEN 1 ELSE 0 END), 0),
                   COALESCE(SUM(CASE WHEN u.member_id IN (SELECT m FROM e) THEN u.r ELSE 0 END), 0)
            FROM ({union}) AS u""",
            [*engaged_params, *(p for _, params in parts for p in params)],
        )
        return {
            "published": published,
            "redeemed": redeemed_n,
            "engaged_published": engaged_published,
            "engaged_redeemed": engaged_redeemed,
        }

    def publication_counts_raw(self) -> dict[str, int]:
        publications = self.in_created_range(self.by_member(self.q(Publication)), "published_at")
        if self.filters.campaign_id is not None:
            publications = publications.filter(campaign_id=self.filters.campaign_id)
        redeemed_code = RedemptionCode.objects.filter(
            code_id=OuterRef("code_id"), rolled_back=False, created_at__lt=self.rng.end
        )
        engaged = self.engaged_members().values("pk")
        redeemed = Exists(redeemed_code)
        return publications.aggregate(
            published=Count("id"),
            redeemed=Count("id", filter=redeemed),
            engaged_published=Count("id", filter=Q(member_id__in=engaged)),
            engaged_redeemed=Count("id", filter=Q(member_id__in=engaged) & redeemed),
        )

    def campaigns_block(self) -> dict[str, Any]:
        counts = self.publication_counts()
        failed = self.refusals()
        return {
            "published": counts["published"],
            "redeemed": counts["redeemed"],
            "conversion_rate": ratio(counts["redeemed"], counts["published"]),
            "engaged_published": counts["engaged_published"],
            "engaged_redeemed": counts["engaged_redeemed"],
            "engaged_conversion_rate": ratio(counts["engaged_redeemed"], counts["engaged_published"]),
            "redemptions_failed": dict(sorted(failed.items())),
        }

    def refusals(self) -> dict[str, int]:
        """Refused redemption attempts by reason, each attempt once per reason it gave; under a `campaign` filter
        the attempts in which a code of that campaign was refused, by the reasons its lines gave. From the
        refusals rollup plus the traces above its watermark, or from the traces under a tier/segment filter."""
        traces = self.in_created_range(self.q(EvaluationTrace)).filter(
            kind=EvaluationTrace.Kind.REDEMPTION, succeeded=False
        )
        traces = self.by_member(traces)
        if self.filters.integration is not None:
            traces = traces.filter(integration_name=self.filters.integration)
        campaign = self.filters.campaign_id if self.filters.campaign_id is not None else 0
        failed: Counter = Counter()
        if self.rollups and not self.filters.narrows_members:
            traces = traces.filter(id__gt=self.tail_after("evaluation_trace"))
            rollup = DailyRefusals.objects.using(self.db).filter(
                tenant_id=self.tenant.pk, day__gte=self.rng.first, day__lte=self.rng.last, campaign_id=campaign
            )
            if self.filters.integration is not None:
                rollup = rollup.filter(integration_name=self.filters.integration)
            sql, params = self.sql_of(rollup.values("reason").annotate(n=Sum("attempts")).values_list("reason", "n"))
        else:
            sql, params = "", []
        tail_sql, tail_params = refusals_sql(traces, self.tz)
        tail = f"SELECT k4, v_attempts FROM ({tail_sql}) AS t WHERE k3 = %s"
        statement = f"{sql} UNION ALL {tail}" if sql else tail
        with connections[self.db].cursor() as cursor:
            cursor.execute(statement, [*params, *tail_params, campaign])
            for reason, attempts in cursor.fetchall():
                failed[reason] += attempts or 0
        return {reason: n for reason, n in sorted(failed.items()) if n}

    def _members_rollup_ok(self) -> bool:
        """The per-member rollups hold every member (the `tier`/`segment` filters narrow their rows), but not the
        orders' location nor which redemptions an order had."""
        f = self.filters
        return self.rollups and f.location is None and f.campaign_id is None and f.integration is None

    def member_days(
        self, model: type, first: dt.date, last: dt.date, values: tuple[str, ...] | None = None
    ) -> tuple[str, list]:
        """SQL of `(m, d, <values>)` rows, one or more per member and day from `first` to `last`: the per-member
        rollup `model`'s rows plus its parts' raw rows above their watermarks, narrowed by the `tier`/`segment`
        filters. Sum them by member (`d` is the day). `values` default to the rollup's; with none, the rollup is
        read from its unique index alone."""
        rollup: Rollup = next(r for r in ROLLUPS if r.model is model)
        values = rollup.values if values is None else values
        start = dt.datetime.combine(first, dt.time.min, tzinfo=self.tz)
        end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time.min, tzinfo=self.tz)
        kept = self.by_member(model.objects.using(self.db).filter(tenant_id=self.tenant.pk, day__gte=first))
        kept = kept.filter(day__lte=last).values_list("member_id", "day", *values)
        sql, params = self.sql_of(kept)
        columns = "".join(f", {v}" for v in values)
        parts = [(f"SELECT t.member_id AS m, t.day AS d{columns} FROM ({sql}) t", params)]
        for part in rollup.parts:
            tail = part.model.objects.using(self.db).filter(
                tenant_id=self.tenant.pk,
                id__gt=self.tail_after(part.source),
                **{f"{part.time_field}__gte": start, f"{part.time_field}__lt": end},
            )
            sql, params = self.sql_of(part.select(self.by_member(part.rows(tail), part.member), self.tz))
            figures = "".join(
                f", {self._as_column(model, v, f't.v_{v}')}" if v in part.values else ", 0" for v in values
            )
            parts.append((f"SELECT t.k2, t.k1{figures} FROM ({sql}) t", params))
        union = " UNION ALL ".join(f"SELECT * FROM ({sql}) AS p{i}" for i, (sql, _) in enumerate(parts))
        return union, [p for _, params in parts for p in params]

    @staticmethod
    def _as_column(model: type, name: str, expression: str) -> str:
        """`expression` (a tail's COUNT or SUM) as the rollup column's type: an integer count stays an integer,
        so that summing the union by member adds integers (a bigint's SUM is a numeric, several times slower)."""
        if isinstance(model._meta.get_field(name), IntegerField):
            return f"CAST({expression} AS INTEGER)"
        return expression

    def _fetch_one(self, sql: str, params: list) -> tuple:
        with connections[self.db].cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()

    def members_block(self, value: Decimal) -> dict[str, Any]:
        if not self._members_rollup_ok():
            return self.members_block_raw(value)
        # Grouped by member on the counts alone (a numeric sum per member costs several times the memory and
        # time); the engaged members' revenue is a second pass over the same rows.
        days, params = self.member_days(DailyMemberOrders, self.rng.first, self.rng.last, values=("orders", "engaged"))
        value_days, value_params = self.member_days(DailyMemberOrders, self.rng.first, self.rng.last, ("value",))
        with_orders, repeat, engaged, engaged_revenue = self._fetch_one(
            f"""WITH g AS (SELECT m, SUM(orders) AS o, SUM(engaged) AS e FROM ({days}) AS x GROUP BY m)
            SELECT (SELECT COUNT(*) FROM g WHERE o > 0), (SELECT COUNT(*) FROM g WHERE o > 1),
                   (SELECT COUNT(*) FROM g WHERE e > 0),
                   (SELECT SUM(value) FROM ({value_days}) AS y WHERE m IN (SELECT m FROM g WHERE e > 0))""",
            [*params, *value_params],
        )
        last = self.rng.last
        window, params = self.member_days(DailyMemberActivity, last - dt.timedelta(days=89), last, values=())
        active_30d, active_90d = self._fetch_one(
            "SELECT COALESCE(SUM(r), 0), COUNT(*) FROM (SELECT m, MAX(CASE WHEN d >= %s THEN 1 ELSE 0 END) AS r"
            f" FROM ({window}) AS x GROUP BY m) AS g",
            [last - dt.timedelta(days=29), *params],
        )
        engaged_revenue = Decimal(str(engaged_revenue or 0))
        return {
            "with_orders": with_orders,
            "active_30d": active_30d,
            "active_90d": active_90d,
            "repeat_purchase_rate": ratio(repeat, with_orders),
            "engaged": engaged,
            "engaged_revenue": money(engaged_revenue),
            "regular_revenue": money(value - engaged_revenue),
        }

    def members_block_raw(self, value: Decimal) -> dict[str, Any]:
        """The members figures from raw rows (what the per-member rollups are checked against)."""
        orders = self.orders()
        per_member = orders.values("member_id").annotate(n=Count("id"))
        buyers = Member.objects.using(self.db).filter(pk__in=per_member.values("member_id"))
        repeat = per_member.filter(n__gte=2).values("member_id")
        engaged = self.engaged_members().values("pk")
        stats = buyers.aggregate(
            with_orders=Count("id"),
            repeat=Count("id", filter=Q(pk__in=repeat)),
        )
        engaged_revenue = orders.filter(member_id__in=engaged).aggregate(v=Sum("amount"))["v"] or ZERO
        end = self.rng.end
        active: dict[str, int] = {}
        for n in (30, 90):
            since = end - dt.timedelta(days=n)
            ordered = self.orders(in_range=False).filter(
                member_id=OuterRef("pk"), occurred_at__gte=since, occurred_at__lt=end
            )
            entries = LedgerEntry.objects.filter(
                account__member_id=OuterRef("pk"), created_at__gte=since, created_at__lt=end
            )
            qs = self.by_member(Member.objects.using(self.db).filter(tenant_id=self.tenant.pk), "pk")
            active[f"active_{n}d"] = qs.filter(Exists(ordered) | Exists(entries)).count()
        return {
            "with_orders": stats["with_orders"],
            **active,
            "repeat_purchase_rate": ratio(stats["repeat"], stats["with_orders"]),
            "engaged": self.engaged_members().count(),
            "engaged_revenue": money(engaged_revenue),
            "regular_revenue": money(value - engaged_revenue),
        }

    def tiers_block(self) -> list[dict[str, Any]]:
        statuses = self.by_member(MemberTier.objects.filter(tier_id=OuterRef("pk")))
        changes = self.by_member(
            self.in_created_range(TierChange.objects.filter(tenant_id=self.tenant.pk, to_tier_id=OuterRef("pk")))
        )
        up = changes.filter(Q(from_tier__isnull=True) | Q(from_tier__rank__lt=F("to_tier__rank")))
        down = changes.filter(from_tier__rank__gt=F("to_tier__rank"))

        def count(qs):
            return Coalesce(
                Subquery(qs.values("tenant_id").annotate(n=Count("id")).values("n"), output_field=IntegerField()), 0
            )

        tiers = (
            Tier.objects.using(self.db)
            .filter(tenant_id=self.tenant.pk)
            .annotate(n_members=count(statuses), n_up=count(up), n_down=count(down))
            .order_by("program_id", "rank", "code")
        )
        return [
            {"code": t.code, "name": t.name, "members": t.n_members, "moved_up": t.n_up, "moved_down": t.n_down}
            for t in tiers
        ]

    def summary(self, now: dt.datetime | None = None) -> dict[str, Any]:
        with self.snapshot():
            return self._summary(now)

    def _summary(self, now: dt.datetime | None) -> dict[str, Any]:
        now = now or timezone.now()
        days = self.daily()
        orders = self.orders_block(days)
        return {
            "from": self.rng.first.isoformat(),
            "to": self.rng.last.isoformat(),
            "currency": self.tenant.currency,
            "orders": orders,
            "points": self.points_block(days, now),
            "gift_cards": self.gift_cards_block(),
            "campaigns": {**self.campaigns_block(), "redemptions": sum(d["redemptions"] for d in days.values())},
            "members": self.members_block(Decimal(orders["value"])),
            "tiers": self.tiers_block(),
        }

    def timeseries(self, interval: str) -> dict[str, Any]:
        periods: dict[dt.date, dict[str, Any]] = {}
        with self.snapshot():
            daily = self.daily()
        for day, figures in daily.items():
            start = period_start(day, interval)
            period = periods.setdefault(start, {name: (ZERO if name in MONEY_SERIES else 0) for name in SERIES_FIELDS})
            for name in SERIES_FIELDS:
                period[name] += figures[name]
        return {
            "interval": interval,
            "periods": [
                {"start": start.isoformat(), **{k: money(v) if k in MONEY_SERIES else v for k, v in p.items()}}
                for start, p in periods.items()
            ],
        }


MONEY_SERIES = {"value", "discount"}


def period_start(day: dt.date, interval: str) -> dt.date:
    """The first day of the period holding `day`: itself, the Monday of its week, the first of its month."""
    if interval == "week":
        return day - dt.timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day
