"""Limits hold under concurrent redemptions on PostgreSQL (real threads, one connection each).

PostgreSQL here allows 100 connections shared by several test runs, so the 200 threads start together
at a barrier and at most `MAX_CONNECTIONS` of them hold a connection at any instant: the rows are
still contended by dozens of transactions at once.
"""

import threading
from decimal import Decimal as D

import pytest
from django.db import connection

from campaigns.models import Campaign, Code
from common.errors import ApplicationError
from rewards.models import Redemption, RedemptionCode
from rewards.services.redemption import redeem, redemption_rollback
from tests.factories import CampaignFactory, CodeFactory, EngineMemberFactory, GiftCardCodeFactory, TenantFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

MAX_CONNECTIONS = 30


def run_concurrently(n: int, fn) -> list[tuple[str, object]]:
    barrier = threading.Barrier(n)
    gate = threading.Semaphore(MAX_CONNECTIONS)
    results: list[tuple[str, object]] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        barrier.wait()
        with gate:
            try:
                outcome = ("ok", fn(i))
            except ApplicationError as exc:
                outcome = (exc.code, exc)
            except Exception as exc:  # a deadlock or an integrity error would show here
                outcome = ("error", repr(exc))
            finally:
                connection.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == n
    return results


def reason_of(exc: ApplicationError) -> str:
    return [c for c in exc.details["codes"] if not c["valid"]][0]["reason"]


def test_200_redemptions_of_a_code_with_one_use_left_give_exactly_one_success():
    tenant = TenantFactory()
    code = CodeFactory(campaign__tenant=tenant, usage_limit=3, redeemed_count=2)
    members = [EngineMemberFactory(tenant=tenant) for _ in range(20)]
    order = {"amount": "50.00"}

    results = run_concurrently(
        200,
        lambda i: redeem(tenant=tenant, member=members[i % 20], order_id=f"o-{i}", order=order, codes=[code.code]).pk,
    )
    outcomes = [kind for kind, _ in results]
    assert outcomes.count("ok") == 1, [r for r in results if r[0] == "error"][:3]
    assert outcomes.count("redemption_failed") == 199
    assert {reason_of(exc) for kind, exc in results if kind == "redemption_failed"} == {"redemptions_total_exceeded"}
    code.refresh_from_db()
    assert code.redeemed_count == 3
    assert Redemption.objects.count() == 1
    assert Campaign.objects.get(pk=code.campaign_id).redemptions_count == 1


def test_concurrent_redemptions_never_pass_the_discount_budget_by_a_cent():
    tenant = TenantFactory()
    campaign = CampaignFactory(tenant=tenant, discount={"type": "percent", "value": "10"}, discount_total=D("100.00"))
    shared = CodeFactory(campaign=campaign, usage_limit=None, code="SHARED10")
    members = [EngineMemberFactory(tenant=tenant) for _ in range(10)]
    amounts = [D("50.00") + D(i * 7 % 101) + D("0.37") for i in range(120)]  # discounts of 5.04 to 15.04

    results = run_concurrently(
        120,
        lambda i: (
            redeem(
                tenant=tenant,
                member=members[i % 10],
                order_id=f"b-{i}",
                order={"amount": str(amounts[i])},
                codes=[shared.code],
            ).discount
        ),
    )
    assert not [r for r in results if r[0] == "error"]
    campaign.refresh_from_db()
    granted = sum((d for kind, d in results if kind == "ok"), D("0"))
    assert campaign.discount_used == granted <= D("100.00")
    lines = RedemptionCode.objects.filter(campaign=campaign)
    assert sum(line.discount for line in lines) == granted
    refused = {reason_of(exc) for kind, exc in results if kind == "redemption_failed"}
    assert refused == {"discount_budget_exceeded"}
    # The budget is used up to less than the smallest discount still asked for.
    assert D("100.00") - granted < D("15.04")


def test_concurrent_gift_card_debits_never_go_below_zero():
    tenant = TenantFactory()
    card = GiftCardCodeFactory(campaign__tenant=tenant)  # 50.00
    results = run_concurrently(
        40,
        lambda i: (
            redeem(
                tenant=tenant,
                member=None,
                order_id=f"g-{i}",
                order={"amount": "100.00"},
                codes=[{"code": card.code, "amount": "5.00"}],
            ).pk
        ),
    )
    assert [kind for kind, _ in results].count("ok") == 10
    card.refresh_from_db()
    assert card.balance == D("0.00") and card.redeemed_count == 10


def test_concurrent_rollbacks_of_one_redemption_restore_once():
    tenant = TenantFactory()
    code = CodeFactory(campaign__tenant=tenant, usage_limit=1)
    redemption = redeem(tenant=tenant, member=None, order_id="r-1", order={"amount": "10.00"}, codes=[code.code])
    results = run_concurrently(20, lambda i: redemption_rollback(redemption=redemption, reason=f"try {i}").pk)
    kinds = [kind for kind, _ in results]
    assert kinds.count("ok") == 1 and kinds.count("already_rolled_back") == 19
    assert Code.objects.get(pk=code.pk).redeemed_count == 0
    assert Campaign.objects.get(pk=code.campaign_id).redemptions_count == 0


def test_concurrent_redemptions_by_one_member_respect_the_per_member_limit():
    tenant = TenantFactory()
    campaign = CampaignFactory(tenant=tenant, redemptions_per_member=2, discount={"type": "amount", "value": "1.00"})
    shared = CodeFactory(campaign=campaign, usage_limit=None, code="TWICE")
    member = EngineMemberFactory(tenant=tenant)
    results = run_concurrently(
        50,
        lambda i: (
            redeem(tenant=tenant, member=member, order_id=f"pm-{i}", order={"amount": "10.00"}, codes=[shared.code]).pk
        ),
    )
    kinds = [kind for kind, _ in results]
    assert kinds.count("ok") == 2
    assert {reason_of(exc) for kind, exc in results if kind != "ok"} == {"redemptions_per_member_exceeded"}
    assert Campaign.objects.get(pk=campaign.pk).redemptions_count == 2
