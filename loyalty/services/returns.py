"""Returns: the points of the returned part of an order are taken back, pro rata of the money returned."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Sum

from common.answer import Answer
from common.errors import ApplicationError, NotFound
from common.money import money_str, quantize_money
from common.validation import FieldErrors, path
from loyalty import earning, ledger
from loyalty.ledger.selectors import entry_dict
from loyalty.lock_objects import account_lock
from loyalty.models import (
    Account,
    Order,
    OrderItem,
    OrderReturn,
)
from loyalty.services.earning import MAX_AMOUNT
from members.models import Tenant


@dataclass
class ReturnResult:
    order_id: str
    return_id: str
    amount: str
    points_reversed: int
    points_cancelled: int
    debt_points: int
    entries: list[dict]
    created: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "return_id": self.return_id,
            "amount": self.amount,
            "points_reversed": self.points_reversed,
            "points_cancelled": self.points_cancelled,
            "debt_points": self.debt_points,
            "entries": self.entries,
        }


def _return_result(row: OrderReturn, order_id: str, created: bool) -> ReturnResult:
    return ReturnResult(
        order_id=order_id,
        return_id=row.return_id,
        amount=money_str(row.amount),
        points_reversed=row.points_reversed,
        points_cancelled=row.points_cancelled,
        debt_points=row.debt_points,
        entries=row.result.get("entries", []),
        created=created,
    )


def order_return(
    *,
    tenant: Tenant,
    order_id: str,
    amount: Decimal | str | None = None,
    items: list[dict] | None = None,
    return_id: str | None = None,
    answer: Answer | None = None,
) -> ReturnResult:
    """Reverse the points earned on the returned part of an order, proportionally to the money returned.

        The points to take back are computed cumulatively (all returns so far x points granted, half-up) so that
        several partial returns never drift from one full return. Pending points are cancelled first; points
        already spent become a debt paid by the next earnings, while points of the order that already expired are
    not charged again (see `loyalty.ledger.posting`). Idempotent per
        `return_id`. Returns do not give cap allowance back, and tiers move down only at the scheduled evaluation.
    `answer(result)`, when given, is called inside the transaction just before its commit (the API stores its
    idempotent answer there: a return without `return_id` is then applied once even across a crash).
    """
    errors = FieldErrors()
    errors.check((amount is None) != (not items), "amount", "give either an amount or items")
    if amount is not None:
        amount = quantize_money(
            errors.decimal(amount, "amount", minimum="0.01", maximum=MAX_AMOUNT, required=True, default=Decimal("0"))
        )
    items = errors.array(items, "items")
    return_id = errors.text(return_id, "return_id", max_length=100, default=None)
    errors.raise_if_any("invalid_return", "The return is not valid.")
    order = Order.objects.for_tenant(tenant).filter(order_id=order_id).first()
    if order is None:
        raise NotFound("order_not_found", "No such order.", {"order_id": order_id})
    account = None
    if order.program_id:
        account = Account.objects.filter(member_id=order.member_id, program_id=order.program_id).first()
    with transaction.atomic(durable=True):
        if account is not None:
            account = account_lock(account.pk)
        order = Order.objects.select_for_update().get(pk=order.pk)
        if return_id:
            previous = OrderReturn.objects.filter(order=order, return_id=return_id).first()
            if previous:
                return _return_result(previous, order_id, created=False)
        returned_items = []
        if items:
            by_sku = {i.sku: i for i in order.items.select_for_update()}
            total = Decimal("0")
            for n, item in enumerate(items):
                at = path("items", n)
                if errors.mapping(item, at, required=True) is None:
                    continue
                sku = errors.text(item.get("sku"), path(at, "sku"), max_length=100, required=True, default=None)
                quantity = errors.whole(item.get("quantity", 1), path(at, "quantity"), minimum=1, required=True)
                line = by_sku.get(sku) if sku is not None else None
                if sku is not None and line is None:
                    errors.add(path(at, "sku"), "not an item of this order")
                if line is None or quantity is None:
                    continue
                left = line.quantity - line.returned_quantity
                if errors.check(quantity <= left, path(at, "quantity"), f"at most {left} left"):
                    line.returned_quantity += quantity
                    total += line.unit_price * quantity
                    returned_items.append({"sku": line.sku, "quantity": quantity})
            errors.raise_if_any("invalid_return", "The return is not valid.")
            OrderItem.objects.bulk_update(by_sku.values(), ["returned_quantity"])
            amount = quantize_money(total)
        if order.returned_amount + amount > order.amount:
            raise ApplicationError(
                "return_exceeds_order",
                "More would be returned than was paid.",
                {"amount": money_str(amount), "returnable": money_str(order.amount - order.returned_amount)},
            )
        returned = order.returned_amount + amount
        target = earning.proportional_points(order.points_total, returned, order.amount)
        take = max(0, target - order.points_taken_back)
        taken = ledger.TakeBack()
        if take and account is not None:
            forgiven_before = order.returns.aggregate(s=Sum("points_forgiven"))["s"] or 0
            taken = ledger.post_take_back(
                account=account,
                order_id=order.order_id,
                points=take,
                reason=f"return of order {order.order_id}",
                forgiven_before=forgiven_before,
            )
        order.returned_amount = returned
        order.points_taken_back += take
        order.save(update_fields=["returned_amount", "points_taken_back"])
        row = OrderReturn.objects.create(
            tenant=tenant,
            order=order,
            return_id=return_id or "",
            amount=amount,
            items=returned_items,
            points_cancelled=taken.cancelled,
            points_reversed=taken.reversed,
            debt_points=taken.debt,
            points_forgiven=taken.forgiven,
            result={"entries": [entry_dict(taken.entry)] if taken.entry else []},
        )
        result = _return_result(row, order_id, created=True)
        if answer is not None:
            answer(result)
        return result
