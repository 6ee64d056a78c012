"""Every incentive type against a table of orders with exact expected discounts."""

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.incentives import ConfigError, GiftCardDebit, Order, PointsPayment, incentive_for


def order(amount=None, *items, shipping="0"):
    data = {"items": [{"sku": s, "category": c, "quantity": q, "unit_price": p} for s, c, q, p in items]}
    if amount is not None:
        data["amount"] = amount
    data["shipping"] = shipping
    return Order.from_dict(data)


APPAREL = ("TSHIRT", "apparel", 2, "30.00")
SHOES = ("SHOE", "shoes", 1, "50.00")

CASES = [
    # percent: rounding half-up once, caps, targeted items, discount above what is left
    ("percent 15 of 120", {"type": "percent", "value": "15"}, order("120.00"), "120.00", "18.00"),
    ("percent rounds half up", {"type": "percent", "value": "15"}, order("33.33"), "33.33", "5.00"),
    ("percent half a cent up", {"type": "percent", "value": "10"}, order("0.05"), "0.05", "0.01"),
    ("percent below half a cent", {"type": "percent", "value": "10"}, order("0.04"), "0.04", "0.00"),
    ("percent capped", {"type": "percent", "value": "15", "max_amount": "30.00"}, order("500.00"), "500", "30.00"),
    ("percent under cap", {"type": "percent", "value": "15", "max_amount": "30.00"}, order("100.00"), "100", "15.00"),
    ("percent above what is left", {"type": "percent", "value": "50"}, order("100.00"), "10.00", "10.00"),
    ("percent 100", {"type": "percent", "value": "100"}, order("42.42"), "42.42", "42.42"),
    (
        "percent on a category",
        {"type": "percent", "value": "20", "categories": ["apparel"]},
        order(None, APPAREL, SHOES),
        "110.00",
        "12.00",
    ),
    (
        "percent on a sku, none in order",
        {"type": "percent", "value": "20", "skus": ["HAT"]},
        order(None, APPAREL),
        "60.00",
        "0.00",
    ),
    # amount
    ("amount 10", {"type": "amount", "value": "10.00"}, order("120.00"), "120.00", "10.00"),
    ("amount above the total", {"type": "amount", "value": "50.00"}, order("30.00"), "30.00", "30.00"),
    ("amount above what is left", {"type": "amount", "value": "10.00"}, order("30.00"), "4.50", "4.50"),
    (
        "amount on a category",
        {"type": "amount", "value": "100.00", "categories": ["shoes"]},
        order(None, APPAREL, SHOES),
        "110.00",
        "50.00",
    ),
    # free shipping
    (
        "free shipping",
        {"type": "free_shipping", "min_order_amount": "50.00"},
        order("60.00", shipping="4.95"),
        "60.00",
        "4.95",
    ),
    (
        "free shipping at the minimum",
        {"type": "free_shipping", "min_order_amount": "50.00"},
        order("50.00", shipping="4.95"),
        "50.00",
        "4.95",
    ),
    # unit (free item or sample)
    (
        "unit in the order",
        {"type": "unit", "sku": "MUG", "quantity": 1},
        order(None, ("MUG", "home", 2, "8.50")),
        "17.00",
        "8.50",
    ),
    (
        "unit two free, one in order",
        {"type": "unit", "sku": "MUG", "quantity": 2},
        order(None, ("MUG", "home", 1, "8.50")),
        "8.50",
        "8.50",
    ),
    ("unit not in the order", {"type": "unit", "sku": "MUG"}, order("20.00"), "20.00", "0.00"),
    # bogo
    (
        "buy 2 get 1: 3 units",
        {"type": "bogo", "buy_sku": "TSHIRT", "buy_quantity": 2, "get_quantity": 1},
        order(None, ("TSHIRT", "apparel", 3, "30.00")),
        "90.00",
        "30.00",
    ),
    (
        "buy 2 get 1: 6 units",
        {"type": "bogo", "buy_sku": "TSHIRT", "buy_quantity": 2, "get_quantity": 1},
        order(None, ("TSHIRT", "apparel", 6, "30.00")),
        "180.00",
        "60.00",
    ),
    (
        "buy 2 get 1: 5 units",
        {"type": "bogo", "buy_sku": "TSHIRT", "buy_quantity": 2, "get_quantity": 1},
        order(None, ("TSHIRT", "apparel", 5, "30.00")),
        "150.00",
        "30.00",
    ),
    (
        "buy 2 get 1 at 50 %",
        {"type": "bogo", "buy_sku": "TSHIRT", "buy_quantity": 2, "get_quantity": 1, "get_percent": "50"},
        order(None, ("TSHIRT", "apparel", 3, "19.99")),
        "59.97",
        "10.00",
    ),
    (
        "bogo by category, cheapest free",
        {"type": "bogo", "buy_category": "apparel", "buy_quantity": 2, "get_quantity": 1},
        order(None, ("A", "apparel", 1, "30.00"), ("B", "apparel", 1, "20.00"), ("C", "apparel", 1, "10.00")),
        "60.00",
        "10.00",
    ),
    (
        "buy a shoe get socks",
        {"type": "bogo", "buy_sku": "SHOE", "buy_quantity": 1, "get_quantity": 1, "get_sku": "SOCK"},
        order(None, ("SHOE", "shoes", 2, "50.00"), ("SOCK", "socks", 1, "5.00")),
        "105.00",
        "5.00",
    ),
    # volume
    (
        "volume tier 1",
        {"type": "volume", "tiers": [{"min_amount": "100", "percent": "5"}, {"min_amount": "200", "percent": "10"}]},
        order("150.00"),
        "150.00",
        "7.50",
    ),
    (
        "volume tier 2",
        {"type": "volume", "tiers": [{"min_amount": "100", "percent": "5"}, {"min_amount": "200", "percent": "10"}]},
        order("250.00"),
        "250.00",
        "25.00",
    ),
    (
        "volume spend Y save X",
        {"type": "volume", "tiers": [{"min_amount": "50", "amount": "10.00"}]},
        order("50.00"),
        "50.00",
        "10.00",
    ),
    (
        "volume N % from a quantity",
        {"type": "volume", "skus": ["TSHIRT"], "tiers": [{"min_quantity": 2, "percent": "25"}]},
        order(None, APPAREL, SHOES),
        "110.00",
        "15.00",
    ),
    (
        "volume amount above total",
        {"type": "volume", "tiers": [{"min_quantity": 1, "amount": "80.00"}]},
        order(None, ("X", "x", 1, "30.00")),
        "30.00",
        "30.00",
    ),
]


@pytest.mark.parametrize(("name", "config", "the_order", "remaining", "expected"), CASES, ids=[c[0] for c in CASES])
def test_incentive_discount(name, config, the_order, remaining, expected):
    result = incentive_for(config).evaluate(the_order, D(remaining))
    assert result.applies, result.reason
    assert result.discount == D(expected)
    assert result.discount <= D(remaining)


NOT_APPLICABLE = [
    ("free shipping below minimum", {"type": "free_shipping", "min_order_amount": "50.00"}, order("49.99")),
    (
        "bogo not enough units",
        {"type": "bogo", "buy_sku": "TSHIRT", "buy_quantity": 2, "get_quantity": 1},
        order(None, ("TSHIRT", "apparel", 2, "30.00")),
    ),
    (
        "volume threshold not reached",
        {"type": "volume", "tiers": [{"min_amount": "100", "percent": "5"}]},
        order("99.99"),
    ),
]


@pytest.mark.parametrize(("name", "config", "the_order"), NOT_APPLICABLE, ids=[c[0] for c in NOT_APPLICABLE])
def test_incentive_not_applicable_says_why(name, config, the_order):
    result = incentive_for(config).evaluate(the_order, the_order.amount)
    assert not result.applies
    assert result.reason == "rule_not_met"
    assert result.details["rule"]


def test_free_shipping_flags_and_unit_asks_for_missing_items():
    result = incentive_for({"type": "free_shipping"}).evaluate(order("10.00", shipping="3.00"), D("10.00"))
    assert result.free_shipping and result.discount == D("3.00")
    result = incentive_for({"type": "unit", "sku": "MUG", "quantity": 2}).evaluate(order("20.00"), D("20.00"))
    assert result.free_items == [{"sku": "MUG", "quantity": 2}]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"type": "percent"}, "value"),
        ({"type": "percent", "value": "101"}, "value"),
        ({"type": "percent", "value": "-1"}, "value"),
        ({"type": "percent", "value": "abc"}, "value"),
        ({"type": "amount", "value": "10", "skus": "TSHIRT"}, "skus"),
        ({"type": "unit"}, "sku"),
        ({"type": "bogo", "buy_quantity": 1, "get_quantity": 1}, "buy_sku"),
        ({"type": "bogo", "buy_sku": "A", "buy_quantity": 0, "get_quantity": 1}, "buy_quantity"),
        ({"type": "volume", "tiers": []}, "tiers"),
        ({"type": "volume", "tiers": [{"min_amount": "1", "min_quantity": 1, "percent": "5"}]}, "tiers"),
        ({"type": "cashback"}, "type"),
    ],
)
def test_bad_configuration_is_refused(config, field):
    with pytest.raises(ConfigError) as caught:
        incentive_for(config)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("balance", "requested", "remaining", "applies", "debit"),
    [
        ("50.00", "25.00", "120.00", True, "25.00"),
        ("50.00", None, "30.00", True, "30.00"),
        ("50.00", None, "80.00", True, "50.00"),
        ("50.00", "40.00", "10.00", True, "10.00"),  # what is left to pay, if smaller
        ("20.00", "25.00", "120.00", False, "0.00"),
        ("0.00", None, "10.00", False, "0.00"),
    ],
)
def test_gift_card_debit(balance, requested, remaining, applies, debit):
    result = GiftCardDebit(balance=D(balance), requested=D(requested) if requested else None).evaluate(D(remaining))
    assert result.applies is applies
    assert result.discount == D(debit)
    if not applies:
        assert result.reason == "gift_card_insufficient_balance"


@pytest.mark.parametrize(
    ("balance", "requested", "points_per", "amount_per", "remaining", "value", "used"),
    [
        (1000, 500, 100, "1.00", "120.00", "5.00", 500),
        (1000, 500, 100, "1.00", "3.00", "3.00", 300),  # never more than what is left to pay
        (1000, 10, 3, "1.00", "50.00", "3.33", 10),
        (1000, 7, 10, "1.00", "50.00", "0.70", 7),
        (1000, 1, 1000, "1.00", "50.00", "0.00", 0),  # a fraction of a cent pays nothing
    ],
)
def test_points_as_payment_at_program_rate(balance, requested, points_per, amount_per, remaining, value, used):
    result, spent = PointsPayment(balance, requested, points_per, D(amount_per)).evaluate(D(remaining))
    assert result.applies
    assert result.discount == D(value)
    assert spent == used


def test_points_above_balance_are_insufficient():
    result, spent = PointsPayment(100, 500).evaluate(D("50.00"))
    assert not result.applies and result.reason == "points_insufficient" and spent == 0


money = st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False, allow_infinity=False)
configs = st.sampled_from(
    [
        {"type": "percent", "value": "15", "max_amount": "30.00"},
        {"type": "percent", "value": "100"},
        {"type": "amount", "value": "25.00"},
        {"type": "free_shipping"},
        {"type": "unit", "sku": "A", "quantity": 2},
        {"type": "bogo", "buy_category": "c", "buy_quantity": 1, "get_quantity": 1, "get_percent": "50"},
        {"type": "volume", "tiers": [{"min_quantity": 2, "percent": "10"}, {"min_amount": "100", "amount": "40"}]},
    ]
)
items = st.lists(
    st.tuples(st.sampled_from(["A", "B"]), st.sampled_from(["c", "d"]), st.integers(1, 5), money), max_size=6
)


@settings(max_examples=300, deadline=None)
@given(config=configs, lines=items, remaining=money, shipping=money)
def test_a_discount_is_never_negative_nor_more_than_what_is_left(config, lines, remaining, shipping):
    the_order = order(None, *[(s, c, q, str(p)) for s, c, q, p in lines], shipping=str(shipping))
    result = incentive_for(config).evaluate(the_order, remaining)
    assert D("0") <= result.discount <= remaining
    assert result.discount == result.discount.quantize(D("0.01"))
    if config["type"] != "free_shipping":
        assert result.discount <= the_order.amount
