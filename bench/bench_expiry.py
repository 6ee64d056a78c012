"""Benchmark: the expiry job over 1,000,000 lots on PostgreSQL (prints lots/s).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loyalty python bench/bench_expiry.py

Works in its own throwaway database (`bench_<name>`, dropped at the end), builds its data with set-based SQL
(INSERT ... SELECT generate_series), then times `loyalty.ledger.points_expire_due` (which also emits one
`points.expired` event per account through the webhook sink), a second run (must find nothing), and the
reconciliation query; first the fixed reference: one set-based UPDATE emptying the same lots (rolled back).
Sizes: BENCH_LOTS (default 1,000,000), BENCH_LOTS_PER_ACCOUNT (default 20), BENCH_BATCH_LOTS (default 20,000).
"""

import datetime as dt
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
os.environ.setdefault("SECRET_KEY", "bench-only")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

LOTS = int(os.environ.get("BENCH_LOTS", 1_000_000))
PER_ACCOUNT = int(os.environ.get("BENCH_LOTS_PER_ACCOUNT", 20))
BATCH_LOTS = int(os.environ.get("BENCH_BATCH_LOTS", 20_000))
POINTS = 10


class DisableMigrations(dict):
    """Build tables straight from the models, as the test suite does (`--no-migrations`)."""

    def __contains__(self, item):
        return True

    def __getitem__(self, item):
        return None


def build_data(now: dt.datetime, lots_wanted: int, slug: str) -> tuple[int, int]:
    from loyalty.models import Account, LedgerEntry, PointLot, Program
    from members.models import Member, Tenant

    tenant = Tenant.objects.create(slug=slug, name="Bench", currency="EUR", time_zone="Europe/Berlin")
    program = Program.objects.create(
        tenant=tenant, code="club", name="Club", currency="EUR", expiry_policy={"policy": "days", "days": 365}
    )
    accounts = lots_wanted // PER_ACCOUNT
    earned_at = now - dt.timedelta(days=400)
    expires_at = now - dt.timedelta(days=35)
    m, a, e, lot = (
        Member._meta.db_table,
        Account._meta.db_table,
        LedgerEntry._meta.db_table,
        PointLot._meta.db_table,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {m} (tenant_id, external_id, email, name, phone, country, city, attributes, "
            f"marketing_consent, referral_code, status, status_reason, created_at, updated_at) "
            f"SELECT %s, 'b-' || g, 'b' || g || '@example.com', 'Bench ' || g, '', 'DE', '', '{{}}'::jsonb, false, "
            f"'B-' || g, 'active', '', %s, %s FROM generate_series(1, %s) g",
            [tenant.pk, earned_at, earned_at, accounts],
        )
        cursor.execute(
            f"INSERT INTO {a} (tenant_id, member_id, program_id, balance, pending, lifetime_earned, debt, "
            f"last_activity_at, created_at) SELECT %s, id, %s, %s, 0, %s, 0, %s, %s FROM {m} WHERE tenant_id = %s",
            [tenant.pk, program.pk, PER_ACCOUNT * POINTS, PER_ACCOUNT * POINTS, earned_at, earned_at, tenant.pk],
        )
        cursor.execute(
            f"INSERT INTO {e} (tenant_id, account_id, kind, points, balance_after, reason, order_id, rule_code, "
            f"expires_at, created_at) SELECT %s, acc.id, 'earn', %s, k * %s, 'bench', '', '', %s, %s "
            f"FROM {a} acc CROSS JOIN generate_series(1, %s) k WHERE acc.program_id = %s",
            [tenant.pk, POINTS, POINTS, expires_at, earned_at, PER_ACCOUNT, program.pk],
        )
        cursor.execute(
            f"INSERT INTO {lot} (tenant_id, account_id, entry_id, points, remaining, earned_at, expires_at, "
            f"inactivity, order_id) "
            f"SELECT tenant_id, account_id, id, points, points, created_at, expires_at, false, '' "
            f"FROM {e} WHERE tenant_id = %s",
            [tenant.pk],
        )
        for table in (m, a, e, lot):
            cursor.execute(f"ANALYZE {table}")
    return accounts, PointLot.objects.filter(tenant=tenant, remaining__gt=0).count()


def main() -> None:
    if connection.vendor != "postgresql":
        sys.exit("bench_expiry needs PostgreSQL: set DATABASE_URL=postgres://...")
    settings.MIGRATION_MODULES = DisableMigrations()
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"bench_{connection.settings_dict['NAME']}"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        from common import events
        from integrations.models import Event
        from loyalty.ledger import ledger_reconcile, points_expire_due
        from loyalty.models import LedgerEntry

        now = dt.datetime.now(dt.UTC)
        # Run A: the set-based job alone (event sinks detached) over LOTS lots.
        started = time.perf_counter()
        accounts, lots = build_data(now, LOTS, "bench-a")
        print(f"data: {lots:,} live lots on {accounts:,} accounts built in {time.perf_counter() - started:.1f} s")
        # The fixed reference: ONE set-based UPDATE emptying every due lot (no entries, no balances), rolled back,
        # then the table vacuumed so the job meets the same table.
        from django.db import transaction

        from loyalty.models import PointLot

        lot_table = PointLot._meta.db_table
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"UPDATE {lot_table} SET remaining = 0 WHERE expires_at <= %s AND remaining > 0", [now])
            reference_rows = cursor.rowcount
            transaction.set_rollback(True)
        reference = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {lot_table}")
        print(
            f"reference: one UPDATE of {reference_rows:,} lots in {reference:.1f} s "
            f"({reference_rows / reference:,.0f} lots/s)"
        )
        sinks, events._sinks[:] = list(events._sinks), []
        try:
            started = time.perf_counter()
            result = points_expire_due(now=now, batch_lots=BATCH_LOTS)
            elapsed = time.perf_counter() - started
        finally:
            events._sinks[:] = sinks
        print(
            f"A. expiry job, set-based SQL only: {result.lots:,} lots, {result.accounts:,} accounts, "
            f"{result.points:,} points, {result.batches} batches in {elapsed:.1f} s"
        )
        print(f"   -> {result.lots / elapsed:,.0f} lots/s, {result.accounts / elapsed:,.0f} accounts/s")
        print(f"   job / one UPDATE: {(result.lots / elapsed) / (reference_rows / reference):.2f} (target >= 0.5)")
        assert result.lots == lots

        started = time.perf_counter()
        again = points_expire_due(now=now, batch_lots=BATCH_LOTS)
        print(f"   re-run: {again.lots} lots expired in {time.perf_counter() - started:.2f} s (must be 0)")
        assert again.lots == 0

        # Run B: the same job with one `points.expired` event per account through the webhook sink.
        lots_b = max(PER_ACCOUNT, LOTS // 5)
        accounts_b, lots_b = build_data(now, lots_b, "bench-b")
        events_before = Event.objects.count()
        started = time.perf_counter()
        result_b = points_expire_due(now=now, batch_lots=BATCH_LOTS)
        elapsed_b = time.perf_counter() - started
        print(
            f"B. expiry job with events: {result_b.lots:,} lots, {result_b.accounts:,} accounts "
            f"({Event.objects.count() - events_before:,} points.expired events) in {elapsed_b:.1f} s"
        )
        print(f"   -> {result_b.lots / elapsed_b:,.0f} lots/s, {result_b.accounts / elapsed_b:,.0f} accounts/s")
        print(f"   expire entries in all: {LedgerEntry.objects.filter(kind='expire').count():,}")

        started = time.perf_counter()
        mismatches = ledger_reconcile()
        took = time.perf_counter() - started
        print(f"reconciliation over {accounts + accounts_b:,} accounts: {len(mismatches)} mismatches in {took:.1f} s")
        assert not mismatches
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
