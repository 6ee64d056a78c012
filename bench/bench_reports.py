"""Benchmark: the report figures over a volume of orders, ledger entries and redemptions (PostgreSQL).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loyalty BENCH_SCALE=20000 python bench/bench_reports.py

Works in its own throwaway database (`bench_<name>`, dropped at the end). Loads BENCH_SCALE orders (default
20000) spread over a year, as many earn entries, one redemption per 4 orders, set-based (INSERT ... SELECT
generate_series), then prints each figure's time: cold (nothing folded: the rollups' raw tail is everything),
warm (the same again), after the fold (from the rollups), and the fold's cost per order.
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

SCALE = int(os.environ.get("BENCH_SCALE", 20000))
MEMBERS = max(SCALE // 20, 10)


class DisableMigrations:
    def __contains__(self, item):
        return True

    def __getitem__(self, item):
        return None


def load(tenant) -> None:
    from loyalty.models import Account, LedgerEntry, Order, Program
    from members.models import Member
    from rewards.models import Redemption

    program = Program.objects.create(tenant=tenant, code="club", name="Club", currency="EUR")
    Member.objects.bulk_create(
        [
            Member(tenant=tenant, external_id=f"m-{i}", email=f"m{i}@example.com", referral_code=f"R{i:07d}")
            for i in range(MEMBERS)
        ],
        batch_size=5000,
    )
    members = list(Member.objects.filter(tenant=tenant).values_list("pk", flat=True))
    Account.objects.bulk_create([Account(tenant=tenant, member_id=m, program=program) for m in members], 5000)
    first_member, first_account = members[0], Account.objects.filter(tenant=tenant).order_by("pk").first().pk
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {Order._meta.db_table} (tenant_id, member_id, order_id, amount, returned_amount, currency,
                location, channel, occurred_at, points_total, points_taken_back, result, created_at)
            SELECT %s, %s + (n %% %s), 'o-' || n, (n %% 200) + 0.99, 0, 'EUR', 'shop-' || (n %% 5), '',
                %s + (n * interval '1 second' * (31536000 / %s)), 0, 0, '{{}}', %s + (n * interval '1 second')
            FROM generate_series(1, %s) AS n""",
            [tenant.pk, first_member, MEMBERS, start, SCALE, start, SCALE],
        )
        cursor.execute(
            f"""INSERT INTO {LedgerEntry._meta.db_table} (tenant_id, account_id, kind, points, balance_after, reason,
                order_id, rule_code, created_at)
            SELECT %s, %s + (n %% %s), 'earn', (n %% 200) + 1, 0, 'bench', 'o-' || n, '',
                %s + (n * interval '1 second' * (31536000 / %s))
            FROM generate_series(1, %s) AS n""",
            [tenant.pk, first_account, MEMBERS, start, SCALE, SCALE],
        )
        cursor.execute(
            f"""INSERT INTO {Redemption._meta.db_table} (tenant_id, member_id, order_id, "order", order_amount,
                discount, gift_cards, points_used, points_value, total, channel, integration_name, status, created_at)
            SELECT %s, %s + (n %% %s), 'o-' || n, '{{}}', 100, 5, 0, 0, 0, 95, '', 'pos', 'succeeded',
                %s + (n * interval '1 second' * (31536000 / %s))
            FROM generate_series(1, %s, 4) AS n""",
            [tenant.pk, first_member, MEMBERS, start, SCALE, SCALE],
        )
        cursor.execute("ANALYZE")


def timed(report, name: str) -> float:
    started = time.perf_counter()
    getattr(report, name)()
    return (time.perf_counter() - started) * 1000


FIGURES = ["daily_orders", "daily_discount", "daily_points", "daily_redemptions", "returned", "gift_cards_block"]
FIGURES += ["campaigns_block", "tiers_block", "outstanding_by_program", "summary"]


def main() -> None:
    if connection.vendor != "postgresql":
        sys.exit("bench_reports needs PostgreSQL: set DATABASE_URL=postgres://...")
    settings.MIGRATION_MODULES = DisableMigrations()
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"bench_{connection.settings_dict['NAME']}"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        from members.models import Tenant
        from reports.rollups import rollups_fold
        from reports.selectors import Report, ReportRange

        tenant = Tenant.objects.create(slug="bench", name="Bench", currency="EUR", time_zone="Europe/Berlin")
        started = time.perf_counter()
        load(tenant)
        print(
            f"data: {SCALE:,} orders, {SCALE:,} entries, {SCALE // 4:,} redemptions, {MEMBERS:,} members "
            f"loaded in {time.perf_counter() - started:.1f} s"
        )
        report = Report(ReportRange(tenant, dt.date(2026, 1, 1), dt.date(2026, 12, 31)))
        cold = {name: timed(report, name) for name in FIGURES}
        warm = {name: timed(report, name) for name in FIGURES}
        started = time.perf_counter()
        folded = rollups_fold(settle_seconds=0)
        fold = time.perf_counter() - started
        rolled = {name: timed(report, name) for name in FIGURES}
        print(f"{'figure':<24}{'cold ms':>10}{'warm ms':>10}{'rollups ms':>12}")
        for name in FIGURES:
            print(f"{name:<24}{cold[name]:>10.1f}{warm[name]:>10.1f}{rolled[name]:>12.1f}")
        rows = sum(folded.values())
        print(f"fold: {rows:,} rows in {fold:.2f} s ({fold / SCALE * 1e6:.1f} us per order, all sources)")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
