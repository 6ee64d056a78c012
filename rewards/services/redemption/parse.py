"""The redemption request checked at the service's edge: order, codes, points as payment."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from campaigns import engine
from campaigns.codes import normalize
from common.errors import ApplicationError

ZERO = Decimal("0.00")


MAX_CODES_IN_REQUEST = 20


def field_error(field: str, msg: str):
    return ApplicationError("validation_error", "The request is malformed.", {field: [msg]}, status=400)


def _money(value, field: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise field_error(field, "A decimal amount is required.") from exc
    if not number.is_finite() or number < 0:
        raise field_error(field, "A non-negative amount is required.")
    return number


def parse_order(order: Any) -> dict[str, Any]:
    if not isinstance(order, dict):
        raise field_error("order", "An object is required.")
    items = order.get("items") or []
    if not isinstance(items, list):
        raise field_error("order.items", "A list is required.")
    clean_items = []
    for item in items:
        if not isinstance(item, dict):
            raise field_error("order.items", "Each item is an object.")
        quantity = item.get("quantity", 1)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise field_error("order.items", "quantity is a positive whole number.")
        clean_items.append(
            {
                "sku": str(item.get("sku") or ""),
                "category": str(item.get("category") or ""),
                "quantity": quantity,
                "unit_price": str(_money(item.get("unit_price", "0"), "order.items")),
            }
        )
    clean = dict(order)
    clean["items"] = clean_items
    if order.get("amount") is not None:
        clean["amount"] = str(_money(order["amount"], "order.amount"))
    elif not clean_items:
        raise field_error("order.amount", "An amount or items are required.")
    if order.get("shipping") is not None:
        clean["shipping"] = str(_money(order["shipping"], "order.shipping"))
    return clean


def parse_codes(codes: Any) -> list[engine.CodeRequest]:
    if codes is None:
        return []
    if not isinstance(codes, list):
        raise field_error("codes", "A list is required.")
    if len(codes) > MAX_CODES_IN_REQUEST:
        raise field_error("codes", f"At most {MAX_CODES_IN_REQUEST} codes.")
    requests = []
    for index, entry in enumerate(codes):
        amount = None
        if isinstance(entry, dict):
            text, raw_amount = entry.get("code"), entry.get("amount")
            if raw_amount is not None:
                amount = _money(raw_amount, "codes")
                if amount <= 0:
                    raise field_error("codes", "A gift card amount must be positive.")
        else:
            text = entry
        if not isinstance(text, str) or not text.strip() or len(text) > 60:
            raise field_error("codes", "Each code is a string (or an object with code and amount).")
        requests.append(engine.CodeRequest(index=index, text=normalize(text), amount=amount))
    return requests


def parse_points(points: Any) -> int:
    if points in (None, ""):
        return 0
    if isinstance(points, bool) or not isinstance(points, int) or points < 0:
        raise field_error("points", "A non-negative whole number is required.")
    return points
