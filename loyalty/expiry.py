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

from common.errors import ApplicationError

POLICIES = ("never", "days", "rolling_quarter", "end_of_period", "inactivity")
PERIODS = ("month", "year")
UTC = dt.UTC

DEFAULT_POLICY: dict[str, Any] = {"policy": "never"}


def _positive_int(value: Any, name: str, errors: dict[str, str], *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        errors[name] = f"must be an integer >= {0 if allow_zero else 1}"
        return 0
    return value


def normalize_policy(policy: Any, *, field: str = "expiry") -> dict[str, Any]:
    """Validate a policy document and return its canonical form; raises ApplicationError with field details."""
    if policy is None:
        return dict(DEFAULT_POLICY)
    if not isinstance(policy, dict) or policy.get("policy") not in POLICIES:
        raise ApplicationError(
            "invalid_expiry_policy",
            f"Unknown expiry policy; use one of {', '.join(POLICIES)}.",
            {field: f"policy must be one of {', '.join(POLICIES)}"},
            status=400,
        )
    kind = policy["policy"]
    errors: dict[str, str] = {}
    if kind == "never":
        out: dict[str, Any] = {"policy": "never"}
    elif kind == "days":
        out = {"policy": "days", "days": _positive_int(policy.get("days"), f"{field}.days", errors)}
    elif kind == "rolling_quarter":
        out = {"policy": "rolling_quarter", "years": _positive_int(policy.get("years"), f"{field}.years", errors)}
    elif kind == "end_of_period":
        period = policy.get("period")
        if period not in PERIODS:
            errors[f"{field}.period"] = "must be month or year"
        count = _positive_int(policy.get("count", 0), f"{field}.count", errors, allow_zero=True)
        out = {"policy": "end_of_period", "period": period, "count": count}
    else:
        out = {"policy": "inactivity", "months": _positive_int(policy.get("months"), f"{field}.months", errors)}
    if errors:
        raise ApplicationError("invalid_expiry_policy", "The expiry policy is incomplete.", errors, status=400)
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
