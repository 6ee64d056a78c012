"""Expiry policy arithmetic: pure functions, no I/O, unit-tested by tables of cases.

A policy is the small document of the contract: `{"policy": "never"}`, `{"policy": "days", "days": N}`,
`{"policy": "rolling_quarter", "years": N}`, `{"policy": "end_of_period", "period": "month"|"year", "count": N}`,
`{"policy": "inactivity", "months": N}`.

Period ends (quarter, month, year) are taken in the tenant's time zone: points expire at the last second of the
period's last day there (23:59:59 local), returned as an aware UTC datetime. A lot is expired once
`expires_at <= now`.

Bounds (a policy is refused above them when saved, `check_policy`): `days` at most 36500 (100 years), `years` at
most 100, `months` at most 1200, `count` at most 1200 months or 100 years. A policy stored before these bounds
(or written around the services) is read clamped to them (`compute_expires_at`, `inactivity_expires_at`, logged):
points of a policy of 10**12 days then expire after 100 years, which is what "never in practice" meant, instead
of every order failing on a date past the year 9999.
"""

import calendar
import datetime as dt
import logging
import zoneinfo
from typing import Any

from common.validation import FieldErrors, path

POLICIES = ("never", "days", "rolling_quarter", "end_of_period", "inactivity")
PERIODS = ("month", "year")
UTC = dt.UTC

DEFAULT_POLICY: dict[str, Any] = {"policy": "never"}
MAX_DAYS = 36_500
MAX_YEARS = 100
MAX_MONTHS = 1_200
MAXIMA = {"days": MAX_DAYS, "years": MAX_YEARS, "months": MAX_MONTHS}
MAX_WARNING_DAYS = 3650  # a program's `expiry_warning_days`; a larger stored value is read as this
logger = logging.getLogger(__name__)


def _bounded(policy: dict[str, Any], key: str, maximum: int) -> int:
    """A stored policy's number, clamped to [0, maximum] (see the module docstring)."""
    try:
        value = int(policy.get(key) or 0)
    except (TypeError, ValueError):
        value = 0
    if not 0 <= value <= maximum:
        logger.warning("expiry policy %r: %s out of bounds, read as %s", policy, key, min(max(value, 0), maximum))
    return min(max(value, 0), maximum)


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
        count = errors.whole(
            policy.get("count", 0),
            path(at, "count"),
            minimum=0,
            maximum=MAX_YEARS if period == "year" else MAX_MONTHS,
            required=True,
            default=0,
        )
        return {"policy": "end_of_period", "period": period, "count": count}
    key = {"days": "days", "rolling_quarter": "years", "inactivity": "months"}[kind]
    value = errors.whole(policy.get(key), path(at, key), minimum=1, maximum=MAXIMA[key], required=True, default=0)
    return {"policy": kind, key: value}


def normalize_policy(policy: Any, *, field: str = "expiry") -> dict[str, Any]:
    """A policy document's canonical form; raises 400 `invalid_expiry_policy` with the field details."""
    if policy is None:
        return dict(DEFAULT_POLICY)
    errors = FieldErrors()
    out = check_policy(policy, field, errors)
    errors.raise_if_any("invalid_expiry_policy", "The expiry policy is not valid.")
    return out


def stored_policy(policy: Any) -> dict[str, Any]:
    """A stored policy as the earning path reads it: never raises (an order must not fail on old configuration).

    A valid policy is its canonical form; a policy past the bounds is clamped to them, one of an unknown kind or
    shape is read as "never"; both are logged.
    """
    if not policy:
        return dict(DEFAULT_POLICY)
    errors = FieldErrors()
    out = check_policy(policy, "expiry", errors)
    if not errors:
        return out
    kind = policy.get("policy") if isinstance(policy, dict) else None
    if kind in ("days", "rolling_quarter", "inactivity"):
        key = {"days": "days", "rolling_quarter": "years", "inactivity": "months"}[kind]
        clamped = {"policy": kind, key: _bounded(policy, key, MAXIMA[key])}
    elif kind == "end_of_period" and policy.get("period") in PERIODS:
        maximum = MAX_YEARS if policy["period"] == "year" else MAX_MONTHS
        clamped = {"policy": kind, "period": policy["period"], "count": _bounded(policy, "count", maximum)}
    else:
        clamped = dict(DEFAULT_POLICY)
    logger.warning("stored expiry policy %r is not valid (%s): read as %r", policy, errors.details, clamped)
    return clamped


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
        return (earned_at + dt.timedelta(days=_bounded(policy, "days", MAX_DAYS))).astimezone(UTC)
    if kind == "rolling_quarter":
        quarter_end_month = ((local.month - 1) // 3 + 1) * 3
        return _end_of_day(_month_end(local.year + _bounded(policy, "years", MAX_YEARS), quarter_end_month), tz)
    if kind == "end_of_period":
        if policy.get("period") == "month":
            count = _bounded(policy, "count", MAX_MONTHS)
            target = add_months(local.date().replace(day=1), count)
            return _end_of_day(_month_end(target.year, target.month), tz)
        return _end_of_day(dt.date(local.year + _bounded(policy, "count", MAX_YEARS), 12, 31), tz)
    if kind == "inactivity":
        return inactivity_expires_at(policy, earned_at, tz)
    raise ValueError(f"unknown expiry policy {kind!r}")


def inactivity_expires_at(policy: dict[str, Any], last_activity_at: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The whole balance expires N calendar months after the last earning or spending (same local time)."""
    local = last_activity_at.astimezone(tz)
    day = add_months(local.date(), _bounded(policy, "months", MAX_MONTHS))
    return dt.datetime.combine(day, local.time(), tzinfo=tz).astimezone(UTC)


def is_inactivity(policy: dict[str, Any] | None) -> bool:
    return bool(policy) and policy.get("policy") == "inactivity"
