"""Benchmark: validations/s and redemptions/s through the service layer on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loyalty python bench/bench_redemption.py

Works in its own throwaway database (`bench_redemption_<name>`, dropped at the end). Loads BENCH_CAMPAIGNS
(default 1,000) campaigns of every incentive type (a third with a rule on the member and the order, limits
per member, per day and discount budgets) and BENCH_CODES_PER_CAMPAIGN (default 1,000: 1,000,000 codes) with
set-based SQL (INSERT ... SELECT generate_series), 1,000 members with past events and orders, and two
automatic promotions. Then, for BENCH_SECONDS (default 10) each: `validate` of one and of two codes on a
three-item order, and `redeem` of fresh single-use codes by BENCH_THREADS threads (default 2; 2 cores are
shared). Prints throughput, latency percentiles and the queries per operation.
"""

import os
import random
import statistics
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
os.environ.setdefault("SECRET_KEY", "bench-only")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

CAMPAIGNS = int(os.environ.get("BENCH_CAMPAIGNS", 1000))
PER_CAMPAIGN = int(os.environ.get("BENCH_CODES_PER_CAMPAIGN", 1000))
MEMBERS = int(os.environ.get("BENCH_MEMBERS", 1000))
SECONDS = float(os.environ.get("BENCH_SECONDS", 10))
THREADS = int(os.environ.get("BENCH_THREADS", 2))

INCENTIVES = [
    {"type": "percent", "value": "10", "max_amount": "30.00"},
    {"type": "amount", "value": "5.00"},
    {"type": "bogo", "buy_category": "apparel", "buy_quantity": 2, "get_quantity": 1},
    {"type": "volume", "tiers": [{"min_amount": "50", "percent": "5"}, {"min_amount": "100", "percent": "10"}]},
]
RULES = ["", "", "member.country == 'GB' and order.amount >= 10 and member.lifetime_spend >= 0"]


class DisableMigrations(dict):
    """Build tables straight from the models, as the test suite does (`--no-migrations`)."""

    def __contains__(self, item):
        return True

    def __getitem__(self, item):
        return None


def order(rng: random.Random) -> dict:
    return {
        "amount": None,
        "location": "berlin-01",
        "items": [
            {"sku": "TSHIRT", "category": "apparel", "quantity": rng.randint(1, 3), "unit_price": "30.00"},
            {"sku": "MUG", "category": "home", "quantity": 1, "unit_price": "8.50"},
            {"sku": f"SKU-{rng.randint(1, 500)}", "category": "misc", "quantity": 2, "unit_price": "12.25"},
        ],
    }


def load(tenant_model):
    from django.utils import timezone

    from campaigns.models import Campaign
    from members.models import CustomEvent, Member

    tenant = tenant_model.objects.create(slug="bench", name="Bench", currency="EUR", time_zone="Europe/Berlin")
    started = time.perf_counter()
    Campaign.objects.bulk_create(
        [
            Campaign(
                tenant=tenant,
                name=f"Campaign {i}",
                type="discount",
                discount=INCENTIVES[i % 4],
                rule=RULES[i % 3],
                redemptions_per_member=5 if i % 2 else None,
                redemptions_per_day=100_000 if i % 5 == 0 else None,
                discount_total=Decimal("1000000.00") if i % 3 == 1 else None,
                stacking_category=["seasonal", "loyalty", "flash"][i % 3],
                breaker_enabled=False,
            )
            for i in range(CAMPAIGNS)
        ],
        batch_size=1000,
    )
    Campaign.objects.bulk_create(
        [
            Campaign(
                tenant=tenant,
                name="Promo 5%",
                type="promotion",
                breaker_enabled=False,
                discount={"type": "percent", "value": "5"},
                rule="order.amount >= 500",
            ),
            Campaign(
                tenant=tenant,
                name="Free shipping",
                type="promotion",
                breaker_enabled=False,
                discount={"type": "free_shipping", "min_order_amount": "50.00"},
            ),
        ]
    )
    Member.objects.bulk_create(
        [
            Member(
                tenant=tenant,
                external_id=f"m-{i}",
                email=f"m{i}@example.com",
                country="GB" if i % 2 else "DE",
                referral_code=f"R{i:07d}",
            )
            for i in range(MEMBERS)
        ],
        batch_size=1000,
    )
    members = list(Member.objects.filter(tenant=tenant).order_by("pk"))
    now = timezone.now()
    CustomEvent.objects.bulk_create(
        [CustomEvent(tenant=tenant, member=m, name="newsletter_subscribed", occurred_at=now) for m in members]
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO campaigns_code (tenant_id, campaign_id, code, is_shared, usage_limit, redeemed_count,
                                        created_at)
            SELECT c.tenant_id, c.id, 'B' || c.id || '-' || g, false, 1, 0, now()
            FROM campaigns_campaign c CROSS JOIN generate_series(1, %s) AS g
            WHERE c.tenant_id = %s AND c.type = 'discount'
            """,
            [PER_CAMPAIGN, tenant.pk],
        )
        codes = cursor.rowcount
        cursor.execute("UPDATE campaigns_campaign SET codes_count = %s WHERE type = 'discount'", [PER_CAMPAIGN])
        cursor.execute("ANALYZE")
    campaign_ids = list(
        Campaign.objects.filter(tenant=tenant, type="discount").order_by("pk").values_list("pk", flat=True)
    )
    print(
        f"loaded {len(campaign_ids):,} campaigns, {codes:,} codes, {len(members):,} members "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return tenant, campaign_ids, members


def percentiles(samples: list[float]) -> str:
    if not samples:
        return "-"
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"


def bench_validate(tenant, campaign_ids, members, n_codes: int) -> None:
    from rewards.services.redemption import validate

    rng = random.Random(n_codes)
    latencies = []
    valid = 0
    deadline = time.perf_counter() + SECONDS
    while time.perf_counter() < deadline:
        codes = [f"B{rng.choice(campaign_ids)}-{rng.randint(1, PER_CAMPAIGN)}" for _ in range(n_codes)]
        started = time.perf_counter()
        result = validate(tenant=tenant, member=rng.choice(members), order=order(rng), codes=codes)
        latencies.append(time.perf_counter() - started)
        valid += result.valid
    with CaptureQueriesContext(connection) as queries:
        validate(tenant=tenant, member=members[1], order=order(rng), codes=[f"B{campaign_ids[2]}-1"] * n_codes)
    print(
        f"validate, {n_codes} code(s): {len(latencies) / SECONDS:,.0f} validations/s ({percentiles(latencies)}, "
        f"{valid / len(latencies):.0%} valid, {len(queries)} queries each)"
    )


def bench_redeem(tenant, campaign_ids, members) -> None:
    from common.errors import ApplicationError
    from rewards.services.redemption import redeem

    done, failed, latencies = [0], [0], []
    lock = threading.Lock()

    def worker(index: int) -> None:
        rng = random.Random(100 + index)
        mine = campaign_ids[index::THREADS]  # each thread redeems codes of its own campaigns
        counters = {c: 0 for c in mine}
        deadline = time.perf_counter() + SECONDS
        try:
            while time.perf_counter() < deadline:
                campaign = rng.choice(mine)
                counters[campaign] += 1
                code = f"B{campaign}-{counters[campaign]}"
                started = time.perf_counter()
                try:
                    redeem(
                        tenant=tenant,
                        member=rng.choice(members),
                        order_id=f"t{index}-{code}",
                        order=order(rng),
                        codes=[code],
                        channel="bench",
                    )
                    ok = True
                except ApplicationError:
                    ok = False
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    if ok:
                        done[0] += 1
                    else:
                        failed[0] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with CaptureQueriesContext(connection) as queries:
        try:
            redeem(
                tenant=tenant,
                member=members[3],
                order_id="q-1",
                order=order(random.Random(1)),
                codes=[f"B{campaign_ids[4]}-{PER_CAMPAIGN}"],
            )
        except ApplicationError:
            pass
    print(
        f"redeem, {THREADS} thread(s): {(done[0] + failed[0]) / SECONDS:,.0f} redemptions/s "
        f"({done[0]:,} succeeded, {failed[0]:,} refused by rules or limits; {percentiles(latencies)}, "
        f"{len(queries)} queries each)"
    )


def main() -> None:
    if connection.vendor != "postgresql":
        sys.exit("bench_redemption needs PostgreSQL: set DATABASE_URL=postgres://...")
    settings.MIGRATION_MODULES = DisableMigrations()
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"bench_redemption_{connection.settings_dict['NAME']}"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        from members.models import Tenant

        tenant, campaign_ids, members = load(Tenant)
        bench_validate(tenant, campaign_ids, members, 1)
        bench_validate(tenant, campaign_ids, members, 2)
        bench_redeem(tenant, campaign_ids, members)
    finally:
        connection.close()
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
