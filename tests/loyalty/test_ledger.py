import datetime as dt

import pytest
import time_machine

from common import events
from common.errors import ApplicationError, Conflict
from loyalty.ledger import (
    account_for,
    ledger_reconcile,
    points_adjust,
    points_transfer,
    post_earn,
    post_spend,
    post_spend_reversal,
)
from loyalty.ledger.selectors import entry_dict, ledger_entries, member_detail, member_points_summary
from loyalty.models import Account, LedgerEntry, LotConsumption, PointLot
from rewards.services.checkout import order_checkout
from tests.factories import MemberFactory, ProgramFactory, TierFactory, UserFactory

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


def earn(account, points, **kw):
    from django.db import transaction

    with transaction.atomic():
        return post_earn(account=account, points=points, reason="test", **kw)


def spend(account, points, **kw):
    from django.db import transaction

    with transaction.atomic():
        return post_spend(account=account, points=points, reason="spend", **kw)


def test_spending_consumes_oldest_lots_first(account):
    with time_machine.travel(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), tick=False):
        old = earn(account, 100)
    with time_machine.travel(dt.datetime(2026, 1, 5, tzinfo=dt.UTC), tick=False):
        new = earn(account, 50)
        entry = spend(account, 120)
    assert entry.points == -120 and entry.balance_after == 30
    assert {lot.entry_id: lot.remaining for lot in PointLot.objects.filter(account=account)} == {old.pk: 0, new.pk: 30}
    assert sorted(LotConsumption.objects.filter(entry=entry).values_list("points", flat=True)) == [20, 100]


def test_overspending_is_refused_and_changes_nothing(account):
    earn(account, 10)
    with pytest.raises(ApplicationError) as exc:
        spend(account, 11)
    assert exc.value.code == "points_insufficient"
    account.refresh_from_db()
    assert account.balance == 10 and LedgerEntry.objects.filter(account=account).count() == 1


def test_expired_lots_cannot_be_spent(account):
    with time_machine.travel(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), tick=False):
        earn(account, 100)
    with time_machine.travel(dt.datetime(2026, 2, 1, tzinfo=dt.UTC), tick=False):
        with pytest.raises(ApplicationError) as exc:
            spend(account, 1)
    assert exc.value.code == "points_insufficient"


def test_spend_with_same_idempotency_key_changes_nothing(account):
    earn(account, 100)
    first = spend(account, 30, idempotency_key="k1")
    again = spend(account, 30, idempotency_key="k1")
    assert first.pk == again.pk
    account.refresh_from_db()
    assert account.balance == 70
    with pytest.raises(Conflict) as exc:
        spend(account, 31, idempotency_key="k1")
    assert exc.value.code == "idempotency_key_reused"


def test_spend_reversal_restores_exactly_the_lots_once(account):
    with time_machine.travel(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), tick=False):
        a = earn(account, 40)
    with time_machine.travel(dt.datetime(2026, 1, 2, tzinfo=dt.UTC), tick=False):
        b = earn(account, 40)
        spent = spend(account, 60)
        earn(account, 5)
        from django.db import transaction

        with transaction.atomic():
            reversal = post_spend_reversal(entry=spent, reason="rollback")
    assert reversal.kind == "reverse" and reversal.points == 60 and reversal.reverses_id == spent.pk
    lots = {lot.entry_id: lot.remaining for lot in PointLot.objects.filter(account=account)}
    assert lots[a.pk] == 40 and lots[b.pk] == 40
    with pytest.raises(Conflict) as exc, transaction.atomic():
        post_spend_reversal(entry=spent, reason="again")
    assert exc.value.code == "already_reversed"
    assert ledger_reconcile() == []


@pytest.mark.parametrize(
    ("points", "reason", "details"),
    [
        (10, "  ", {"reason": "required"}),
        (10, None, {"reason": "required"}),
        (0, "typo", {"points": "must not be 0"}),
        ("10", "typo", {"points": "must be a whole number"}),
        (True, "", {"reason": "required", "points": "must be a whole number"}),
    ],
)
def test_adjustment_needs_a_reason_and_whole_points(account, points, reason, details):
    with pytest.raises(ApplicationError) as exc:
        points_adjust(account=account, points=points, reason=reason, staff_user=UserFactory())
    assert (exc.value.code, exc.value.status, exc.value.details) == ("invalid_adjustment", 400, details)
    assert not LedgerEntry.objects.filter(account=account).exists()


def test_adjustments_up_and_down_are_recorded_with_the_staff_user(account):
    staff = UserFactory()
    up = points_adjust(account=account, points=25, reason="goodwill", staff_user=staff, idempotency_key="t-1")
    assert points_adjust(account=account, points=25, reason="goodwill", staff_user=staff, idempotency_key="t-1") == up
    down = points_adjust(account=account, points=-5, reason="typo", staff_user=staff)
    assert (up.kind, up.staff_user, down.points, down.balance_after) == ("adjust", staff, -5, 20)
    with pytest.raises(ApplicationError) as exc:
        points_adjust(account=account, points=-21, reason="too much", staff_user=staff)
    assert exc.value.code == "points_insufficient"


def test_ledger_entries_cannot_be_changed_or_deleted(account):
    entry = earn(account, 10)
    with pytest.raises(TypeError):
        entry.save()
    with pytest.raises(TypeError):
        LedgerEntry.objects.filter(pk=entry.pk).update(points=11)
    with pytest.raises(TypeError):
        LedgerEntry.objects.filter(pk=entry.pk).delete()


def test_transfer_moves_points_with_their_expiry(tenant, account):
    with time_machine.travel(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), tick=False):
        earned = earn(account, 100)
    other = MemberFactory(tenant=tenant)
    with time_machine.travel(dt.datetime(2026, 1, 10, tzinfo=dt.UTC), tick=False):
        result = points_transfer(
            from_member=account.member, to_member=other, points=30, reason="family", idempotency_key="tr"
        )
        again = points_transfer(
            from_member=account.member, to_member=other, points=30, reason="family", idempotency_key="tr"
        )
    assert not again.created and again.debit == result.debit
    assert (result.debit.points, result.credit.points) == (-30, 30)
    lot = PointLot.objects.get(entry=result.credit)
    assert lot.expires_at == earned.expires_at
    assert Account.objects.get(member=other).balance == 30
    assert ledger_reconcile(tenant=tenant) == []


def test_transfer_between_tenants_is_refused(account, other_tenant):
    earn(account, 10)
    with pytest.raises(ApplicationError) as exc:
        points_transfer(from_member=account.member, to_member=MemberFactory(tenant=other_tenant), points=5, reason="x")
    assert exc.value.code == "transfer_cross_tenant"


def test_reconcile_reports_a_cached_balance_that_drifted(account):
    earn(account, 10)
    assert ledger_reconcile() == []
    Account.objects.filter(pk=account.pk).update(balance=11)
    [row] = ledger_reconcile()
    assert (row["pk"], row["balance"], row["entries_total"], row["lots_total"]) == (account.pk, 11, 10, 10)


def test_member_read_is_a_constant_number_of_queries(tenant, django_assert_max_num_queries):
    program = ProgramFactory(tenant=tenant, expiry_policy={"policy": "rolling_quarter", "years": 2})
    TierFactory(program=program, code="silver", name="Silver", threshold=0)
    member = MemberFactory(tenant=tenant)
    from tests.factories import EarningRuleFactory

    EarningRuleFactory(program=program)
    for n in range(12):
        with time_machine.travel(dt.datetime(2026, 1 + n, 3, tzinfo=dt.UTC), tick=False):
            order_checkout(
                tenant=tenant, member=member, order_id=f"o{n}", amount="10.00", currency=tenant.currency, items=[]
            )
    with time_machine.travel(dt.datetime(2026, 12, 20, tzinfo=dt.UTC), tick=False):
        with django_assert_max_num_queries(3):
            detail = member_detail(member)
    assert detail["tier"] == {"code": "silver", "name": "Silver"}
    assert detail["points"]["balance"] == 120 and detail["points"]["lifetime_earned"] == 120
    assert detail["points"]["expiring"][0] == {"points": 30, "expires_at": "2028-03-31T21:59:59+00:00"}
    with django_assert_max_num_queries(1):
        rows = [entry_dict(e) for e in ledger_entries(member)[:50]]
    assert len(rows) == 12 and rows[0]["order_id"] == "o11"
    assert set(rows[0]) == {
        "id",
        "kind",
        "points",
        "balance_after",
        "reason",
        "order_id",
        "campaign",
        "created_at",
        "expires_at",
    }


def test_points_summary_of_member_without_account(tenant):
    assert member_points_summary(MemberFactory(tenant=tenant)) == {
        "balance": 0,
        "pending": 0,
        "lifetime_earned": 0,
        "expiring": [],
    }


def test_earn_emits_points_earned(tenant, published):
    from tests.factories import earning_setup

    _, _, member = earning_setup(tenant)
    order_checkout(tenant=tenant, member=member, order_id="x", amount="5.00", currency=tenant.currency, items=[])
    assert [e for e, _ in published].count("points.earned") == 1
    data = dict(published)["points.earned"]
    assert (data["member"], data["points"], data["order_id"]) == (member.external_id, 5, "x")


def test_frozen_tenant_refuses_spending_but_allows_putting_points_back(account):
    from django.db import transaction

    from members.services import tenant_set_frozen

    earn(account, 50)
    spent = spend(account, 20)
    tenant_set_frozen(tenant=account.tenant, frozen=True, reason="incident")
    with pytest.raises(ApplicationError) as exc:
        spend(account, 1)
    assert exc.value.code == "tenant_frozen"
    with transaction.atomic():
        post_spend_reversal(entry=spent, reason="rollback")
    account.refresh_from_db()
    assert account.balance == 50
