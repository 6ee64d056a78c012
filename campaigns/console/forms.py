"""The campaign form's incentive, active hours and stacking as plain fields a marketer can fill.

The form builds the same documents the API takes (`discount`, `referral` config, `active_hours`,
`combinable_with`) and `services.campaign_check` stays the one judge of them: these fields only parse the
input (numbers, times, lists), never re-implement the campaign's rules. Which fields belong to which campaign
and discount type is `INCENTIVE_FIELDS` (the page's script shows only those).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from campaigns.models import CampaignType

DISCOUNT_TYPES = [
    ("percent", _("Percent off")),
    ("amount", _("Amount off")),
    ("free_shipping", _("Free shipping")),
    ("unit", _("Free item")),
    ("bogo", _("Buy X get Y")),
    ("volume", _("Volume tiers")),
]
TARGETS = ("discount_skus", "discount_categories")
BOGO = (
    "discount_buy_sku",
    "discount_buy_category",
    "discount_buy_quantity",
    "discount_get_sku",
    "discount_get_category",
    "discount_get_quantity",
    "discount_get_percent",
)
# discount type -> its form fields (besides `discount_type`).
DISCOUNT_FIELDS: dict[str, tuple[str, ...]] = {
    "percent": ("discount_value", "discount_max_amount", *TARGETS),
    "amount": ("discount_value", *TARGETS),
    "free_shipping": ("discount_min_order_amount",),
    "unit": ("discount_sku", "discount_quantity"),
    "bogo": BOGO,
    "volume": ("discount_tiers", *TARGETS),
}
REFERRAL_FIELDS = ("referral_points", "referral_min_order_amount", "referral_reward_campaign")
WITH_DISCOUNT = (CampaignType.DISCOUNT, CampaignType.PROMOTION, CampaignType.LOYALTY_REWARD)
# campaign type -> its incentive fields; for the types with a discount, `DISCOUNT_FIELDS` by discount type.
INCENTIVE_FIELDS: dict[str, tuple[str, ...]] = {
    **{kind: ("discount_type",) for kind in WITH_DISCOUNT},
    CampaignType.GIFT_CARD: ("gift_card_amount",),
    CampaignType.REFERRAL: REFERRAL_FIELDS,
}
ALL_DISCOUNT_FIELDS = sorted({name for names in DISCOUNT_FIELDS.values() for name in names})

# The limit and stacking columns have no help text of their own: the form's (Meta.help_texts of the admin form).
LIMIT_HELP = {
    "redemptions_total": _("Redemptions of all codes together; empty: unlimited."),
    "redemptions_per_member": _("Redemptions by one member over the campaign's life; empty: unlimited."),
    "redemptions_per_member_period": _("Redemptions by one member per period (with the period below)."),
    "member_period": _("The period of the limit above: a day, week or month in the tenant's time zone."),
    "redemptions_per_day": _("Redemptions of the campaign per day (tenant's time zone); empty: unlimited."),
    "redemptions_per_week": _("Redemptions of the campaign per week (from Monday); empty: unlimited."),
    "redemptions_per_month": _("Redemptions of the campaign per calendar month; empty: unlimited."),
    "discount_total": _("The discount budget: the campaign stops when its discounts reach it; empty: no budget."),
    "order_value_total": _("The order value the campaign may discount in total; empty: unlimited."),
    "stacking_category": _("Its category for stacking rules (default: its type)."),
    "exclusive": _("Alone on an order: no other code or promotion with it."),
    "max_codes_per_order": _("At most this many codes on an order that uses one of this campaign; empty: the default."),
}

HOUR_SLOTS = 4  # windows of active hours the form offers; a campaign with more keeps them (edited through the API)
HOUR_FIELDS = [
    name for i in range(1, HOUR_SLOTS + 1) for name in (f"hours_{i}_days", f"hours_{i}_from", f"hours_{i}_to")
]
WEEKDAYS = [
    (0, _("Mon")),
    (1, _("Tue")),
    (2, _("Wed")),
    (3, _("Thu")),
    (4, _("Fri")),
    (5, _("Sat")),
    (6, _("Sun")),
]

# Numbers are only parsed here; their bounds are the service's (`campaign_check`), the one judge of a campaign.
_MONEY = {"required": False}


def _words(value: str) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _text(value) -> str:
    return "" if value is None else str(value)


def parse_tiers(text: str) -> list[dict[str, Any]]:
    """One tier a line, `amount 100: 10%` or `quantity 3: 5.00`; raises ValidationError naming the line."""
    tiers = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        head, colon, value = line.partition(":")
        parts = head.split()
        if not colon or len(parts) != 2 or parts[0] not in ("amount", "quantity") or not value.strip():
            raise forms.ValidationError(
                _("Line %(n)d: write 'amount 100: 10%%' or 'quantity 3: 5.00'.") % {"n": number}
            )
        threshold, value = parts[1], value.strip()
        tier: dict[str, Any] = {"min_amount": threshold} if parts[0] == "amount" else {"min_quantity": threshold}
        if value.endswith("%"):
            tier["percent"] = value[:-1].strip()
        else:
            tier["amount"] = value
        tiers.append(tier)
    return tiers


def format_tiers(tiers) -> str:
    lines = []
    for tier in tiers or []:
        if not isinstance(tier, dict):
            continue
        head = (
            f"amount {tier['min_amount']}"
            if tier.get("min_amount") is not None
            else f"quantity {tier.get('min_quantity')}"
        )
        value = f"{tier['percent']}%" if tier.get("percent") is not None else _text(tier.get("amount"))
        lines.append(f"{head}: {value}")
    return "\n".join(lines)


class IncentiveFieldsMixin(forms.Form):
    """Plain fields for the JSON settings of a campaign (see the module docstring); mixed into the admin form."""

    discount_type = forms.ChoiceField(
        label=_("Discount type"),
        choices=[("", "---------"), *DISCOUNT_TYPES],
        required=False,
        help_text=_("What the code gives. Only the fields of the chosen type are shown."),
    )
    discount_value = forms.DecimalField(
        label=_("Value"),
        required=False,
        help_text=_("Percent off (0 to 100, e.g. 15) or the amount off (e.g. 10.00)."),
    )
    discount_max_amount = forms.DecimalField(
        label=_("At most"), help_text=_("The largest discount a percent gives on one order (empty: no cap)."), **_MONEY
    )
    discount_skus = forms.CharField(
        label=_("Only these SKUs"), required=False, help_text=_("Comma separated; empty: the whole order.")
    )
    discount_categories = forms.CharField(
        label=_("Only these categories"), required=False, help_text=_("Comma separated; empty: the whole order.")
    )
    discount_min_order_amount = forms.DecimalField(
        label=_("Minimum order"), help_text=_("Free shipping from this order amount."), **_MONEY
    )
    discount_sku = forms.CharField(label=_("Free item SKU"), required=False, max_length=100)
    discount_quantity = forms.IntegerField(label=_("Free quantity"), required=False)
    discount_buy_sku = forms.CharField(label=_("Buy SKU"), required=False, max_length=100)
    discount_buy_category = forms.CharField(
        label=_("or buy category"), required=False, max_length=100, help_text=_("One of the two is needed.")
    )
    discount_buy_quantity = forms.IntegerField(label=_("Buy quantity"), required=False)
    discount_get_sku = forms.CharField(
        label=_("Get SKU"), required=False, max_length=100, help_text=_("Empty: the bought items themselves.")
    )
    discount_get_category = forms.CharField(label=_("or get category"), required=False, max_length=100)
    discount_get_quantity = forms.IntegerField(label=_("Get quantity"), required=False)
    discount_get_percent = forms.DecimalField(
        label=_("Get at percent off"),
        required=False,
        help_text=_("Empty: free (100 %)."),
    )
    discount_tiers = forms.CharField(
        label=_("Tiers"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 40}),
        help_text=_("One a line: 'amount 100: 10%' (orders from 100 get 10 %) or 'quantity 3: 5.00'."),
    )
    referral_points = forms.IntegerField(
        label=_("Referrer's points"), required=False, min_value=1, help_text=_("Points or a reward campaign.")
    )
    referral_min_order_amount = forms.DecimalField(label=_("Referred member's minimum first order"), **_MONEY)
    referral_reward_campaign = forms.IntegerField(
        label=_("Reward campaign id"),
        required=False,
        min_value=1,
        help_text=_("A campaign whose code the referrer gets."),
    )
    combinable_with = forms.CharField(
        label=_("Combinable with"),
        required=False,
        help_text=_("Stacking categories (comma separated) it may share an order with; empty: any (unless exclusive)."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        instance = getattr(self, "instance", None)
        self.keeps_hours = bool(instance is not None and len(instance.active_hours or []) > HOUR_SLOTS)
        if instance is not None and instance.pk and not self.is_bound:
            self._initial_from(instance)
        if self.keeps_hours:
            for name in HOUR_FIELDS:
                self.fields[name].disabled = True
                self.fields[name].help_text = _("More windows than the form shows: change them through the API.")

    def _initial_from(self, instance) -> None:
        discount = instance.discount or {}
        initial = {"discount_type": discount.get("type", "")}
        for key, value in discount.items():
            if key in ("skus", "categories"):
                initial[f"discount_{key}"] = ", ".join(value or [])
            elif key == "tiers":
                initial["discount_tiers"] = format_tiers(value)
            elif f"discount_{key}" in self.fields:
                initial[f"discount_{key}"] = value
        if instance.type == CampaignType.REFERRAL:
            config = instance.config or {}
            initial["referral_points"] = config.get("points")
            initial["referral_min_order_amount"] = config.get("min_order_amount")
            initial["referral_reward_campaign"] = config.get("reward_campaign")
        for i, window in enumerate((instance.active_hours or [])[:HOUR_SLOTS], start=1):
            initial[f"hours_{i}_days"] = window.get("weekdays", [])
            initial[f"hours_{i}_from"] = window.get("from")
            initial[f"hours_{i}_to"] = window.get("to")
        initial["combinable_with"] = ", ".join(instance.combinable_with or [])
        for key, value in initial.items():
            self.initial.setdefault(key, value)

    # --- the documents ------------------------------------------------------------------------------

    def _discount(self, data) -> dict[str, Any] | None:
        kind = data.get("discount_type")
        if not kind:
            return None
        doc: dict[str, Any] = {"type": kind}
        for name in DISCOUNT_FIELDS[kind]:
            value = data.get(name)
            key = name.removeprefix("discount_")
            if name in TARGETS:
                if _words(value):
                    doc[key] = _words(value)
            elif name == "discount_tiers":
                try:
                    doc["tiers"] = parse_tiers(value)
                except forms.ValidationError as exc:
                    self.add_error("discount_tiers", exc)
            elif value not in (None, ""):
                doc[key] = str(value) if isinstance(value, Decimal) else value
        return doc

    def _referral(self, data) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if data.get("referral_points") is not None:
            doc["points"] = data["referral_points"]
        if data.get("referral_min_order_amount") is not None:
            doc["min_order_amount"] = str(data["referral_min_order_amount"])
        if data.get("referral_reward_campaign") is not None:
            doc["reward_campaign"] = str(data["referral_reward_campaign"])
        return doc

    def _active_hours(self, data) -> list[dict[str, Any]]:
        if self.keeps_hours:
            return list(self.instance.active_hours)
        windows = []
        for i in range(1, HOUR_SLOTS + 1):
            days = data.get(f"hours_{i}_days")
            start, end = (data.get(f"hours_{i}_from") or "").strip(), (data.get(f"hours_{i}_to") or "").strip()
            if not days and not start and not end:
                continue
            if not days or not start or not end:
                self.add_error(f"hours_{i}_days", _("A window needs its days, a start and an end."))
                continue
            windows.append({"weekdays": sorted(days), "from": start, "to": end})
        return windows

    def incentive_documents(self, kind: str) -> dict[str, Any]:
        """The model values these fields stand for, for a campaign of `kind`."""
        data = self.cleaned_data
        values: dict[str, Any] = {
            "active_hours": self._active_hours(data),
            "combinable_with": _words(data.get("combinable_with")) or None,
        }
        if kind in WITH_DISCOUNT:
            values["discount"] = self._discount(data) or {}
        if kind == CampaignType.REFERRAL:
            values["config"] = self._referral(data)
        return values


def _hour_fields() -> dict[str, forms.Field]:
    fields: dict[str, forms.Field] = {}
    for i in range(1, HOUR_SLOTS + 1):
        fields[f"hours_{i}_days"] = forms.TypedMultipleChoiceField(
            label=_("Window %(n)d: days") % {"n": i},
            choices=WEEKDAYS,
            coerce=int,
            required=False,
            widget=forms.CheckboxSelectMultiple,
        )
        fields[f"hours_{i}_from"] = forms.CharField(label=_("from"), required=False, max_length=5, help_text="09:00")
        fields[f"hours_{i}_to"] = forms.CharField(
            label=_("to"), required=False, max_length=5, help_text=_("17:00 (24:00: midnight)")
        )
    return fields


# Declared on the class (not added in __init__) so that the admin's fieldsets may name them.
IncentiveFieldsMixin.declared_fields.update(_hour_fields())
IncentiveFieldsMixin.base_fields.update(_hour_fields())
