"""Figure for the note: PostgreSQL killed under load, every unanswered request retried with its key; then the
ledger reconciliation's mismatches and the duplicate (and lost) effects. It prints figures; it is not a test.

    python bench/crash_recovery.py          # as root it runs the cluster as the `postgres` OS user

What it does, bounded (CRASH_DEADLINE seconds, default 110) and on 127.0.0.1 only:

1. `initdb` of a throwaway cluster in a temporary directory, started with `pg_ctl` on a free port
   (/usr/lib/postgresql/15/bin, or PG_BIN). initdb refuses to run as root, so as root the cluster runs as
   the `postgres` OS user (CRASH_PG_USER).
2. `migrate` of the real migrations there (the triggers and check constraints included), then a tenant, a
   program (1 point per 1.00, 5 points per `crash_probe` event, points worth 0.01), a discount campaign with a
   shared code and limits, CRASH_MEMBERS members (default 40) each with an opening order, and an API key.
3. CRASH_THREADS client threads (default 8) post, through the API (Django's test client, in process, each
   request with its own `Idempotency-Key`): paid orders (`POST /orders`, one in three with the shared code),
   redemptions of the code plus points (`POST /redemptions`) and custom events (`POST /events`), until
   CRASH_AFTER_RESTART seconds (default 3) after the restart. Members are shared between threads, so accounts
   and the campaign row are contended. A client whose request failed backs off 0.2 s and goes on.
4. At CRASH_KILL_AT seconds (default 2.5) the postmaster is killed with SIGKILL (no shutdown checkpoint); its
   backends exit on their own (any left after 10 s are killed too, by pid). The cluster is started again
   (crash recovery replays the write-ahead log) while the clients keep posting.
5. Every request that got no answer (an exception, a 5xx, or 409 `idempotency_request_in_progress`: a claim
   of a request that died with the server, held until IDEMPOTENCY_LOCK_SECONDS, here 2) is retried with the
   same key and body until it is answered.
6. Figures: `ledger_reconcile()` mismatches; duplicate effects (two orders, earn entries, redemptions,
   redeem entries or events for one request; campaign and code counters against the redemptions); lost
   effects (an answered success whose row is missing); requests never answered. All must be 0.

Most of the restart is PostgreSQL's own crash handling: the fsync of the data directory before the redo and
the end-of-recovery checkpoint; the redo itself takes a tenth of a second here (CRASH_VERBOSE=1 prints the
server log of the recovery). The cluster is stopped and its directory removed at the end, whatever happens.
"""

import ctypes
import json
import logging
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = os.environ.get("CRASH_PG_USER", "postgres")
MEMBERS = int(os.environ.get("CRASH_MEMBERS", 40))
THREADS = int(os.environ.get("CRASH_THREADS", 8))
AFTER_RESTART = float(os.environ.get("CRASH_AFTER_RESTART", 3))
KILL_AT = float(os.environ.get("CRASH_KILL_AT", 2.5))
DEADLINE = float(os.environ.get("CRASH_DEADLINE", 110))
SEED = int(os.environ.get("CRASH_SEED", 10))
CODE = "CRASH10"
EVENT = "crash_probe"
STARTED = time.monotonic()
PR_SET_CHILD_SUBREAPER = 36


def left() -> float:
    return DEADLINE - (time.monotonic() - STARTED)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the throwaway cluster ----------------------------------------------------------------------------------


class Cluster:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="crash_recovery_"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.as_user = pwd.getpwnam(PG_USER) if os.geteuid() == 0 else None
        if self.as_user is not None:
            os.chown(self.root, self.as_user.pw_uid, self.as_user.pw_gid)
        # pg_ctl leaves the postmaster an orphan; as the subreaper this process becomes its parent, so a killed
        # postmaster (and its backends) can be reaped here: a zombie would still hold postmaster.pid's PID.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        user = self.as_user
        ids = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user is not None else {}
        return subprocess.run(
            args,
            cwd=self.root,
            check=check,
            timeout=timeout,
            capture_output=True,
            text=True,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
            **ids,  # set in the child between fork and exec: safe with the client threads running
        )

    def init(self) -> None:
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
        )

    def start(self) -> float:
        began = time.monotonic()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root}"
            " -c max_connections=60 -c shared_buffers=32MB -c fsync=on -c synchronous_commit=on"
        )
        ctl = (str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options)
        done = self._run(*ctl, "-w", "-t", "60", "start", check=False)
        if done.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {done.stdout}{done.stderr}\n{tail}")
        return time.monotonic() - began

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().splitlines()[0])

    def kill(self) -> tuple[int, float]:
        """SIGKILL the postmaster; wait for its backends to exit (SIGKILL, by pid, any left after 10 s).
        (backends, seconds until all were gone)."""
        pid = self.postmaster_pid()
        children = [p for p in _pids() if _ppid(p) == pid]
        began = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        waiting = [pid, *children]
        while waiting and time.monotonic() - began < 10:
            waiting = [p for p in waiting if _alive(p)]
            time.sleep(0.05)
        for p in waiting:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while any(_alive(p) for p in waiting):
            time.sleep(0.05)
        return len(children), time.monotonic() - began

    def cleanup(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                pid = self.postmaster_pid()
                self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
                for _ in range(100):
                    if not _alive(pid):
                        break
                    time.sleep(0.05)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _reap(pid: int) -> bool:
    """Collect `pid` if it is a child of this process that has exited: True when it is gone."""
    try:
        reaped, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return not Path(f"/proc/{pid}").exists()
    return reaped == pid


def _alive(pid: int) -> bool:
    if _reap(pid):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# --- Django against the cluster -------------------------------------------------------------------------


def django_setup(port: int) -> None:
    os.environ.update(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{port}/postgres",
        DJANGO_SETTINGS_MODULE="config.settings",
        SECRET_KEY=os.environ.get("SECRET_KEY", "crash-recovery-only-secret"),
        DEBUG="false",
        ALLOWED_HOSTS="testserver",
        API_THROTTLE_RATE="1000000/min",
        REDIS_URL="",  # tasks in process, cache in memory: only PostgreSQL crashes here
        LOG_LEVEL="CRITICAL",
    )
    import django
    from django.conf import settings

    django.setup()
    settings.IDEMPOTENCY_LOCK_SECONDS = 2  # a claim of a request that died with the server is taken over soon
    settings.IDEMPOTENCY_WAIT_SECONDS = 3


def migrate_and_seed() -> dict:
    from django.core.management import call_command
    from django.db import connection

    began = time.monotonic()
    call_command("migrate", verbosity=0)
    migrated = time.monotonic() - began

    from campaigns.services import campaign_create
    from integrations.keys import api_key_create, integration_get_or_create
    from loyalty.services.program import program_declare
    from members.models import Member
    from members.services import tenant_create

    tenant, _ = tenant_create(slug="crash", name="Crash", currency="EUR", time_zone="Europe/Berlin")
    program_declare(
        tenant=tenant,
        code="club",
        document={
            "name": "Club",
            "currency": "EUR",
            "expiry": {"policy": "never"},
            "points_value": {"points": 1, "amount": "0.01"},
            "tiers": [{"code": "basic", "name": "Basic", "threshold": 0, "multiplier": "1.0"}],
            "earning_rules": [
                {"code": "spend", "trigger": "order_paid", "points_per_unit": "1", "unit_amount": "1.00"},
                {"code": "probe", "trigger": "event", "event": EVENT, "points": 5},
            ],
        },
    )
    campaign = campaign_create(
        tenant=tenant,
        data={
            "name": "Crash 10",
            "type": "discount",
            "discount": {"type": "percent", "value": "10"},
            "limits": {"redemptions_total": 1_000_000, "discount_total": "1000000.00"},
            "codes": {"code": CODE},
        },
    )
    Member.objects.bulk_create(
        [Member(tenant=tenant, external_id=f"m-{i}", referral_code=f"CR{i:06d}") for i in range(MEMBERS)]
    )
    integration, _ = integration_get_or_create(tenant=tenant, name="crash")
    _, raw_key = api_key_create(integration=integration, throttle_rate="1000000/min")
    client = api_client(raw_key)
    for i in range(MEMBERS):  # an opening balance, so that redemptions can pay with points
        response = client.post(
            "/api/v1/orders",
            {"order_id": f"open-{i}", "member": f"m-{i}", "amount": "200.00", "currency": "EUR"},
            format="json",
        )
        assert response.status_code == 201, response.content
    connection.close()
    return {"tenant": tenant, "campaign": campaign, "key": raw_key, "migrated": migrated}


def api_client(raw_key: str):
    from rest_framework.test import APIClient

    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


# --- the load ---------------------------------------------------------------------------------------------

ITEMS = [{"sku": "TSHIRT", "category": "apparel", "quantity": 2, "unit_price": "20.00"}]


def make_request(thread: int, n: int, rnd: random.Random) -> dict:
    member = f"m-{rnd.randrange(MEMBERS)}"
    ref = f"t{thread}-{n}"
    kind = ("order", "redemption", "event")[n % 3]
    if kind == "order":
        body = {"order_id": f"o-{ref}", "member": member, "amount": "40.00", "currency": "EUR", "items": ITEMS}
        if n % 9 == 0:
            body["codes"] = [CODE]  # the order composes earning and a redemption in one transaction
        path = "/api/v1/orders"
    elif kind == "redemption":
        body = {
            "order_id": f"r-{ref}",
            "member": member,
            "order": {"amount": "40.00", "items": ITEMS},
            "codes": [CODE],
            "points": 5,
        }
        path = "/api/v1/redemptions"
    else:
        body = {"member": member, "event": EVENT, "metadata": {"ref": ref}}
        path = "/api/v1/events"
    return {"kind": kind, "ref": ref, "path": path, "body": body, "key": f"key-{ref}", "tries": 0}


def answered(status: int | None, body: bytes) -> bool:
    """A definitive answer: not an exception, not a 5xx, not a claim still held by a request that died."""
    if status is None or status >= 500:
        return False
    if status == 409 and b"idempotency_request_in_progress" in body:
        return False
    return True


def send(client, request: dict) -> bool:
    from django.db import connection

    request["tries"] += 1
    t0 = time.monotonic()
    try:
        response = client.post(request["path"], request["body"], format="json", HTTP_IDEMPOTENCY_KEY=request["key"])
        status, content = response.status_code, response.content
    except Exception:  # noqa: BLE001 (the database went away mid-request)
        status, content = None, b""
        connection.close()
    request["status"], request["content"] = status, content
    if request["tries"] == 1:
        request["t0"], request["t1"], request["first"] = t0, time.monotonic(), status
    return answered(status, content)


class Load:
    def __init__(self, raw_key: str) -> None:
        self.raw_key = raw_key
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.requests: list[dict] = []  # every request, in the order sent
        self.unanswered: list[dict] = []  # those without an answer on their first try

    def worker(self, thread: int) -> None:
        from django.db import connection

        rnd = random.Random(SEED * 1000 + thread)
        client = api_client(self.raw_key)
        n = 0
        try:
            while not self.stop.is_set():
                request = make_request(thread, n, rnd)
                n += 1
                ok = send(client, request)
                with self.lock:
                    self.requests.append(request)
                    if not ok:
                        self.unanswered.append(request)
                if not ok:
                    time.sleep(0.2)  # the server is down: a client backs off
        finally:
            connection.close()

    def answered_count(self) -> int:
        with self.lock:
            return sum(answered(r["status"], r["content"]) for r in self.requests)


def retry_unanswered(load: Load) -> tuple[int, int, float]:
    """Retry every unanswered request with its key until answered, from THREADS clients at once:
    (attempts, requests still unanswered, seconds)."""
    began = time.monotonic()
    queue = list(load.unanswered)
    lock = threading.Lock()
    attempts = [0]
    never: list[dict] = []

    def retrier() -> None:
        from django.db import connection

        client = api_client(load.raw_key)
        try:
            while True:
                with lock:
                    if not queue:
                        return
                    request = queue.pop()
                pause = 0.1
                while True:
                    with lock:
                        attempts[0] += 1
                    if send(client, request):
                        break
                    if left() < 15:
                        with lock:
                            never.append(request)
                        break
                    time.sleep(pause)
                    pause = min(pause * 2, 1.0)
        finally:
            connection.close()

    threads = [threading.Thread(target=retrier, daemon=True) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(1.0, left() - 10))
    return attempts[0], len(never) + len(queue), time.monotonic() - began


# --- the checks -------------------------------------------------------------------------------------------


def check(requests: list[dict], campaign_id: int) -> dict:
    from django.db.models import Count, Sum

    from campaigns.models import Campaign, Code
    from loyalty.ledger import ledger_reconcile
    from loyalty.models import LedgerEntry, Order
    from members.models import CustomEvent
    from rewards.models import Redemption, RedemptionCode

    figures: dict = {}
    mismatches = ledger_reconcile()
    figures["ledger mismatches"] = len(mismatches)

    def dupes(qs, *fields) -> int:
        return qs.values(*fields).annotate(n=Count("id")).filter(n__gt=1).count()

    orders = Order.objects.exclude(order_id__startswith="open-")
    succeeded = Redemption.objects.filter(status=Redemption.Status.SUCCEEDED)
    figures["duplicate orders (one order id, two rows)"] = dupes(orders, "tenant", "order_id")
    figures["duplicate earn entries (one order, one rule)"] = dupes(
        LedgerEntry.objects.filter(kind="earn").exclude(order_id=""), "account", "order_id", "rule_code"
    )
    figures["duplicate redemptions (one order id)"] = dupes(succeeded, "tenant", "order_id")
    figures["duplicate redeem entries (one order id)"] = dupes(
        LedgerEntry.objects.filter(kind="redeem"), "account", "order_id"
    )
    events = CustomEvent.objects.filter(name=EVENT)
    figures["duplicate events (one request)"] = dupes(events, "metadata__ref")
    event_entries = LedgerEntry.objects.filter(kind="earn", rule_code="probe").count()
    figures["event earn entries beyond one per event"] = max(0, event_entries - events.count())

    campaign = Campaign.objects.get(pk=campaign_id)
    code = Code.objects.get(campaign=campaign, code=CODE)
    lines = RedemptionCode.objects.filter(redemption__status=Redemption.Status.SUCCEEDED, campaign=campaign)
    given = lines.aggregate(s=Sum("discount"))["s"] or 0
    figures["campaign redemptions_count off the succeeded redemptions"] = abs(
        campaign.redemptions_count - succeeded.filter(lines__campaign=campaign).distinct().count()
    )
    figures["campaign discount_used off the lines' discounts"] = abs(campaign.discount_used - given)
    figures["code redeemed_count off its redemption lines"] = abs(code.redeemed_count - lines.filter(code=code).count())

    # Lost: a success was answered, its effect is not there.
    ok = [r for r in requests if r["status"] in (200, 201)]
    order_ids = set(orders.values_list("order_id", flat=True))
    redemption_ids = set(succeeded.values_list("order_id", flat=True))
    refs = set(events.values_list("metadata__ref", flat=True))
    lost = 0
    for r in ok:
        if r["kind"] == "order":
            lost += r["body"]["order_id"] not in order_ids
        elif r["kind"] == "redemption":
            lost += r["body"]["order_id"] not in redemption_ids
        else:
            lost += r["ref"] not in refs
    figures["lost effects (success answered, row missing)"] = lost
    # Effects without a success: a request whose final answer was an error but whose effect exists.
    phantom = 0
    for r in requests:
        if r["status"] in (200, 201):
            continue
        if r["kind"] == "order":
            phantom += r["body"]["order_id"] in order_ids
        elif r["kind"] == "redemption":
            phantom += r["body"]["order_id"] in redemption_ids
        else:
            phantom += r["ref"] in refs
    figures["effects of requests answered with an error"] = phantom
    figures["_mismatch rows"] = mismatches[:3]
    return figures


def main() -> int:
    if not (PG_BIN / "initdb").exists():
        print(f"no initdb in {PG_BIN}: set PG_BIN")
        return 2
    cluster = Cluster()
    try:
        cluster.init()
        cluster.start()
        django_setup(cluster.port)
        seeded = migrate_and_seed()
        logging.disable(logging.CRITICAL)  # the 500s while the server is down would flood the output
        load = Load(seeded["key"])
        threads = [threading.Thread(target=load.worker, args=(t,), daemon=True) for t in range(THREADS)]
        for thread in threads:
            thread.start()
        time.sleep(KILL_AT)
        answered_before = load.answered_count()
        killed_at = time.monotonic()
        backends, gone_after = cluster.kill()
        restart_seconds = cluster.start()
        down_seconds = time.monotonic() - killed_at
        time.sleep(AFTER_RESTART)
        load.stop.set()
        for thread in threads:
            thread.join(timeout=max(1.0, left() - 20))
        with load.lock:
            requests, unanswered = list(load.requests), list(load.unanswered)
        in_flight = sum(r["t0"] < killed_at < r["t1"] for r in requests)
        first_try = Counter(r["first"] if r["first"] is not None else "exception" for r in unanswered)
        attempts, never, retry_seconds = retry_unanswered(load)
        figures = check(requests, seeded["campaign"].pk)
        log = cluster.log.read_text(errors="replace")
        recovered = "database system was interrupted" in log and "redo starts at" in log
        redo_elapsed = re.search(r"redo done at .*elapsed: ([0-9.]+) s", log)
        kinds = Counter(r["kind"] for r in requests)
        finals = Counter(r["status"] for r in requests)

        print("PostgreSQL crash under load (throwaway cluster on 127.0.0.1, real migrations, the API in process)")
        print(f"  schema migrated in {seeded['migrated']:.1f} s; {MEMBERS} members, {THREADS} client threads")
        print(f"  requests: {len(requests)} ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})")
        print(f"  answered before the kill: {answered_before}; in flight at the kill: {in_flight}")
        print(f"  postmaster SIGKILLed at {KILL_AT:.1f} s with {backends} backends; all gone after {gone_after:.2f} s")
        redo = ("yes" + (f", redo {redo_elapsed.group(1)} s" if redo_elapsed else "")) if recovered else "NO"
        print(f"  restart with crash recovery: {restart_seconds:.2f} s (WAL redo in the server log: {redo})")
        print(f"  server unavailable for {down_seconds:.2f} s; load went on {AFTER_RESTART:.0f} s after the restart")
        print(f"  requests without an answer on the first try: {len(unanswered)} {dict(first_try)}")
        print(f"  retried with the same Idempotency-Key: {attempts} attempts in {retry_seconds:.1f} s")
        print(f"  final answers: {dict(sorted(finals.items(), key=str))}")
        print(f"  requests never answered: {never}")
        for name, value in figures.items():
            if not name.startswith("_"):
                print(f"  {name}: {value}")
        if figures["_mismatch rows"]:
            print(f"  first mismatches: {json.dumps(figures['_mismatch rows'], default=str)}")
        if os.environ.get("CRASH_VERBOSE"):
            recovery = log[log.find("terminating connection due to unexpected postmaster exit") :]
            lines = [line for line in recovery.splitlines() if " LOG: " in line]
            print("  server log of the recovery:\n    " + "\n    ".join(lines[:14]))
        bad = never + sum(v for k, v in figures.items() if not k.startswith("_"))
        print(f"  total time {time.monotonic() - STARTED:.1f} s: {'OK, every figure 0' if bad == 0 else 'NOT 0'}")
        return 0 if bad == 0 else 1
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001, S110 (Django may not be set up yet)
            pass
        cluster.cleanup()


if __name__ == "__main__":
    sys.exit(main())
