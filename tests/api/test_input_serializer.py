"""InputSerializer copies declared fields cheaply: it must validate exactly as DRF's Serializer does (both
with the JSON type checks of `JsonTypesMixin`)."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from api.serializers import InputSerializer, JsonTypesMixin, OrderItemSerializer

MONEY = {"max_digits": 14, "decimal_places": 2}


def _pair():
    """The same declarations on both bases (the nested order too)."""

    def make(base):
        class Order(base):
            amount = serializers.DecimalField(required=False, min_value=0, **MONEY)
            location = serializers.CharField(max_length=10, required=False, allow_blank=True)
            items = OrderItemSerializer(many=True, required=False)

        class Body(base):
            member = serializers.CharField(max_length=5, required=False, allow_null=True)
            order = Order()
            codes = serializers.ListField(child=serializers.CharField(max_length=4), required=False, max_length=3)
            tags = serializers.DictField(child=serializers.IntegerField(min_value=0), required=False)
            points = serializers.IntegerField(required=False, min_value=0)
            kind = serializers.ChoiceField(choices=["a", "b"], default="a")

        return Body

    class DrfSerializer(JsonTypesMixin, serializers.Serializer):
        pass

    return make(DrfSerializer), make(InputSerializer)


DRF, FAST = _pair()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.text(max_size=6) | st.just("12.345") | st.just("3.50"),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["sku", "quantity", "x"]), inner),
    max_leaves=8,
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "member": json_values,
        "order": st.fixed_dictionaries(
            {},
            optional={
                "amount": json_values,
                "location": json_values,
                "items": st.lists(
                    st.fixed_dictionaries(
                        {},
                        optional={"sku": json_values, "quantity": json_values, "unit_price": json_values},
                    ),
                    max_size=3,
                )
                | json_values,
            },
        )
        | json_values,
        "codes": st.lists(json_values, max_size=4) | json_values,
        "tags": st.dictionaries(st.text(max_size=3), json_values, max_size=3) | json_values,
        "points": json_values,
        "kind": json_values,
    },
)


def _outcome(serializer_class, body):
    serializer = serializer_class(data=body)
    if serializer.is_valid():
        return True, json.loads(json.dumps(serializer.validated_data, default=str))
    return False, json.loads(json.dumps(serializer.errors, default=str))


@settings(max_examples=300, deadline=None)
@given(bodies)
def test_validates_and_refuses_exactly_as_drf(body):
    assert _outcome(FAST, body) == _outcome(DRF, body)


def test_known_bodies_give_the_same_data_and_errors():
    good = {"member": "m-1", "order": {"amount": "3.50", "items": [{"sku": "A", "quantity": 2}]}, "codes": ["X1"]}
    bad = {"member": "too-long", "order": {"items": [{"quantity": 0}]}, "codes": ["TOOLONG"], "tags": {"a": -1}}
    for body in (good, bad, {}, {"order": "nope"}):
        assert _outcome(FAST, body) == _outcome(DRF, body)
    valid, data = _outcome(FAST, good)
    assert valid and data["order"]["items"] == [{"sku": "A", "quantity": 2}]
    valid, errors = _outcome(FAST, bad)
    assert not valid and set(errors) == {"member", "order", "codes", "tags"}


def test_each_instance_binds_its_own_fields_and_the_declarations_stay_unbound():
    first, second = FAST(data={}), FAST(data={})
    for name in ("member", "order", "codes", "tags"):
        assert first.fields[name] is not second.fields[name]
        assert first.fields[name].parent is first and second.fields[name].parent is second
        assert first.fields[name] is not FAST._declared_fields[name]
    assert first.fields["codes"].child is not second.fields["codes"].child
    assert first.fields["codes"].child.parent is first.fields["codes"]
    items = first.fields["order"].fields["items"]
    assert items.child is not second.fields["order"].fields["items"].child
    assert items.root is first
    assert FAST._declared_fields["member"].parent is None and FAST._declared_fields["member"].field_name is None
