"""The rules a report's range of days must follow, shared by the API (`invalid_range`) and the dashboard's form."""

import datetime as dt

from django.utils.translation import gettext as _

MAX_DAYS = 3660  # ten years: a wider range is refused, not a long query
# Days a report can name: their midnights in any time zone are datetimes (0001-01-01 in UTC+14 is not).
FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(9998, 12, 31)


class InvalidRange(ValueError):
    """A range a report refuses: `message` for people, `detail` for the API's error body."""

    def __init__(self, message: str, detail: dict):
        super().__init__(message)
        self.message = message
        self.detail = detail


def range_check(first: dt.date, last: dt.date) -> None:
    """Raise `InvalidRange` unless `first`..`last` is a range of days a report can answer."""
    if first > last:
        raise InvalidRange(_("`to` must not be before `from`."), {"to": [last.isoformat()]})
    outside = {key: day for key, day in (("from", first), ("to", last)) if not FIRST_DAY <= day <= LAST_DAY}
    if outside:
        message = _("Days from %(first)s to %(last)s only.") % {"first": FIRST_DAY, "last": LAST_DAY}
        raise InvalidRange(message, {key: [day.isoformat()] for key, day in outside.items()})
    if (last - first).days >= MAX_DAYS:
        raise InvalidRange(_("The range may span at most %(n)d days.") % {"n": MAX_DAYS}, {"max_days": MAX_DAYS})
