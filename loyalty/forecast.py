"""The public calculator's synthetic year: what a new member would earn in twelve months, nothing written.

A visitor says how many orders a month, how much per order and how often each activity (the program's event
rules, by event name). `year_schedule` lays those out over the twelve months that start today; `forecast_year`
replays them one by one through THE SAME computation a real order or event goes through
(`loyalty.earning.rule_awards`: rule conditions in the one rule context, points, multipliers, happy hours,
caps), with the tier multiplier of the tier reached so far (`upgrade_after_earning` after each earning, as a real
order moves up, and the daily evaluation's `target_tier` between days), pending holds, and lot expiry
(`loyalty.expiry`). What a real earning stores (cap use, entries, lots, the tier) is kept in memory instead.

Assumptions (the page says them in a sentence): the visitor joins today as a new member (no tier, nothing
earned, every cap counted from zero); the orders and activities of a month are spread evenly over its days at
midday in the tenant's time zone, orders first; an order carries no items (a rule for some categories gives its
fixed points only) nor discounts; an activity's event carries no metadata; the rules live today apply all year;
nothing is spent or returned. The figures match a real member who places those orders and records those events
at those times (tests/rewards/test_calculator.py replays them through the API).

Queries: `program_terms` reads the default program, its live rules and its tiers (three); `forecast_year`
reads nothing, whatever the input (the visitor is an unsaved `Member`, and every fact a rule may name is given
to `build_rule_context`).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils import timezone

from common.validation import MAX_INT
from loyalty import earning
from loyalty import sql as loyalty_sql
from loyalty.expiry import add_months, compute_expires_at, inactivity_expires_at, is_inactivity, stored_policy
from loyalty.models import EarningRule, Program, Tier
from loyalty.rule_context import HISTORY_MAX, Standing, build_rule_context, facts_named, order_context
from loyalty.services.tiers import qualification_since, target_tier, upgrade_after_earning
from members.models import Member, Tenant

MONTHS = 12
MIDDAY = dt.time(12, 0)
UTC = dt.UTC


@dataclass(frozen=True)
class Activity:
    """An event a visitor can say they would do: the event's name and what the program calls it."""

    event: str
    label: str


@dataclass(frozen=True)
class ProgramTerms:
    """The program's current rules as the calculator reads them (three queries, `program_terms`)."""

    program: Program
    order_rules: list[EarningRule]
    event_rules: dict[str, list[EarningRule]]
    tiers: list[Tier]

    @property
    def activities(self) -> list[Activity]:
        """One per event name, labelled with its first rule's name, in the rules' order."""
        return [Activity(event=name, label=rules[0].name or name) for name, rules in self.event_rules.items()]


def program_terms(tenant: Tenant, now: dt.datetime | None = None) -> ProgramTerms | None:
    """The tenant's default program with its rules live `now` and its tiers; None without an active program."""
    program = loyalty_sql.default_program(tenant.pk)
    if program is None:
        return None
    rules = loyalty_sql.live_earning_rules(program.pk, now or timezone.now())
    event_rules: dict[str, list[EarningRule]] = {}
    for rule in rules:
        if rule.trigger == EarningRule.Trigger.EVENT and rule.event_name:
            event_rules.setdefault(rule.event_name, []).append(rule)
    tiers = list(Tier.objects.filter(program=program).order_by("threshold", "rank", "pk"))
    order_rules = [r for r in rules if r.trigger == EarningRule.Trigger.ORDER_PAID]
    return ProgramTerms(program=program, order_rules=order_rules, event_rules=event_rules, tiers=tiers)


@dataclass(frozen=True)
class Occurrence:
    """One order or event of the synthetic year: when (aware, UTC), in which month (0-11), and which event."""

    at: dt.datetime
    month: int
    event: str = ""  # empty: an order

    @property
    def is_order(self) -> bool:
        return not self.event


def month_starts(start_day: dt.date) -> list[dt.date]:
    """The first day of each of the twelve months from `start_day`, and the day after the year."""
    return [add_months(start_day, m) for m in range(MONTHS + 1)]


def _spread(begin: dt.date, end: dt.date, count: int) -> list[dt.date]:
    """`count` days spread evenly over [begin, end): the middle of each of `count` equal parts."""
    days = (end - begin).days
    return [begin + dt.timedelta(days=(2 * i + 1) * days // (2 * count)) for i in range(count)]


def year_schedule(
    *, start_day: dt.date, tz: dt.tzinfo, orders_per_month: int, activities: dict[str, int]
) -> list[Occurrence]:
    """Every order and event of the year in time order (orders first on a day, then events by name)."""
    starts = month_starts(start_day)
    out: list[tuple[dt.datetime, int, str, int]] = []
    for month in range(MONTHS):
        begin, end = starts[month], starts[month + 1]
        for day in _spread(begin, end, orders_per_month):
            out.append((dt.datetime.combine(day, MIDDAY, tz).astimezone(UTC), 0, "", month))
        for event, per_month in sorted(activities.items()):
            for day in _spread(begin, end, per_month):
                out.append((dt.datetime.combine(day, MIDDAY, tz).astimezone(UTC), 1, event, month))
    out.sort(key=lambda o: (o[0], o[1], o[2]))
    return [Occurrence(at=at, month=month, event=event) for at, _, event, month in out]


@dataclass
class MonthFigures:
    """One month of the year: what it brought and where the visitor stands at its end."""

    starts: dt.date
    orders: int = 0
    activities: int = 0
    points: int = 0  # earned in the month, pending ones included
    total: int = 0  # earned since the start, pending ones included
    tier: Tier | None = None  # at the month's end
    tier_changed: bool = False  # a different tier than at the previous month's end


@dataclass
class Forecast:
    """The year's outcome (figures in points; the tiers in the order reached, with the day each was)."""

    start_day: dt.date
    end_day: dt.date  # the last day of the year
    points_total: int = 0  # everything the year's orders and activities give, pending ones included
    points_pending: int = 0  # of which still on hold at the year's end
    points_expired: int = 0  # of which expired by the year's end
    balance: int = 0  # spendable at the year's end
    tier: Tier | None = None
    tiers_reached: list[tuple[Tier | None, dt.date]] = field(default_factory=list)
    months: list[MonthFigures] = field(default_factory=list)


@dataclass
class _Lot:
    points: int
    expires_at: dt.datetime | None
    inactivity: bool


class _Member:
    """What a real member's rows would hold, kept in memory: lots, pending holds, entries, history, tier."""

    def __init__(self, terms: ProgramTerms, tz: dt.tzinfo):
        self.terms, self.tz = terms, tz
        self.lots: list[_Lot] = []
        self.balance = 0
        self.next_expiry: dt.datetime | None = None  # the earliest expiry of a live lot
        self.pending: list[tuple[dt.datetime, int]] = []
        self.entries: list[tuple[dt.datetime, int]] = []  # earn entries (created_at, points)
        self.lifetime_earned = 0
        self.tier: Tier | None = None
        self.orders: list[tuple[dt.datetime, Decimal]] = []
        self.events: list[dict[str, Any]] = []  # newest first
        self.expired = 0

    @property
    def pending_points(self) -> int:
        return sum(points for _, points in self.pending)

    def qualifying(self, now: dt.datetime) -> int:
        since = qualification_since(self.terms.program, now)
        return sum(points for at, points in self.entries if at >= since)

    def policy(self) -> dict[str, Any]:
        """The expiry policy of points earned now (`loyalty.ledger.expiry_policy_for`): the tier's, else the
        program's."""
        if self.tier is not None and self.tier.expiry_policy:
            return stored_policy(self.tier.expiry_policy)
        return stored_policy(self.terms.program.expiry_policy)

    def credit(self, points: int, now: dt.datetime) -> None:
        """An earn entry and its lot (`loyalty.ledger.post_earns`): under `inactivity` every live lot's expiry
        moves on."""
        policy = self.policy()
        inactivity = is_inactivity(policy)
        if inactivity:
            moved = inactivity_expires_at(policy, now, self.tz)
            for lot in self.lots:
                if lot.inactivity:
                    lot.expires_at = moved
        self.lots.append(_Lot(points, compute_expires_at(policy, now, self.tz), inactivity))
        self.entries.append((now, points))
        self.lifetime_earned += points
        self.balance += points
        self.next_expiry = min((lot.expires_at for lot in self.lots if lot.expires_at is not None), default=None)

    def pass_time(self, now: dt.datetime) -> None:
        """What the scheduled jobs do up to `now`: release pending points, expire lots."""
        due = [(at, points) for at, points in self.pending if at <= now]
        if due:
            self.pending = [(at, points) for at, points in self.pending if at > now]
            for at, points in sorted(due, key=lambda d: d[0]):
                self.credit(points, at)
        if self.next_expiry is None or self.next_expiry > now:
            return
        live = [lot for lot in self.lots if lot.expires_at is None or lot.expires_at > now]
        balance = sum(lot.points for lot in live)
        self.expired += self.balance - balance
        self.lots, self.balance = live, balance
        self.next_expiry = min((lot.expires_at for lot in live if lot.expires_at is not None), default=None)

    def evaluate(self, now: dt.datetime) -> None:
        """The daily tier evaluation (`tiers_reevaluate`): up or down to what the window's points reach."""
        if self.terms.tiers:
            self.tier = target_tier(self.terms.tiers, self.qualifying(now))

    def spend(self, now: dt.datetime) -> dict[str, Any]:
        """`loyalty.rule_context.spend_summary` of the orders so far (this one not counted)."""

        def window(days: int) -> Decimal:
            since = now - dt.timedelta(days=days)
            return sum((amount for at, amount in self.orders if at >= since), Decimal("0.00"))

        return {
            "lifetime_spend": sum((amount for _, amount in self.orders), Decimal("0.00")),
            "spend_30d": window(30),
            "spend_90d": window(90),
            "spend_365d": window(365),
            "orders_count": len(self.orders),
        }


def forecast_year(
    terms: ProgramTerms,
    *,
    tenant: Tenant,
    start_day: dt.date,
    orders_per_month: int,
    order_amount: Decimal,
    activities: dict[str, int],
) -> Forecast:
    """The year from `start_day` (the tenant's today) for a new member; no query, nothing written.

    Raises `points_out_of_range` (an ApplicationError) when the year's points pass what a balance holds.
    """
    tz = tenant.tz
    activities = {name: n for name, n in activities.items() if n and name in terms.event_rules}
    schedule = year_schedule(start_day=start_day, tz=tz, orders_per_month=orders_per_month, activities=activities)
    starts = month_starts(start_day)
    months = [MonthFigures(starts=day) for day in starts[:MONTHS]]
    visitor = Member(tenant=tenant, external_id="", created_at=dt.datetime.combine(start_day, dt.time(), tz))
    state = _Member(terms, tz)
    caps = earning.CapTally()
    rule_texts = [r.rule for r in terms.order_rules] + [r.rule for rs in terms.event_rules.values() for r in rs]
    named = facts_named(rule_texts)
    forecast = Forecast(start_day=start_day, end_day=starts[MONTHS] - dt.timedelta(days=1))
    forecast.tiers_reached.append((None, start_day))
    last_day = start_day
    for occurrence in schedule:
        now = occurrence.at
        state.pass_time(now)
        local = now.astimezone(tz)
        if local.date() != last_day:  # a night passed: the daily evaluation ran
            state.evaluate(dt.datetime.combine(local.date(), dt.time(), tz).astimezone(UTC))
            last_day = local.date()
        _note_tier(forecast, state.tier, local.date())
        context_args: dict[str, Any] = {
            "member": visitor,
            "tz": tz,
            "now": now,
            "rules": rule_texts,
            "standing": Standing.of(state.tier, state.balance),
            "spend": state.spend(now) if "spend" in named else None,
            "segments": [],
        }
        if occurrence.is_order:
            rules = terms.order_rules
            context = build_rule_context(
                **context_args,
                history=state.events[:HISTORY_MAX],
                order=order_context(amount=order_amount, currency=tenant.currency),
            )
        else:
            rules = terms.event_rules[occurrence.event]
            recorded = {"name": occurrence.event, "metadata": {}, "occurred_at": now}
            state.events.insert(0, recorded)  # an event rule sees the event being recorded among the events
            context = build_rule_context(**context_args, history=state.events[:HISTORY_MAX], event=recorded)
        awards = earning.rule_awards(
            rules,
            context,
            local_time=local,
            caps=caps,
            tier_code=state.tier.code if state.tier else None,
            tier_mult=state.tier.multiplier if state.tier else None,
            amount=order_amount if occurrence.is_order else Decimal("0"),
        )
        total = sum(a.points for a in awards)
        if max(state.balance + state.pending_points, state.lifetime_earned) + total > MAX_INT:
            raise earning.points_out_of_range(total)
        earned = 0
        for award in awards:
            if award.rule.pending_days:
                days = min(award.rule.pending_days, earning.MAX_PENDING_DAYS)
                state.pending.append((now + dt.timedelta(days=days), award.points))
            else:
                earned += award.points
        if earned:
            state.credit(earned, now)
            upgrade = upgrade_after_earning(
                terms.tiers, state.tier, state.lifetime_earned, functools.partial(state.qualifying, now)
            )
            if upgrade is not None:
                state.tier = upgrade[0]
                _note_tier(forecast, state.tier, local.date())
        if occurrence.is_order:
            state.orders.append((now, order_amount))
        figures = months[occurrence.month]
        figures.orders += occurrence.is_order
        figures.activities += not occurrence.is_order
        figures.points += total
        figures.tier = state.tier
        forecast.points_total += total
    end = dt.datetime.combine(starts[MONTHS], dt.time(), tz).astimezone(UTC)
    state.pass_time(end)
    previous: Tier | None = None
    running = 0
    for figures in months:
        if not figures.orders and not figures.activities:
            figures.tier = previous
        running += figures.points
        figures.total = running
        figures.tier_changed = figures.tier != previous
        previous = figures.tier
    forecast.months = months
    forecast.points_pending = state.pending_points
    forecast.points_expired = state.expired
    forecast.balance = state.balance
    forecast.tier = state.tier
    return forecast


def _note_tier(forecast: Forecast, tier: Tier | None, day: dt.date) -> None:
    """Record a tier change (and the day) when `tier` differs from the last one recorded."""
    if tier != forecast.tiers_reached[-1][0]:
        forecast.tiers_reached.append((tier, day))
