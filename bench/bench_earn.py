"""Benchmark: earning throughput through the service layer on PostgreSQL (prints entries/s).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loyalty python bench/bench_earn.py

Works in its own throwaway database (`bench_<name>`, dropped at the end). Declares the contract's example
program (tiers, a spend rule with happy hours, a category rule, rolling-quarter expiry), then records paid
orders with `rewards.services.checkout.order_checkout`, the one service that records paid orders (without codes:
rules, multipliers, caps, ledger entries, lots, tier moves, one `points.earned` event per entry through the
webhook sink), then custom events with a monthly cap, then checkouts carrying a shared code (the same service).
Sizes: BENCH_ORDERS (default 2000), BENCH_MEMBERS (default 200), BENCH_THREADS (default 1; 2 cores are shared).
"""

import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")
os.environ.setdefault("SECRET_KEY", "bench-only")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

ORDERS = int(os.environ.get("BENCH_ORDERS", 2000))
MEMBERS = int(os.environ.get("BENCH_MEMBERS", 200))
THREADS = int(os.environ.get("BENCH_THREADS", 1))

DOCUMENT = {
    "name": "Club",
    "currency": "EUR",
    "points_name": "stars",
    "expiry": {"policy": "rolling_quarter", "years": 2},
    "tiers": [
        {"code": "bronze", "name": "Bronze", "threshold": 0, "multiplier": "1.0"},
        {"code": "silver", "name": "Silver", "threshold": 1000, "multiplier": "1.5"},
        {
            "code": "gold",
            "name": "Gold",
            "threshold": 5000,
            "multiplier": "2.0",
            "expiry": {"policy": "days", "days": 1095},
        },
    ],
    "earning_rules": [
        {
            "code": "spend",
            "trigger": "order_paid",
            "points_per_unit": "1",
            "unit_amount": "1.00",
            "rule": "order.amount >= 10",
            "happy_hours": [{"weekdays": [5, 6], "from": "17:00", "to": "20:00", "multiplier": "2"}],
        },
        {
            "code": "apparel",
            "trigger": "order_paid",
            "points_per_unit": "0.5",
            "categories": ["apparel"],
            "rule": "[i for i in order.items if i.category == 'apparel']",
            "cap": {"points": 500, "per": "month"},
        },
        {
            "code": "social",
            "trigger": "event",
            "event": "social_liked",
            "points": 10,
            "cap": {"points": 100, "per": "month"},
        },
    ],
}


class DisableMigrations(dict):
    """Build tables straight from the models, as the test suite does (`--no-migrations`)."""

    def __contains__(self, item):
        return True

    def __getitem__(self, item):
        return None


def run(members, orders_per_member_offset: int, count: int, latencies: list[float]) -> None:
    from rewards.services.checkout import order_checkout

    items = [
        {"sku": "TSHIRT", "category": "apparel", "quantity": 2, "unit_price": "30.00"},
        {"sku": "BOOK", "category": "books", "quantity": 1, "unit_price": "19.90"},
    ]
    try:
        for n in range(count):
            member = members[n % len(members)]
            started = time.perf_counter()
            order_checkout(
                tenant=member.tenant,
                member=member,
                order_id=f"o-{orders_per_member_offset}-{n}",
                amount="79.90",
                currency="EUR",
                items=items,
                location="berlin-01",
            )
            latencies.append(time.perf_counter() - started)
    finally:
        connection.close()


def main() -> None:
    if connection.vendor != "postgresql":
        sys.exit("bench_earn needs PostgreSQL: set DATABASE_URL=postgres://...")
    settings.MIGRATION_MODULES = DisableMigrations()
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"bench_{connection.settings_dict['NAME']}"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        from loyalty.ledger.selectors import member_detail
        from loyalty.models import LedgerEntry
        from loyalty.services.earning import custom_event_record
        from loyalty.services.program import program_declare
        from members.models import Member, Tenant
        from rewards.services.checkout import order_checkout

        tenant = Tenant.objects.create(slug="bench", name="Bench", currency="EUR", time_zone="Europe/Berlin")
        program_declare(tenant=tenant, code="club", document=DOCUMENT)
        members = Member.objects.bulk_create(
            [
                Member(tenant=tenant, external_id=f"m-{i}", email=f"m{i}@example.com", referral_code=f"R-{i}")
                for i in range(MEMBERS)
            ]
        )
        for member in members:
            member.tenant = tenant

        with CaptureQueriesContext(connection) as queries:
            order_checkout(
                tenant=tenant,
                member=members[0],
                order_id="warm-up",
                amount="79.90",
                currency="EUR",
                items=[{"sku": "TSHIRT", "category": "apparel", "quantity": 2, "unit_price": "30.00"}],
            )
        print(f"queries per order (2 rules matching, first order of a member): {len(queries)}")
        with CaptureQueriesContext(connection) as queries:
            order_checkout(
                tenant=tenant,
                member=members[0],
                order_id="warm-up-2",
                amount="79.90",
                currency="EUR",
                items=[{"sku": "TSHIRT", "category": "apparel", "quantity": 2, "unit_price": "30.00"}],
            )
        print(f"queries per order (2 rules matching, a member's later order): {len(queries)}")

        entries_before = LedgerEntry.objects.count()
        latencies: list[float] = []
        per_thread = ORDERS // THREADS
        started = time.perf_counter()
        if THREADS == 1:
            run(members, 0, per_thread, latencies)
        else:
            threads = [
                threading.Thread(target=run, args=(members[t::THREADS], t, per_thread, latencies))
                for t in range(THREADS)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        elapsed = time.perf_counter() - started
        entries = LedgerEntry.objects.count() - entries_before
        done = len(latencies)
        latencies.sort()
        print(
            f"orders: {done:,} in {elapsed:.1f} s with {THREADS} thread(s) -> {done / elapsed:,.0f} orders/s, "
            f"{entries:,} ledger entries -> {entries / elapsed:,.0f} entries/s"
        )
        print(
            f"latency per order: median {statistics.median(latencies) * 1000:.1f} ms, "
            f"p95 {latencies[int(done * 0.95) - 1] * 1000:.1f} ms"
        )

        started = time.perf_counter()
        granted = 0
        for n in range(500):
            granted += custom_event_record(tenant=tenant, member=members[n % 20], event="social_liked").points_earned
        elapsed = time.perf_counter() - started
        print(
            f"events: 500 in {elapsed:.1f} s -> {500 / elapsed:,.0f} events/s; points granted under the cap: {granted}"
        )
        assert granted == 20 * 100

        # Checkouts: the same orders carrying a shared 10 % code (redeemed, then points on the discounted amount).
        from campaigns.services import campaign_create
        from rewards.services.checkout import order_checkout

        campaign_create(
            tenant=tenant,
            data={
                "name": "Bench 10",
                "type": "discount",
                "discount": {"type": "percent", "value": "10"},
                "codes": {"code": "BENCH10"},
            },
        )
        checkout_items = [
            {"sku": "TSHIRT", "category": "apparel", "quantity": 2, "unit_price": "30.00"},
            {"sku": "BOOK", "category": "books", "quantity": 1, "unit_price": "19.90"},
        ]
        count = min(ORDERS, 500)
        latencies = []
        started = time.perf_counter()
        for n in range(count):
            t0 = time.perf_counter()
            order_checkout(
                tenant=tenant,
                member=members[n % len(members)],
                order_id=f"c-{n}",
                amount="79.90",
                currency="EUR",
                items=checkout_items,
                codes=["BENCH10"],
            )
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
        print(
            f"checkouts with a code: {count} in {elapsed:.1f} s -> {count / elapsed:,.0f}/s, "
            f"median {statistics.median(latencies) * 1000:.1f} ms"
        )

        with CaptureQueriesContext(connection) as queries:
            detail = member_detail(members[1])
        print(f"member read: {len(queries)} queries; balance {detail['points']['balance']}, tier {detail['tier']}")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
