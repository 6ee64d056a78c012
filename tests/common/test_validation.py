"""The services' one way to check input (`common.validation`): each checker by a table, the collector, a property."""

import datetime as dt
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import ApplicationError
from common.validation import NON_FIELD, FieldErrors, decimal_maximum, field_error, path

UTC = dt.UTC
PLUS_ONE = dt.timezone(dt.timedelta(hours=1))
NOW = dt.datetime(2026, 3, 1, 12, tzinfo=UTC)

OK = object()  # "no problem recorded"

# (checker, value, keyword arguments, expected clean value, expected message or OK)
CASES = [
    # text
    ("text", "abc", {"max_length": 3}, "abc", OK),
    ("text", "abcd", {"max_length": 3}, "", "must be a text of at most 3 characters"),
    ("text", 5, {}, "", "must be a text"),
    ("text", None, {}, "", OK),
    ("text", "", {"default": None}, None, OK),
    ("text", "", {"required": True}, "", "required"),
    ("text", "   ", {"required": True, "strip": True}, "", "required"),
    ("text", "  Ada ", {"strip": True}, "Ada", OK),
    ("text", " id ", {}, " id ", OK),
    # slug
    ("slug", "gold-1_a", {}, "gold-1_a", OK),
    ("slug", "gold tier", {}, "", "must be letters, digits, - and _ (at most 50)"),
    ("slug", "x" * 51, {}, "", "must be letters, digits, - and _ (at most 50)"),
    ("slug", None, {}, "", "required"),
    ("slug", 7, {}, "", "must be letters, digits, - and _ (at most 50)"),
    # whole
    ("whole", 3, {}, 3, OK),
    ("whole", 0, {"minimum": 1}, None, "must be a whole number >= 1"),
    ("whole", -4, {"minimum": None}, -4, OK),
    ("whole", True, {}, None, "must be a whole number >= 0"),
    ("whole", 2.0, {}, None, "must be a whole number >= 0"),
    ("whole", "2", {}, None, "must be a whole number >= 0"),
    ("whole", None, {"default": 12}, 12, OK),
    ("whole", None, {"required": True}, None, "required"),
    ("whole", "", {"default": 0}, 0, "must be a whole number >= 0"),
    # decimal
    ("decimal", "12.50", {}, D("12.50"), OK),
    ("decimal", 3, {}, D("3"), OK),
    ("decimal", "abc", {}, None, "must be a decimal number"),
    ("decimal", "NaN", {}, None, "must be a decimal number"),
    ("decimal", "Infinity", {}, None, "must be a decimal number"),
    ("decimal", True, {}, None, "must be a decimal number"),
    ("decimal", [1], {}, None, "must be a decimal number"),
    ("decimal", "", {}, None, "must be a decimal number"),
    ("decimal", "-1", {}, None, "must be a decimal number >= 0"),
    ("decimal", "-1", {"minimum": None}, D("-1"), OK),
    ("decimal", "0.00", {"minimum": D("0.01")}, None, "must be a decimal number >= 0.01"),
    ("decimal", "1000", {"maximum": D("999.999")}, None, "must be a decimal number from 0 to 999.999"),
    ("decimal", "1e30", {"minimum": None, "maximum": D("9.99")}, None, "must be a decimal number <= 9.99"),
    ("decimal", "1.005", {"places": 2}, None, "must have at most 2 decimal places"),
    ("decimal", "1.500", {"places": 2}, D("1.500"), OK),
    ("decimal", None, {"default": D("1.00")}, D("1.00"), OK),
    ("decimal", None, {"required": True}, None, "required"),
    # boolean
    ("boolean", False, {}, False, OK),
    ("boolean", "yes", {}, None, "must be true or false"),
    ("boolean", 1, {}, None, "must be true or false"),
    ("boolean", None, {"required": True}, None, "required"),
    # choice
    ("choice", "day", {"choices": ("day", "week")}, "day", OK),
    ("choice", "fortnight", {"choices": ("day", "week")}, None, "must be one of day, week"),
    ("choice", ["day"], {"choices": {"day", "week"}}, None, "must be one of day, week"),
    ("choice", None, {"choices": ("day",), "default": "day"}, "day", OK),
    # time
    ("time", "2026-03-01T13:00:00+01:00", {}, NOW, OK),
    ("time", "2026-03-01T12:00:00Z", {}, NOW, OK),
    ("time", NOW.astimezone(PLUS_ONE), {}, NOW, OK),
    ("time", "2026-03-01T12:00:00", {}, None, "must be an ISO 8601 time with an offset"),
    ("time", dt.datetime(2026, 3, 1), {}, None, "must be an ISO 8601 time with an offset"),
    ("time", "2026-02-30T12:00:00Z", {}, None, "must be an ISO 8601 time with an offset"),
    ("time", "yesterday", {}, None, "must be an ISO 8601 time with an offset"),
    ("time", 1700000000, {}, None, "must be an ISO 8601 time with an offset"),
    ("time", "", {"default": NOW}, NOW, OK),
    # date
    ("date", "1990-04-30", {}, dt.date(1990, 4, 30), OK),
    ("date", dt.date(1990, 4, 30), {}, dt.date(1990, 4, 30), OK),
    ("date", "1990-02-30", {}, None, "must be a date such as 1990-04-30"),
    ("date", "30/04/1990", {}, None, "must be a date such as 1990-04-30"),
    ("date", 1990, {}, None, "must be a date such as 1990-04-30"),
    ("date", "", {}, None, OK),
    # mapping, array, texts
    ("mapping", {"a": 1}, {}, {"a": 1}, OK),
    ("mapping", [], {}, None, "must be an object"),
    ("mapping", None, {"required": True}, None, "required"),
    ("array", [1], {}, [1], OK),
    ("array", {}, {"default": []}, [], "must be a list"),
    ("array", "abc", {}, None, "must be a list"),
    ("texts", ["GB", "FR"], {}, ["GB", "FR"], OK),
    ("texts", ["GB", 5], {}, None, "must be a list of texts"),
    ("texts", "GB", {}, None, "must be a list of texts"),
]


@pytest.mark.parametrize(("checker", "value", "kwargs", "clean", "message"), CASES)
def test_each_checker_returns_the_clean_value_or_records_one_message(checker, value, kwargs, clean, message):
    errors = FieldErrors()
    kwargs = dict(kwargs)
    args = (kwargs.pop("choices"),) if "choices" in kwargs else ()
    result = getattr(errors, checker)(value, "items[0].x", *args, **kwargs)
    assert result == clean
    if message is OK:
        assert errors.details == {}
    else:
        assert errors.details == {"items[0].x": message}


@pytest.mark.parametrize(
    ("parts", "written"),
    [
        (("amount",), "amount"),
        (("items", 0, "quantity"), "items[0].quantity"),
        (("earning_rules", 1, "cap", "points"), "earning_rules[1].cap.points"),
        (("earning_rules[0]", "tier_multipliers", "gold"), "earning_rules[0].tier_multipliers.gold"),
        (("earning_rules[0].happy_hours", 2), "earning_rules[0].happy_hours[2]"),
        (("", "expiry", "days"), "expiry.days"),
        (("",), ""),
    ],
)
def test_paths_join_keys_with_dots_and_positions_in_brackets(parts, written):
    assert path(*parts) == written


def test_a_path_keeps_its_first_message_and_every_path_is_reported():
    errors = FieldErrors()
    errors.whole("x", "points")
    errors.add("points", "must be >= 1")
    errors.check(False, "currency", "must be the tenant's currency EUR")
    assert errors.check(True, "name", "never recorded")
    assert "points" in errors and "name" not in errors
    assert errors.details == {"points": "must be a whole number >= 0", "currency": "must be the tenant's currency EUR"}


def test_the_collected_problems_are_raised_once_in_the_one_shape():
    errors = FieldErrors()
    errors.raise_if_any("invalid_order", "The order is not valid.")  # nothing collected: nothing raised
    errors.add("items[0].quantity", "must be a whole number >= 1")
    errors.add(NON_FIELD, "must be an object")
    with pytest.raises(ApplicationError) as caught:
        errors.raise_if_any("invalid_order", "The order is not valid.")
    assert (caught.value.code, caught.value.status, caught.value.message) == (
        "invalid_order",
        400,
        "The order is not valid.",
    )
    assert caught.value.details == {"items[0].quantity": "must be a whole number >= 1", NON_FIELD: "must be an object"}
    errors.add("later", "not in the raised error")
    assert "later" not in caught.value.details


def test_one_late_refusal_has_the_same_shape():
    error = field_error("invalid_member", "Unknown referrer.", "referred_by", "no member with this id or code")
    assert (error.code, error.status, error.details) == (
        "invalid_member",
        400,
        {"referred_by": "no member with this id or code"},
    )


def test_decimal_maximum_is_the_largest_value_a_column_stores():
    class Field:
        max_digits, decimal_places = 6, 3

    assert decimal_maximum(Field) == D("999.999")
    Field.max_digits, Field.decimal_places = 14, 2
    assert decimal_maximum(Field) == D("999999999999.99")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | st.decimals(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
CHECKERS = {
    "text": {"max_length": 5},
    "slug": {},
    "whole": {"minimum": 1},
    "decimal": {"minimum": 0, "maximum": D("99.99"), "places": 2},
    "boolean": {},
    "time": {},
    "date": {},
    "mapping": {},
    "array": {},
    "texts": {},
}


@settings(max_examples=300, deadline=None)
@given(value=JSON, checker=st.sampled_from(sorted(CHECKERS)), required=st.booleans())
def test_any_json_value_is_either_clean_or_one_message_at_its_path(value, checker, required):
    """Total: no input makes a checker raise; a refusal is exactly one message at the path, with the default."""
    errors = FieldErrors()
    default = object()
    result = getattr(errors, checker)(value, "a[0].b", required=required, default=default, **CHECKERS[checker])
    if errors:
        assert list(errors.details) == ["a[0].b"] and isinstance(errors.details["a[0].b"], str)
        assert result is default
    elif result is not default:
        clean_types = {
            "text": str,
            "slug": str,
            "whole": int,
            "decimal": D,
            "boolean": bool,
            "time": dt.datetime,
            "date": dt.date,
            "mapping": dict,
            "array": list,
            "texts": list,
        }
        assert isinstance(result, clean_types[checker])
        if checker == "decimal":
            assert result.is_finite() and D(0) <= result <= D("99.99")
        if checker == "whole":
            assert result >= 1 and not isinstance(result, bool)
    else:
        assert not required  # only a missing value gives the default without a message


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b[0]", "b[0].c"]), st.text(max_size=8)), max_size=8))
def test_the_details_are_the_first_message_of_each_path(adds):
    errors = FieldErrors()
    for at, message in adds:
        errors.add(at, message)
    first: dict[str, str] = {}
    for at, message in adds:
        first.setdefault(at, message)
    assert errors.details == first and bool(errors) == bool(adds)
