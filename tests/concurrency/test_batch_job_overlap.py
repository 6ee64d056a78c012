"""Two overlapping runs of each batch job, on real PostgreSQL with two threads (two connections).

The first run is held inside its transaction (after it took its job's lock, or after it wrote its batch)
while the second starts: the second must end quickly with nothing done ("skipped" / 0), without an error,
and the work be done exactly once (ledger balance == sum of entries == sum of lots).
"""

import datetime as dt
import threading
import time

import pytest
import time_machine
from django.db import connection, transaction

from campaigns import codes as code_gen_module
from campaigns.models import Code, CodeGenerationJob
from campaigns.services import code_generation_run
from common import job_locks
from integrations import idempotency as purge_module
from integrations import webhooks
from integrations.models import Event, IdempotencyRecord, WebhookAttempt, WebhookDelivery
from loyalty.ledger import jobs, ledger_reconcile, pending_release_due, points_expire_due
from loyalty.ledger.jobs import expiry_warnings_send
from loyalty.models import Account, ExpiryWarning, LedgerEntry, PendingPoints, TierChange
from loyalty.services import tiers as tiers_module
from loyalty.services.tiers import tiers_reevaluate
from rewards.services.checkout import order_checkout
from tests.factories import (
    CampaignFactory,
    EarningRuleFactory,
    IntegrationFactory,
    MemberFactory,
    ProgramFactory,
    TierFactory,
    WebhookEndpointFactory,
)
from tests.integrations.webhook_receiver import Receiver

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
UTC = dt.UTC
START = dt.datetime(2026, 1, 5, 12, tzinfo=UTC)


def two_runs_at_once(run, hold, *, before=False):
    """Run `run()` in thread "first", and again in thread "second" once the first is held by `hold`.

    `hold` is (module, attribute): a function the first run calls inside its transaction; the first call
    from the first thread signals and then sleeps (after the call, or `before` it), keeping that transaction
    (and its locks) open. Returns ({"first": result, "second": result, ...}, errors).
    """
    module, name = hold
    real = getattr(module, name)
    inside = threading.Event()

    def holding(*args, **kwargs):
        held = threading.current_thread().name == "first" and not inside.is_set()
        if held and before:
            inside.set()
            time.sleep(1.0)
        value = real(*args, **kwargs)
        if held and not before:
            inside.set()
            time.sleep(1.0)  # the second run starts meanwhile, against this open transaction
        return value

    setattr(module, name, holding)
    results, errors = {}, []

    def worker():
        me = threading.current_thread().name
        try:
            if me == "second":
                assert inside.wait(timeout=30), "the first run never reached its hold point"
            started = time.monotonic()
            results[me] = run()
            results[f"{me}_seconds"] = time.monotonic() - started
        except Exception as exc:  # collected and asserted by the test
            errors.append(exc)
        finally:
            connection.close()

    try:
        threads = [threading.Thread(target=worker, name=n) for n in ("first", "second")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads)
    finally:
        setattr(module, name, real)
    return results, errors


def pay(tenant, member, order_id, amount, when):
    with time_machine.travel(when, tick=False):
        return order_checkout(tenant=tenant, member=member, order_id=order_id, amount=amount, currency="EUR")


def members_with_points(tenant, n=3, **rule):
    program = ProgramFactory(tenant=tenant, expiry_policy={"policy": "days", "days": 10}, expiry_warning_days=30)
    EarningRuleFactory(program=program, **rule)
    members = [MemberFactory(tenant=tenant) for _ in range(n)]
    for i, member in enumerate(members):
        pay(tenant, member, f"o-{i}-a", "10.00", START)
        pay(tenant, member, f"o-{i}-b", "20.00", START)
    return program, members


def assert_ledger_consistent():
    assert ledger_reconcile() == []
    for account in Account.objects.all():
        assert account.balance == sum(LedgerEntry.objects.filter(account=account).values_list("points", flat=True))


def test_two_overlapping_expiry_runs_expire_each_lot_once_without_error(tenant):
    """Issue 10: the second run sampled the lots the first had not committed yet, then waited on the account
    locks and, once they were free, lowered the balances by a NULL sum (IntegrityError)."""
    _, members = members_with_points(tenant)
    due = START + dt.timedelta(days=11)
    # Held where the first run has written its batch (entries, lots, balances) but not committed it.
    results, errors = two_runs_at_once(lambda: points_expire_due(now=due), (jobs, "publish"))
    assert errors == []
    assert LedgerEntry.objects.filter(kind="expire").count() == len(members)
    assert sum(r.points for k, r in results.items() if not k.endswith("seconds")) == 30 * len(members)
    assert results["second"].skipped and results["second"].points == 0
    assert not results["first"].skipped
    assert all(a.balance == 0 for a in Account.objects.all())
    assert_ledger_consistent()


def _expiry(tenant):
    members_with_points(tenant)
    return (
        lambda: points_expire_due(now=START + dt.timedelta(days=11)),
        (jobs, "job_lock_take"),
        lambda r: (r.skipped, r.points),
        lambda: LedgerEntry.objects.filter(kind="expire").count(),
        ((False, 90), (True, 0), 3),
    )


def _pending_release(tenant):
    members_with_points(tenant, pending_days=5)
    return (
        lambda: pending_release_due(now=START + dt.timedelta(days=6)),
        (jobs, "job_lock_take"),
        lambda r: (r.skipped, r.released),
        lambda: (
            LedgerEntry.objects.filter(kind="earn").count(),
            PendingPoints.objects.filter(status=PendingPoints.Status.RELEASED).count(),
        ),
        ((False, 6), (True, 0), (6, 6)),
    )


def _expiry_warnings(tenant):
    members_with_points(tenant)
    return (
        lambda: expiry_warnings_send(now=START + dt.timedelta(days=2)),
        (jobs, "job_lock_take"),
        lambda r: r,
        lambda: ExpiryWarning.objects.count(),
        (3, 0, 3),
    )


def _tiers(tenant):
    program = ProgramFactory(tenant=tenant, expiry_policy={"policy": "never"})
    EarningRuleFactory(program=program)
    TierFactory(program=program, code="bronze", threshold=0)
    TierFactory(program=program, code="silver", threshold=20)
    for i in range(3):
        pay(tenant, MemberFactory(tenant=tenant), f"o-{i}", "30.00", START)  # up to silver at once
    later = START + dt.timedelta(days=800)  # nothing earned in the window since: down at the evaluation
    moves = TierChange.objects.count()
    return (
        lambda: tiers_reevaluate(program=program, now=later),
        (tiers_module, "job_lock_take"),
        lambda r: r,
        lambda: TierChange.objects.count() - moves,
        (3, 0, 3),
    )


def _idempotency_purge(tenant):
    integration = IntegrationFactory(tenant=tenant)
    old = START - dt.timedelta(days=10)
    IdempotencyRecord.objects.bulk_create(
        IdempotencyRecord(
            tenant=tenant,
            integration=integration,
            key=f"k-{i}",
            method="POST",
            path="/api/v1/events",
            request_hash="x",
            created_at=old,
            locked_until=old,
        )
        for i in range(5)
    )
    return (
        lambda: purge_module.idempotency_records_purge(older_than=dt.timedelta(days=1), chunk=2),
        (purge_module, "job_lock_take"),
        lambda r: r,
        lambda: IdempotencyRecord.objects.count(),
        (5, 0, 0),
    )


JOBS = {
    "points_expire_due": _expiry,
    "pending_release_due": _pending_release,
    "expiry_warnings_send": _expiry_warnings,
    "tiers_reevaluate": _tiers,
    "idempotency_records_purge": _idempotency_purge,
}


@pytest.mark.parametrize("job", list(JOBS))
def test_a_run_overlapping_another_is_skipped_quickly_and_the_work_is_done_once(tenant, job):
    run, hold, outcome, effect, (first, second, done) = JOBS[job](tenant)
    results, errors = two_runs_at_once(run, hold)
    assert errors == []
    assert (outcome(results["first"]), outcome(results["second"])) == (first, second)
    assert results["second_seconds"] < 1.0  # it did not wait for the first run's transaction
    assert effect() == done
    assert_ledger_consistent()
    # And a later run finds nothing left to do.
    assert outcome(run()) in ((False, 0), 0)


def test_two_overlapping_runs_of_a_code_generation_job_make_its_codes_once(tenant):
    """The task is acknowledged late: re-delivered while a worker still runs it, both runs counted the
    same codes as owed and made them twice."""
    campaign = CampaignFactory(tenant=tenant)
    job = CodeGenerationJob.objects.create(tenant_id=tenant.pk, campaign=campaign, pattern="GEN-####-????", count=40)
    # Held where the first run has taken the job and not made a code yet.
    results, errors = two_runs_at_once(
        lambda: code_generation_run(job_id=job.pk), (code_gen_module, "generate_codes"), before=True
    )
    assert errors == []
    assert results["second_seconds"] < 1.0
    assert Code.objects.filter(campaign=campaign).count() == 40
    job.refresh_from_db()
    assert (job.status, job.created) == ("done", 40)
    campaign.refresh_from_db()
    assert campaign.codes_count == 40


def test_two_overlapping_webhook_sweeps_attempt_each_delivery_once(tenant):
    """The sweep needs no job lock: each delivery is claimed by one conditional UPDATE, so the sweep that
    comes second finds the deliveries taken and sends nothing."""
    with Receiver(delay=0.2) as receiver:
        endpoint = WebhookEndpointFactory(tenant=tenant, url=receiver.url, event_types=["member.created"])
        for n in range(3):
            event = Event.objects.create(tenant=tenant, type="member.created", data={"n": n})
            WebhookDelivery.objects.create(tenant=tenant, event=event, endpoint=endpoint)
        results, errors = two_runs_at_once(webhooks.dispatch_due_webhooks, (webhooks, "webhook_deliveries_due"))
    assert errors == []
    assert len(receiver.requests) == 3
    assert sorted(WebhookDelivery.objects.values_list("attempts", "status")) == [(1, "succeeded")] * 3
    assert WebhookAttempt.objects.count() == 3


def test_the_job_lock_is_per_job_and_released_with_its_transaction():
    with transaction.atomic():
        assert job_locks.job_lock_take("a")
        assert job_locks.job_lock_take("a")  # re-entrant within the transaction
    assert job_locks.job_lock_key("a") != job_locks.job_lock_key("b")
    with pytest.raises(transaction.TransactionManagementError):
        job_locks.job_lock_take("a")
    with job_locks.job_run_lock("run") as mine:
        assert mine
        with connection.cursor() as cursor:  # held by this session until the block ends
            cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
            assert cursor.fetchone()[0] == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
        assert cursor.fetchone()[0] == 0
