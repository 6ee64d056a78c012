"""The redemption request checked at the service's edge: order, codes, points as payment (`common.validation`).

Every problem is one 400 `validation_error` with `{field path: message}`. A code entry's problem is reported
under `codes`, as the API always answered it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from campaigns import engine
from campaigns.codes import normalize
from common.validation import FieldErrors, path

ZERO = Decimal("0.00")
MAX_CODES_IN_REQUEST = 20
INVALID = ("validation_error", "The request is malformed.")


def parse_request(
    *, order: Any, codes: Any, points: Any, errors: FieldErrors | None = None
) -> tuple[dict[str, Any], list[engine.CodeRequest], int]:
    """The clean order, code requests and points; raises 400 `validation_error` with the problems of all three
    (and those already in `errors`, such as the redemption's order id)."""
    errors = FieldErrors() if errors is None else errors
    clean_order = _order(order, errors)
    requests = _codes(codes, errors)
    points = errors.whole(points, "points", default=0)
    errors.raise_if_any(*INVALID)
    return clean_order, requests, points


def _order(order: Any, errors: FieldErrors) -> dict[str, Any]:
    if errors.mapping(order, "order", required=True) is None:
        return {}
    clean_items = []
    for n, item in enumerate(errors.array(order.get("items") or [], "order.items", default=[])):
        at = path("order.items", n)
        if errors.mapping(item, at, required=True) is None:
            continue
        quantity = errors.whole(item.get("quantity", 1), path(at, "quantity"), minimum=1, required=True)
        price = errors.decimal(item.get("unit_price", "0"), path(at, "unit_price"), required=True)
        if quantity is not None and price is not None:
            clean_items.append(
                {
                    "sku": str(item.get("sku") or ""),
                    "category": str(item.get("category") or ""),
                    "quantity": quantity,
                    "unit_price": str(price),
                }
            )
    clean = dict(order, items=clean_items)
    if order.get("amount") is not None:
        clean["amount"] = str(errors.decimal(order["amount"], "order.amount", default=ZERO))
    elif not order.get("items"):
        errors.add("order.amount", "required when the order has no items")
    if order.get("shipping") is not None:
        clean["shipping"] = str(errors.decimal(order["shipping"], "order.shipping", default=ZERO))
    return clean


def _codes(codes: Any, errors: FieldErrors) -> list[engine.CodeRequest]:
    codes = errors.array(codes, "codes", default=[])
    if not errors.check(len(codes) <= MAX_CODES_IN_REQUEST, "codes", f"at most {MAX_CODES_IN_REQUEST} codes"):
        return []
    requests = []
    for index, entry in enumerate(codes):
        text, amount = entry, None
        if isinstance(entry, dict):
            text = entry.get("code")
            amount = errors.decimal(entry.get("amount"), "codes")
            if amount is not None and not errors.check(amount > 0, "codes", "a gift card amount must be positive"):
                amount = None
        if not errors.check(
            isinstance(text, str) and 0 < len(text.strip()) <= 60,
            "codes",
            "each code is a text of 1 to 60 characters, or an object with code and amount",
        ):
            continue
        requests.append(engine.CodeRequest(index=index, text=normalize(text), amount=amount))
    return requests
