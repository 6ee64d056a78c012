"""Output pieces shared by several endpoints (ledger entries, tiers, order items); the input base."""

import copy
import datetime as dt

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers


class InputSerializer(serializers.Serializer):
    """A request body's serializer whose fields are cheap to set up on every request.

    DRF deep-copies every declared field per serializer instance (re-running each field's `__init__`
    through `copy.deepcopy`): about 1 ms of CPU for the redemption body, a tenth of the whole request.
    A field keeps no state while it validates, so each request gets a plain copy of the declared field to
    bind; what points back at a parent (a list's child, a nested serializer's fields) is copied anew.
    """

    def get_fields(self):
        return {name: _field_copy(field) for name, field in self._declared_fields.items()}


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


# Every time the API takes lies in this range (UTC): far enough from the ends of Python's datetime that
# the server can add expiry periods and windows to it, or take it to any time zone, without overflowing.
EARLIEST_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST_TIME = dt.datetime(3000, 1, 1, tzinfo=dt.UTC)  # exclusive
EARLIEST_DATE = dt.date(1900, 1, 1)
LATEST_DATE = dt.date(2999, 12, 31)


class TimeField(serializers.DateTimeField):
    """An ISO 8601 time in the API's range (see above); outside it, 400 `validation_error`."""

    default_error_messages = {
        "out_of_range": _("Times must be from 1970-01-01T00:00:00Z to before 3000-01-01T00:00:00Z.")
    }

    def __init__(self, **kwargs):
        kwargs.setdefault(
            "help_text", _("ISO 8601 with offset, from 1970-01-01T00:00:00Z to before 3000-01-01T00:00:00Z.")
        )
        super().__init__(**kwargs)

    def to_internal_value(self, value):
        value = super().to_internal_value(value)
        if not EARLIEST_TIME <= value < LATEST_TIME:
            self.fail("out_of_range")
        return value


class DateField(serializers.DateField):
    """An ISO 8601 date from 1900-01-01 to 2999-12-31; outside it, 400 `validation_error`."""

    default_error_messages = {"out_of_range": _("Dates must be from 1900-01-01 to 2999-12-31.")}

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", _("ISO 8601 date, from 1900-01-01 to 2999-12-31."))
        super().__init__(**kwargs)

    def to_internal_value(self, value):
        value = super().to_internal_value(value)
        if not EARLIEST_DATE <= value <= LATEST_DATE:
            self.fail("out_of_range")
        return value


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
    unit_price = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=0, required=False)


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
