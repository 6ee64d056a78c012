"""What orders, returns, events and expiry policies refuse: every problem at once as `{path: message}`."""

import pytest

from common.errors import ApplicationError
from loyalty.expiry import normalize_policy
from loyalty.models import Order, OrderReturn
from loyalty.services.earning import custom_event_record, order_clean
from loyalty.services.returns import order_return
from members.models import CustomEvent
from rewards.services.checkout import order_checkout
from tests.factories import earning_setup

pytestmark = pytest.mark.django_db

MONEY_RANGE = "must be a decimal number from 0 to 999999999999.99"
GOOD_ORDER = {"order_id": "o-1", "amount": "100.00", "currency": "EUR"}


@pytest.mark.parametrize(
    ("change", "details"),
    [
        ({"order_id": ""}, {"order_id": "required"}),
        ({"order_id": "x" * 101}, {"order_id": "must be a text of at most 100 characters"}),
        ({"order_id": 42}, {"order_id": "must be a text of at most 100 characters"}),
        ({"amount": "abc"}, {"amount": "must be a decimal number"}),
        ({"amount": None}, {"amount": "required"}),
        ({"amount": "-1"}, {"amount": MONEY_RANGE}),
        ({"amount": "1e30"}, {"amount": MONEY_RANGE}),
        ({"currency": "USD"}, {"currency": "must be the tenant's currency EUR"}),
        ({"items": "TSHIRT"}, {"items": "must be a list"}),
        (
            {"items": ["TSHIRT", {"quantity": 0, "unit_price": "x"}, {"quantity": True}]},
            {
                "items[0]": "must be an object",
                "items[1].quantity": "must be a whole number >= 1",
                "items[1].unit_price": "must be a decimal number",
                "items[2].quantity": "must be a whole number >= 1",
            },
        ),
        ({"occurred_at": "2026-01-05T10:00:00"}, {"occurred_at": "must be an ISO 8601 time with an offset"}),
        ({"occurred_at": "2026-02-30T10:00:00Z"}, {"occurred_at": "must be an ISO 8601 time with an offset"}),
        (
            {"order_id": None, "currency": "USD", "amount": "-5"},
            {"order_id": "required", "currency": "must be the tenant's currency EUR", "amount": MONEY_RANGE},
        ),
    ],
)
def test_a_bad_paid_order_is_400_invalid_order_with_every_field_problem(tenant, change, details):
    with pytest.raises(ApplicationError) as caught:
        order_clean(tenant=tenant, **{**GOOD_ORDER, **change})
    assert (caught.value.code, caught.value.status, caught.value.details) == ("invalid_order", 400, details)


def test_a_clean_order_has_its_money_in_cents_and_its_items_normalised(tenant):
    order = order_clean(
        tenant=tenant,
        **{**GOOD_ORDER, "amount": "10.005"},
        items=[{"sku": "A", "unit_price": "2.345"}, {"sku": "B", "quantity": 2}],
        occurred_at="2026-01-05T10:00:00+01:00",
    )
    assert str(order.amount) == "10.01" and order.occurred_at.utcoffset() is not None
    assert [(i["sku"], i["quantity"], str(i["unit_price"])) for i in order.items] == [
        ("A", 1, "2.35"),
        ("B", 2, "0.00"),
    ]


@pytest.mark.parametrize(
    ("kwargs", "details"),
    [
        ({"event": ""}, {"event": "required"}),
        ({"event": "e" * 101}, {"event": "must be a text of at most 100 characters"}),
        ({"metadata": ["a"]}, {"metadata": "must be an object"}),
        ({"occurred_at": "soon"}, {"occurred_at": "must be an ISO 8601 time with an offset"}),
    ],
)
def test_a_bad_custom_event_is_400_invalid_event_and_stores_nothing(tenant, kwargs, details):
    _, _, member = earning_setup(tenant)
    with pytest.raises(ApplicationError) as caught:
        custom_event_record(tenant=tenant, member=member, **{"event": "review_written", **kwargs})
    assert (caught.value.code, caught.value.status, caught.value.details) == ("invalid_event", 400, details)
    assert not CustomEvent.objects.exists()


@pytest.fixture
def paid(tenant):
    _, _, member = earning_setup(tenant)
    items = [{"sku": "A", "category": "c", "quantity": 2, "unit_price": "30.00"}]
    order_checkout(tenant=tenant, member=member, order_id="o-1", amount="60.00", currency="EUR", items=items)
    return Order.objects.get(order_id="o-1")


@pytest.mark.parametrize(
    ("kwargs", "details"),
    [
        ({}, {"amount": "give either an amount or items"}),
        ({"amount": "5.00", "items": [{"sku": "A"}]}, {"amount": "give either an amount or items"}),
        ({"amount": "0.00"}, {"amount": "must be a decimal number from 0.01 to 999999999999.99"}),
        ({"amount": "ten"}, {"amount": "must be a decimal number"}),
        ({"amount": "5.00", "return_id": "r" * 101}, {"return_id": "must be a text of at most 100 characters"}),
        ({"items": {"sku": "A"}}, {"items": "must be a list"}),
        (
            {"items": [{"sku": "Z"}, {"sku": "A", "quantity": 3}, {"quantity": 1}, "A", {"sku": "A", "quantity": 0}]},
            {
                "items[0].sku": "not an item of this order",
                "items[1].quantity": "at most 2 left",
                "items[2].sku": "required",
                "items[3]": "must be an object",
                "items[4].quantity": "must be a whole number >= 1",
            },
        ),
    ],
)
def test_a_bad_return_is_400_invalid_return_and_takes_nothing_back(tenant, paid, kwargs, details):
    with pytest.raises(ApplicationError) as caught:
        order_return(tenant=tenant, order_id="o-1", **kwargs)
    assert (caught.value.code, caught.value.status, caught.value.details) == ("invalid_return", 400, details)
    assert not OrderReturn.objects.exists()
    paid.refresh_from_db()
    assert paid.returned_amount == 0 and [i.returned_quantity for i in paid.items.all()] == [0]


@pytest.mark.parametrize(
    ("policy", "details"),
    [
        ({"policy": "days"}, {"expiry.days": "required"}),
        ({"policy": "rolling_quarter", "years": "2"}, {"expiry.years": "must be a whole number >= 1"}),
        (
            {"policy": "end_of_period", "period": "week", "count": -1},
            {"expiry.period": "must be one of month, year", "expiry.count": "must be a whole number >= 0"},
        ),
        ("never", {"expiry": "policy must be one of never, days, rolling_quarter, end_of_period, inactivity"}),
    ],
)
def test_an_expiry_policy_is_refused_in_the_one_shape(policy, details):
    with pytest.raises(ApplicationError) as caught:
        normalize_policy(policy)
    assert (caught.value.code, caught.value.status, caught.value.details) == ("invalid_expiry_policy", 400, details)
