"""Property: random sequences of earn/spend/expire/return/adjust/release keep the ledger's invariants.

balance == sum of entries == sum of live lots, no lot below zero (or above its points), no negative balance,
pending == open pending points, debt >= 0.
"""

import datetime as dt

import pytest
import time_machine
from django.db import transaction
from django.db.models import F, Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import ApplicationError
from loyalty.ledger import (
    account_for,
    ledger_reconcile,
    pending_release_due,
    points_adjust,
    points_expire_due,
    post_spend,
    post_spend_reversal,
)
from loyalty.models import Account, LedgerEntry, PendingPoints, PointLot
from loyalty.services.returns import order_return
from rewards.services.checkout import order_checkout
from tests.factories import EarningRuleFactory, MemberFactory, ProgramFactory, TenantFactory

operations = st.lists(
    st.one_of(
        st.tuples(st.just("earn"), st.integers(1, 300)),
        st.tuples(st.just("spend"), st.integers(1, 200)),
        st.tuples(st.just("wait"), st.integers(1, 40)),
        st.tuples(st.just("return"), st.integers(0, 20), st.integers(1, 100)),
        st.tuples(st.just("adjust"), st.integers(-150, 150).filter(bool)),
        st.tuples(st.just("unspend"), st.integers(0, 20)),
    ),
    min_size=1,
    max_size=25,
)


def check_invariants(account: Account) -> None:
    account.refresh_from_db()
    entries = LedgerEntry.objects.filter(account=account).aggregate(s=Sum("points"))["s"] or 0
    lots = PointLot.objects.filter(account=account).aggregate(s=Sum("remaining"))["s"] or 0
    assert account.balance == entries == lots
    assert account.balance >= 0 and account.debt >= 0 and account.pending >= 0
    assert not PointLot.objects.filter(account=account, remaining__lt=0).exists()
    assert not PointLot.objects.filter(account=account, remaining__gt=F("points")).exists()
    open_pending = PendingPoints.objects.filter(account=account, status="pending").aggregate(
        s=Sum(F("points") - F("cancelled_points"))
    )["s"]
    assert account.pending == (open_pending or 0)
    assert list(LedgerEntry.objects.filter(balance_after__lt=0)) == []


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, pending=st.booleans())
def test_random_sequences_keep_the_ledger_consistent(ops, pending):
    tenant = TenantFactory()
    program = ProgramFactory(tenant=tenant, expiry_policy={"policy": "days", "days": 60})
    EarningRuleFactory(program=program, rule="order.amount < 150")
    EarningRuleFactory(program=program, rule="order.amount >= 150", pending_days=20 if pending else 0)
    # A bonus that stacks on orders of 100.00 and more: several earn lines in one batch (`post_earns`).
    EarningRuleFactory(program=program, rule="order.amount >= 100", points=5, points_per_unit="0")
    member = MemberFactory(tenant=tenant)
    account = account_for(member=member, program=program)
    orders: list[tuple[str, int]] = []
    spends: list[LedgerEntry] = []
    with time_machine.travel(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), tick=False) as clock:
        for n, op in enumerate(ops):
            kind = op[0]
            try:
                if kind == "earn":
                    order_id = f"o{n}"
                    order_checkout(
                        tenant=tenant, member=member, order_id=order_id, amount=f"{op[1]}.00", currency="EUR", items=[]
                    )
                    orders.append((order_id, op[1]))
                elif kind == "spend":
                    with transaction.atomic():
                        spends.append(post_spend(account=account, points=op[1], reason="spend"))
                elif kind == "wait":
                    clock.shift(dt.timedelta(days=op[1]))
                    points_expire_due()
                    pending_release_due()
                elif kind == "return" and orders:
                    order_id, amount = orders[op[1] % len(orders)]
                    order_return(tenant=tenant, order_id=order_id, amount=f"{min(op[2], amount)}.00")
                elif kind == "adjust":
                    points_adjust(account=account, points=op[1], reason="property", staff_user=None)
                elif kind == "unspend" and spends:
                    with transaction.atomic():
                        post_spend_reversal(entry=spends[op[1] % len(spends)], reason="rollback")
            except ApplicationError as exc:
                assert exc.code in {"points_insufficient", "return_exceeds_order", "already_reversed"}, exc.code
            check_invariants(account)
    assert ledger_reconcile(tenant=tenant) == []
