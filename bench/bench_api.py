"""Benchmark: the touchpoint API over HTTP (gunicorn on 127.0.0.1, PostgreSQL), against pgbench.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loyalty REDIS_URL=redis://127.0.0.1:6379/3 \\
        python bench/bench_api.py

Works in its own throwaway database (`bench_api_<pid>`, dropped at the end). Loads BENCH_CAMPAIGNS
(default 1,000) discount campaigns of BENCH_CODES_PER_CAMPAIGN (default 1,000) codes each, so 1,000,000
codes, with set-based SQL, BENCH_MEMBERS (default 100,000) members, a program with a spend rule, and an
API key. Starts gunicorn (BENCH_WORKERS sync workers, default 4 as in the Procfile: 2 per core, so one
worker waits on PostgreSQL while the other computes) and, for each
scenario, warms up for BENCH_WARMUP seconds (default 2, not counted) then drives it for BENCH_SECONDS
(default 8) with BENCH_CLIENTS client threads (default 4), a new connection per request as gunicorn's
sync workers close them:

- `POST /api/v1/validations` with one random code,
- `POST /api/v1/redemptions` of fresh single-use codes, each with its own Idempotency-Key,
- `POST /api/v1/orders` of new paid orders (earning on the spend rule).

Then the PostgreSQL side of one redemption: the statements the endpoint runs for one request are captured
from Django's query log (one request in-process, after the HTTP runs) and turned into a pgbench script
(identifiers become pgbench variables: campaign, code, member, order id and Idempotency-Key drawn at
random, ids read back with `\\gset`; bodies stay literals; the transaction as the service opens it).
pgbench runs it with the same number of clients for the same time (after the same warm-up), on the second
half of each campaign's codes (created without a usage limit, so that a random draw may hit a used one:
the statements are the same). Last, the redemption endpoint is driven at half its measured maximum rate
(open loop) for its latency percentiles. Prints requests/s, p50/p99 and the load average (1 min) next to
each figure. Client and server share the 2 cores, so the figures are a floor.
"""

import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CAMPAIGNS = int(os.environ.get("BENCH_CAMPAIGNS", 1000))
PER_CAMPAIGN = int(os.environ.get("BENCH_CODES_PER_CAMPAIGN", 1000))
MEMBERS = int(os.environ.get("BENCH_MEMBERS", 100_000))
SECONDS = float(os.environ.get("BENCH_SECONDS", 8))
WARMUP = float(os.environ.get("BENCH_WARMUP", 2))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", 4))
WORKERS = int(os.environ.get("BENCH_WORKERS", 4))
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


ITEM = {"sku": "TSHIRT", "category": "apparel", "quantity": 2, "unit_price": "30.00"}


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
    from integrations.keys import api_key_create, integration_get_or_create
    from loyalty.services.program import program_declare
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
            SELECT c.tenant_id, c.id, 'B' || c.id || '-' || g, false, CASE WHEN g > %s THEN NULL ELSE 1 END, 0,
                   now()
            FROM campaigns_campaign c CROSS JOIN generate_series(1, %s) AS g
            WHERE c.tenant_id = %s
            """,
            [PER_CAMPAIGN // 2, PER_CAMPAIGN, tenant.pk],
        )
        codes = cursor.rowcount
        cursor.execute("UPDATE campaigns_campaign SET codes_count = %s", [PER_CAMPAIGN])
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
    """One HTTP/1.1 request on a new connection, as gunicorn's sync workers close them after answering.

    A plain socket and a request written by hand: the client shares the 2 cores with the server, and
    http.client's parsing cost ~0.6 ms of them per request (pgbench, on the other side, is C).
    """
    payload = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in {"Content-Type": "application/json", **headers}.items())
    head += f"Content-Length: {len(payload)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", PORT), timeout=30) as sock:
        sock.sendall(head.encode() + payload)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    status = int(response.split(b" ", 2)[1])
    return status, response.partition(b"\r\n\r\n")[2]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else float("nan")


def load() -> str:
    return f"load average {os.getloadavg()[0]:.2f}"


SERVER_PID: list[int] = []  # gunicorn's master, once started


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of process `pid` (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_split() -> dict[tuple[str, int], float]:
    """CPU seconds so far, by (role, pid): gunicorn (master and workers), the PostgreSQL backends of the
    bench database (other databases on the server are other people's), this process (the client threads)."""
    out: dict[tuple[str, int], float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(stat.rsplit(")", 1)[1].split()[1])
        if SERVER_PID and SERVER_PID[0] in (pid, ppid):
            out[("app", pid)] = _proc_cpu(pid)
        elif cmdline.startswith(b"postgres: ") and f" {DB_NAME} ".encode() in cmdline:
            out[("postgres", pid)] = _proc_cpu(pid)
    times = os.times()
    out[("client", os.getpid())] = times.user + times.system
    return out


def cpu_delta(before, after) -> dict[str, float]:
    """CPU seconds spent between two `cpu_split()`s by role (a backend that closed in between is left out)."""
    out = {"app": 0.0, "postgres": 0.0, "client": 0.0}
    for (role, pid), seconds in after.items():
        out[role] += seconds - before.get((role, pid), 0.0)
    return out


def drive(name: str, make_request, *, rate: float | None = None) -> float:
    """Warm up, then run `make_request(thread_index, n)` from CLIENTS threads for SECONDS; print, return req/s."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    failures: list[bytes] = []
    lock = threading.Lock()
    interval = CLIENTS / rate if rate else 0.0
    counters = [0] * CLIENTS

    def worker(index: int, seconds: float, record: bool) -> None:
        deadline = time.perf_counter() + seconds
        next_at = time.perf_counter() + (interval * index / CLIENTS if rate else 0)
        while time.perf_counter() < deadline:
            if rate:
                pause = next_at - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                next_at += interval
            method, path, body, headers = make_request(index, counters[index])
            counters[index] += 1
            started = time.perf_counter()
            status, content = request(method, path, body, headers)
            elapsed = time.perf_counter() - started
            if record:
                with lock:
                    latencies.append(elapsed)
                    statuses[status] = statuses.get(status, 0) + 1
                    if status >= 400 and len(failures) < 3:
                        failures.append(content[:300])

    for seconds, record in ((WARMUP, False), (SECONDS, True)):
        cpu_before = cpu_split()
        threads = [threading.Thread(target=worker, args=(i, seconds, record)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    cpu = cpu_delta(cpu_before, cpu_split())
    rps = len(latencies) / SECONDS
    print(
        f"{name}: {rps:,.0f} req/s, p50 {pct(latencies, 0.5):.1f} ms, p99 {pct(latencies, 0.99):.1f} ms, "
        f"statuses {statuses} ({load()})"
    )
    if latencies:
        per = {k: v * 1000 / len(latencies) for k, v in cpu.items()}
        print(
            f"    CPU per request: gunicorn {per['app']:.1f} ms, PostgreSQL {per['postgres']:.1f} ms, "
            f"client {per['client']:.1f} ms; {sum(cpu.values()) / SECONDS:.2f} of the 2 cores busy with the bench"
        )
    for content in failures:
        print(f"    refused: {content!r}")
    return rps


# --- the PostgreSQL side of one redemption, as pgbench runs it -------------------------------------

# The ids the sample request's rows get (sequences set before it), far from any other number among the
# statements' parameters, so that each one found there is that row's id and nothing else.
SAMPLE_IDS = {
    "rewards_redemption": 810_000_001,
    "rewards_redemptioncode": 720_000_001,
    "loyalty_idempotencyrecord": 630_000_001,
}


def capture_redemption(raw_key: str, campaign_id: int, n: int, member_index: int) -> list[tuple[bool, str, Any]]:
    """Run one redemption request in-process; return the statements it ran: (in a transaction, sql, params)."""
    from django.conf import settings
    from django.db import connection
    from django.test import Client

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    with connection.cursor() as cursor:
        for table, value in SAMPLE_IDS.items():
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, false)", [table, value])
    statements: list[tuple[bool, str, Any]] = []

    def log(execute, sql, params, many, context):
        statements.append((connection.in_atomic_block, sql, params))
        return execute(sql, params, many, context)

    body = {
        "order_id": "sample-order",
        "member": f"m-{member_index}",
        "order": {"items": [ITEM]},
        "codes": [f"B{campaign_id}-{n}"],
    }
    with connection.execute_wrapper(log):
        response = Client().post(
            "/api/v1/redemptions",
            json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Api-Key {raw_key}",
            HTTP_IDEMPOTENCY_KEY="sample-idempotency-key",
        )
    if response.status_code != 201:
        raise SystemExit(f"the sample redemption failed: {response.status_code} {response.content[:500]!r}")
    return statements


def pgbench_script(statements, *, campaign_id: int, n: int, member_index: int) -> str:
    """The captured statements, identifiers as pgbench variables, other values as literals, same transaction."""
    import datetime as dt
    import uuid
    from decimal import Decimal

    from django.db import connection
    from psycopg.types.json import Jsonb

    from campaigns.models import Code
    from members.models import Member

    member_id = Member.objects.get(external_id=f"m-{member_index}").pk
    code_text = f"B{campaign_id}-{n}"
    code_id = Code.objects.get(code=code_text).pk
    connection.close()
    strings = {
        code_text: "('B' || :cid || '-' || :n)",
        f"m-{member_index}": "('m-' || :m)",
        f"m:{member_id}": "('m:' || :member_id)",
        "sample-order": "('r-' || :client_id || '-' || :r)",
        "sample-idempotency-key": "('k-' || :client_id || '-' || :r)",
    }
    ints = {
        campaign_id: ":cid",
        code_id: ":code_id",
        member_id: ":member_id",
        SAMPLE_IDS["rewards_redemption"]: ":redemption_id",
        SAMPLE_IDS["loyalty_idempotencyrecord"]: ":idempotency_id",
    }

    def literal(value) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return ints.get(int(value), str(int(value)))
        if isinstance(value, Decimal | float):
            return str(value)
        if isinstance(value, uuid.UUID):
            return "gen_random_uuid()"
        if isinstance(value, dt.datetime):
            return "now()"
        text = json.dumps(value.obj, default=str) if isinstance(value, Jsonb) else str(value)
        return strings.get(text) or "'" + text.replace("'", "''") + "'"

    def gset(text: str) -> str:
        """Read back the one row whose values later statements need."""
        if text.startswith("SELECT") and "FROM members_member" in text:
            return "member_"
        if text.startswith("SELECT") and "FROM campaigns_code" in text and text.endswith("FOR UPDATE"):
            return "code_"
        if text.startswith('INSERT INTO "rewards_redemption" ') or text.startswith(
            'WITH p AS (INSERT INTO "rewards_redemption" '
        ):
            return "redemption_"
        if 'INSERT INTO "loyalty_idempotencyrecord"' in text:
            return "idempotency_"
        return ""

    lines = [
        "\\set cid random(:cmin, :cmax)",
        "\\set n random(:nfirst, :nlast)",
        "\\set m random(0, :nmembers - 1)",
        "\\set r random(1, 1000000000)",
    ]
    in_transaction = False
    for atomic, sql, params in statements:
        if sql.startswith('UPDATE "loyalty_integrationapikey" SET "last_used_at"'):
            continue  # written once a minute per key, not per request
        if atomic != in_transaction:
            lines.append("BEGIN;" if atomic else "COMMIT;")
            in_transaction = atomic
        values = iter(params or [])
        text = " ".join(sql.split()).replace("; ", " \\; ")  # several statements in one round trip
        text = "".join(literal(next(values)) if part == "%s" else part for part in re.split(r"(%s)", text))
        prefix = gset(text)
        lines.append(f"{text} \\gset {prefix}" if prefix else f"{text};")
    if in_transaction:
        lines.append("COMMIT;")
    return "\n".join(lines) + "\n"


def run_pgbench(script_text: str, campaign_ids: list[int]) -> float:
    script = Path(tempfile.gettempdir()) / f"bench_api_{os.getpid()}.sql"
    script.write_text(script_text)
    url = urlsplit(BENCH_URL)

    def command(seconds: float) -> list[str]:
        return [
            "pgbench", "-n",
            "-h", url.hostname or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres",
            "-c", str(CLIENTS), "-j", str(min(CLIENTS, 2)), "-T", str(max(1, int(seconds))),
            "-D", f"cmin={campaign_ids[0]}", "-D", f"cmax={campaign_ids[-1]}", "-D", f"nmembers={MEMBERS}",
            "-D", f"nfirst={PER_CAMPAIGN // 2 + 1}", "-D", f"nlast={PER_CAMPAIGN}",
            "-f", str(script), "-r", DB_NAME,
        ]  # fmt: skip

    for seconds in (WARMUP, SECONDS):
        finished = subprocess.run(command(seconds), capture_output=True, text=True)
        if finished.returncode:
            raise SystemExit(f"pgbench failed: {finished.stderr[-2000:]}\nscript kept at {script}")
    output = finished.stdout
    tps = next(float(line.split("=")[1].split()[0]) for line in output.splitlines() if line.startswith("tps"))
    latency = next((line.strip() for line in output.splitlines() if line.startswith("latency average")), "")
    statements = sum(1 for line in script_text.splitlines() if not line.startswith("\\"))
    print(
        f"pgbench, the redemption's {statements} statements (BEGIN/COMMIT included): {tps:,.0f} tps ({latency}) "
        f"({load()})"
    )
    # pgbench -r: the average latency of each statement, slowest first (where PostgreSQL spends the time).
    timed = [line.split(None, 2) for line in output.splitlines() if re.match(r"^\s+\d+\.\d+\s+\d+\s", line)]
    for latency_ms, _failures, statement in sorted(timed, key=lambda t: -float(t[0]))[:5]:
        print(f"    {float(latency_ms):6.2f} ms  {statement[:110]}")
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
        SERVER_PID.append(server.pid)
        item = ITEM

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

        print(
            f"gunicorn {WORKERS} sync workers, {CLIENTS} client threads, {WARMUP:.0f} s warm-up + {SECONDS:.0f} s runs"
        )
        drive("validations (1 code)", validation)
        redeem_rps = drive("redemptions (1 code, Idempotency-Key)", redemption)
        drive("orders (earning)", order)
        sample = {"campaign_id": campaign_ids[-1], "n": PER_CAMPAIGN // 2, "member_index": MEMBERS - 1}
        statements = capture_redemption(data["key"], **sample)
        script_text = pgbench_script(statements, **sample)
        if os.environ.get("BENCH_SHOW_SCRIPT"):
            print(script_text)
        pg_tps = run_pgbench(script_text, campaign_ids)
        print(f"redemption endpoint / PostgreSQL running its statements: {redeem_rps / pg_tps:.3f} (target >= 1/3)")
        drive(f"redemptions paced at half the maximum ({redeem_rps / 2:,.0f}/s)", redemption, rate=redeem_rps / 2)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    main()
