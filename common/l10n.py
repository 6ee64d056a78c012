"""Numbers and money as a member reads them, in the active language (for the cockpit and members' emails).

Points are grouped the language's way ("1,234" in English, "1.234" in German and Turkish) without turning on
USE_THOUSAND_SEPARATOR for the whole site, where it would also group ids printed in the admin's templates and
attributes. Money goes through Babel's CLDR data, which knows where each language writes the currency
("€1,234.50", "1.234,50 €", "€1.234,50").
"""

from decimal import Decimal, InvalidOperation

from babel.numbers import format_currency
from django.utils import formats, translation


def babel_locale() -> str:
    """The active language as Babel names it ("de", "pt_BR")."""
    return translation.to_locale(translation.get_language() or "en")


def points(value) -> str:
    """An integer with the active language's thousands separator; anything else as it is."""
    if value is None or value == "":
        return ""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return str(value)
    return formats.number_format(number, use_l10n=True, force_grouping=True)


def decimal_or_none(value) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None


def money(value, currency: str) -> str:
    """An amount in the tenant's currency, written the active language's way."""
    amount = decimal_or_none(value) if value not in (None, "") else None
    if amount is None or not amount.is_finite():
        return "" if value is None else str(value)
    return format_currency(amount, currency or "EUR", locale=babel_locale())
