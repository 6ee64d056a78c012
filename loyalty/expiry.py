"""Expiry policy arithmetic: pure functions, no I/O, unit-tested by tables of cases.

A policy is the small document of the contract: `{"policy": "never"}`, `{"policy": "days", "days": N}`,
`{"policy": "rolling_quarter", "years": N}`, `{"policy": "end_of_period", "period": "month"|"year", "count": N}`,
`{"policy": "inactivity", "months": N}`.

Period ends (quarter, month, year) are taken in the tenant's time zone: points expire at the last second of the
period's last day there (23:59:59 local), returned as an aware UTC datetime. A lot is expired once
`expires_at <= now`.
"""

import calendar
import datetime as dt
import zoneinfo
from typing import Any

from common.validation import FieldErrors, path

POLICIES = ("never", "days", "rolling_quarter", "end_of_period", "inactivity")
PERIODS = ("month", "year")
UTC = dt.UTC

DEFAULT_POLICY: dict[str, Any] = {"policy": "never"}


def check_policy(policy: Any, at: str, errors: FieldErrors) -> dict[str, Any]:
    """The canonical form of a policy document, its problems recorded in `errors` under `at` (`expiry.days`)."""
    if policy is None:
        return dict(DEFAULT_POLICY)
    if not errors.check(
        isinstance(policy, dict) and policy.get("policy") in POLICIES,
        at,
        f"policy must be one of {', '.join(POLICIES)}",
    ):
        return dict(DEFAULT_POLICY)
    kind = policy["policy"]
    if kind == "never":
        return {"policy": "never"}
    if kind == "end_of_period":
        period = errors.choice(policy.get("period"), path(at, "period"), PERIODS, required=True)
        count = errors.whole(policy.get("count", 0), path(at, "count"), minimum=0, required=True, default=0)
        return {"policy": "end_of_period", "period": period, "count": count}
    key = {"days": "days", "rolling_quarter": "years", "inactivity": "months"}[kind]
    return {"policy": kind, key: errors.whole(policy.get(key), path(at, key), minimum=1, required=True, default=0)}


def normalize_policy(policy: Any, *, field: str = "expiry") -> dict[str, Any]:
    """A policy document's canonical form; raises 400 `invalid_expiry_policy` with the field details."""
    if policy is None:
        return dict(DEFAULT_POLICY)
    errors = FieldErrors()
    out = check_policy(policy, field, errors)
    errors.raise_if_any("invalid_expiry_policy", "The expiry policy is not valid.")
    return out


def add_months(day: dt.date, months: int) -> dt.date:
    """Calendar months later, clamped to the month's last day (29 Feb 2024 + 12 months = 28 Feb 2025)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _end_of_day(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=tz).astimezone(UTC)


def _month_end(year: int, month: int) -> dt.date:
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def compute_expires_at(
    policy: dict[str, Any] | None, earned_at: dt.datetime, tz: dt.tzinfo | str
) -> dt.datetime | None:
    """When points earned at `earned_at` expire under `policy` (None: never, or decided by inactivity)."""
    if isinstance(tz, str):
        tz = zoneinfo.ZoneInfo(tz)
    policy = policy or DEFAULT_POLICY
    kind = policy.get("policy", "never")
    local = earned_at.astimezone(tz)
    if kind == "never":
        return None
    if kind == "days":
        return (earned_at + dt.timedelta(days=int(policy["days"]))).astimezone(UTC)
    if kind == "rolling_quarter":
        quarter_end_month = ((local.month - 1) // 3 + 1) * 3
        return _end_of_day(_month_end(local.year + int(policy["years"]), quarter_end_month), tz)
    if kind == "end_of_period":
        count = int(policy.get("count", 0))
        if policy["period"] == "month":
            target = add_months(local.date().replace(day=1), count)
            return _end_of_day(_month_end(target.year, target.month), tz)
        return _end_of_day(dt.date(local.year + count, 12, 31), tz)
    if kind == "inactivity":
        return inactivity_expires_at(policy, earned_at, tz)
    raise ValueError(f"unknown expiry policy {kind!r}")


def inactivity_expires_at(policy: dict[str, Any], last_activity_at: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The whole balance expires N calendar months after the last earning or spending (same local time)."""
    local = last_activity_at.astimezone(tz)
    day = add_months(local.date(), int(policy["months"]))
    return dt.datetime.combine(day, local.time(), tzinfo=tz).astimezone(UTC)


def is_inactivity(policy: dict[str, Any] | None) -> bool:
    return bool(policy) and policy.get("policy") == "inactivity"
