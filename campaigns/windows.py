"""Time windows in the tenant's time zone: active hours and the periods limits count in."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MAX_WINDOWS = 50  # active-hour windows of one campaign


class WindowError(ValueError):
    pass


def _time(value: Any) -> dt.time:
    if value == "24:00":
        return dt.time.max
    if not isinstance(value, str) or not TIME_RE.match(value):
        raise WindowError(f"{value!r} is not a time such as 09:00.")
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


def check_active_hours(windows: Any) -> None:
    if not isinstance(windows, list):
        raise WindowError("A list of windows is required.")
    if len(windows) > MAX_WINDOWS:
        raise WindowError(f"At most {MAX_WINDOWS} windows.")
    for window in windows:
        if not isinstance(window, dict):
            raise WindowError("Each window is an object with weekdays, from and to.")
        days = window.get("weekdays", list(range(7)))
        if (
            not isinstance(days, list)
            or len(days) > 7
            or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in days)
        ):
            raise WindowError("weekdays are numbers 0 (Monday) to 6 (Sunday).")
        _time(window.get("from", "00:00"))
        _time(window.get("to", "24:00"))


def within_active_hours(windows: list[dict[str, Any]], now: dt.datetime, tz) -> bool:
    """True when `now` falls in one of the windows, read in the tenant's time zone.

    `weekdays` 0 = Monday; `to` is exclusive; a window whose `to` is before its `from` runs past midnight
    into the next day (its weekday is the day it starts).
    """
    if not windows:
        return True
    local = now.astimezone(tz)
    t = local.time().replace(tzinfo=None)
    today = local.weekday()
    yesterday = (today - 1) % 7
    for window in windows:
        days = window.get("weekdays", list(range(7)))
        start = _time(window.get("from", "00:00"))
        end = _time(window.get("to", "24:00"))
        if start <= end:
            if today in days and start <= t < end:
                return True
        else:  # across midnight
            if (today in days and t >= start) or (yesterday in days and t < end):
                return True
    return False


def schedule_refusal(campaign, now: dt.datetime) -> tuple[str, dict] | None:
    """Why `campaign` is not live at `now` by its kill switch and dates (disabled, not started, ended), or None.

    The one rule of a live campaign on a loaded row. `campaigns.sql.live()` is the same rule in SQL, for the
    reads that select live campaigns; tests/campaigns/test_liveness.py holds the two to the same verdict.
    """
    if not campaign.enabled:
        return "campaign_disabled", ({"reason": campaign.disabled_reason} if campaign.disabled_reason else {})
    if campaign.starts_at and now < campaign.starts_at:
        return "campaign_not_started", {"starts_at": campaign.starts_at.isoformat()}
    if campaign.ends_at and now >= campaign.ends_at:
        return "campaign_ended", {"ended_at": campaign.ends_at.isoformat()}
    return None


def live_refusal(campaign, now: dt.datetime, tz) -> tuple[str, dict] | None:
    """`schedule_refusal`, then the campaign's active hours in the tenant's time zone: None when it applies now."""
    refusal = schedule_refusal(campaign, now)
    if refusal is None and campaign.active_hours and not within_active_hours(campaign.active_hours, now, tz):
        return "outside_active_hours", {"active_hours": campaign.active_hours}
    return refusal


def period_key(period: str, now: dt.datetime, tz) -> str:
    local = now.astimezone(tz).date()
    if period == "day":
        return local.isoformat()
    if period == "week":
        return (local - dt.timedelta(days=local.weekday())).isoformat()
    if period == "month":
        return f"{local.year:04d}-{local.month:02d}"
    raise ValueError(period)


def minute_key(now: dt.datetime) -> str:
    return "min:" + now.astimezone(dt.UTC).strftime("%Y%m%d%H%M")
