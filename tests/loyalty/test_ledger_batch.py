"""post_earns: several earnings on one locked account in a fixed number of queries, same figures as post_earn."""

import datetime as dt

import pytest
import time_machine
from django.db import connection, transaction

from common import events
from common.errors import ApplicationError
from loyalty.ledger import EarnLine, account_for, ledger_reconcile, post_earns
from loyalty.lock_objects import account_lock
from loyalty.models import Account, LedgerEntry, PointLot
from tests.factories import MemberFactory, ProgramFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def published():
    seen = []

    def sink(tenant, event_type, data):
        seen.append((event_type, data))

    events._sinks.append(sink)
    yield seen
    events._sinks.remove(sink)


@pytest.fixture
def account(tenant):
    program = ProgramFactory(tenant=tenant, expiry_policy={"policy": "days", "days": 30})
    return account_for(member=MemberFactory(tenant=tenant), program=program)


def batch(account, *points, **kw):
    with transaction.atomic():
        locked = account_lock(account.pk)
        lines = [
            EarnLine(points=p, reason=f"rule {n}", order_id="o-1", rule_code=f"r{n}") for n, p in enumerate(points)
        ]
        return post_earns(account=locked, earns=lines, **kw)


def test_a_batch_writes_one_entry_and_one_lot_per_line_with_running_balances(account, published):
    with time_machine.travel(dt.datetime(2026, 3, 1, tzinfo=dt.UTC), tick=False):
        entries = batch(account, 10, 25, 5)
    assert [(e.points, e.balance_after, e.rule_code) for e in entries] == [
        (10, 10, "r0"),
        (25, 35, "r1"),
        (5, 40, "r2"),
    ]
    assert len({e.expires_at for e in entries}) == 1 and entries[0].expires_at > entries[0].created_at
    lots = list(PointLot.objects.filter(account=account).order_by("pk"))
    assert [(lot.entry_id, lot.points, lot.remaining) for lot in lots] == [(e.pk, e.points, e.points) for e in entries]
    row = Account.objects.get(pk=account.pk)
    assert (row.balance, row.lifetime_earned) == (40, 40) and row.last_activity_at is not None
    assert [kind for kind, _ in published] == ["points.earned"] * 3
    assert [data["balance"] for _, data in published] == [10, 35, 40]
    assert ledger_reconcile() == []


def test_a_batch_pays_a_debt_once_from_what_was_earned(account):
    Account.objects.filter(pk=account.pk).update(debt=30)
    batch(account, 10, 25)
    entries = list(LedgerEntry.objects.filter(account=account).order_by("pk"))
    assert [(e.kind, e.points, e.balance_after) for e in entries] == [
        ("earn", 10, 10),
        ("earn", 25, 35),
        ("reverse", -30, 5),
    ]
    row = Account.objects.get(pk=account.pk)
    assert (row.balance, row.debt, row.lifetime_earned) == (5, 0, 35)
    assert ledger_reconcile() == []


def test_a_batch_is_a_constant_number_of_queries(account, django_assert_max_num_queries, monkeypatch):
    batch(account, 1)
    monkeypatch.setattr(events, "_sinks", [lambda tenant, kind, data: None])  # the webhook sink's own writes aside
    with transaction.atomic():
        locked = account_lock(account.pk)
        # entries, lots, the account's figures: one statement on PostgreSQL
        with django_assert_max_num_queries(1 if connection.vendor == "postgresql" else 3):
            post_earns(
                account=locked,
                earns=[EarnLine(points=n, reason="x") for n in range(1, 30)],
                policy={"policy": "days", "days": 30},
            )


def test_a_line_without_positive_points_is_refused_and_nothing_is_written(account):
    with pytest.raises(ApplicationError) as refused:
        batch(account, 5, 0)
    assert refused.value.code == "invalid_points"
    assert not LedgerEntry.objects.exists() and Account.objects.get(pk=account.pk).balance == 0
