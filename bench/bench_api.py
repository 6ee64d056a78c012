"""Benchmark: the touchpoint API over HTTP (gunicorn on 127.0.0.1, PostgreSQL), against fixed references.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/loyalty REDIS_URL=redis://127.0.0.1:6379/3 \\
        python bench/bench_api.py

Works in its own throwaway database (`bench_api_<pid>`, dropped at the end), or with BENCH_KEEP=1 in
`bench_api` (BENCH_DB to name another), kept after the run and reused by the next one when its marker
(`bench_marker`: the sizes below and a fingerprint of the models' tables) matches and enough fresh codes are
left; otherwise it is dropped and loaded again. Loads BENCH_CAMPAIGNS (default 1,000) discount campaigns of
BENCH_CODES_PER_CAMPAIGN (default 1,000) codes each, so 1,000,000 codes, with set-based SQL, BENCH_MEMBERS
(default 100,000) members with their points account (so earning finds it, as in steady state), a program with
a spend rule, and an API key. Each campaign's codes `B<campaign id>-<n>`: n in the first quarter are
single-use codes for the redemption endpoint, in the second quarter single-use codes for the naive peer, in
the second half codes without a usage limit for pgbench (a random draw may hit a used one: the statements are
the same). Fresh codes are drawn campaign by campaign in turn (little contention), starting, on a kept
database, after the highest row already redeemed.

Starts gunicorn (`bench.settings`: the product's settings and URLs plus the naive peer, see `bench/peer.py`;
BENCH_WORKERS sync workers, default 4 as in the Procfile: 2 per core, so one worker waits on PostgreSQL while
the other computes). Every scenario warms up for BENCH_WARMUP seconds (default 2, not counted) then runs for
BENCH_SECONDS (default 8) with BENCH_CLIENTS clients (default 4; HTTP: threads of this process with a
hand-written socket client, a new connection per request as gunicorn's sync workers close them; pgbench: its
clients, one connection each). In order:

- `POST /api/v1/validations` with one random code (once);
- BENCH_ROUNDS interleaved rounds (default 3), each of:
  - `POST /api/v1/redemptions` of a fresh single-use code, each with its own Idempotency-Key (the endpoint),
  - the same with evaluation traces off (`X-Bench-Traces: off`, honoured by `bench.settings` only): what the
    traces cost (at most 10 % of the rate),
  - `POST /bench/naive-redemption` of a fresh code (the naive peer, `bench/peer.py`: the same API-key
    authentication, `atomic`, `select_for_update().get()`, two `create()`, two `F()` updates),
  - pgbench of the minimal redemption transaction on the project's tables: BEGIN; lock the code row by
    tenant and code text FOR UPDATE; insert the redemption and its one line; add 1 to the code's usage
    count; add to the campaign's counters; COMMIT,
  - the same minimal transaction with BENCH_THINK_US microseconds (default 1,000) of client time after each
    statement (pgbench `\\sleep`), as any web view runs it: its code computes between round trips, and the
    backend, idle meanwhile, pays again for being woken and for cold caches at each statement. What that
    costs PostgreSQL per transaction is the reference for round trips (printed beside the ratios),
  - `POST /api/v1/orders` of new paid orders (earning on the spend rule),
  - pgbench of the minimal earning transaction: BEGIN; lock the member's account; insert the order, one
    ledger entry and one lot; update the balance; COMMIT;
- pgbench of the statements the redemption endpoint itself runs for one request (once): captured from
  Django's query log (one request in-process, after the rounds) and turned into a pgbench script (identifiers
  become pgbench variables: campaign, code, member, order id and Idempotency-Key drawn at random, ids read
  back with `\\gset`; bodies stay literals; the transaction as the service opens it), on the unlimited codes;
- the redemption endpoint driven at half its median maximum rate (open loop) for its latency percentiles.

For every scenario it prints the rate, p50/p99 (pgbench: from its per-transaction log), and per request (or
pgbench transaction): Python CPU (gunicorn's master and workers, with any reaped child), PostgreSQL CPU and
WAL bytes (`pg_current_wal_lsn()` before and after). PostgreSQL CPU is counted over the whole cluster: the
postmaster (found from `data_directory`/postmaster.pid) and its live children from /proc, plus the postmaster's
cutime/cstime, where the CPU of every backend that exited (and was reaped) accrues, so pgbench's backends and
any connection closed mid-run still count. Whole cluster and WAL mean that other databases' activity on the
same server (other people's tests, autovacuum) counts too: run it on a quiet server. Each round's figures are
printed, then the medians over rounds and the ratios (each the median of the per-round ratios) with the
issue's targets: PostgreSQL CPU per redemption <= 2x the minimal transaction's, endpoint rate >= the peer's
and >= 0.15 of the minimal transaction's, p99 < 50 ms at half the maximum rate, PostgreSQL CPU per order <=
2x the minimal earning transaction's, Python CPU per order <= per redemption. Client and server share the 2
cores, so the figures are a floor.
"""

import hashlib
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
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
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", 3)))
THINK_US = int(os.environ.get("BENCH_THINK_US", 1000))
KEEP = os.environ.get("BENCH_KEEP", "") not in ("", "0", "false", "no")

if PER_CAMPAIGN < 8:
    sys.exit("BENCH_CODES_PER_CAMPAIGN must be at least 8 (four ranges of codes per campaign).")
# Code ranges per campaign (n of `B<campaign id>-<n>`): single-use for the endpoint, single-use for the peer,
# unlimited for pgbench.
ENDPOINT_CODES = (1, PER_CAMPAIGN // 4)
PEER_CODES = (PER_CAMPAIGN // 4 + 1, PER_CAMPAIGN // 2)
UNLIMITED_CODES = (PER_CAMPAIGN // 2 + 1, PER_CAMPAIGN)

BASE_URL = os.environ.get("DATABASE_URL", "")
if not BASE_URL.startswith("postgres"):
    sys.exit("Set DATABASE_URL=postgres://... (the benchmark creates and drops its own database there).")
DB_NAME = os.environ.get("BENCH_DB", "bench_api") if KEEP else f"bench_api_{os.getpid()}"
# In order ids and Idempotency-Keys (unique on a kept database too); digits only, as pgbench substitutes it bare.
RUN_ID = f"{int(time.time())}{os.getpid() % 100_000:05d}"
parts = urlsplit(BASE_URL)
BENCH_URL = urlunsplit(parts._replace(path=f"/{DB_NAME}"))
ADMIN_URL = urlunsplit(parts._replace(path="/postgres"))

os.environ["DATABASE_URL"] = BENCH_URL
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"  # the product's settings, URLs plus the naive peer
os.environ.setdefault("SECRET_KEY", "bench-only-secret")


ITEM = {"sku": "TSHIRT", "category": "apparel", "quantity": 2, "unit_price": "30.00"}
ORDER_AMOUNT = "60.00"  # the items' total; the campaigns' discount is 10% of it (6.00), the spend rule 60 points
DISCOUNT = "6.00"
POINTS = 60


def admin_sql(statement: str, params=None) -> list[tuple]:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


class DisableMigrations(dict):
    """Build tables straight from the models, as the test suite does (`--no-migrations`)."""

    def __contains__(self, item):
        return True

    def __getitem__(self, item):
        return None


def schema_fingerprint() -> str:
    """A digest of every model's table, columns and their types: a kept database built from other models is
    loaded again."""
    from django.apps import apps
    from django.db import connection

    rows = sorted(
        (model._meta.db_table, f.column, str(f.db_type(connection)), f.null)
        for model in apps.get_models(include_auto_created=True)
        for f in model._meta.local_fields
    )
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def wanted_marker() -> dict:
    return {
        "campaigns": str(CAMPAIGNS),
        "per_campaign": str(PER_CAMPAIGN),
        "members": str(MEMBERS),
        "schema": schema_fingerprint(),
    }


def kept_database_usable() -> bool:
    """BENCH_KEEP: the database exists, its marker matches the sizes and models, and fresh codes are left."""
    import psycopg

    if not admin_sql("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]):
        return False
    try:
        with psycopg.connect(BENCH_URL, autocommit=True) as conn:
            marker = dict(conn.execute("SELECT key, value FROM bench_marker").fetchall())
            if marker != wanted_marker():
                print(f"kept database {DB_NAME}: marker {marker} does not match; loading again")
                return False
            for first, last in (ENDPOINT_CODES, PEER_CODES):
                used = used_rows(conn, first, last)
                if used > (last - first + 1) // 2:
                    print(f"kept database {DB_NAME}: {used} of codes {first}..{last} per campaign used; loading again")
                    return False
    except psycopg.Error as error:
        print(f"kept database {DB_NAME} not usable ({str(error).strip()}); loading again")
        return False
    return True


# The highest n of a single-use range already redeemed (a scan of the codes; only a kept database has any).
USED_ROWS_SQL = """
    SELECT max(split_part(code, '-', 2)::int) FROM campaigns_code
    WHERE usage_limit = 1 AND redeemed_count > 0 AND split_part(code, '-', 2)::int BETWEEN %s AND %s
"""


def used_rows(conn, first: int, last: int) -> int:
    """How many rows (n) of the single-use range first..last are used, counted up to the highest redeemed."""
    highest = conn.execute(USED_ROWS_SQL, [first, last]).fetchone()[0]
    return 0 if highest is None else highest - first + 1


def setup_database(*, load: bool) -> dict:
    import django
    from django.conf import settings

    django.setup()
    settings.MIGRATION_MODULES = DisableMigrations()
    from django.core.management import call_command
    from django.db import connection

    from campaigns.models import Campaign
    from integrations.keys import api_key_create, integration_get_or_create
    from loyalty.models import Program
    from loyalty.services.program import program_declare
    from members.models import Member, Tenant
    from members.services import tenant_create

    started = time.perf_counter()
    if load:
        call_command("migrate", run_syncdb=True, verbosity=0)
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
        program = Program.objects.get(tenant=tenant, code="club")
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO campaigns_code (tenant_id, campaign_id, code, is_shared, usage_limit, redeemed_count,
                                            created_at)
                SELECT c.tenant_id, c.id, 'B' || c.id || '-' || g, false, CASE WHEN g > %s THEN NULL ELSE 1 END,
                       0, now()
                FROM campaigns_campaign c CROSS JOIN generate_series(1, %s) AS g
                WHERE c.tenant_id = %s
                """,
                [PEER_CODES[1], PER_CAMPAIGN, tenant.pk],
            )
            codes = cursor.rowcount
            cursor.execute("UPDATE campaigns_campaign SET codes_count = %s", [PER_CAMPAIGN])
            cursor.execute(
                """
                INSERT INTO rewards_account (tenant_id, member_id, program_id, balance, pending, lifetime_earned,
                                             debt, created_at)
                SELECT tenant_id, id, %s, 0, 0, 0, 0, now() FROM members_member WHERE tenant_id = %s
                """,
                [program.pk, tenant.pk],
            )
            cursor.execute("CREATE TABLE bench_marker (key text PRIMARY KEY, value text NOT NULL)")
            for key, value in wanted_marker().items():
                cursor.execute("INSERT INTO bench_marker VALUES (%s, %s)", [key, value])
            cursor.execute("ANALYZE")
        print(
            f"loaded {CAMPAIGNS:,} campaigns, {codes:,} codes, {MEMBERS:,} members and accounts into {DB_NAME} "
            f"in {time.perf_counter() - started:.1f} s"
        )
    else:
        tenant = Tenant.objects.get(slug="bench")
        program = Program.objects.get(tenant=tenant, code="club")
        print(f"reusing the kept database {DB_NAME} (BENCH_KEEP)")
    integration, _ = integration_get_or_create(tenant=tenant, name="bench")
    _, raw_key = api_key_create(integration=integration, throttle_rate="1000000/min")
    campaign_ids = list(Campaign.objects.filter(tenant=tenant).order_by("pk").values_list("pk", flat=True))
    member_ids = Member.objects.filter(tenant=tenant).order_by("pk").values_list("pk", flat=True)
    member_min, member_max = member_ids.first(), member_ids.last()
    if len(campaign_ids) != CAMPAIGNS or campaign_ids[-1] - campaign_ids[0] + 1 != CAMPAIGNS:
        raise SystemExit("the campaigns' ids are not contiguous (pgbench draws them from a range)")
    if member_max - member_min + 1 != MEMBERS:
        raise SystemExit("the members' ids are not contiguous (pgbench draws them from a range)")
    with connection.cursor() as cursor:
        starts = {}
        for name, (first, last) in (("endpoint", ENDPOINT_CODES), ("peer", PEER_CODES)):
            cursor.execute(USED_ROWS_SQL, [first, last])
            highest = cursor.fetchone()[0]
            starts[name] = 0 if highest is None else highest - first + 1
    connection.close()
    return {
        "key": raw_key,
        "campaign_ids": campaign_ids,
        "tenant_id": tenant.pk,
        "program_id": program.pk,
        "member_min": member_min,
        "member_max": member_max,
        "start_rows": starts,
    }


def start_gunicorn() -> subprocess.Popen:
    env = dict(
        os.environ,
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1",
        API_THROTTLE_RATE="1000000/min",
        DJANGO_SETTINGS_MODULE="bench.settings",
    )
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


# --- what a request costs: CPU of gunicorn, of the PostgreSQL cluster, of the client; WAL ---------------

SERVER_PID: list[int] = []  # gunicorn's master, once started
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _reaped_ticks(pid: int) -> int | None:
    fields = _stat(pid)
    return None if fields is None else int(fields[13]) + int(fields[14])  # cutime, cstime


def tree_cpu(root: int | None) -> float:
    """CPU seconds of process `root` and its children: their own (utime + stime) and that of their children
    already reaped (cutime + cstime: a PostgreSQL backend that exited is reaped by the postmaster, whose
    cutime/cstime then hold its CPU). NaN when `root` is not visible here.

    The scan of /proc is not atomic: a child reaped during it would be missed or counted twice, so the scan is
    repeated until `root`'s reaped CPU is the same before and after it."""
    if root is None:
        return float("nan")
    for _ in range(20):
        reaped_before = _reaped_ticks(root)
        if reaped_before is None:
            return float("nan")
        ticks = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            fields = _stat(entry.name)
            if fields is None:
                continue
            pid, ppid = int(entry.name), int(fields[1])
            if pid == root:
                ticks += int(fields[11]) + int(fields[12])  # utime, stime (its reaped CPU: below)
            elif ppid == root:
                ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
        if _reaped_ticks(root) == reaped_before:
            return (ticks + reaped_before) / CLOCK_TICKS
        time.sleep(0.01)
    return (ticks + reaped_before) / CLOCK_TICKS


def postmaster_pid() -> int | None:
    """The PostgreSQL server's postmaster: the first line of `postmaster.pid` in its data directory, else a
    `postgres` process whose parent is not one; None when the server runs elsewhere."""
    try:
        data_directory = admin_sql("SHOW data_directory")[0][0]
        pid = int((Path(data_directory) / "postmaster.pid").read_text().split()[0])
        if Path(f"/proc/{pid}").exists():
            return pid
    except (OSError, ValueError, IndexError):
        pass
    comms = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            comms[int(entry.name)] = (stat.split("(", 1)[1].rsplit(")", 1)[0], int(stat.rsplit(")", 1)[1].split()[1]))
    for pid, (comm, ppid) in sorted(comms.items()):
        if comm == "postgres" and comms.get(ppid, ("", 0))[0] != "postgres":
            return pid
    print("PostgreSQL's postmaster is not visible in /proc: its CPU is not counted")
    return None


class Meter:
    """Snapshots of CPU seconds (gunicorn, the PostgreSQL cluster, this process and its reaped children such as
    pgbench) and of the WAL position (one connection kept open, so taking them forks no backend)."""

    def __init__(self) -> None:
        import psycopg

        self.postmaster = postmaster_pid()
        self.conn = psycopg.connect(ADMIN_URL, autocommit=True)

    def snapshot(self) -> dict[str, float]:
        times = os.times()
        out = {
            "app": tree_cpu(SERVER_PID[0]) if SERVER_PID else 0.0,
            "postgres": tree_cpu(self.postmaster),
            "client": times.user + times.system + times.children_user + times.children_system,
        }
        row = self.conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").fetchone()
        out["wal"] = float(row[0])
        return out

    def close(self) -> None:
        self.conn.close()


@dataclass
class Result:
    """One scenario's measured run. Per-request figures in ms of CPU and bytes of WAL."""

    name: str
    rate: float
    count: int
    latencies: list[float]
    usage: dict[str, float]  # deltas of `Meter.snapshot()`
    statuses: dict[int, int] = field(default_factory=dict)
    http: bool = True

    @property
    def p50(self) -> float:
        return pct(self.latencies, 0.5)

    @property
    def p99(self) -> float:
        return pct(self.latencies, 0.99)

    def per(self, key: str) -> float:
        if not self.count:
            return float("nan")
        scale = 1 if key == "wal" else 1000
        return self.usage[key] * scale / self.count

    @property
    def python_ms(self) -> float:
        return self.per("app") if self.http else float("nan")

    @property
    def postgres_ms(self) -> float:
        return self.per("postgres")

    @property
    def wal_bytes(self) -> float:
        return self.per("wal")

    def show(self) -> None:
        unit = "req/s" if self.http else "tps"
        statuses = f", statuses {self.statuses}" if self.http else ""
        print(
            f"{self.name}: {self.rate:,.0f} {unit}, p50 {self.p50:.1f} ms, p99 {self.p99:.1f} ms{statuses} ({load()})"
        )
        python = f"Python {self.python_ms:.2f} ms, " if self.http else ""
        print(
            f"    per {'request' if self.http else 'transaction'}: {python}PostgreSQL {self.postgres_ms:.2f} ms CPU, "
            f"client {self.per('client'):.2f} ms CPU, WAL {self.wal_bytes:,.0f} B; "
            f"{sum(self.usage[k] for k in ('app', 'postgres', 'client')) / SECONDS:.2f} of the 2 cores busy"
        )


METER: list[Meter] = []


def drive(name: str, make_request, *, rate: float | None = None) -> Result:
    """Warm up, then run `make_request(thread_index, n)` from CLIENTS threads for SECONDS; print, return it."""
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
        before = METER[0].snapshot()
        threads = [threading.Thread(target=worker, args=(i, seconds, record)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        after = METER[0].snapshot()
    result = Result(
        name,
        rate=len(latencies) / SECONDS,
        count=len(latencies),
        latencies=latencies,
        usage={k: after[k] - before[k] for k in after},
        statuses=statuses,
    )
    result.show()
    for content in failures:
        print(f"    refused: {content!r}")
    return result


class FreshCodes:
    """Fresh single-use codes `B<campaign>-<n>`, n in first..last, campaigns in turn (little contention), from
    row `start_row` (the rows a kept database already used are skipped)."""

    def __init__(self, campaign_ids: list[int], first_last: tuple[int, int], start_row: int) -> None:
        self.campaign_ids = campaign_ids
        self.first, self.last = first_last
        self.next = start_row * len(campaign_ids)
        self.lock = threading.Lock()
        self.warned = False

    def draw(self) -> tuple[int, str]:
        with self.lock:
            k = self.next
            self.next += 1
        n = self.first + k // len(self.campaign_ids)
        if n > self.last and not self.warned:
            self.warned = True
            print(f"    ran out of fresh codes {self.first}..{self.last}: raise BENCH_CODES_PER_CAMPAIGN")
        return k, f"B{self.campaign_ids[k % len(self.campaign_ids)]}-{n}"

    def reserve_last_campaign(self) -> int:
        """A fresh n of the last campaign (for the in-process sample); later draws start on the next row."""
        with self.lock:
            row = self.next // len(self.campaign_ids)  # the last campaign's code of this row is not drawn yet
            self.next = (row + 1) * len(self.campaign_ids)
        return self.first + row


# --- the PostgreSQL side of one redemption, as pgbench runs it -------------------------------------

# The ids the sample request's rows get (sequences set before it), far from any other number among the
# statements' parameters, so that each one found there is that row's id and nothing else. On a kept
# database they move up past the rows already there (see `sample_ids`).
SAMPLE_IDS = {
    "rewards_redemption": 810_000_001,
    "rewards_redemptioncode": 720_000_001,
    "loyalty_idempotencyrecord": 630_000_001,
}
SAMPLE_ORDER = f"sample-order-{RUN_ID}"
SAMPLE_KEY = f"sample-idempotency-key-{RUN_ID}"


def sample_ids() -> dict[str, int]:
    """SAMPLE_IDS, each moved up by steps of 100,000,000 past the table's highest id (a kept database)."""
    from django.db import connection

    out = {}
    with connection.cursor() as cursor:
        for table, value in SAMPLE_IDS.items():
            cursor.execute(f'SELECT coalesce(max(id), 0) FROM "{table}"')
            highest = cursor.fetchone()[0]
            while value <= highest:
                value += 100_000_000
            out[table] = value
    return out


def capture_redemption(
    raw_key: str, campaign_id: int, n: int, member_index: int, ids: dict[str, int]
) -> list[tuple[bool, str, Any]]:
    """Run one redemption request in-process; return the statements it ran: (in a transaction, sql, params)."""
    from django.conf import settings
    from django.db import connection
    from django.test import Client

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    with connection.cursor() as cursor:
        for table, value in ids.items():
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, false)", [table, value])
    statements: list[tuple[bool, str, Any]] = []

    def log(execute, sql, params, many, context):
        statements.append((connection.in_atomic_block, sql, params))
        return execute(sql, params, many, context)

    body = {
        "order_id": SAMPLE_ORDER,
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
            HTTP_IDEMPOTENCY_KEY=SAMPLE_KEY,
        )
    if response.status_code != 201:
        raise SystemExit(f"the sample redemption failed: {response.status_code} {response.content[:500]!r}")
    return statements


def pgbench_script(statements, *, campaign_id: int, n: int, member_index: int, ids: dict[str, int]) -> str:
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
        SAMPLE_ORDER: "('r-' || :run || '-' || :client_id || '-' || :r)",
        SAMPLE_KEY: "('k-' || :run || '-' || :client_id || '-' || :r)",
    }
    ints = {
        campaign_id: ":cid",
        code_id: ":code_id",
        member_id: ":member_id",
        ids["rewards_redemption"]: ":redemption_id",
        ids["loyalty_idempotencyrecord"]: ":idempotency_id",
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
        if text.startswith("SELECT") and "campaigns_code" in text and text.endswith("FOR UPDATE"):
            # The code row, alone or joined after its campaign (the code's columns come last: `code_id` is its).
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
        "\\set r random(1, 1000000000000)",
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


# --- the fixed references: the minimal transactions, written by hand on the project's tables ----------

ORDER_JSON = json.dumps({"items": [ITEM]}).replace("'", "''")

# BEGIN; lock the code row by tenant and code text FOR UPDATE; insert the redemption and its one line;
# add 1 to the code's usage count; add to the campaign's counters; COMMIT.
MINIMAL_REDEMPTION = f"""\\set cid random(:cmin, :cmax)
\\set n random(:nfirst, :nlast)
\\set mid random(:mmin, :mmax)
\\set r random(1, 1000000000000)
BEGIN;
SELECT id AS code_id FROM campaigns_code WHERE tenant_id = :tid AND code = 'B' || :cid || '-' || :n FOR UPDATE \\gset
INSERT INTO rewards_redemption (tenant_id, member_id, order_id, "order", order_amount, discount, gift_cards, \
points_used, points_value, points_entry_id, total, channel, integration_id, integration_name, staff_user_id, \
status, created_at) VALUES (:tid, :mid, 'x-' || :run || '-' || :client_id || '-' || :r, '{ORDER_JSON}', \
{ORDER_AMOUNT}, {DISCOUNT}, 0, 0, 0, NULL, {ORDER_AMOUNT} - {DISCOUNT}, 'api', NULL, 'bench', NULL, \
'succeeded', now()) RETURNING id AS redemption_id \\gset
INSERT INTO rewards_redemptioncode (tenant_id, redemption_id, campaign_id, code_id, member_id, kind, discount, \
order_amount, usage_keys, rolled_back, created_at) VALUES (:tid, :redemption_id, :cid, :code_id, :mid, 'code', \
{DISCOUNT}, {ORDER_AMOUNT}, '[]', false, now());
UPDATE campaigns_code SET redeemed_count = redeemed_count + 1 WHERE id = :code_id;
UPDATE campaigns_campaign SET redemptions_count = redemptions_count + 1, discount_used = discount_used + {DISCOUNT}, \
order_value_used = order_value_used + {ORDER_AMOUNT} WHERE id = :cid;
COMMIT;
"""

# BEGIN; lock the member's account; insert the order, one ledger entry and one lot; update the balance; COMMIT.
MINIMAL_EARNING = f"""\\set mid random(:mmin, :mmax)
\\set r random(1, 1000000000000)
BEGIN;
SELECT id AS account_id, balance FROM rewards_account WHERE member_id = :mid AND program_id = :pid FOR UPDATE \\gset
INSERT INTO loyalty_order (tenant_id, member_id, program_id, order_id, amount, returned_amount, currency, location, \
channel, occurred_at, points_total, points_taken_back, result, created_at) VALUES (:tid, :mid, :pid, \
'e-' || :run || '-' || :client_id || '-' || :r, {ORDER_AMOUNT}, 0, 'EUR', '', 'api', now(), {POINTS}, 0, '{{}}', now());
INSERT INTO rewards_ledgerentry (tenant_id, account_id, kind, points, balance_after, reason, order_id, campaign_id, \
rule_code, staff_user_id, idempotency_key, expires_at, reverses_id, created_at) VALUES (:tid, :account_id, 'earn', \
{POINTS}, :balance + {POINTS}, 'Order', 'e-' || :run || '-' || :client_id || '-' || :r, NULL, 'spend', NULL, NULL, \
NULL, NULL, now()) RETURNING id AS entry_id \\gset
INSERT INTO rewards_pointlot (tenant_id, account_id, entry_id, points, remaining, earned_at, expires_at, inactivity, \
order_id) VALUES (:tid, :account_id, :entry_id, {POINTS}, {POINTS}, now(), NULL, false, \
'e-' || :run || '-' || :client_id || '-' || :r);
UPDATE rewards_account SET balance = balance + {POINTS}, lifetime_earned = lifetime_earned + {POINTS}, \
last_activity_at = now() WHERE id = :account_id;
COMMIT;
"""


def run_pgbench(
    name: str, script_text: str, defines: dict, *, per_statement: bool = False, protocol: str = "simple"
) -> Result:
    """pgbench of `script_text` with CLIENTS clients: warm-up, then SECONDS measured (latencies from its
    per-transaction log, CPU and WAL from the meter); print, return it."""
    directory = Path(tempfile.mkdtemp(prefix=f"bench_api_{os.getpid()}_"))
    script = directory / "script.sql"
    script.write_text(script_text)
    url = urlsplit(BENCH_URL)

    def command(seconds: float, log: bool) -> list[str]:
        return [
            "pgbench", "-n",
            "-h", url.hostname or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres",
            "-c", str(CLIENTS), "-j", str(min(CLIENTS, 2)), "-T", str(max(1, int(seconds))),
            *[arg for key, value in defines.items() for arg in ("-D", f"{key}={value}")],
            "-f", str(script), "-M", protocol,
            *(["-r"] if per_statement else []),
            *(["-l", f"--log-prefix={directory / 'log'}"] if log else []),
            DB_NAME,
        ]  # fmt: skip

    for seconds, log in ((WARMUP, False), (SECONDS, True)):
        before = METER[0].snapshot()
        finished = subprocess.run(command(seconds, log), capture_output=True, text=True)
        after = METER[0].snapshot()
        if finished.returncode:
            raise SystemExit(f"pgbench failed: {finished.stderr[-2000:]}\nscript kept at {script}")
    output = finished.stdout
    tps = next(float(line.split("=")[1].split()[0]) for line in output.splitlines() if line.startswith("tps"))
    latencies = []
    for path in directory.glob("log.*"):
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                latencies.append(int(fields[2]) / 1_000_000)
    result = Result(
        name,
        rate=tps,
        count=len(latencies),
        latencies=latencies,
        usage={k: after[k] - before[k] for k in after},
        http=False,
    )
    result.show()
    if per_statement:
        # pgbench -r: the average latency of each statement, slowest first (where PostgreSQL spends the time).
        timed = [line.split(None, 2) for line in output.splitlines() if re.match(r"^\s+\d+\.\d+\s+\d+\s", line)]
        for latency_ms, _failures, statement in sorted(timed, key=lambda t: -float(t[0]))[:5]:
            print(f"    {float(latency_ms):6.2f} ms  {statement[:110]}")
    shutil.rmtree(directory, ignore_errors=True)
    return result


# --- the run ---------------------------------------------------------------------------------------------


def div(a: float, b: float) -> float:
    return a / b if b else float("nan")


def median(values) -> float:
    values = [v for v in values if v == v]  # NaN left out
    return statistics.median(values) if values else float("nan")


def spaced(script_text: str, microseconds: int) -> str:
    """A pgbench script with `microseconds` of client time after each SQL statement (one statement a line)."""
    out = []
    for line in script_text.splitlines():
        out.append(line)
        if line.strip() and not line.startswith("\\"):
            out.append(f"\\sleep {microseconds} us")
    return "\n".join(out) + "\n"


SUMMARY_LABELS = {
    "redemption": "redemption, endpoint",
    "untraced": "redemption, endpoint, traces off",
    "peer": "redemption, naive peer",
    "minimal_redemption": "redemption, minimal transaction (pgbench)",
    "minimal_spaced": f"redemption, minimal, {THINK_US} us between statements",
    "orders": "order (earning), endpoint",
    "minimal_earning": "earning, minimal transaction (pgbench)",
}


def summary(validation: Result, rounds: list[dict[str, Result]], statements: Result, paced: Result) -> None:
    print(f"\n=== summary: medians of {len(rounds)} interleaved round(s) ({load()}) ===")
    print(f"{'scenario':<54} {'rate/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'Python ms':>9} {'PG ms':>6} {'WAL B':>7}")

    def number(value: float, spec: str, width: int) -> str:
        return f"{'-' if value != value else format(value, spec):>{width}}"

    def row(label: str, results: list[Result]) -> None:
        print(
            f"{label:<54} {number(median(r.rate for r in results), ',.0f', 7)} "
            f"{number(median(r.p50 for r in results), '.1f', 7)} {number(median(r.p99 for r in results), '.1f', 7)} "
            f"{number(median(r.python_ms for r in results), '.2f', 9)} "
            f"{number(median(r.postgres_ms for r in results), '.2f', 6)} "
            f"{number(median(r.wal_bytes for r in results), ',.0f', 7)}"
        )

    row("validation, endpoint (once)", [validation])
    for key, label in SUMMARY_LABELS.items():
        row(label, [r[key] for r in rounds])
    row("redemption, the endpoint's statements (pgbench, once)", [statements])
    row(f"redemption, endpoint at {paced.rate:,.0f}/s (paced, once)", [paced])
    print("(Python: gunicorn's CPU; PG: the cluster's CPU; both in ms, WAL in bytes, per request or transaction)")

    def ratio(label: str, values: list[float], target: float, sign: str, shown: str = "") -> None:
        value = median(values)
        met = {">=": value >= target, "<=": value <= target, "<": value < target}[sign]
        verdict = "not measured" if value != value else ("met" if met else "MISSED")
        print(f"  {label:<58} {number(value, '.3f', 7)}   target {sign} {shown or format(target, 'g')}: {verdict}")

    print("ratios (medians of the per-round ratios):")
    ratio(
        "redemption rate, endpoint / minimal transaction",
        [div(r["redemption"].rate, r["minimal_redemption"].rate) for r in rounds],
        0.15,
        ">=",
    )
    ratio(
        "redemption rate, endpoint / naive peer", [div(r["redemption"].rate, r["peer"].rate) for r in rounds], 1, ">="
    )
    ratio(
        "PostgreSQL CPU per redemption, endpoint / minimal",
        [div(r["redemption"].postgres_ms, r["minimal_redemption"].postgres_ms) for r in rounds],
        2,
        "<=",
    )
    ratio(
        "PostgreSQL CPU per order, endpoint / minimal earning",
        [div(r["orders"].postgres_ms, r["minimal_earning"].postgres_ms) for r in rounds],
        2,
        "<=",
    )
    ratio(
        "Python CPU, per order / per redemption (endpoints)",
        [div(r["orders"].python_ms, r["redemption"].python_ms) for r in rounds],
        1,
        "<=",
    )
    ratio(
        "redemption rate, endpoint / pgbench of its own statements",
        [div(median(r["redemption"].rate for r in rounds), statements.rate)],
        1 / 3,
        ">=",
        "1/3",
    )
    ratio("redemption p99 (ms) paced at half the maximum rate", [paced.p99], 50, "<", "50")
    print("what round trips cost PostgreSQL (no target; PostgreSQL CPU per transaction, medians of the rounds):")

    def info(label: str, values: list[float]) -> None:
        print(f"  {label:<58} {number(median(values), '.3f', 7)}")

    info(
        "naive peer / minimal (the minimal transaction from a Django view)",
        [div(r["peer"].postgres_ms, r["minimal_redemption"].postgres_ms) for r in rounds],
    )
    info(
        f"minimal with {THINK_US} us client time / minimal back to back",
        [div(r["minimal_spaced"].postgres_ms, r["minimal_redemption"].postgres_ms) for r in rounds],
    )
    info(
        f"endpoint / minimal with {THINK_US} us client time",
        [div(r["redemption"].postgres_ms, r["minimal_spaced"].postgres_ms) for r in rounds],
    )
    info("endpoint / naive peer", [div(r["redemption"].postgres_ms, r["peer"].postgres_ms) for r in rounds])
    ratio(
        "redemption rate, traces on / traces off (issue 12)",
        [div(r["redemption"].rate, r["untraced"].rate) for r in rounds],
        0.9,
        ">=",
    )


def main() -> None:
    import django

    started = time.perf_counter()
    django.setup()
    reuse = KEEP and kept_database_usable()
    if not reuse:
        admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        admin_sql(f'CREATE DATABASE "{DB_NAME}"')
    server = None
    try:
        data = setup_database(load=not reuse)
        auth = {"Authorization": f"Api-Key {data['key']}"}
        campaign_ids = data["campaign_ids"]
        METER.append(Meter())
        server = start_gunicorn()
        SERVER_PID.append(server.pid)
        item = ITEM
        endpoint_codes = FreshCodes(campaign_ids, ENDPOINT_CODES, data["start_rows"]["endpoint"])
        peer_codes = FreshCodes(campaign_ids, PEER_CODES, data["start_rows"]["peer"])

        def validation(index, n):
            rng = random.Random(index * 1_000_003 + n)
            code = f"B{rng.choice(campaign_ids)}-{rng.randint(1, PER_CAMPAIGN)}"
            body = {"member": f"m-{rng.randrange(MEMBERS)}", "order": {"items": [item]}, "codes": [code]}
            return "POST", "/api/v1/validations", body, auth

        def redemption(index, n):
            k, code = endpoint_codes.draw()  # each request a fresh single-use code
            body = {
                "order_id": f"r-{RUN_ID}-{k}",
                "member": f"m-{k % MEMBERS}",
                "order": {"items": [item]},
                "codes": [code],
            }
            return "POST", "/api/v1/redemptions", body, {**auth, "Idempotency-Key": f"redeem-{RUN_ID}-{k}"}

        def untraced(index, n):
            method, path, body, headers = redemption(index, n)
            return method, path, body, {**headers, "X-Bench-Traces": "off"}

        def peer(index, n):
            k, code = peer_codes.draw()
            body = {"order_id": f"p-{RUN_ID}-{k}", "member": f"m-{k % MEMBERS}", "code": code, "amount": ORDER_AMOUNT}
            return "POST", "/bench/naive-redemption", body, auth

        ordered = {"next": 0}
        order_lock = threading.Lock()

        def order(index, n):
            with order_lock:
                k = ordered["next"]
                ordered["next"] += 1
            body = {
                "order_id": f"o-{RUN_ID}-{k}",
                "member": f"m-{k * 7919 % MEMBERS}",
                "amount": ORDER_AMOUNT,
                "currency": "EUR",
                "items": [item],
            }
            return "POST", "/api/v1/orders", body, auth

        defines = {
            "run": RUN_ID,
            "tid": data["tenant_id"],
            "pid": data["program_id"],
            "cmin": campaign_ids[0],
            "cmax": campaign_ids[-1],
            "mmin": data["member_min"],
            "mmax": data["member_max"],
            "nmembers": MEMBERS,
            "nfirst": UNLIMITED_CODES[0],
            "nlast": UNLIMITED_CODES[1],
        }
        print(
            f"gunicorn {WORKERS} sync workers, {CLIENTS} clients, {WARMUP:g} s warm-up + {SECONDS:g} s runs, "
            f"{ROUNDS} round(s); PostgreSQL CPU and WAL of the whole cluster (postmaster pid "
            f"{METER[0].postmaster})"
        )
        validation_result = drive("validations (1 code)", validation)
        rounds: list[dict[str, Result]] = []
        for number in range(1, ROUNDS + 1):
            print(f"--- round {number} of {ROUNDS}")
            rounds.append(
                {
                    "redemption": drive("redemptions, endpoint (1 code, Idempotency-Key)", redemption),
                    "untraced": drive("redemptions, endpoint, evaluation traces off", untraced),
                    "peer": drive("redemptions, naive peer (DRF + ORM)", peer),
                    "minimal_redemption": run_pgbench(
                        "pgbench, minimal redemption transaction", MINIMAL_REDEMPTION, defines
                    ),
                    "minimal_spaced": run_pgbench(
                        f"pgbench, minimal redemption transaction, {THINK_US} us client time between statements",
                        spaced(MINIMAL_REDEMPTION, THINK_US),
                        defines,
                    ),
                    "orders": drive("orders (earning), endpoint", order),
                    "minimal_earning": run_pgbench("pgbench, minimal earning transaction", MINIMAL_EARNING, defines),
                }
            )
            r = rounds[-1]
            print(
                f"round {number}: rate endpoint / minimal "
                f"{div(r['redemption'].rate, r['minimal_redemption'].rate):.3f}, "
                f"endpoint / peer {div(r['redemption'].rate, r['peer'].rate):.3f}; PostgreSQL CPU endpoint / minimal "
                f"{div(r['redemption'].postgres_ms, r['minimal_redemption'].postgres_ms):.2f}, "
                f"order / minimal earning {div(r['orders'].postgres_ms, r['minimal_earning'].postgres_ms):.2f}; "
                f"Python CPU order / redemption {div(r['orders'].python_ms, r['redemption'].python_ms):.2f}"
            )
        print("--- once")
        ids = sample_ids()
        sample = {
            "campaign_id": campaign_ids[-1],
            "n": endpoint_codes.reserve_last_campaign(),
            "member_index": MEMBERS - 1,
            "ids": ids,
        }
        statements = capture_redemption(data["key"], **sample)
        script_text = pgbench_script(statements, **sample)
        if os.environ.get("BENCH_SHOW_SCRIPT"):
            print(script_text)
        count = sum(1 for line in script_text.splitlines() if not line.startswith("\\"))
        statements_result = run_pgbench(
            f"pgbench, the endpoint's {count} statements (BEGIN/COMMIT included)",
            script_text,
            defines,
            per_statement=True,
            protocol="prepared",  # as the endpoint runs them (DB_PREPARE_THRESHOLD)
        )
        half = median(r["redemption"].rate for r in rounds) / 2
        paced = drive(f"redemptions, endpoint, paced at half the maximum ({half:,.0f}/s)", redemption, rate=half)
        summary(validation_result, rounds, statements_result, paced)
        print(f"the run took {time.perf_counter() - started:.0f} s")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if METER:
            METER[0].close()
        if KEEP:
            print(f"kept the database {DB_NAME} (BENCH_KEEP)")
        else:
            admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    main()
