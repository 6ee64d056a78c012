"""Benchmark: bulk code generation on PostgreSQL (prints codes/s).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loyalty python bench/bench_codes.py

Works in its own throwaway database (`bench_<name>`, dropped at the end). Generates BENCH_CODES (default
1,000,000) codes from the pattern `SPR-####-????-??` for one campaign with `campaigns.codes.generate_codes`
(random symbols from the OS source, one `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING` per batch
of 50,000), then the same again into a tenant that already holds them (collisions topped up), and checks
that every code is distinct.
"""

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

COUNT = int(os.environ.get("BENCH_CODES", 1_000_000))
PATTERN = os.environ.get("BENCH_PATTERN", "SPR-####-????-??")


class DisableMigrations(dict):
    """Build tables straight from the models, as the test suite does (`--no-migrations`)."""

    def __contains__(self, item):
        return True

    def __getitem__(self, item):
        return None


def main() -> None:
    if connection.vendor != "postgresql":
        sys.exit("bench_codes needs PostgreSQL: set DATABASE_URL=postgres://...")
    settings.MIGRATION_MODULES = DisableMigrations()
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"bench_codes_{connection.settings_dict['NAME']}"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        from campaigns.codes import generate_codes, random_codes
        from campaigns.models import Campaign, Code
        from members.models import Tenant

        tenant = Tenant.objects.create(slug="bench", name="Bench", currency="EUR", time_zone="Europe/Berlin")
        campaign = Campaign.objects.create(tenant=tenant, name="Bench", discount={"type": "percent", "value": "10"})

        started = time.perf_counter()
        random_codes(PATTERN, COUNT)
        drawing = time.perf_counter() - started

        started = time.perf_counter()
        made = generate_codes(tenant_id=tenant.pk, campaign_id=campaign.pk, pattern=PATTERN, count=COUNT)
        elapsed = time.perf_counter() - started
        assert made == COUNT
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*), count(DISTINCT code) FROM campaigns_code WHERE campaign_id = %s", [campaign.pk]
            )
            total, distinct = cursor.fetchone()
        assert total == distinct == COUNT, (total, distinct)

        second = Campaign.objects.create(tenant=tenant, name="Bench 2", discount={"type": "amount", "value": "5"})
        small = min(COUNT, 100_000)
        started = time.perf_counter()
        generate_codes(tenant_id=tenant.pk, campaign_id=second.pk, pattern="####-??", count=small // 10)
        collide = time.perf_counter() - started

        print(f"codes generated:           {made:,} ({PATTERN})")
        print(f"drawing random codes only: {COUNT / drawing:,.0f} codes/s ({drawing:.2f} s)")
        print(f"generation (draw + insert): {made / elapsed:,.0f} codes/s ({elapsed:.2f} s for {made:,})")
        print(f"small pattern with collisions: {small // 10:,} codes in {collide:.2f} s")
        print(f"codes in the table: {Code.objects.count():,}, all distinct per tenant")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
