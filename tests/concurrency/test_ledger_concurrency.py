"""50 real threads against PostgreSQL: caps and balances hold under concurrent calls."""

import threading

import pytest
from django.db import connection, transaction

from common.errors import ApplicationError
from loyalty.ledger import account_for, ledger_reconcile, points_adjust, post_spend
from loyalty.models import Account, EarningCapUsage, LedgerEntry
from loyalty.services.earning import custom_event_record
from rewards.services.checkout import order_checkout
from tests.factories import EarningRuleFactory, MemberFactory, ProgramFactory, earning_setup

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
THREADS = 50


def run_threads(target, n=THREADS):
    barrier = threading.Barrier(n)
    outcomes, errors = [], []

    def worker(i):
        try:
            barrier.wait(timeout=30)
            outcomes.append(target(i))
        except Exception as exc:  # collected and asserted by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return outcomes, errors


def test_monthly_cap_is_never_exceeded_by_50_concurrent_events(tenant):
    program = ProgramFactory(tenant=tenant)
    EarningRuleFactory(
        program=program,
        trigger="event",
        event_name="social_liked",
        points=10,
        points_per_unit="0",
        cap_points=100,
        cap_period="month",
    )
    member = MemberFactory(tenant=tenant)

    outcomes, errors = run_threads(
        lambda i: custom_event_record(tenant=tenant, member=member, event="social_liked", metadata={"n": i})
    )
    assert errors == []
    assert sorted(r.points_earned for r in outcomes) == [0] * 40 + [10] * 10
    account = Account.objects.get(member=member)
    assert account.balance == 100 == account.lifetime_earned
    assert EarningCapUsage.objects.get().points == 100
    assert member.events.count() == THREADS
    assert ledger_reconcile() == []


def test_50_concurrent_spends_never_overspend(tenant):
    program = ProgramFactory(tenant=tenant)
    member = MemberFactory(tenant=tenant)
    account = account_for(member=member, program=program)
    points_adjust(account=account, points=100, reason="seed", staff_user=None)

    def spend(i):
        with transaction.atomic(durable=True):
            return post_spend(account=account, points=10, reason=f"spend {i}")

    outcomes, errors = run_threads(spend)
    assert len(outcomes) == 10
    assert len(errors) == 40 and all(isinstance(e, ApplicationError) for e in errors)
    assert {e.code for e in errors} == {"points_insufficient"}
    account.refresh_from_db()
    assert account.balance == 0
    assert sorted(LedgerEntry.objects.filter(kind="redeem").values_list("balance_after", flat=True)) == list(
        range(0, 100, 10)
    )
    assert ledger_reconcile() == []


def test_50_concurrent_posts_of_one_order_earn_once(tenant):
    _, _, member = earning_setup(tenant)

    outcomes, errors = run_threads(
        lambda i: order_checkout(
            tenant=tenant, member=member, order_id="same", amount="10.00", currency=tenant.currency, items=[]
        )
    )
    assert errors == []
    assert sum(r.created for r in outcomes) == 1
    assert {r.points_earned for r in outcomes} == {10}
    assert Account.objects.get(member=member).balance == 10
