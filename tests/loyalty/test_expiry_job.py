import datetime as dt

import pytest
import time_machine
from django.core import mail

from common import events
from loyalty.ledger import ledger_reconcile, points_expire_due
from loyalty.ledger.selectors import member_points_summary
from loyalty.models import Account, ExpiryWarning, LedgerEntry, PointLot
from loyalty.tasks import expire_points, send_expiry_warnings
from rewards.services.checkout import order_checkout
from tests.factories import EarningRuleFactory, MemberFactory, ProgramFactory, TierFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC


@pytest.fixture
def published():
    seen = []

    def sink(tenant, event_type, data):
        seen.append((event_type, data))

    events._sinks.append(sink)
    yield seen
    events._sinks.remove(sink)


def pay(tenant, member, order_id, amount, when):
    with time_machine.travel(when, tick=False):
        return order_checkout(
            tenant=tenant, member=member, order_id=order_id, amount=amount, currency=tenant.currency, items=[]
        )


def setup(tenant, expiry, **program):
    program = ProgramFactory(tenant=tenant, expiry_policy=expiry, **program)
    EarningRuleFactory(program=program)
    return program


def test_quarter_example_expires_on_31_march_2021(tenant, published):
    tenant.time_zone = "UTC"
    tenant.save()
    setup(tenant, {"policy": "rolling_quarter", "years": 2})
    member = MemberFactory(tenant=tenant)
    pay(tenant, member, "q1a", "10.00", dt.datetime(2019, 1, 1, 9, tzinfo=UTC))
    pay(tenant, member, "q1b", "20.00", dt.datetime(2019, 3, 31, 18, tzinfo=UTC))
    pay(tenant, member, "q2", "40.00", dt.datetime(2019, 4, 1, 9, tzinfo=UTC))
    with time_machine.travel(dt.datetime(2021, 3, 31, 23, 59, 58, tzinfo=UTC), tick=False):
        assert points_expire_due().lots == 0
    with time_machine.travel(dt.datetime(2021, 3, 31, 23, 59, 59, tzinfo=UTC), tick=False):
        result = points_expire_due()
    assert (result.accounts, result.lots, result.points) == (1, 2, 30)
    [entry] = LedgerEntry.objects.filter(kind="expire")
    assert (entry.points, entry.balance_after) == (-30, 40)
    assert [d for e, d in published if e == "points.expired"][0]["points"] == 30
    with time_machine.travel(dt.datetime(2021, 6, 30, 23, 59, 59, tzinfo=UTC), tick=False):
        assert points_expire_due().points == 40
    assert Account.objects.get(member=member).balance == 0
    assert ledger_reconcile() == []


def test_expiry_job_writes_one_entry_per_account_and_is_safe_to_rerun(tenant):
    setup(tenant, {"policy": "days", "days": 10})
    members = [MemberFactory(tenant=tenant) for _ in range(3)]
    for n, member in enumerate(members):
        for k in range(4):
            pay(tenant, member, f"o{n}-{k}", "5.00", dt.datetime(2026, 1, 1 + k, tzinfo=UTC))
    with time_machine.travel(dt.datetime(2026, 2, 1, tzinfo=UTC), tick=False):
        result = points_expire_due(batch_lots=2)  # several batches
        again = points_expire_due()
        task_again = expire_points.delay().get()
    assert (result.accounts, result.lots, result.points) == (3, 12, 60)
    assert result.batches >= 2
    assert (again.lots, task_again["lots"]) == (0, 0)
    assert LedgerEntry.objects.filter(kind="expire").count() == 3
    assert not PointLot.objects.filter(remaining__gt=0).exists()
    assert ledger_reconcile() == []


def test_days_policy_with_tier_override(tenant):
    program = setup(tenant, {"policy": "days", "days": 30})
    TierFactory(program=program, code="gold", threshold=0, expiry_policy={"policy": "days", "days": 1095})
    member = MemberFactory(tenant=tenant)
    pay(tenant, member, "first", "10.00", dt.datetime(2026, 1, 1, tzinfo=UTC))  # earns, then becomes gold
    pay(tenant, member, "gold", "10.00", dt.datetime(2026, 1, 2, tzinfo=UTC))
    lots = {lot.order_id: lot.expires_at for lot in PointLot.objects.all()}
    assert lots == {
        "first": dt.datetime(2026, 1, 31, tzinfo=UTC),
        "gold": dt.datetime(2029, 1, 1, tzinfo=UTC),
    }


def test_inactivity_expires_everything_after_months_without_activity(tenant):
    setup(tenant, {"policy": "inactivity", "months": 6})
    member = MemberFactory(tenant=tenant)
    pay(tenant, member, "a", "10.00", dt.datetime(2026, 1, 10, tzinfo=UTC))
    pay(tenant, member, "b", "10.00", dt.datetime(2026, 5, 10, tzinfo=UTC))  # activity pushes "a" forward too
    with time_machine.travel(dt.datetime(2026, 11, 10, 0, 59, 59, tzinfo=UTC), tick=False):
        assert points_expire_due().points == 0  # 6 months after 10 May 02:00 Berlin time is 10 Nov 01:00 UTC
    with time_machine.travel(dt.datetime(2026, 11, 10, 1, 0, tzinfo=UTC), tick=False):
        assert points_expire_due().points == 20
    assert member_points_summary(member)["balance"] == 0


def test_end_of_month_policy_over_a_leap_day(tenant):
    tenant.time_zone = "UTC"
    tenant.save()
    setup(tenant, {"policy": "end_of_period", "period": "month", "count": 1})
    member = MemberFactory(tenant=tenant)
    pay(tenant, member, "a", "10.00", dt.datetime(2024, 1, 31, 12, tzinfo=UTC))
    with time_machine.travel(dt.datetime(2024, 2, 29, 23, 59, 58, tzinfo=UTC), tick=False):
        assert points_expire_due().points == 0
    with time_machine.travel(dt.datetime(2024, 3, 1, tzinfo=UTC), tick=False):
        assert points_expire_due().points == 10


def test_expiry_warning_is_sent_once_per_lot_window(tenant, published, django_capture_on_commit_callbacks):
    setup(tenant, {"policy": "days", "days": 30}, expiry_warning_days=7)
    member = MemberFactory(tenant=tenant, email="ada@example.com", email_consent=True)
    pay(tenant, member, "a", "10.00", dt.datetime(2026, 1, 1, tzinfo=UTC))
    pay(tenant, member, "b", "5.00", dt.datetime(2026, 1, 20, tzinfo=UTC))
    with time_machine.travel(dt.datetime(2026, 1, 20, tzinfo=UTC), tick=False):
        assert send_expiry_warnings.delay().get() == {"warnings": 0}
    with time_machine.travel(dt.datetime(2026, 1, 26, tzinfo=UTC), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert send_expiry_warnings.delay().get() == {"warnings": 1}
            assert send_expiry_warnings.delay().get() == {"warnings": 0}
    warning = ExpiryWarning.objects.get()
    assert (warning.points, warning.expires_at) == (10, dt.datetime(2026, 1, 31, tzinfo=UTC))
    assert [d["points"] for e, d in published if e == "points.expiring_soon"] == [10]
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ada@example.com"]
    assert "10 points" in mail.outbox[0].subject


def test_expiry_warning_email_waits_for_email_consent_at_sending_time(
    tenant, published, django_capture_on_commit_callbacks
):
    from members.services import member_consent_set

    setup(tenant, {"policy": "days", "days": 30}, expiry_warning_days=7)
    member = MemberFactory(tenant=tenant, email="ada@example.com", email_consent=True)
    pay(tenant, member, "a", "10.00", dt.datetime(2026, 1, 1, tzinfo=UTC))
    with time_machine.travel(dt.datetime(2026, 1, 26, tzinfo=UTC), tick=False):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            assert send_expiry_warnings.delay().get() == {"warnings": 1}
        member_consent_set(member=member, consent={"email": False})  # withdrawn before the email leaves
        for callback in callbacks:
            callback()
    assert [d["points"] for e, d in published if e == "points.expiring_soon"] == [10]
    assert mail.outbox == []
