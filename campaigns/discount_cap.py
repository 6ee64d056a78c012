"""The junior marketer's discount cap: the largest percentage and amount found in an incentive, and the refusals.

Pure reading of the incentive document (`campaigns.incentives` config), no I/O beyond the tenant's two settings.
Percentages: `percent.value`, `bogo.get_percent` (100 when absent: a free item), `volume.tiers[].percent`;
amounts (tenant currency): `amount.value`, `percent.max_amount` is a ceiling, not a gift, so it is not counted,
`volume.tiers[].amount`, and a gift card campaign's amount.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.utils.translation import gettext as _

from common.money import money_str

HUNDRED = Decimal("100")


def _number(value) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def discount_peaks(discount) -> tuple[Decimal | None, Decimal | None]:
    """(largest percentage, largest fixed amount) the incentive gives; None where it gives none of that kind."""
    if not isinstance(discount, dict):
        return None, None
    percents: list[Decimal] = []
    amounts: list[Decimal] = []
    kind = discount.get("type")
    if kind == "percent":
        percents.append(_number(discount.get("value")))
    elif kind == "amount":
        amounts.append(_number(discount.get("value")))
    elif kind == "bogo":
        get_percent = _number(discount.get("get_percent"))
        percents.append(HUNDRED if get_percent is None else get_percent)
    elif kind == "volume":
        for tier in discount.get("tiers") or []:
            if isinstance(tier, dict):
                percents.append(_number(tier.get("percent")))
                amounts.append(_number(tier.get("amount")))
    percents = [p for p in percents if p is not None]
    amounts = [a for a in amounts if a is not None]
    return (max(percents) if percents else None), (max(amounts) if amounts else None)


def discount_cap_errors(*, tenant, discount, gift_card_amount=None) -> dict[str, str]:
    """`{field: message}` for what exceeds the tenant's junior cap (empty when within it)."""
    percent, amount = discount_peaks(discount)
    gift = _number(gift_card_amount)
    errors: dict[str, str] = {}
    max_percent = tenant.junior_max_discount_percent
    if percent is not None and percent > max_percent:
        errors["discount"] = _(
            "at most %(max)s %% for a junior marketer; a marketer allowed to launch campaigns may set more"
        ) % {"max": format(max_percent.normalize(), "f")}
    max_amount = tenant.junior_max_discount_amount
    for key, value in (("discount", amount), ("gift_card.amount", gift)):
        if value is None or value <= 0 or key in errors:
            continue
        if max_amount is None:
            errors[key] = _(
                "a junior marketer may not set an amount: no maximum is set for %(tenant)s (ask an admin)"
            ) % {"tenant": tenant.name}
        elif value > max_amount:
            errors[key] = _("at most %(max)s %(currency)s for a junior marketer") % {
                "max": money_str(max_amount),
                "currency": tenant.currency,
            }
    return errors
