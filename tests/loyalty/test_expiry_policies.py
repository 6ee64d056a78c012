"""Expiry policy arithmetic, by tables of cases (pure, no database)."""

import datetime as dt
import zoneinfo

import pytest

from common.errors import ApplicationError
from loyalty.expiry import add_months, compute_expires_at, normalize_policy

UTC = dt.UTC
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def utc(*args):
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("earned", "expires"),
    [
        (utc(2019, 1, 1, 0, 0), utc(2021, 3, 31, 23, 59, 59)),
        (utc(2019, 3, 31, 23, 0), utc(2021, 3, 31, 23, 59, 59)),
        (utc(2019, 4, 1, 0, 0), utc(2021, 6, 30, 23, 59, 59)),
        (utc(2019, 6, 30, 12, 0), utc(2021, 6, 30, 23, 59, 59)),
        (utc(2019, 8, 15), utc(2021, 9, 30, 23, 59, 59)),
        (utc(2019, 12, 31, 23, 59), utc(2021, 12, 31, 23, 59, 59)),
    ],
)
def test_rolling_quarter_two_years_example(earned, expires):
    assert compute_expires_at({"policy": "rolling_quarter", "years": 2}, earned, UTC) == expires


def test_rolling_quarter_end_is_taken_in_the_tenant_time_zone():
    # 31 March 2019 23:30 UTC is already 1 April in Berlin: the second quarter.
    got = compute_expires_at({"policy": "rolling_quarter", "years": 2}, utc(2019, 3, 31, 23, 30), BERLIN)
    assert got == dt.datetime(2021, 6, 30, 23, 59, 59, tzinfo=BERLIN)
    assert got == utc(2021, 6, 30, 21, 59, 59)


@pytest.mark.parametrize(
    ("policy", "earned", "expires"),
    [
        ({"policy": "never"}, utc(2024, 2, 29), None),
        ({"policy": "days", "days": 365}, utc(2024, 2, 29, 10), utc(2025, 2, 28, 10)),
        ({"policy": "days", "days": 1}, utc(2024, 2, 28, 10), utc(2024, 2, 29, 10)),
        ({"policy": "days", "days": 366}, utc(2023, 3, 1), utc(2024, 3, 1)),
        ({"policy": "end_of_period", "period": "month", "count": 0}, utc(2024, 2, 10), utc(2024, 2, 29, 23, 59, 59)),
        ({"policy": "end_of_period", "period": "month", "count": 1}, utc(2024, 1, 31), utc(2024, 2, 29, 23, 59, 59)),
        ({"policy": "end_of_period", "period": "month", "count": 13}, utc(2023, 1, 31), utc(2024, 2, 29, 23, 59, 59)),
        ({"policy": "end_of_period", "period": "month", "count": 12}, utc(2024, 2, 29), utc(2025, 2, 28, 23, 59, 59)),
        ({"policy": "end_of_period", "period": "year", "count": 1}, utc(2024, 2, 29), utc(2025, 12, 31, 23, 59, 59)),
        ({"policy": "end_of_period", "period": "year", "count": 0}, utc(2024, 7, 1), utc(2024, 12, 31, 23, 59, 59)),
        ({"policy": "inactivity", "months": 12}, utc(2024, 2, 29, 8), utc(2025, 2, 28, 8)),
        ({"policy": "inactivity", "months": 1}, utc(2024, 1, 31, 8), utc(2024, 2, 29, 8)),
        ({"policy": "rolling_quarter", "years": 1}, utc(2024, 2, 29), utc(2025, 3, 31, 23, 59, 59)),
    ],
)
def test_policies(policy, earned, expires):
    assert compute_expires_at(policy, earned, UTC) == expires


def test_year_end_in_tenant_zone():
    got = compute_expires_at({"policy": "end_of_period", "period": "year", "count": 0}, utc(2024, 6, 1), BERLIN)
    assert got == utc(2024, 12, 31, 22, 59, 59)


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (dt.date(2024, 2, 29), 12, dt.date(2025, 2, 28)),
        (dt.date(2024, 2, 29), 48, dt.date(2028, 2, 29)),
        (dt.date(2024, 1, 31), 1, dt.date(2024, 2, 29)),
        (dt.date(2023, 1, 31), 1, dt.date(2023, 2, 28)),
        (dt.date(2024, 3, 31), -1, dt.date(2024, 2, 29)),
        (dt.date(2024, 12, 15), 1, dt.date(2025, 1, 15)),
    ],
)
def test_add_months_clamps_to_month_end(day, months, expected):
    assert add_months(day, months) == expected


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"policy": "days"}, "expiry.days"),
        ({"policy": "days", "days": 0}, "expiry.days"),
        ({"policy": "rolling_quarter", "years": "2"}, "expiry.years"),
        ({"policy": "end_of_period", "period": "week", "count": 1}, "expiry.period"),
        ({"policy": "inactivity", "months": -1}, "expiry.months"),
        ({"policy": "sometimes"}, "expiry"),
    ],
)
def test_invalid_policies_name_the_field(policy, field):
    with pytest.raises(ApplicationError) as exc:
        normalize_policy(policy)
    assert exc.value.code == "invalid_expiry_policy" and field in exc.value.details
