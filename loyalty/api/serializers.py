"""Output pieces shared by several endpoints (ledger entries, tiers, order items)."""

from rest_framework import serializers

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


class OrderItemSerializer(serializers.Serializer):
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
