"""One way for a service to check its input: field checkers that collect `path -> message`, raised as one error.

Who checks what
    The API's input serializers (`api/`, DRF) check the wire format of a request before a service runs:
    JSON types, lengths, required fields, formats, and they describe it in the OpenAPI schema. Their refusal
    is DRF's own: 400 `validation_error` with `{field: [messages]}`, nested like the body.
    A service checks its input again, whoever calls it (a view, the admin, a task, a command, a test), with
    the checkers below: the same types and ranges (a service does not trust its caller) and what only the
    service knows (the tenant's currency, the items of the order being returned, duplicate codes in a
    document, the bounds of the columns it writes). Documents the API hands over whole (programs, campaigns)
    are checked here only, so the API and the admin accept and refuse the same things. No DRF here, nor in
    the services.

The one shape
    A service collects every problem of its input into one `FieldErrors`, then calls
    `errors.raise_if_any(code, message)`: a `common.errors.ApplicationError` with the operation's own code
    (`invalid_order`, `invalid_program`, `validation_error`, ...), status 400, and `details` a flat dict of
    field path -> message (one string)::

        {"error": {"code": "invalid_order", "message": "The order is not valid.",
                   "details": {"currency": "must be the tenant's currency EUR",
                               "items[0].quantity": "must be a whole number >= 1"}}}

    Every problem is reported at once, one message per path: the first one found (what follows is mostly
    its consequence). A refusal found later, under a lock (an unknown referrer, more returned than is left),
    has the same shape (`field_error`).

Paths
    Relative to the input the service takes: keys joined by dots, list positions in brackets: `amount`,
    `items[0].quantity`, `earning_rules[1].cap.points`, `tiers[0].expiry.days`; the keys of a mapping are
    keys too (`earning_rules[0].tier_multipliers.gold`). `path()` writes them. A problem of the input as a
    whole (not an object at all) is under `NON_FIELD` ("non_field_errors", as DRF names it).

Checkers
    `errors.decimal(value, path, ...)` and its siblings return the clean value; on a problem they record
    its message and return `default`, so checking goes on. A missing value (None; for text, dates and
    times also "") returns `default`, or is refused with "required" when `required=True`. A service that
    gives a key a default reads it with `.get(key, default)` and passes `required=True`: an explicit null
    is then refused, not taken for the default. Checks that belong to a domain (a rule's syntax, an expiry
    policy, happy hours) are the domain's functions taking the same `(value, path, errors)`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.dateparse import parse_date, parse_datetime

from common.errors import ApplicationError

NON_FIELD = "non_field_errors"
REQUIRED = "required"
SLUG = re.compile(r"[-a-zA-Z0-9_]+")
MAX_INT = 2**31 - 1  # the largest value of an integer column (PostgreSQL `integer`): every count and points value


def path(*parts: str | int) -> str:
    """`path("items", 0, "quantity") == "items[0].quantity"`; an empty first part is the root."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "":
            out = f"{out}.{part}" if out else part
    return out


def decimal_maximum(field: Any) -> Decimal:
    """The largest value a model's DecimalField stores (`max_digits` 6, `decimal_places` 3: 999.999)."""
    return Decimal(10) ** (field.max_digits - field.decimal_places) - Decimal(1).scaleb(-field.decimal_places)


def field_error(code: str, message: str, at: str, problem: str, *, status: int = 400) -> ApplicationError:
    """One field's refusal in the one shape, for what is found late (under a lock): `raise field_error(...)`."""
    return ApplicationError(code, message, {at: problem}, status=status)


def _missing(value: Any, blank: bool) -> bool:
    return value is None or (blank and isinstance(value, str) and value == "")


class FieldErrors:
    """The problems of one input, `path -> message`; see the module docstring."""

    def __init__(self) -> None:
        self.details: dict[str, str] = {}

    def __bool__(self) -> bool:
        return bool(self.details)

    def __contains__(self, at: str) -> bool:
        return at in self.details

    def add(self, at: str, message: str) -> None:
        """Record a problem at `at`; a path keeps its first message."""
        self.details.setdefault(at, str(message))

    def check(self, ok: Any, at: str, message: str) -> bool:
        """Record `message` at `at` unless `ok`; returns whether it was ok."""
        if not ok:
            self.add(at, message)
        return bool(ok)

    def raise_if_any(self, code: str, message: str, *, status: int = 400) -> None:
        """Raise the collected problems as one `ApplicationError(code, message, details)`; nothing if none."""
        if self.details:
            raise ApplicationError(code, message, dict(self.details), status=status)

    # --- checkers: the clean value, or `default` with the problem recorded ------------------------------

    def _absent(self, value: Any, at: str, required: bool, *, blank: bool = False) -> bool:
        if not _missing(value, blank):
            return False
        if required:
            self.add(at, REQUIRED)
        return True

    def text(
        self,
        value: Any,
        at: str,
        *,
        max_length: int | None = None,
        required: bool = False,
        strip: bool = False,
        default: Any = "",
    ) -> Any:
        """A string of at most `max_length` characters; with `strip`, judged and returned stripped."""
        if isinstance(value, str) and strip:
            value = value.strip()
        if self._absent(value, at, required, blank=True):
            return default
        if not isinstance(value, str) or (max_length is not None and len(value) > max_length):
            self.add(at, f"must be a text of at most {max_length} characters" if max_length else "must be a text")
            return default
        return value

    def slug(self, value: Any, at: str, *, max_length: int = 50, required: bool = True, default: str = "") -> str:
        """A code of letters, digits, - and _ (program, tier and rule codes)."""
        if self._absent(value, at, required, blank=True):
            return default
        if not isinstance(value, str) or len(value) > max_length or not SLUG.fullmatch(value):
            self.add(at, f"must be letters, digits, - and _ (at most {max_length})")
            return default
        return value

    def whole(
        self,
        value: Any,
        at: str,
        *,
        minimum: int | None = 0,
        maximum: int | None = MAX_INT,
        required: bool = False,
        default: Any = None,
    ) -> Any:
        """An int (not a bool) in [minimum, maximum]; the default maximum is what an integer column holds."""
        if self._absent(value, at, required):
            return default
        if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
            self.add(at, f"must be a whole number >= {minimum}" if minimum is not None else "must be a whole number")
            return default
        if maximum is not None and value > maximum:
            self.add(at, f"must be a whole number <= {maximum}")
            return default
        return value

    def decimal(
        self,
        value: Any,
        at: str,
        *,
        minimum: Decimal | int | str | None = 0,
        maximum: Decimal | None = None,
        places: int | None = None,
        required: bool = False,
        default: Any = None,
    ) -> Any:
        """A finite Decimal (from a number or a numeric string) in [minimum, maximum], with at most `places`."""
        if self._absent(value, at, required):
            return default
        try:
            number = Decimal(str(value)) if not isinstance(value, bool) else None
        except (InvalidOperation, ValueError, TypeError):
            number = None
        if number is None or not number.is_finite():
            self.add(at, "must be a decimal number")
            return default
        low = Decimal(minimum) if minimum is not None else None
        if (low is not None and number < low) or (maximum is not None and number > maximum):
            if low is not None and maximum is not None:
                self.add(at, f"must be a decimal number from {low} to {maximum}")
            elif low is not None:
                self.add(at, f"must be a decimal number >= {low}")
            else:
                self.add(at, f"must be a decimal number <= {maximum}")
            return default
        if places is not None and number.normalize().as_tuple().exponent < -places:  # "1.50" has 2 places, "1.500" too
            self.add(at, f"must have at most {places} decimal places")
            return default
        return number

    def boolean(self, value: Any, at: str, *, required: bool = False, default: Any = None) -> Any:
        if self._absent(value, at, required):
            return default
        if not isinstance(value, bool):
            self.add(at, "must be true or false")
            return default
        return value

    def choice(
        self, value: Any, at: str, choices: Collection[Any], *, required: bool = False, default: Any = None
    ) -> Any:
        """One of `choices` (refused: "must be one of a, b")."""
        if self._absent(value, at, required):
            return default
        try:
            known = value in choices
        except TypeError:  # an unhashable value against a set
            known = False
        if not known:
            listed = sorted(choices, key=str) if isinstance(choices, set | frozenset) else choices  # a stable message
            self.add(at, f"must be one of {', '.join(str(c) for c in listed)}")
            return default
        return value

    def time(self, value: Any, at: str, *, required: bool = False, default: Any = None) -> Any:
        """An aware datetime, or an ISO 8601 string with an offset."""
        if self._absent(value, at, required, blank=True):
            return default
        if isinstance(value, str):
            try:
                value = parse_datetime(value)
            except ValueError:  # well formed but not a date (30 February)
                value = None
        if not isinstance(value, dt.datetime) or value.utcoffset() is None:
            self.add(at, "must be an ISO 8601 time with an offset")
            return default
        return value

    def date(self, value: Any, at: str, *, required: bool = False, default: Any = None) -> Any:
        """A date, or an ISO 8601 string such as 1990-04-30."""
        if self._absent(value, at, required, blank=True):
            return default
        if isinstance(value, str):
            try:
                value = parse_date(value)
            except ValueError:
                value = None
        if not isinstance(value, dt.date):
            self.add(at, "must be a date such as 1990-04-30")
            return default
        return value

    def mapping(self, value: Any, at: str, *, required: bool = False, default: Any = None) -> Any:
        """A JSON object (dict)."""
        if self._absent(value, at, required):
            return default
        if not isinstance(value, dict):
            self.add(at, "must be an object")
            return default
        return value

    def array(self, value: Any, at: str, *, required: bool = False, default: Any = None) -> Any:
        """A JSON array (list)."""
        if self._absent(value, at, required):
            return default
        if not isinstance(value, list):
            self.add(at, "must be a list")
            return default
        return value

    def texts(self, value: Any, at: str, *, required: bool = False, default: Any = None) -> Any:
        """A list of strings."""
        if self._absent(value, at, required):
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.add(at, "must be a list of texts")
            return default
        return value
