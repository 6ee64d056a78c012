from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def quantize_money(value: Decimal | int | str) -> Decimal:
    """Two places, half-up: applied once, at the end of a computation."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def money_str(value: Decimal) -> str:
    return str(quantize_money(value))
