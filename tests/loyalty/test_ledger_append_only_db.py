"""The ledger is append-only in PostgreSQL itself: raw SQL cannot rewrite or remove entries, consumptions or
what a lot is; the ledger's own moves of a lot (`remaining`, `expires_at`) still go through."""

import datetime as dt

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction

from loyalty.ledger import account_for, ledger_reconcile, points_expire_due, post_earn, post_spend, post_spend_reversal
from loyalty.models import LedgerEntry, LotConsumption, PointLot
from tests.factories import MemberFactory, ProgramFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture
def spent(tenant):
    """An account that earned 100 and spent 30: an entry, a lot and a consumption to try to rewrite."""
    program = ProgramFactory(tenant=tenant, expiry_policy={"policy": "days", "days": 30})
    account = account_for(member=MemberFactory(tenant=tenant), program=program)
    with transaction.atomic():
        earned = post_earn(account=account, points=100, reason="order")
    with transaction.atomic():
        spend = post_spend(account=account, points=30, reason="reward")
    return account, earned, spend


def raw(sql: str, params: list) -> int:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE rewards_ledgerentry SET points = 1000 WHERE id = %s",
        "UPDATE rewards_ledgerentry SET reason = 'nothing happened' WHERE id = %s",
        "DELETE FROM rewards_ledgerentry WHERE id = %s",
    ],
)
def test_raw_sql_cannot_update_or_delete_a_ledger_entry(spent, sql):
    _account, earned, _spend = spent
    with pytest.raises(IntegrityError, match="append-only"):
        raw(sql, [earned.pk])
    assert LedgerEntry.objects.filter(pk=earned.pk).values_list("points", "reason").get() == (100, "order")


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE rewards_lotconsumption SET points = 1 WHERE entry_id = %s",
        "DELETE FROM rewards_lotconsumption WHERE entry_id = %s",
    ],
)
def test_raw_sql_cannot_update_or_delete_a_lot_consumption(spent, sql):
    _account, _earned, spend = spent
    with pytest.raises(IntegrityError, match="append-only"):
        raw(sql, [spend.pk])
    assert list(LotConsumption.objects.filter(entry=spend).values_list("points", flat=True)) == [30]


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE rewards_pointlot SET points = 1000, remaining = 1000 WHERE entry_id = %s",
        "UPDATE rewards_pointlot SET earned_at = earned_at - interval '1 day' WHERE entry_id = %s",
        "UPDATE rewards_pointlot SET order_id = 'other' WHERE entry_id = %s",
        "DELETE FROM rewards_pointlot WHERE entry_id = %s",
    ],
)
def test_raw_sql_cannot_rewrite_or_delete_what_a_lot_is(spent, sql):
    account, earned, _spend = spent
    with pytest.raises(IntegrityError, match="append-only"):
        raw(sql, [earned.pk])
    assert PointLot.objects.filter(entry=earned).values_list("points", "remaining").get() == (100, 70)
    assert ledger_reconcile() == []


def test_the_lot_columns_the_ledger_moves_stay_writable(spent):
    account, earned, spend = spent
    assert (
        raw("UPDATE rewards_pointlot SET expires_at = expires_at + interval '1 day' WHERE entry_id = %s", [earned.pk])
        == 1
    )
    with transaction.atomic():
        post_spend_reversal(entry=spend, reason="refund")  # puts the 30 back into the lot
    assert PointLot.objects.get(entry=earned).remaining == 100
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(days=60)):
        points_expire_due()  # empties the lot, records the consumption
    assert PointLot.objects.get(entry=earned).remaining == 0
    assert ledger_reconcile() == []
