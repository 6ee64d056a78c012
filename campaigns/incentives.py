"""Incentives: pure strategy classes, registered by type, with no I/O.

Each strategy takes the incentive's configuration (the campaign's `discount` document of API.md) and
`evaluate(order, remaining)` returns a `Result`: the discount on this order (never more than
`remaining`, the amount still to pay when it applies), or why it does not apply.

Amounts are computed exactly with Decimal and rounded half-up to cents once, at the end of each
incentive.

Bounds (a configuration past them is refused when saved, so evaluating it can never overflow): money amounts
0 to `MAX_MONEY` (what the campaign's money columns hold) with at most 2 places; percentages 0 to 100 with at
most 4 places; quantities 1 to `MAX_QUANTITY`; at most `MAX_LIST` SKUs or categories (of at most 100
characters each) and `MAX_TIERS` volume tiers.

Percentages apply to the undiscounted amount of the items they target (they do not compound); the running total
caps each discount so the order never goes below zero.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal, InvalidOperation
from typing import Any, ClassVar

from common.money import CENT, quantize_money

ZERO = Decimal("0.00")
HUNDRED = Decimal("100")
MAX_MONEY = Decimal("9999999999.99")  # DecimalField(max_digits=12, decimal_places=2): codes' balances, gift cards
MAX_QUANTITY = 1_000_000
MAX_LIST = 1_000
MAX_TIERS = 50


class ConfigError(ValueError):
    """Invalid incentive configuration: `field` names the offending key."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class Item:
    sku: str
    category: str
    quantity: int
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class Order:
    amount: Decimal
    items: tuple[Item, ...] = ()
    shipping: Decimal = ZERO

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Order:
        items = tuple(
            Item(
                sku=str(i.get("sku") or ""),
                category=str(i.get("category") or ""),
                quantity=int(i.get("quantity") or 1),
                unit_price=Decimal(str(i.get("unit_price") if i.get("unit_price") is not None else "0")),
            )
            for i in data.get("items") or ()
        )
        if data.get("amount") is not None:
            amount = Decimal(str(data["amount"]))
        else:
            amount = sum((i.amount for i in items), ZERO)
        return cls(amount=amount, items=items, shipping=Decimal(str(data.get("shipping") or "0")))


@dataclass
class Result:
    applies: bool
    discount: Decimal = ZERO
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    free_shipping: bool = False
    free_items: list[dict[str, Any]] = field(default_factory=list)


def _dec(
    config: dict,
    key: str,
    *,
    required: bool = True,
    minimum: Decimal | None = ZERO,
    maximum: Decimal = MAX_MONEY,
    places: int = 2,
) -> Decimal | None:
    value = config.get(key)
    if value is None or value == "":
        if required:
            raise ConfigError(key, "This field is required.")
        return None
    try:
        number = Decimal(str(value)) if not isinstance(value, bool) else Decimal("NaN")
    except (InvalidOperation, ValueError) as exc:
        raise ConfigError(key, "A decimal number is required.") from exc
    if not number.is_finite() or (minimum is not None and number < minimum):
        raise ConfigError(key, f"Must be a number of at least {minimum}.")
    if number > maximum:
        raise ConfigError(key, f"Must be at most {maximum}.")
    if number.normalize().as_tuple().exponent < -places:
        raise ConfigError(key, f"Must have at most {places} decimal places.")
    return number


def _percent(config: dict, key: str, *, required: bool = True) -> Decimal | None:
    value = _dec(config, key, required=required, maximum=HUNDRED, places=4)
    return value


def _int(config: dict, key: str, *, required: bool = True, minimum: int = 1) -> int | None:
    value = config.get(key)
    if value is None or value == "":
        if required:
            raise ConfigError(key, "This field is required.")
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise ConfigError(key, "A whole number is required.")
    if len(str(value)) > 10 or int(value) > MAX_QUANTITY:
        raise ConfigError(key, f"Must be at most {MAX_QUANTITY}.")
    if int(value) < minimum:
        raise ConfigError(key, f"Must be at least {minimum}.")
    return int(value)


def _list(config: dict, key: str) -> tuple[str, ...]:
    value = config.get(key) or ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, "A list of strings is required.")
    if len(value) > MAX_LIST or any(len(v) > 100 for v in value):
        raise ConfigError(key, f"At most {MAX_LIST} entries of at most 100 characters.")
    return tuple(value)


def _cap(discount: Decimal, remaining: Decimal) -> Decimal:
    return max(ZERO, min(quantize_money(discount), quantize_money(remaining)))


class Incentive(ABC):
    type: ClassVar[str]
    stage: ClassVar[int] = 1  # order of application: 0 promotions (by campaign), 1 discounts, 2 payments

    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.clean()

    def clean(self) -> None:  # noqa: B027 (optional hook)
        """Parse and check the configuration; raises ConfigError."""

    @abstractmethod
    def evaluate(self, order: Order, remaining: Decimal) -> Result:
        """The discount on `order` when `remaining` is still to pay."""


REGISTRY: dict[str, type[Incentive]] = {}


def register(cls: type[Incentive]) -> type[Incentive]:
    REGISTRY[cls.type] = cls
    return cls


def incentive_for(config: dict[str, Any]) -> Incentive:
    if not isinstance(config, dict):
        raise ConfigError("type", "An object is required.")
    kind = config.get("type")
    if kind not in REGISTRY:
        raise ConfigError("type", f"Unknown type {kind!r}; one of: {', '.join(sorted(REGISTRY))}.")
    return REGISTRY[kind](config)


def _targets(config: dict, item: Item, skus: tuple[str, ...], categories: tuple[str, ...]) -> bool:
    if not skus and not categories:
        return True
    return item.sku in skus or item.category in categories


class _Targeted(Incentive):
    """Optional `skus`/`categories`: the discount applies to those items only (else to the order amount)."""

    def clean(self) -> None:
        self.skus = _list(self.config, "skus")
        self.categories = _list(self.config, "categories")

    def base(self, order: Order) -> Decimal:
        if not self.skus and not self.categories:
            return order.amount
        return sum((i.amount for i in order.items if _targets(self.config, i, self.skus, self.categories)), ZERO)


@register
class Percent(_Targeted):
    type = "percent"

    def clean(self) -> None:
        super().clean()
        self.value = _percent(self.config, "value")
        self.max_amount = _dec(self.config, "max_amount", required=False)

    def evaluate(self, order: Order, remaining: Decimal) -> Result:
        discount = quantize_money(self.base(order) * self.value / HUNDRED)
        if self.max_amount is not None:
            discount = min(discount, self.max_amount)
        return Result(True, _cap(discount, remaining))


@register
class Amount(_Targeted):
    type = "amount"

    def clean(self) -> None:
        super().clean()
        self.value = _dec(self.config, "value")

    def evaluate(self, order: Order, remaining: Decimal) -> Result:
        return Result(True, _cap(min(self.value, self.base(order)), remaining))


@register
class FreeShipping(Incentive):
    type = "free_shipping"

    def clean(self) -> None:
        self.min_order_amount = _dec(self.config, "min_order_amount", required=False) or ZERO

    def evaluate(self, order: Order, remaining: Decimal) -> Result:
        if order.amount < self.min_order_amount:
            return Result(False, reason="rule_not_met", details={"rule": f"order.amount >= {self.min_order_amount}"})
        return Result(True, _cap(order.shipping, remaining), free_shipping=True)


@register
class Unit(Incentive):
    """A free item or sample: discounts it when it is in the order, otherwise asks for it to be added."""

    type = "unit"

    def clean(self) -> None:
        self.sku = self.config.get("sku")
        if not self.sku or not isinstance(self.sku, str):
            raise ConfigError("sku", "This field is required.")
        self.quantity = _int(self.config, "quantity", required=False) or 1

    def evaluate(self, order: Order, remaining: Decimal) -> Result:
        left = self.quantity
        discount = ZERO
        for item in sorted((i for i in order.items if i.sku == self.sku), key=lambda i: i.unit_price):
            take = min(left, item.quantity)
            discount += item.unit_price * take
            left -= take
            if not left:
                break
        free = [{"sku": self.sku, "quantity": left}] if left else []
        return Result(True, _cap(discount, remaining), free_items=free)


def _units(order: Order, skus: tuple[str, ...], categories: tuple[str, ...]) -> list[Decimal]:
    prices: list[Decimal] = []
    for item in order.items:
        if item.sku in skus or item.category in categories:
            prices.extend([item.unit_price] * item.quantity)
    return prices


@register
class Bogo(Incentive):
    """Buy X get Y free (or at N % off), by SKU or category.

    When the reward items are the bought ones (no `get_sku`/`get_category`), every complete group of
    X+Y units gives its Y cheapest units the discount. Otherwise each X bought units give Y of the
    reward items (the cheapest first).
    """

    type = "bogo"

    def clean(self) -> None:
        c = self.config
        self.buy = (tuple(filter(None, [c.get("buy_sku")])), tuple(filter(None, [c.get("buy_category")])))
        if not any(self.buy):
            raise ConfigError("buy_sku", "buy_sku or buy_category is required.")
        self.get = (tuple(filter(None, [c.get("get_sku")])), tuple(filter(None, [c.get("get_category")])))
        self.buy_quantity = _int(c, "buy_quantity")
        self.get_quantity = _int(c, "get_quantity")
        self.get_percent = _percent(c, "get_percent", required=False)
        if self.get_percent is None:
            self.get_percent = HUNDRED
        for key in ("buy_sku", "buy_category", "get_sku", "get_category"):
            if c.get(key) is not None and (not isinstance(c[key], str) or len(c[key]) > 100):
                raise ConfigError(key, "A text of at most 100 characters is required.")

    def evaluate(self, order: Order, remaining: Decimal) -> Result:
        bought = _units(order, *self.buy)
        if not any(self.get):
            groups = len(bought) // (self.buy_quantity + self.get_quantity)
            rewarded = sorted(bought)[: groups * self.get_quantity]
        else:
            groups = len(bought) // self.buy_quantity
            rewarded = sorted(_units(order, *self.get))[: groups * self.get_quantity]
        if not groups:
            return Result(
                False,
                reason="rule_not_met",
                details={"rule": f"buy {self.buy_quantity + (0 if any(self.get) else self.get_quantity)} items"},
            )
        discount = sum(rewarded, ZERO) * self.get_percent / HUNDRED
        return Result(True, _cap(discount, remaining))


@register
class Volume(_Targeted):
    """Tiers of thresholds: the highest tier reached applies (`min_amount` or `min_quantity`)."""

    type = "volume"

    def clean(self) -> None:
        super().clean()
        tiers = self.config.get("tiers")
        if not isinstance(tiers, list) or not tiers:
            raise ConfigError("tiers", "A non-empty list of tiers is required.")
        if len(tiers) > MAX_TIERS:
            raise ConfigError("tiers", f"At most {MAX_TIERS} tiers.")
        self.tiers = []
        for tier in tiers:
            if not isinstance(tier, dict):
                raise ConfigError("tiers", "Each tier is an object.")
            min_amount = _dec(tier, "min_amount", required=False)
            min_quantity = _int(tier, "min_quantity", required=False)
            if (min_amount is None) == (min_quantity is None):
                raise ConfigError("tiers", "Each tier needs exactly one of min_amount or min_quantity.")
            try:
                percent = _percent(tier, "percent", required=False)
            except ConfigError as exc:
                raise ConfigError("tiers", f"percent: {exc.message}") from exc
            amount = _dec(tier, "amount", required=False)
            if (percent is None) == (amount is None):
                raise ConfigError("tiers", "Each tier needs exactly one of percent or amount.")
            self.tiers.append((min_amount, min_quantity, percent, amount))

    def evaluate(self, order: Order, remaining: Decimal) -> Result:
        base = self.base(order)
        if not self.skus and not self.categories:
            quantity = sum(i.quantity for i in order.items)
        else:
            quantity = sum(i.quantity for i in order.items if _targets(self.config, i, self.skus, self.categories))
        best = None
        for min_amount, min_quantity, percent, amount in self.tiers:
            reached = (min_amount is not None and base >= min_amount) or (
                min_quantity is not None and quantity >= min_quantity
            )
            if reached:
                value = quantize_money(base * percent / HUNDRED) if percent is not None else min(amount, base)
                best = value if best is None else max(best, value)
        if best is None:
            return Result(False, reason="rule_not_met", details={"rule": "volume threshold not reached"})
        return Result(True, _cap(best, remaining))


@dataclass(frozen=True)
class GiftCardDebit:
    """Payment by gift card: `requested` (or what is left to pay), never more than the balance."""

    balance: Decimal
    requested: Decimal | None = None

    def evaluate(self, remaining: Decimal) -> Result:
        remaining = max(ZERO, quantize_money(remaining))
        if self.requested is not None:
            if self.requested > self.balance:
                return Result(
                    False,
                    reason="gift_card_insufficient_balance",
                    details={"balance": str(self.balance), "requested": str(self.requested)},
                )
            return Result(True, min(quantize_money(self.requested), remaining))
        if self.balance <= ZERO:
            return Result(False, reason="gift_card_insufficient_balance", details={"balance": str(self.balance)})
        return Result(True, min(quantize_money(self.balance), remaining))


@dataclass(frozen=True)
class PointsPayment:
    """Points as payment at the program's rate: `points_per` points pay `amount_per` of money.

    Only whole cents are paid and never more than what is left to pay; the points used are those
    needed for that value (rounded up to a whole point, never more than requested).
    """

    balance: int
    requested: int
    points_per: int = 100
    amount_per: Decimal = Decimal("1.00")

    def evaluate(self, remaining: Decimal) -> tuple[Result, int]:
        if self.requested <= 0:
            return Result(True, ZERO), 0
        if self.requested > self.balance:
            return Result(
                False, reason="points_insufficient", details={"balance": self.balance, "requested": self.requested}
            ), 0
        remaining = max(ZERO, quantize_money(remaining))
        value = (Decimal(self.requested) * self.amount_per / self.points_per).quantize(CENT, rounding=ROUND_DOWN)
        value = min(value, remaining)
        used = int((value * self.points_per / self.amount_per).to_integral_value(rounding=ROUND_CEILING))
        return Result(True, value), min(used, self.requested)
