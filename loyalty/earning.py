"""Points computation: pure functions, no I/O, unit-tested by tables of cases.

Points of one rule = (fixed `points` + `points_per_unit` x eligible amount / `unit_amount`)
x tier multiplier x happy-hour multiplier, computed exactly in Decimal and rounded ONCE at the end with the
rule's rounding (default down: no point for money not spent). The eligible amount is the order amount, or the
sum of the items of the rule's `categories` when it names some. When the order carried discounts (codes,
promotions), points are earned on what was paid after them: the `paid_amount` instead of the order amount, and
a category rule's items scaled by paid_amount / amount (the discount spread over the items pro rata).
Among overlapping happy hours the highest multiplier applies (they do not compound). Happy hours are
weekday/time windows in the tenant's time zone (weekdays 0 = Monday ... 6 = Sunday; `to` before `from`
wraps past midnight).

`rule_awards` is the whole computation of one order or event (which rules hold, their points, their caps) and the
one both a real earning (`loyalty.services.earning`, caps counted in stored rows under the account lock) and the
public calculator's synthetic year (`loyalty.forecast`, caps counted in memory by `CapTally`) call.
"""

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from common.errors import ApplicationError
from common.validation import MAX_INT, FieldErrors, path
from loyalty.rules import rule_matches

ROUNDINGS = {"down": ROUND_FLOOR, "half_up": ROUND_HALF_UP, "up": ROUND_CEILING}
CAP_PERIODS = ("day", "week", "month", "year", "lifetime")
ONE = Decimal("1")
LIFETIME_START = dt.date(1970, 1, 1)
MAX_MULTIPLIER = Decimal("999.999")  # a happy hour's multiplier, as a tier's (`Tier.multiplier`'s column)
MAX_HAPPY_HOURS = 20  # windows per rule
MAX_PENDING_DAYS = 3650  # a rule's points stay pending at most this long (a stored larger value is read as this)


@dataclass(frozen=True)
class RuleSpec:
    code: str
    points: int = 0
    points_per_unit: Decimal = Decimal("0")
    unit_amount: Decimal = Decimal("1.00")
    rounding: str = "down"
    categories: tuple[str, ...] = ()
    apply_tier_multiplier: bool = True
    tier_multipliers: dict[str, Decimal] = field(default_factory=dict)
    happy_hours: tuple[dict, ...] = ()

    @classmethod
    def from_rule(cls, rule) -> "RuleSpec":
        return cls(
            code=rule.code,
            points=rule.points,
            points_per_unit=Decimal(rule.points_per_unit),
            unit_amount=Decimal(rule.unit_amount),
            rounding=rule.rounding,
            categories=tuple(rule.categories or ()),
            apply_tier_multiplier=rule.apply_tier_multiplier,
            tier_multipliers={k: Decimal(str(v)) for k, v in (rule.tier_multipliers or {}).items()},
            happy_hours=tuple(rule.happy_hours or ()),
        )


@dataclass(frozen=True)
class Breakdown:
    base: Decimal
    tier_multiplier: Decimal
    happy_hour_multiplier: Decimal
    points: int


def round_points(value: Decimal, rounding: str = "down") -> int:
    return int(value.quantize(ONE, rounding=ROUNDINGS[rounding]))


def line_total(item: dict) -> Decimal:
    return Decimal(str(item.get("unit_price", "0"))) * int(item.get("quantity", 1))


def eligible_amount(spec: RuleSpec, amount: Decimal, items: list[dict], paid_amount: Decimal | None = None) -> Decimal:
    """The money a rule pays points on; with `paid_amount` (after discounts) the discount is taken off pro rata."""
    if not spec.categories:
        return Decimal(amount) if paid_amount is None else Decimal(paid_amount)
    wanted = set(spec.categories)
    total = sum((line_total(i) for i in items if i.get("category") in wanted), Decimal("0"))
    if paid_amount is None or Decimal(paid_amount) >= Decimal(amount):
        return total
    if Decimal(amount) <= 0:
        return Decimal("0")
    return total * Decimal(paid_amount) / Decimal(amount)


def _parse_hhmm(text: str) -> dt.time:
    hours, minutes = text.split(":")
    return dt.time(int(hours), int(minutes))


def happy_hour_multiplier(happy_hours, local: dt.datetime) -> Decimal:
    best = ONE
    for window in happy_hours or ():
        start, end = _parse_hhmm(window["from"]), _parse_hhmm(window["to"])
        weekdays = window.get("weekdays") or list(range(7))
        t = local.time()
        if start <= end:
            inside = local.weekday() in weekdays and start <= t < end
        else:  # wraps midnight: the part after midnight belongs to the previous day's window
            inside = (local.weekday() in weekdays and t >= start) or ((local.weekday() - 1) % 7 in weekdays and t < end)
        if inside:
            best = max(best, Decimal(str(window.get("multiplier", "1"))))
    return best


def tier_multiplier(spec: RuleSpec, tier_code: str | None, multiplier: Decimal | None) -> Decimal:
    if not spec.apply_tier_multiplier or tier_code is None:
        return ONE
    if tier_code in spec.tier_multipliers:
        return spec.tier_multipliers[tier_code]
    return Decimal(multiplier) if multiplier is not None else ONE


def compute_points(
    spec: RuleSpec,
    *,
    amount: Decimal,
    items: list[dict],
    local_time: dt.datetime,
    tier_code: str | None = None,
    tier_mult: Decimal | None = None,
    paid_amount: Decimal | None = None,
) -> Breakdown:
    base = Decimal(spec.points)
    if spec.points_per_unit:
        base += spec.points_per_unit * eligible_amount(spec, amount, items, paid_amount) / spec.unit_amount
    tm = tier_multiplier(spec, tier_code, tier_mult)
    hm = happy_hour_multiplier(spec.happy_hours, local_time)
    points = max(0, round_points(base * tm * hm, spec.rounding))
    return Breakdown(base=base, tier_multiplier=tm, happy_hour_multiplier=hm, points=points)


def cap_period_start(period: str, local_day: dt.date) -> dt.date:
    """The first day of the cap period holding `local_day` (weeks start on Monday)."""
    if period == "day":
        return local_day
    if period == "week":
        return local_day - dt.timedelta(days=local_day.weekday())
    if period == "month":
        return local_day.replace(day=1)
    if period == "year":
        return local_day.replace(month=1, day=1)
    return LIFETIME_START


def cap_allowance(points: int, cap: int, used: int) -> int:
    """How many of `points` still fit under `cap` when `used` were already given."""
    return max(0, min(points, cap - used))


class CapCounter(Protocol):
    """Where a cap's use is counted: `take` answers how many of `points` still fit and counts them as given."""

    def take(self, rule: Any, points: int, local_day: dt.date) -> int: ...


class CapTally:
    """Caps counted in memory, per rule and cap period, from zero (a new member; nothing is stored)."""

    def __init__(self) -> None:
        self.used: dict[tuple[str, dt.date], int] = {}

    def take(self, rule: Any, points: int, local_day: dt.date) -> int:
        if rule.cap_points is None or not rule.cap_period:
            return points
        key = (rule.code, cap_period_start(rule.cap_period, local_day))
        allowed = cap_allowance(points, rule.cap_points, self.used.get(key, 0))
        self.used[key] = self.used.get(key, 0) + allowed
        return allowed


def points_out_of_range(points: int, rule_code: str | None = None) -> ApplicationError:
    """422: the points of this order do not fit the ledger's integer columns (2**31 - 1); nothing is written.

    The program's bounds (`loyalty.services.program`) keep each number sane, but their product (points per unit
    x amount x multipliers) can still pass what a balance holds: such an order is refused whole, with a clear
    error, rather than clamped (a clamped award would be silently wrong) or failed as a 500.
    """
    details: dict[str, Any] = {"points": str(points), "maximum": MAX_INT}
    if rule_code is not None:
        details["rule"] = rule_code
    return ApplicationError(
        "points_out_of_range", "The points of this order pass what a balance can hold.", details, status=422
    )


@dataclass(frozen=True)
class Award:
    """The points one rule gives one order or event, after its cap (always > 0)."""

    rule: Any  # an EarningRule
    points: int


def rule_awards(
    rules: list[Any],
    context: dict[str, Any],
    *,
    local_time: dt.datetime,
    caps: CapCounter,
    tier_code: str | None = None,
    tier_mult: Decimal | None = None,
    amount: Decimal = Decimal("0"),
    items: list[dict] | None = None,
    paid_amount: Decimal | None = None,
) -> list[Award]:
    """The rules of `rules` (in order) that hold in `context` and give points, each capped by `caps`.

    No I/O of its own: what a cap has given is counted by `caps` (stored rows on a real earning, a `CapTally`
    in the calculator). Raises `points_out_of_range` when one rule's points pass what a balance holds.
    """
    awards = []
    for rule in rules:
        if not rule_matches(rule.rule, context):
            continue
        breakdown = compute_points(
            RuleSpec.from_rule(rule),
            amount=amount,
            items=items or [],
            local_time=local_time,
            tier_code=tier_code,
            tier_mult=tier_mult,
            paid_amount=paid_amount,
        )
        if breakdown.points > MAX_INT:
            raise points_out_of_range(breakdown.points, rule.code)
        points = caps.take(rule, breakdown.points, local_time.date()) if breakdown.points else 0
        if points > 0:
            awards.append(Award(rule=rule, points=points))
    return awards


def proportional_points(total: int, part: Decimal, whole: Decimal) -> int:
    """Points belonging to `part` of `whole`, half-up (cumulative use avoids drift over several returns)."""
    if whole <= 0 or part >= whole:
        return total
    return int((Decimal(total) * part / whole).quantize(ONE, rounding=ROUND_HALF_UP))


def validate_happy_hours(value: Any, at: str, errors: FieldErrors) -> list[dict]:
    """The happy-hour windows of a rule, their problems recorded in `errors` under `at`."""
    out = []
    windows = errors.array(value if value != "" else None, at, default=[])
    errors.check(len(windows) <= MAX_HAPPY_HOURS, at, f"at most {MAX_HAPPY_HOURS} happy hours")
    for n, window in enumerate(windows[:MAX_HAPPY_HOURS]):
        name = path(at, n)
        if errors.mapping(window, name, required=True) is None:
            continue
        try:
            _parse_hhmm(window["from"])
            _parse_hhmm(window["to"])
        except (KeyError, ValueError, AttributeError):
            errors.add(name, 'needs "from" and "to" as HH:MM')
            continue
        weekdays = window.get("weekdays", list(range(7)))
        if not errors.check(
            isinstance(weekdays, list)
            and all(not isinstance(d, bool) and isinstance(d, int) and 0 <= d <= 6 for d in weekdays),
            path(name, "weekdays"),
            "must be a list of 0 (Monday) to 6 (Sunday)",
        ):
            continue
        at_multiplier = path(name, "multiplier")
        multiplier = errors.decimal(
            window.get("multiplier", "1"), at_multiplier, minimum=None, maximum=MAX_MULTIPLIER, places=3, required=True
        )
        if multiplier is None or not errors.check(multiplier > 0, at_multiplier, "must be a positive number"):
            continue
        out.append({"weekdays": weekdays, "from": window["from"], "to": window["to"], "multiplier": str(multiplier)})
    return out
