import datetime as dt

import pytest
import time_machine

from common.errors import ApplicationError
from loyalty.ledger import ledger_reconcile, pending_release_due, points_adjust
from loyalty.models import Account, LedgerEntry, PendingPoints
from loyalty.services.returns import order_return
from rewards.services.checkout import order_checkout
from tests.factories import UserFactory, earning_setup

pytestmark = pytest.mark.django_db


def pay(tenant, member, order_id="o-1", amount="100.00", items=None):
    return order_checkout(
        tenant=tenant, member=member, order_id=order_id, amount=amount, currency=tenant.currency, items=items or []
    )


def balance(member):
    return Account.objects.get(member=member).balance


def test_partial_return_reverses_points_proportionally(tenant):
    _, _, member = earning_setup(tenant)
    pay(tenant, member, amount="100.00")
    result = order_return(tenant=tenant, order_id="o-1", amount="25.00")
    assert (result.points_reversed, result.debt_points) == (25, 0)
    assert [e["kind"] for e in result.entries] == ["reverse"]
    assert balance(member) == 75


def test_several_partial_returns_never_drift_from_one_full_return(tenant):
    _, _, member = earning_setup(tenant, points_per_unit="1", unit_amount="3.00")
    pay(tenant, member, amount="100.00")  # 33 points
    taken = [order_return(tenant=tenant, order_id="o-1", amount="33.33").points_reversed for _ in range(3)]
    taken.append(order_return(tenant=tenant, order_id="o-1", amount="0.01").points_reversed)
    assert sum(taken) == 33 and balance(member) == 0
    with pytest.raises(ApplicationError) as exc:
        order_return(tenant=tenant, order_id="o-1", amount="0.01")
    assert exc.value.code == "return_exceeds_order"


def test_return_by_items(tenant):
    _, _, member = earning_setup(tenant)
    items = [
        {"sku": "A", "category": "c", "quantity": 2, "unit_price": "30.00"},
        {"sku": "B", "category": "c", "quantity": 1, "unit_price": "40.00"},
    ]
    pay(tenant, member, amount="100.00", items=items)
    result = order_return(tenant=tenant, order_id="o-1", items=[{"sku": "A", "quantity": 1}])
    assert (result.amount, result.points_reversed) == ("30.00", 30)
    with pytest.raises(ApplicationError) as exc:
        order_return(tenant=tenant, order_id="o-1", items=[{"sku": "A", "quantity": 2}])
    assert exc.value.code == "invalid_return" and "items[0].quantity" in exc.value.details


def test_return_id_makes_a_return_idempotent(tenant):
    _, _, member = earning_setup(tenant)
    pay(tenant, member)
    first = order_return(tenant=tenant, order_id="o-1", amount="10.00", return_id="r1")
    again = order_return(tenant=tenant, order_id="o-1", amount="10.00", return_id="r1")
    assert not again.created and again.as_dict() == first.as_dict()
    assert balance(member) == 90


def test_points_already_spent_become_a_debt_paid_by_the_next_earning(tenant):
    _, _, member = earning_setup(tenant)
    pay(tenant, member, "o-1", "100.00")
    points_adjust(member=member, points=-80, reason="spent at the till", staff_user=UserFactory())
    result = order_return(tenant=tenant, order_id="o-1", amount="100.00")
    assert (result.points_reversed, result.debt_points) == (20, 80)
    account = Account.objects.get(member=member)
    assert (account.balance, account.debt) == (0, 80)
    nxt = pay(tenant, member, "o-2", "50.00")
    assert [(e["kind"], e["points"]) for e in nxt.entries] == [("earn", 50), ("reverse", -50)]
    account.refresh_from_db()
    assert (account.balance, account.debt) == (0, 30)
    pay(tenant, member, "o-3", "50.00")
    account.refresh_from_db()
    assert (account.balance, account.debt) == (20, 0)
    assert ledger_reconcile() == []


def test_pending_points_are_cancelled_not_reversed(tenant):
    _, _, member = earning_setup(tenant, pending_days=30)
    with time_machine.travel(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), tick=False):
        pay(tenant, member)
        result = order_return(tenant=tenant, order_id="o-1", amount="40.00")
    assert (result.points_cancelled, result.points_reversed, result.entries) == (40, 0, [])
    assert not LedgerEntry.objects.filter(account__member=member).exists()
    account = Account.objects.get(member=member)
    assert account.pending == 60
    with time_machine.travel(dt.datetime(2026, 2, 1, tzinfo=dt.UTC), tick=False):
        assert pending_release_due().points == 60
    account.refresh_from_db()
    assert (account.pending, account.balance) == (0, 60)
    assert PendingPoints.objects.get().status == "released"
    # After release a further return reverses from the balance.
    assert order_return(tenant=tenant, order_id="o-1", amount="60.00").points_reversed == 60


def test_full_return_of_pending_points_cancels_them(tenant):
    _, _, member = earning_setup(tenant, pending_days=30)
    pay(tenant, member)
    order_return(tenant=tenant, order_id="o-1", amount="100.00")
    assert PendingPoints.objects.get().status == "cancelled"
    assert Account.objects.get(member=member).pending == 0
    assert pending_release_due(now=dt.datetime(2100, 1, 1, tzinfo=dt.UTC)).released == 0


def test_unknown_order_is_not_found(tenant, other_tenant):
    _, _, member = earning_setup(other_tenant)
    pay(other_tenant, member)
    with pytest.raises(ApplicationError) as exc:
        order_return(tenant=tenant, order_id="o-1", amount="1.00")
    assert exc.value.code == "order_not_found" and exc.value.status == 404


def test_return_needs_amount_or_items(tenant):
    with pytest.raises(ApplicationError) as exc:
        order_return(tenant=tenant, order_id="o-1")
    assert exc.value.code == "invalid_return"


def test_points_that_already_expired_are_not_turned_into_debt(tenant):
    from loyalty.ledger import points_expire_due

    _, _, member = earning_setup(tenant, expiry={"policy": "days", "days": 30})
    with time_machine.travel(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), tick=False):
        pay(tenant, member, "o-1", "100.00")
    with time_machine.travel(dt.datetime(2026, 2, 15, tzinfo=dt.UTC), tick=False):
        assert points_expire_due().points == 100
        pay(tenant, member, "o-2", "10.00")
        first = order_return(tenant=tenant, order_id="o-1", amount="50.00")
        second = order_return(tenant=tenant, order_id="o-1", amount="50.00")
    # Nothing of o-1 is left to take; its points expired, so the member owes nothing and keeps o-2's points.
    assert (first.points_reversed, first.debt_points) == (0, 0)
    assert (second.points_reversed, second.debt_points) == (0, 0)
    account = Account.objects.get(member=member)
    assert (account.balance, account.debt) == (10, 0)
