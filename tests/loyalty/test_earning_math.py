"""Points computation by tables of cases (pure, no database)."""

import datetime as dt
from decimal import Decimal

import pytest

from common.validation import FieldErrors
from loyalty.earning import (
    RuleSpec,
    cap_allowance,
    cap_period_start,
    compute_points,
    happy_hour_multiplier,
    proportional_points,
    validate_happy_hours,
)

SAT_1830 = dt.datetime(2026, 6, 6, 18, 30)  # a Saturday
ITEMS = [
    {"sku": "T", "category": "apparel", "quantity": 2, "unit_price": "15.00"},
    {"sku": "B", "category": "books", "quantity": 1, "unit_price": "9.99"},
]


@pytest.mark.parametrize(
    ("spec", "amount", "tier", "expected"),
    [
        (RuleSpec("a", points_per_unit=Decimal("1")), "39.99", None, 39),
        (RuleSpec("a", points_per_unit=Decimal("1"), rounding="half_up"), "39.50", None, 40),
        (RuleSpec("a", points_per_unit=Decimal("1"), rounding="up"), "39.01", None, 40),
        (RuleSpec("a", points_per_unit=Decimal("1"), unit_amount=Decimal("10.00")), "39.99", None, 3),
        (RuleSpec("a", points=50), "0", None, 50),
        (RuleSpec("a", points=5, points_per_unit=Decimal("1")), "10.00", None, 15),
        (RuleSpec("a", points_per_unit=Decimal("1"), categories=("apparel",)), "39.99", None, 30),
        (RuleSpec("a", points_per_unit=Decimal("1")), "10.00", ("silver", Decimal("1.5")), 15),
        (RuleSpec("a", points_per_unit=Decimal("1"), apply_tier_multiplier=False), "10.00", ("gold", Decimal("2")), 10),
        (
            RuleSpec("a", points_per_unit=Decimal("1"), tier_multipliers={"gold": Decimal("3")}),
            "10.00",
            ("gold", Decimal("2")),
            30,
        ),
        (RuleSpec("a", points_per_unit=Decimal("0.5")), "3.00", ("silver", Decimal("1.5")), 2),  # 2.25 -> 2, once
    ],
)
def test_compute_points(spec, amount, tier, expected):
    tier_code, tier_mult = tier or (None, None)
    got = compute_points(
        spec,
        amount=Decimal(amount),
        items=ITEMS,
        local_time=dt.datetime(2026, 6, 3, 12),
        tier_code=tier_code,
        tier_mult=tier_mult,
    )
    assert got.points == expected


@pytest.mark.parametrize(
    ("windows", "local", "expected"),
    [
        ([{"weekdays": [5, 6], "from": "17:00", "to": "20:00", "multiplier": "2"}], SAT_1830, Decimal("2")),
        ([{"weekdays": [5, 6], "from": "17:00", "to": "20:00", "multiplier": "2"}], dt.datetime(2026, 6, 6, 20, 0), 1),
        ([{"weekdays": [0], "from": "17:00", "to": "20:00", "multiplier": "2"}], SAT_1830, Decimal("1")),
        (
            [
                {"weekdays": [5], "from": "18:00", "to": "19:00", "multiplier": "3"},
                {"weekdays": [5], "from": "17:00", "to": "20:00", "multiplier": "2"},
            ],
            SAT_1830,
            Decimal("3"),
        ),
        # Friday 22:00 to 02:00 covers Saturday 01:00 but not Saturday 23:00.
        ([{"weekdays": [4], "from": "22:00", "to": "02:00", "multiplier": "2"}], dt.datetime(2026, 6, 6, 1, 0), 2),
        ([{"weekdays": [4], "from": "22:00", "to": "02:00", "multiplier": "2"}], dt.datetime(2026, 6, 6, 23, 0), 1),
    ],
)
def test_happy_hours(windows, local, expected):
    assert happy_hour_multiplier(windows, local) == Decimal(expected)


@pytest.mark.parametrize(
    ("period", "day", "start"),
    [
        ("day", dt.date(2024, 2, 29), dt.date(2024, 2, 29)),
        ("week", dt.date(2024, 2, 29), dt.date(2024, 2, 26)),
        ("month", dt.date(2024, 2, 29), dt.date(2024, 2, 1)),
        ("year", dt.date(2024, 2, 29), dt.date(2024, 1, 1)),
        ("lifetime", dt.date(2024, 2, 29), dt.date(1970, 1, 1)),
    ],
)
def test_cap_period_start(period, day, start):
    assert cap_period_start(period, day) == start


@pytest.mark.parametrize(("points", "cap", "used", "allowed"), [(10, 100, 0, 10), (10, 100, 95, 5), (10, 100, 100, 0)])
def test_cap_allowance(points, cap, used, allowed):
    assert cap_allowance(points, cap, used) == allowed


@pytest.mark.parametrize(
    ("total", "part", "whole", "expected"),
    [(33, "33.33", "100.00", 11), (33, "66.66", "100.00", 22), (33, "99.99", "100.00", 33), (33, "100", "100", 33)],
)
def test_proportional_points(total, part, whole, expected):
    assert proportional_points(total, Decimal(part), Decimal(whole)) == expected


def test_validate_happy_hours_reports_each_window():
    errors = FieldErrors()
    out = validate_happy_hours(
        [
            {"from": "17:00", "to": "20:00"},
            {"from": "7pm", "to": "20:00"},
            {"from": "1:00", "to": "2:00", "weekdays": [7]},
            {"from": "1:00", "to": "2:00", "multiplier": "0"},
            "evenings",
        ],
        "hh",
        errors,
    )
    assert len(out) == 1
    assert errors.details == {
        "hh[1]": 'needs "from" and "to" as HH:MM',
        "hh[2].weekdays": "must be a list of 0 (Monday) to 6 (Sunday)",
        "hh[3].multiplier": "must be a positive number",
        "hh[4]": "must be an object",
    }
