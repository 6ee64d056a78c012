"""Output pieces shared by several endpoints (ledger entries, tiers, order items); the input base."""

import copy
import datetime as dt
import re

from django.http import QueryDict
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class JsonTypesMixin:
    """JSON types as the schema states them: a text field takes a string, an integer field an integer, a
    boolean field a boolean (DRF alone would take `42` for a text, `"42"` for an integer, `"yes"` for a
    boolean). Query strings (all text) are read as DRF reads them."""

    def to_internal_value(self, data):
        if isinstance(data, dict) and not isinstance(data, QueryDict):
            errors = {}
            for field in self.fields.values():
                message = _json_type_error(field, data.get(field.field_name))
                if message:
                    errors[field.field_name] = [message]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class InputSerializer(JsonTypesMixin, serializers.Serializer):
    """A request body's serializer: JSON types checked (`JsonTypesMixin`), fields cheap to set up.

    DRF deep-copies every declared field per serializer instance (re-running each field's `__init__`
    through `copy.deepcopy`): about 1 ms of CPU for the redemption body, a tenth of the whole request.
    A field keeps no state while it validates, so each request gets a plain copy of the declared field to
    bind; what points back at a parent (a list's child, a nested serializer's fields) is copied anew.
    """

    def get_fields(self):
        return {name: _field_copy(field) for name, field in self._declared_fields.items()}


def _json_type_error(field: serializers.Field, value) -> str | None:
    if value is None:
        return None
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else str(_("Must be a JSON boolean."))
    if isinstance(field, serializers.IntegerField):
        return None if isinstance(value, int) and not isinstance(value, bool) else str(_("Must be a JSON integer."))
    text_fields = (
        serializers.CharField,
        serializers.ChoiceField,
        serializers.DecimalField,
        serializers.DateTimeField,
        serializers.DateField,
    )
    if isinstance(field, text_fields):
        return None if isinstance(value, str) else str(_("Must be a JSON string."))
    return None


def _field_copy(field: serializers.Field) -> serializers.Field:
    if isinstance(field, serializers.BaseSerializer):
        # A new instance as DRF's __deepcopy__ makes it, minus deep-copying the arguments (a list
        # serializer's child is copied here: its __init__ binds the child to the list).
        kwargs = dict(field._kwargs)
        if "child" in kwargs:
            kwargs["child"] = _field_copy(kwargs["child"])
        return field.__class__(*field._args, **kwargs)
    if hasattr(field, "child_relation"):
        return copy.deepcopy(field)
    clone = object.__new__(field.__class__)
    clone.__dict__.update(field.__dict__)
    if getattr(field, "child", None) is not None:  # ListField, DictField: a child of its own
        clone.child = _field_copy(field.child)
        clone.child.parent = clone  # the rest of its binding (name and source "") was copied
    return clone


# Every time the API takes is in the years 1970 to 2999 as written (whatever its offset), every date in 1900
# to 2999: far enough from the ends of Python's datetime (years 1 and 9999) that the server can add expiry
# periods and windows to it, or take it to any time zone, without overflowing. The schema says the same
# with a pattern on the year, so what it calls valid is exactly what is accepted.
TIME_YEARS = re.compile(r"^(19[7-9][0-9]|2[0-9]{3})-")
DATE_YEARS = re.compile(r"^(19[0-9]{2}|2[0-9]{3})-")


def _year_in(pattern: re.Pattern, value) -> bool:
    if isinstance(value, str):
        return pattern.match(value) is not None
    return isinstance(value, dt.date) and pattern.match(f"{value.year:04d}-") is not None


@extend_schema_field({"type": "string", "format": "date-time", "pattern": TIME_YEARS.pattern})
class TimeField(serializers.DateTimeField):
    """An ISO 8601 time of the years 1970 to 2999; outside them, 400 `validation_error`."""

    default_error_messages = {"out_of_range": _("Times must be in the years 1970 to 2999.")}

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", _("ISO 8601 with offset, in the years 1970 to 2999."))
        super().__init__(**kwargs)

    def to_internal_value(self, value):
        parsed = super().to_internal_value(value)
        if not _year_in(TIME_YEARS, value):
            self.fail("out_of_range")
        return parsed


@extend_schema_field({"type": "string", "format": "date", "pattern": DATE_YEARS.pattern})
class DateField(serializers.DateField):
    """An ISO 8601 date of the years 1900 to 2999; outside them, 400 `validation_error`."""

    default_error_messages = {"out_of_range": _("Dates must be in the years 1900 to 2999.")}

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", _("ISO 8601 date, in the years 1900 to 2999."))
        super().__init__(**kwargs)

    def to_internal_value(self, value):
        parsed = super().to_internal_value(value)
        if not _year_in(DATE_YEARS, value):
            self.fail("out_of_range")
        return parsed


class MoneyField(serializers.DecimalField):
    """A non-negative amount as the contract writes money: a decimal string with at most two places
    (`"100.00"`, `"5"`); a JSON number is refused (400), as a float cannot carry cents exactly."""

    default_error_messages = {"not_a_string": _('Money is a decimal string such as "100.00".')}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", 14)
        kwargs.setdefault("decimal_places", 2)
        kwargs.setdefault("min_value", 0)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


LEDGER_KINDS = ["earn", "redeem", "expire", "adjust", "reverse", "transfer"]


class TierRefSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()


class LedgerEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField(help_text=f"One of {', '.join(LEDGER_KINDS)} (and other kinds the ledger adds).")
    points = serializers.IntegerField(help_text="Signed: positive credits, negative debits.")
    balance_after = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)
    order_id = serializers.CharField(allow_null=True, allow_blank=True)
    campaign = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)


class OrderItemSerializer(InputSerializer):
    sku = serializers.CharField(max_length=100, required=False, allow_blank=True)
    category = serializers.CharField(max_length=100, required=False, allow_blank=True)
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False, default=1)
    unit_price = MoneyField(required=False)


def validated(serializer_class, data, **kwargs) -> dict:
    """Run an input serializer (400 `validation_error` with field errors) and return its validated data."""
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def raw_object(serializer_class, data, **kwargs) -> dict:
    """Check the shape with `serializer_class`, then hand the request's own object to the service.

    For documents whose full validation lives in the service (campaigns, programs: the admin applies the
    same), so the API and the admin accept and refuse exactly the same things.
    """
    validated(serializer_class, data, **kwargs)
    return dict(data)
