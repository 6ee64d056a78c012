"""Benchmark: the touchpoint API over HTTP (gunicorn on 127.0.0.1, PostgreSQL), against pgbench.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loyalty REDIS_URL=redis://127.0.0.1:6379/3 \\
        python bench/bench_api.py

Works in its own throwaway database (`bench_api_<pid>`, dropped at the end). Loads BENCH_CAMPAIGNS
(default 1,000) discount campaigns of BENCH_CODES_PER_CAMPAIGN (default 1,000) single-use codes each, so
1,000,000 codes, with set-based SQL, BENCH_MEMBERS (default 100,000) members, a program with a spend rule,
and an API key. Starts gunicorn (BENCH_WORKERS sync workers, default 2: the machine has 2 cores) and, for
BENCH_SECONDS (default 8) per scenario, drives it with BENCH_CLIENTS client threads (default 4), a new
connection per request as gunicorn's sync workers close them:

- `POST /api/v1/validations` with one random code,
- `POST /api/v1/redemptions` of fresh single-use codes, each with its own Idempotency-Key,
- `POST /api/v1/orders` of new paid orders (earning on the spend rule).

Then pgbench runs a script modelling the redemption's own transaction (lock the campaign and the code,
bump their counters, insert a redemption and its line) for the same time with the same concurrency, and
the redemption endpoint is driven again at half its measured maximum rate (open loop) for its latency
percentiles. Prints requests/s and p50/p99 for each. Client and server share the 2 cores, so the figures
are a floor.
"""

import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CAMPAIGNS = int(os.environ.get("BENCH_CAMPAIGNS", 1000))
PER_CAMPAIGN = int(os.environ.get("BENCH_CODES_PER_CAMPAIGN", 1000))
MEMBERS = int(os.environ.get("BENCH_MEMBERS", 100_000))
SECONDS = float(os.environ.get("BENCH_SECONDS", 8))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", 4))
WORKERS = int(os.environ.get("BENCH_WORKERS", 2))
PORT = int(os.environ.get("BENCH_PORT", 8765))

BASE_URL = os.environ.get("DATABASE_URL", "")
if not BASE_URL.startswith("postgres"):
    sys.exit("Set DATABASE_URL=postgres://... (the benchmark creates and drops its own database there).")
DB_NAME = f"bench_api_{os.getpid()}"
parts = urlsplit(BASE_URL)
BENCH_URL = urlunsplit(parts._replace(path=f"/{DB_NAME}"))
ADMIN_URL = urlunsplit(parts._replace(path="/postgres"))

os.environ["DATABASE_URL"] = BENCH_URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret")


def admin_sql(statement: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(statement)


class DisableMigrations(dict):
    """Build tables straight from the models, as the test suite does (`--no-migrations`)."""

    def __contains__(self, item):
        return True

    def __getitem__(self, item):
        return None


def setup_database() -> dict:
    import django
    from django.conf import settings

    django.setup()
    settings.MIGRATION_MODULES = DisableMigrations()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", run_syncdb=True, verbosity=0)

    from campaigns.models import Campaign
    from loyalty.api.keys import api_key_create, integration_get_or_create
    from loyalty.services import program_declare
    from members.models import Member
    from members.services import tenant_create

    started = time.perf_counter()
    tenant, _ = tenant_create(slug="bench", name="Bench", currency="EUR", time_zone="Europe/Berlin")
    program_declare(
        tenant=tenant,
        code="club",
        document={
            "name": "Club",
            "currency": "EUR",
            "expiry": {"policy": "never"},
            "tiers": [{"code": "basic", "name": "Basic", "threshold": 0, "multiplier": "1.0"}],
            "earning_rules": [
                {"code": "spend", "trigger": "order_paid", "points_per_unit": "1", "unit_amount": "1.00"}
            ],
        },
    )
    Campaign.objects.bulk_create(
        [
            Campaign(
                tenant=tenant,
                name=f"Campaign {i}",
                type="discount",
                discount={"type": "percent", "value": "10", "max_amount": "30.00"},
                breaker_enabled=False,
            )
            for i in range(CAMPAIGNS)
        ],
        batch_size=1000,
    )
    batch = 5000
    for start in range(0, MEMBERS, batch):
        Member.objects.bulk_create(
            [
                Member(tenant=tenant, external_id=f"m-{i}", email=f"m{i}@example.com", referral_code=f"R{i:07d}")
                for i in range(start, min(MEMBERS, start + batch))
            ]
        )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO campaigns_code (tenant_id, campaign_id, code, is_shared, usage_limit, redeemed_count,
                                        created_at)
            SELECT c.tenant_id, c.id, 'B' || c.id || '-' || g, false, 1, 0, now()
            FROM campaigns_campaign c CROSS JOIN generate_series(1, %s) AS g
            WHERE c.tenant_id = %s
            """,
            [PER_CAMPAIGN, tenant.pk],
        )
        codes = cursor.rowcount
        cursor.execute("UPDATE campaigns_campaign SET codes_count = %s", [PER_CAMPAIGN])
        # The pgbench model's own tables: a redemption and its line, as wide as the real ones' essentials.
        cursor.execute(
            "CREATE TABLE bench_redemption (id bigserial PRIMARY KEY, tenant_id bigint, order_id varchar(100), "
            "amount numeric(14,2), discount numeric(14,2), status varchar(20), created_at timestamptz)"
        )
        cursor.execute(
            "CREATE TABLE bench_redemption_line (id bigserial PRIMARY KEY, redemption_id bigint, code_id bigint, "
            "campaign_id bigint, discount numeric(14,2), created_at timestamptz)"
        )
        cursor.execute("ANALYZE")
    integration, _ = integration_get_or_create(tenant=tenant, name="bench")
    _, raw_key = api_key_create(integration=integration, throttle_rate="1000000/min")
    campaign_ids = list(Campaign.objects.filter(tenant=tenant).order_by("pk").values_list("pk", flat=True))
    print(
        f"loaded {len(campaign_ids):,} campaigns, {codes:,} codes, {MEMBERS:,} members "
        f"in {time.perf_counter() - started:.1f} s"
    )
    connection.close()
    return {"key": raw_key, "campaign_ids": campaign_ids, "tenant_id": tenant.pk}


def start_gunicorn() -> subprocess.Popen:
    env = dict(os.environ, DEBUG="false", ALLOWED_HOSTS="127.0.0.1", API_THROTTLE_RATE="1000000/min")
    log = open(Path(tempfile.gettempdir()) / f"bench_api_gunicorn_{os.getpid()}.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "config.wsgi",
            "--workers",
            str(WORKERS),
            "--bind",
            f"127.0.0.1:{PORT}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    for _ in range(100):
        try:
            status, _ = request("GET", "/healthz", None, {})
            if status == 200:
                return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit(f"gunicorn did not start; see {log.name}")


def request(method: str, path: str, body, headers: dict) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json", **headers})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else float("nan")


def drive(name: str, make_request, *, rate: float | None = None) -> float:
    """Run `make_request(thread_index, n)` from CLIENTS threads for SECONDS; print and return requests/s."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    interval = CLIENTS / rate if rate else 0.0

    def worker(index: int) -> None:
        n = 0
        deadline = time.perf_counter() + SECONDS
        next_at = time.perf_counter() + (interval * index / CLIENTS if rate else 0)
        while time.perf_counter() < deadline:
            if rate:
                pause = next_at - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                next_at += interval
            method, path, body, headers = make_request(index, n)
            started = time.perf_counter()
            status, _ = request(method, path, body, headers)
            elapsed = time.perf_counter() - started
            n += 1
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rps = len(latencies) / SECONDS
    print(
        f"{name}: {rps:,.0f} req/s, p50 {pct(latencies, 0.5):.1f} ms, p99 {pct(latencies, 0.99):.1f} ms, "
        f"median {statistics.median(latencies) * 1000 if latencies else 0:.1f} ms, statuses {statuses}"
    )
    return rps


PGBENCH_SCRIPT = """
\\set c random(0, :ncampaigns - 1)
\\set n random(1, :ncodes)
\\set r random(1, 1000000000)
BEGIN;
SELECT id FROM campaigns_campaign WHERE id = :cmin + :c FOR UPDATE;
SELECT id AS code_id FROM campaigns_code WHERE tenant_id = :tenant AND code = 'B' || (:cmin + :c) || '-' || :n
  FOR UPDATE \\gset
UPDATE campaigns_code SET redeemed_count = redeemed_count + 1 WHERE id = :code_id AND redeemed_count < usage_limit;
UPDATE campaigns_campaign SET redemptions_count = redemptions_count + 1, discount_used = discount_used + 5,
  order_value_used = order_value_used + 50 WHERE id = :cmin + :c;
INSERT INTO bench_redemption (tenant_id, order_id, amount, discount, status, created_at)
  VALUES (:tenant, 'o-' || :client_id || '-' || :r, 50, 5, 'redeemed', now()) RETURNING id AS rid \\gset
INSERT INTO bench_redemption_line (redemption_id, code_id, campaign_id, discount, created_at)
  VALUES (:rid, :code_id, :cmin + :c, 5, now());
END;
"""


def run_pgbench(campaign_ids: list[int], tenant_id: int) -> float:
    script = Path(tempfile.gettempdir()) / f"bench_api_{os.getpid()}.sql"
    script.write_text(PGBENCH_SCRIPT)
    url = urlsplit(BENCH_URL)
    command = [
        "pgbench",
        "-n",
        "-h",
        url.hostname or "127.0.0.1",
        "-p",
        str(url.port or 5432),
        "-U",
        url.username or "postgres",
        "-c",
        str(CLIENTS),
        "-j",
        str(min(CLIENTS, 2)),
        "-T",
        str(int(SECONDS)),
        "-D",
        f"cmin={campaign_ids[0]}",
        "-D",
        f"ncampaigns={len(campaign_ids)}",
        "-D",
        f"tenant={tenant_id}",
        "-D",
        f"ncodes={PER_CAMPAIGN}",
        "-f",
        str(script),
        "-r",
        DB_NAME,
    ]
    finished = subprocess.run(command, capture_output=True, text=True)
    if finished.returncode:
        raise SystemExit(f"pgbench failed: {finished.stderr[-2000:]}")
    output = finished.stdout
    tps = next(float(line.split("=")[1].split()[0]) for line in output.splitlines() if line.startswith("tps"))
    latency = next((line.strip() for line in output.splitlines() if line.startswith("latency average")), "")
    print(f"pgbench, the redemption transaction modelled in SQL: {tps:,.0f} tps ({latency})")
    script.unlink()
    return tps


def main() -> None:
    admin_sql(f'CREATE DATABASE "{DB_NAME}"')
    server = None
    try:
        data = setup_database()
        auth = {"Authorization": f"Api-Key {data['key']}"}
        campaign_ids = data["campaign_ids"]
        server = start_gunicorn()
        item = {"sku": "TSHIRT", "category": "apparel", "quantity": 2, "unit_price": "30.00"}

        def validation(index, n):
            rng = random.Random(index * 1_000_003 + n)
            code = f"B{rng.choice(campaign_ids)}-{rng.randint(1, PER_CAMPAIGN)}"
            body = {"member": f"m-{rng.randrange(MEMBERS)}", "order": {"items": [item]}, "codes": [code]}
            return "POST", "/api/v1/validations", body, auth

        redeemed = {"next": 0}
        redeem_lock = threading.Lock()

        def redemption(index, n):
            with redeem_lock:  # each request a fresh single-use code, campaigns in turn (little contention)
                k = redeemed["next"]
                redeemed["next"] += 1
            campaign = campaign_ids[k % len(campaign_ids)]
            code = f"B{campaign}-{k // len(campaign_ids) + 1}"
            body = {"order_id": f"r-{k}", "member": f"m-{k % MEMBERS}", "order": {"items": [item]}, "codes": [code]}
            return "POST", "/api/v1/redemptions", body, {**auth, "Idempotency-Key": f"redeem-{k}"}

        def order(index, n):
            body = {
                "order_id": f"o-{index}-{n}-{os.getpid()}",
                "member": f"m-{(index * 7919 + n) % MEMBERS}",
                "amount": "60.00",
                "currency": "EUR",
                "items": [item],
            }
            return "POST", "/api/v1/orders", body, auth

        print(f"gunicorn {WORKERS} sync workers, {CLIENTS} client threads, {SECONDS:.0f} s per run")
        drive("validations (1 code)", validation)
        redeem_rps = drive("redemptions (1 code, Idempotency-Key)", redemption)
        drive("orders (earning)", order)
        pg_tps = run_pgbench(campaign_ids, data["tenant_id"])
        print(f"redemption endpoint / PostgreSQL transaction: {redeem_rps / pg_tps:.2f} (target >= 0.33)")
        drive(f"redemptions paced at half the maximum ({redeem_rps / 2:,.0f}/s)", redemption, rate=redeem_rps / 2)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    main()
