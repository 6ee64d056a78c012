"""Numbers, money and ledger words as a member reads them, in the active language.

Points are grouped the language's way ("1,234" in English, "1.234" in German and Turkish) without turning on
USE_THOUSAND_SEPARATOR for the whole site, where it would also group ids printed in the admin's templates and
attributes. Money goes through Babel's CLDR data, which knows where each language writes the currency
("€1,234.50", "1.234,50 €", "€1.234,50"). The selectors answer the API's strings ("10.00", "15%"); they are
parsed back here, at the last moment, for the page.
"""

from decimal import Decimal, InvalidOperation

from babel.numbers import format_currency, format_percent
from django.utils import formats, translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

# The member's words for the ledger's kinds (the staff's "Earn", "Reverse"... are the model's).
LEDGER_KIND_LABELS = {
    "earn": _("Earned"),
    "redeem": _("Spent"),
    "expire": _("Expired"),
    "adjust": _("Corrected"),
    "reverse": _("Taken back"),
    "transfer": _("Transferred"),
}
INCENTIVE_LABELS = {
    "free_shipping": _("Free shipping"),
}


def _babel_locale() -> str:
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


def _decimal(value) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None


def money(value, currency: str) -> str:
    """An amount in the tenant's currency, written the active language's way."""
    amount = _decimal(value) if value not in (None, "") else None
    if amount is None or not amount.is_finite():
        return "" if value is None else str(value)
    return format_currency(amount, currency or "EUR", locale=_babel_locale())


def incentive(value, currency: str) -> str:
    """What a code or promotion gives ("15%", "10.00", "free_shipping" from the selectors), for the page."""
    if value in (None, ""):
        return ""
    text = str(value)
    if text in INCENTIVE_LABELS:
        return str(INCENTIVE_LABELS[text])
    if text.endswith("%"):
        share = _decimal(text[:-1])
        if share is not None and share.is_finite():
            return gettext("%(percent)s off") % {"percent": format_percent(share / 100, locale=_babel_locale())}
        return text
    amount = _decimal(text)
    if amount is not None and amount.is_finite():
        return gettext("%(amount)s off") % {"amount": money(amount, currency)}
    return text


def ledger_kind(kind: str) -> str:
    label = LEDGER_KIND_LABELS.get(kind)
    return str(label) if label is not None else kind
