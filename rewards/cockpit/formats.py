"""Numbers, money and ledger words as a member reads them, in the active language.

`points` and `money` are common.l10n's (the members' emails write them too); the cockpit's filters take them
from here. The selectors answer the API's strings ("10.00", "15%"); they are
parsed back here, at the last moment, for the page.
"""

from babel.numbers import format_percent
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from common.l10n import babel_locale, decimal_or_none, money, points

__all__ = ["incentive", "ledger_kind", "money", "points"]

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


def incentive(value, currency: str) -> str:
    """What a code or promotion gives ("15%", "10.00", "free_shipping" from the selectors), for the page."""
    if value in (None, ""):
        return ""
    text = str(value)
    if text in INCENTIVE_LABELS:
        return str(INCENTIVE_LABELS[text])
    if text.endswith("%"):
        share = decimal_or_none(text[:-1])
        if share is not None and share.is_finite():
            return gettext("%(percent)s off") % {"percent": format_percent(share / 100, locale=babel_locale())}
        return text
    amount = decimal_or_none(text)
    if amount is not None and amount.is_finite():
        return gettext("%(amount)s off") % {"amount": money(amount, currency)}
    return text


def ledger_kind(kind: str) -> str:
    label = LEDGER_KIND_LABELS.get(kind)
    return str(label) if label is not None else kind
