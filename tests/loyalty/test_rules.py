import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest

from loyalty.rules import RuleError, check_rule, rule_conditions, rule_matches

ORDER = {
    "amount": Decimal("60.00"),
    "items": [{"sku": "TSHIRT", "category": "apparel", "quantity": 2, "unit_price": Decimal("30.00")}],
}


@pytest.mark.parametrize(
    ("rule", "context", "expected"),
    [
        ("order.amount >= 50", {"order": ORDER}, True),
        ("order.amount >= 100", {"order": ORDER}, False),
        ("member.country == 'GB' and order.amount >= 50", {"member": {"country": "GB"}, "order": ORDER}, True),
        ("member.country == 'GB'", {"member": {"country": "DE"}}, False),
        ("[i for i in order.items if i.category == 'apparel' and i.quantity >= 2]", {"order": ORDER}, True),
        ("member.attributes['vip'] == true", {"member": {"attributes": {"vip": True}}}, True),
        ("member.tier.code in ['gold', 'silver']", {"member": {"tier": {"code": "gold"}}}, True),
        ("member.country == 'GB'", {"member": {"country": None}}, False),
        ("", {}, True),
    ],
)
def test_rule_matches(rule, context, expected):
    assert rule_matches(rule, context) is expected


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("order.amount >=", "Syntax error"),
        ("basket.amount > 1", "Unknown name 'basket'"),
        ("member.contry == 'GB'", "Unknown name 'contry'"),
        ("member.tier.colour == 'red'", "Unknown name 'colour'"),
    ],
)
def test_bad_rules_are_refused_when_saved(rule, message):
    with pytest.raises(RuleError) as caught:
        check_rule(rule)
    assert message in caught.value.message
    assert caught.value.code == "invalid_rule"
    assert caught.value.details == {"rule": rule}


def test_rules_cannot_reach_python():
    with pytest.raises(RuleError):
        check_rule("__import__('os').system('true')")


def test_a_datetime_literal_without_offset_is_read_in_the_zone_of_now():
    # 23:30 on the 26th in New York is already the 27th in UTC.
    now = dt.datetime(2026, 11, 27, 4, 30, tzinfo=dt.UTC).astimezone(zoneinfo.ZoneInfo("America/New_York"))
    assert rule_matches("now < d'2026-11-27'", {"now": now})  # New York's midnight, not UTC's
    assert rule_matches("now >= d'2026-11-26 23:00:00'", {"now": now})
    assert rule_matches("now >= d'2026-11-27T00:00:00Z'", {"now": now})  # an explicit offset is kept
    utc_now = now.astimezone(dt.UTC)
    assert not rule_matches("now < d'2026-11-27'", {"now": utc_now})


TERNARY = "order.amount > 1 ? member.country == 'GB' and true : false"


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("", []),
        ("order.amount >= 50", [("order.amount >= 50", True, "60.00")]),
        ("((order.amount >= 100))", [("order.amount >= 100", False, "60.00")]),
        (
            "(order.amount >= 100) or (member.country == 'GB')",
            [("order.amount >= 100", False, "60.00"), ("member.country == 'GB'", True, "GB")],
        ),
        (
            "member.country in ['GB', 'FR'] and not (order.amount > 10)",
            [("member.country in ['GB', 'FR']", True, "GB"), ("not (order.amount > 10)", False, None)],
        ),
        (
            "member.city == 'a (b' and order.amount > 1",
            [("member.city == 'a (b'", False, None), ("order.amount > 1", True, "60.00")],
        ),
        (TERNARY, [(TERNARY, True, None)]),  # a ternary cannot be cut at its `and`: one condition
    ],
)
def test_rule_conditions_cut_a_rule_into_its_conditions_with_their_values(rule, expected):
    context = {"member": {"country": "GB", "city": None}, "order": ORDER}
    got = [(c["condition"], c["holds"], c.get("value")) for c in rule_conditions(rule, context)]
    assert got == expected
