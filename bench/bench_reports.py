"""Benchmark: every report figure at the issue's volume (PostgreSQL), cold and warm, and the rollups' upkeep.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres BENCH_KEEP=1 python bench/bench_reports.py

Loads one tenant (Europe/Berlin) with two years of history (the 730 days before BENCH_NOW's day, default the
day the script runs), set-based (INSERT ... SELECT generate_series, explicit ids), with BENCH_ORDERS orders
(default 1,000,000), BENCH_REDEMPTIONS redemptions (default 1,000,000) and BENCH_ENTRIES ledger entries
(default 10,000,000) and what they imply:

- BENCH_MEMBERS members (default 200,000), one points account each, three tiers (a status per member, tier
  changes), a static segment of a tenth of them; 50 discount campaigns and a gift card campaign;
- orders at 10 locations, 1 % of them arriving 5 days late (an old `occurred_at`), one in 33 partly returned
  (an `OrderReturn` and a `reverse` entry taking back part of its points);
- one redemption per order (ids scrambled over the orders), through two integrations: 80 % with a single-use
  code of the member's (its publication a week before, redeemed count 1), 5 % a promotion line, 5 % a gift card
  (50,000 cards of 50.00: issue, debit and rollback transactions, balances left), 10 % paid with points (a
  `redeem` entry); one in 50 rolled back (`RedemptionRollback`, lines flagged, a `reverse` entry giving the
  points back, the gift card credited back); 200,000 more codes published and never redeemed;
- ledger entries: a welcome bonus per account (first, so no balance goes below 0), an `earn` per order, the
  spends and reversals above, `expire` and `adjust` entries, and the rest `earn` entries from custom events (a
  tenth naming a campaign); `balance_after` is the running sum per account and each account's `balance` the sum
  of its entries (so `ledger_reconcile` finds them equal); lots for the order earnings (expiring a year after),
  live ones with their points left, so points expire over the coming 90 days;
- 300,000 refused redemption attempts (evaluation traces with one or two reasons; successful attempts leave no
  trace here: the reports do not read them) and 20,000 catalog reward purchases.

BENCH_KEEP=1 keeps the database (`BENCH_DB`, default `bench_reports`) and reuses it when its `bench_marker`
(the sizes, the day, a fingerprint of every non-report table) matches; the report tables are compared
separately (their own fingerprint) and rebuilt and folded again when they changed, without reloading the
rest. Without BENCH_KEEP it works in `bench_reports_<pid>` and drops it.

Then: the initial fold (every row, timed), and the figures for the last 12 months (the summary's figure groups
one by one, the whole summary, the 12-month monthly series, and the summary under each filter), each
**cold** and **warm** (the median of 3 runs). Cold is: a new database connection, `DISCARD ALL`, the OS page
cache dropped (`/proc/sys/vm/drop_caches`; printed whether that was allowed) and, only with
BENCH_COLD_RESTART=1, PostgreSQL restarted before each cold run (`pg_ctlcluster --skip-systemctl-redirect
BENCH_PG_CLUSTER restart`, default `15 main`: on a machine nobody else uses, since it cuts every connection)
so its shared buffers are empty too; without the restart the shared buffers keep what earlier queries read.

Last, the upkeep: BENCH_INCREMENT orders (default 10,000) with their entries and redemptions are written
set-based in a transaction, folded (timed: the fold's cost per order) and rolled back. The write path pays
nothing for the rollups (no trigger, no extra statement): they are folded by the task.
"""

import datetime as dt
import hashlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ORDERS = int(os.environ.get("BENCH_ORDERS", 1_000_000))
REDEMPTIONS = int(os.environ.get("BENCH_REDEMPTIONS", 1_000_000))
ENTRIES = int(os.environ.get("BENCH_ENTRIES", 10_000_000))
MEMBERS = int(os.environ.get("BENCH_MEMBERS", 200_000))
INCREMENT = int(os.environ.get("BENCH_INCREMENT", 10_000))
TRACES = int(os.environ.get("BENCH_TRACES", 300_000))
UNREDEEMED = int(os.environ.get("BENCH_UNREDEEMED_CODES", 200_000))
GIFT_CARDS = REDEMPTIONS // 20
CAMPAIGNS = 50
KEEP = os.environ.get("BENCH_KEEP", "") not in ("", "0", "false", "no")
COLD_RESTART = os.environ.get("BENCH_COLD_RESTART", "") not in ("", "0", "false", "no")
PG_CLUSTER = os.environ.get("BENCH_PG_CLUSTER", "15 main").split()
RUNS = max(1, int(os.environ.get("BENCH_RUNS", 3)))
TODAY = dt.date.fromisoformat(os.environ["BENCH_NOW"]) if os.environ.get("BENCH_NOW") else dt.date.today()

BASE_URL = os.environ.get("DATABASE_URL", "")
if not BASE_URL.startswith("postgres"):
    sys.exit("bench_reports needs PostgreSQL: set DATABASE_URL=postgres://... (it creates its own database)")
DB_NAME = os.environ.get("BENCH_DB", "bench_reports") if KEEP else f"bench_reports_{os.getpid()}"
_parts = urlsplit(BASE_URL)
BENCH_URL = urlunsplit(_parts._replace(path=f"/{DB_NAME}"))
ADMIN_URL = urlunsplit(_parts._replace(path="/postgres"))
os.environ["DATABASE_URL"] = BENCH_URL
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings_test"
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ.pop("DATABASE_REPLICA_URL", None)

import django  # noqa: E402

django.setup()

from django.apps import apps  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402


class DisableMigrations(dict):
    """Tables straight from the models, as the test suite builds them (`--no-migrations`)."""

    def __contains__(self, item):
        return True

    def __getitem__(self, item):
        return None


def admin_sql(statement: str, params=None) -> list[tuple]:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def fingerprint(models) -> str:
    rows = sorted(
        (m._meta.db_table, f.column, str(f.db_type(connection)), f.null) for m in models for f in m._meta.local_fields
    )
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def report_models() -> list:
    return [m for m in apps.get_app_config("reports").get_models() if m._meta.managed]


def source_models() -> list:
    return [m for m in apps.get_models(include_auto_created=True) if m._meta.app_label != "reports"]


def wanted_marker() -> dict:
    """What a kept database must match (its load day is kept beside: the figures are taken relative to it)."""
    sizes = dict(orders=ORDERS, redemptions=REDEMPTIONS, entries=ENTRIES, members=MEMBERS, traces=TRACES)
    return {**{k: str(v) for k, v in sizes.items()}, "schema": fingerprint(source_models())}


def read_marker() -> dict | None:
    import psycopg

    if not admin_sql("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]):
        return None
    try:
        with psycopg.connect(BENCH_URL, autocommit=True) as conn:
            return dict(conn.execute("SELECT key, value FROM bench_marker").fetchall())
    except psycopg.Error:
        return None


# --- loading ------------------------------------------------------------------------------------------


def insert(cursor, model, values: dict[str, str], source: str, params=()) -> int:
    """INSERT INTO model's table (the columns in `values`, plus every other NOT NULL column at its model
    default) SELECT ... `source` (a FROM clause with %s params; `values` are SQL with `%%` for modulo)."""
    columns, exprs, defaults = [], [], []
    for field in model._meta.local_concrete_fields:
        if field.column in values:
            columns.append(field.column)
            exprs.append(values[field.column])
        elif field.primary_key or field.null:
            continue
        elif field.has_default():
            columns.append(field.column)
            exprs.append("%s")
            defaults.append(field.get_db_prep_save(field.get_default(), connection))
        elif field.get_internal_type() == "DateTimeField":
            columns.append(field.column)
            exprs.append("now()")
        elif field.get_internal_type() in ("CharField", "TextField", "SlugField", "EmailField", "URLField"):
            columns.append(field.column)
            exprs.append("''")
        else:
            raise ValueError(f"no value for {model.__name__}.{field.name}")
    unknown = set(values) - set(columns)
    if unknown:
        raise ValueError(f"{model.__name__} has no columns {unknown}")
    quoted = ", ".join(f'"{c}"' for c in columns)
    sql = f"INSERT INTO {model._meta.db_table} ({quoted}) SELECT {', '.join(exprs)} FROM {source}"
    cursor.execute(sql, [*defaults, *params])
    return cursor.rowcount


class Bulk:
    """Around a big insert: the table's secondary indexes and foreign keys dropped, then rebuilt in one pass
    each (much cheaper than maintaining them row by row, and than checking deferred keys at commit)."""

    def __init__(self, cursor, tables: list[str]) -> None:
        self.cursor, self.tables = cursor, tables

    def __enter__(self):
        c, self.keys, self.indexes = self.cursor, [], []
        for table in self.tables:
            c.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
                "AND contype = 'f'",
                [table],
            )
            self.keys += [(table, name, definition) for name, definition in c.fetchall()]
            c.execute(
                "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid "
                "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary AND k.oid IS NULL",
                [table],
            )
            self.indexes += c.fetchall()
        for table, name, _ in self.keys:
            c.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in self.indexes:
            c.execute(f"DROP INDEX {name}")
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            for _, definition in self.indexes:
                self.cursor.execute(definition)
            for table, name, definition in self.keys:
                self.cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        return False


def load(started: float) -> None:
    from campaigns.models import Campaign, Code, Publication
    from loyalty.models import Account, LedgerEntry, MemberTier, Order, OrderReturn, PointLot, Program, Tier, TierChange
    from members.models import Member, Segment, SegmentMember, Tenant
    from rewards.models import (
        EvaluationTrace,
        GiftCardTransaction,
        Redemption,
        RedemptionCode,
        RedemptionRollback,
        Reward,
        RewardPurchase,
    )

    def step(what: str, rows: int) -> None:
        print(f"  {what}: {rows:,} rows ({time.perf_counter() - started:.0f} s)", flush=True)

    tenant = Tenant.objects.create(slug="bench", name="Bench", currency="EUR", time_zone="Europe/Berlin")
    program = Program.objects.create(
        tenant=tenant, code="club", name="Club", currency="EUR", points_value_points=100,
        points_value_amount="1.00", expiry_policy={"policy": "days", "days": 365},
    )  # fmt: skip
    tiers = [
        Tier.objects.create(tenant=tenant, program=program, code=c, name=c.title(), rank=i, threshold=i * 1000)
        for i, c in enumerate(["bronze", "silver", "gold"])
    ]
    campaigns = Campaign.objects.bulk_create(
        [
            Campaign(tenant=tenant, name=f"Campaign {i}", discount={"type": "amount", "value": "5.00"})
            for i in range(CAMPAIGNS)
        ]
        + [Campaign(tenant=tenant, name="Gift cards", type="gift_card", gift_card_amount="50.00")]
    )
    first_campaign, gift_campaign = campaigns[0].pk, campaigns[-1].pk
    reward = Reward.objects.create(tenant=tenant, name="Mug", type="product", points_cost=500)
    segment = Segment.objects.create(tenant=tenant, code="vip", name="VIP", kind=Segment.Kind.STATIC)
    start = dt.datetime.combine(TODAY - dt.timedelta(days=730), dt.time.min, tzinfo=tenant.tz)
    begin = f"'{start.isoformat()}'::timestamptz"  # the values below carry no parameters (see `insert`)
    span = 730 * 86400
    t, m = tenant.pk, MEMBERS
    # Order n (1..ORDERS) happens at `at(n)`, by member 1 + (n * 7919) % MEMBERS (every member the same number).
    at_order = f"({begin} + ((n - 0.5) * {span} / {ORDERS}) * interval '1 second')"
    amount = "(5 + ((n * 37) %% 20000) / 100.0)::numeric(14, 2)"
    order_member = f"(1 + (n * 7919) %% {m})"
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("SET synchronous_commit = off")
        rows = insert(
            cursor, Member,
            {"id": "g", "tenant_id": str(t), "external_id": "'m-' || g", "email": "'m' || g || '@example.com'",
             "referral_code": "'R' || g", "created_at": f"{begin} - interval '1 day'",
             "updated_at": begin},
            "generate_series(1::bigint, %s) AS g", [m],
        )  # fmt: skip
        step("members", rows)
        insert(
            cursor, Account,
            {"id": "id", "tenant_id": "tenant_id", "member_id": "id", "program_id": str(program.pk),
             "created_at": "created_at"},
            "members_member", [],
        )  # fmt: skip
        insert(
            cursor, MemberTier,
            {"tenant_id": str(t), "member_id": "g", "program_id": str(program.pk),
             "tier_id": f"CASE WHEN g %% 10 < 6 THEN {tiers[0].pk} WHEN g %% 10 < 9 THEN {tiers[1].pk} "
                        f"ELSE {tiers[2].pk} END"},
            "generate_series(1::bigint, %s) AS g", [m],
        )  # fmt: skip
        insert(
            cursor, TierChange,
            {"tenant_id": str(t), "member_id": "1 + (g * 31) %% " + str(m), "program_id": str(program.pk),
             "from_tier_id": f"CASE WHEN g %% 3 = 0 THEN NULL ELSE {tiers[0].pk} + (g %% 2) END",
             "to_tier_id": f"{tiers[0].pk} + ((g + 1) %% 3)", "reason": "'evaluation'",
             "created_at": f"{begin} + (g * {span} / 100000) * interval '1 second'"},
            "generate_series(1::bigint, 100000) AS g",
        )  # fmt: skip
        cursor.execute(
            f"INSERT INTO {SegmentMember._meta.db_table} (segment_id, member_id, added_at) "
            "SELECT %s, g, now() FROM generate_series(10::bigint, %s, 10) AS g",
            [segment.pk, m],
        )
        bulk = Bulk(
            cursor,
            [
                m._meta.db_table
                for m in (
                    Order,
                    OrderReturn,
                    Redemption,
                    RedemptionRollback,
                    Code,
                    Publication,
                    RedemptionCode,
                    GiftCardTransaction,
                    EvaluationTrace,
                    LedgerEntry,
                    PointLot,
                )
            ],
        )
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # check what is pending, so the tables can be altered
        bulk.__enter__()
        rows = insert(
            cursor, Order,
            {"id": "n", "tenant_id": str(t), "member_id": order_member, "program_id": str(program.pk),
             "order_id": "'o-' || n", "amount": amount,
             "returned_amount": f"CASE WHEN n %% 33 = 0 THEN round({amount} / 4, 2) ELSE 0 END",
             "currency": "'EUR'", "location": "'shop-' || (n %% 10)", "occurred_at": at_order,
             "points_total": f"floor({amount})::int",
             "points_taken_back": f"CASE WHEN n %% 33 = 0 THEN 1 + floor({amount} / 4)::int ELSE 0 END",
             "created_at": f"{at_order} + CASE WHEN n %% 100 = 0 THEN interval '5 days' ELSE interval '0' END"},
            "generate_series(1::bigint, %s) AS n", [ORDERS],
        )  # fmt: skip
        step("orders", rows)
        rows = insert(
            cursor, OrderReturn,
            {"id": "n / 33", "tenant_id": str(t), "order_id": "n", "return_id": "'r-' || n",
             "amount": f"round({amount} / 4, 2)", "points_reversed": f"1 + floor({amount} / 4)::int",
             "created_at": f"{at_order} + interval '2 days'"},
            "generate_series(33::bigint, %s, 33) AS n", [ORDERS],
        )  # fmt: skip
        step("returns", rows)
        # Redemption r is of order n = 1 + (r * 13) % ORDERS, at the order's time; its kind by r % 20.
        cursor.execute(
            f"CREATE TEMP TABLE bench_r AS SELECT r, 1 + (r * 13) %% {ORDERS} AS n, "
            "CASE WHEN r %% 10 = 0 THEN 'points' WHEN r %% 20 = 1 THEN 'gift_card' "
            "WHEN r %% 20 = 2 THEN 'promotion' ELSE 'code' END AS kind, r %% 50 = 7 AS undone "
            "FROM generate_series(1::bigint, %s) AS r",
            [REDEMPTIONS],
        )
        cursor.execute("CREATE INDEX ON bench_r (r)")
        source = f"bench_r JOIN {Order._meta.db_table} o ON o.id = bench_r.n"
        discount = "CASE kind WHEN 'code' THEN 5 + r %% 5 WHEN 'promotion' THEN 3 ELSE 0 END"
        gift = "CASE kind WHEN 'gift_card' THEN 10 + r %% 4 ELSE 0 END"
        points = "CASE kind WHEN 'points' THEN 100 * (1 + r %% 5) ELSE 0 END"
        rows = insert(
            cursor, Redemption,
            {"id": "r", "tenant_id": str(t), "member_id": "o.member_id", "order_id": "o.order_id",
             "order": "'{}'::jsonb", "order_amount": "o.amount", "discount": discount, "gift_cards": gift,
             "points_used": points, "points_value": f"({points}) / 100.0",
             "total": f"greatest(o.amount - ({discount}) - ({gift}) - ({points}) / 100.0, 0)",
             "integration_name": "CASE WHEN r %% 3 = 0 THEN 'pos' ELSE 'web-shop' END",
             "status": "CASE WHEN undone THEN 'rolled_back' ELSE 'succeeded' END", "created_at": "o.occurred_at"},
            source,
        )  # fmt: skip
        step("redemptions", rows)
        rows = insert(
            cursor, RedemptionRollback,
            {"tenant_id": str(t), "redemption_id": "r", "created_at": "o.occurred_at + interval '1 hour'"},
            source + " WHERE undone",
        )  # fmt: skip
        # Codes: the code of redemption r has id r; 200,000 published, never redeemed, ids above; gift cards
        # have id GIFT + card (card k is used by redemption 20 (k - 1) + 1).
        rows = insert(
            cursor, Code,
            {"id": "r", "tenant_id": str(t), "campaign_id": f"{first_campaign} + r %% {CAMPAIGNS}",
             "code": "'C' || r", "usage_limit": "1", "redeemed_count": "CASE WHEN undone THEN 0 ELSE 1 END",
             "member_id": "o.member_id", "published_at": "o.occurred_at - interval '7 days'",
             "created_at": "o.occurred_at - interval '8 days'"},
            source + " WHERE kind = 'code'",
        )  # fmt: skip
        rows += insert(
            cursor, Code,
            {"id": f"{REDEMPTIONS} + g", "tenant_id": str(t), "campaign_id": f"{first_campaign} + g %% {CAMPAIGNS}",
             "code": "'U' || g", "usage_limit": "1", "member_id": f"1 + (g * 7) %% {m}",
             "published_at": f"{begin} + (g * {span} / {UNREDEEMED}) * interval '1 second'",
             "created_at": f"{begin} + (g * {span} / {UNREDEEMED}) * interval '1 second'"},
            "generate_series(1::bigint, %s) AS g", [UNREDEEMED],
        )  # fmt: skip
        gift_base = 2 * REDEMPTIONS
        rows += insert(
            cursor, Code,
            {"id": f"{gift_base} + 1 + r / 20", "tenant_id": str(t), "campaign_id": str(gift_campaign),
             "code": "'G' || r", "initial_balance": "50", "balance": f"50 - CASE WHEN undone THEN 0 ELSE {gift} END",
             "created_at": "o.occurred_at - interval '30 days'"},
            source + " WHERE kind = 'gift_card'",
        )  # fmt: skip
        step("codes", rows)
        rows = insert(
            cursor, Publication,
            {"tenant_id": "tenant_id", "campaign_id": "campaign_id", "code_id": "id", "member_id": "member_id",
             "channel": "'email'", "published_at": "published_at"},
            f"{Code._meta.db_table} WHERE member_id IS NOT NULL",
        )  # fmt: skip
        step("publications", rows)
        rows = insert(
            cursor, RedemptionCode,
            {"tenant_id": str(t), "redemption_id": "r",
             "campaign_id": f"CASE kind WHEN 'gift_card' THEN {gift_campaign} "
                            f"ELSE {first_campaign} + r %% {CAMPAIGNS} END",
             "code_id": f"CASE kind WHEN 'code' THEN r WHEN 'gift_card' THEN {gift_base} + 1 + r / 20 END",
             "member_id": "o.member_id", "kind": "kind", "discount": f"({discount}) + ({gift})",
             "order_amount": "o.amount", "rolled_back": "undone", "created_at": "o.occurred_at"},
            source + " WHERE kind <> 'points'",
        )  # fmt: skip
        step("redemption lines", rows)
        for kind, amount_sql, when, where in (
            ("issue", "50", "o.occurred_at - interval '30 days'", ""),
            ("debit", f"-({gift})", "o.occurred_at", ""),
            ("rollback", gift, "o.occurred_at + interval '1 hour'", " AND undone"),
        ):
            balance = {"issue": "50", "debit": f"50 - ({gift})", "rollback": "50"}[kind]
            insert(
                cursor, GiftCardTransaction,
                {"tenant_id": str(t), "code_id": f"{gift_base} + 1 + r / 20",
                 "redemption_id": "NULL" if kind == "issue" else "r", "kind": f"'{kind}'", "amount": amount_sql,
                 "balance_after": balance, "created_at": when},
                source + " WHERE kind = 'gift_card'" + where,
            )  # fmt: skip
        rows = insert(
            cursor, EvaluationTrace,
            {"tenant_id": str(t), "kind": "'redemption'", "succeeded": "false", "member_id": f"1 + (g * 13) %% {m}",
             "codes": "'[]'::jsonb",
             "document": "jsonb_build_object('lines', jsonb_build_array(jsonb_build_object('valid', false, "
                         "'reason', CASE g %% 4 WHEN 0 THEN 'code_expired' WHEN 1 THEN 'rule_not_met' "
                         "WHEN 2 THEN 'usage_limit_reached' ELSE 'code_not_found' END, "
                         f"'campaign', ({first_campaign} + g %% {CAMPAIGNS})::text)))",
             "reasons": "CASE g %% 4 WHEN 0 THEN '[\"code_expired\"]' WHEN 1 THEN '[\"rule_not_met\"]' "
                        "WHEN 2 THEN '[\"usage_limit_reached\", \"rule_not_met\"]' "
                        "ELSE '[\"code_not_found\"]' END::jsonb",
             "integration_name": "CASE WHEN g %% 3 = 0 THEN 'pos' ELSE 'web-shop' END",
             "created_at": f"{begin} + (g * {span} / {TRACES}) * interval '1 second'"},
            "generate_series(1::bigint, %s) AS g", [TRACES],
        )  # fmt: skip
        step("refused attempts (traces)", rows)
        insert(
            cursor, RewardPurchase,
            {"tenant_id": str(t), "member_id": f"1 + (g * 17) %% {m}", "reward_id": str(reward.pk), "points": "500",
             "created_at": f"{begin} + (g * {span} / 20000) * interval '1 second'"},
            "generate_series(1::bigint, 20000) AS g",
        )  # fmt: skip
        # Ledger entries, in time order (ids follow time), balance_after the running sum per account.
        expires, adjusts = ENTRIES // 50, ENTRIES // 200
        fixed = m + ORDERS + REDEMPTIONS // 10 + REDEMPTIONS // 500 + ORDERS // 33 + expires + adjusts
        events = max(ENTRIES - fixed, 0)
        cursor.execute(
            f"""CREATE TEMP TABLE bench_e AS
            SELECT g AS account_id, 'earn' AS kind, 5000 AS points, %s::timestamptz - interval '1 day' AS at,
                   '' AS order_id, NULL::bigint AS campaign_id, 'welcome' AS reason
              FROM generate_series(1::bigint, {m}) AS g
            UNION ALL SELECT o.member_id, 'earn', floor(o.amount)::int, o.occurred_at, o.order_id, NULL, 'order'
              FROM {Order._meta.db_table} o
            UNION ALL SELECT o.member_id, 'redeem', -({points}), o.occurred_at, o.order_id, NULL, 'redemption'
              FROM {source} WHERE kind = 'points'
            UNION ALL SELECT o.member_id, 'reverse', {points}, o.occurred_at + interval '1 hour', o.order_id, NULL,
                   'rollback' FROM {source} WHERE kind = 'points' AND undone
            UNION ALL SELECT o.member_id, 'reverse', -o.points_taken_back, o.occurred_at + interval '2 days',
                   o.order_id, NULL, 'return' FROM {Order._meta.db_table} o WHERE o.points_taken_back > 0
            UNION ALL SELECT 1 + (g * 11) %% {m}, 'expire', -(10 + g %% 90),
                   %s::timestamptz + (g * {span} / {expires}) * interval '1 second', '', NULL, 'expiry'
              FROM generate_series(1::bigint, {expires}) AS g
            UNION ALL SELECT 1 + (g * 23) %% {m}, 'adjust',
                   CASE WHEN g %% 2 = 0 THEN 1 + g %% 50 ELSE -(1 + g %% 50) END,
                   %s::timestamptz + (g * {span} / {adjusts}) * interval '1 second', '', NULL, 'staff'
              FROM generate_series(1::bigint, {adjusts}) AS g
            UNION ALL SELECT 1 + (g * 29) %% {m}, 'earn', 1 + g %% 50,
                   %s::timestamptz + (g * {span}.0 / {max(events, 1)}) * interval '1 second', '',
                   CASE WHEN g %% 10 = 0 THEN {first_campaign} + g %% {CAMPAIGNS} END, 'event'
              FROM generate_series(1::bigint, {events}) AS g""",
            [start, start, start, start],
        )
        step("entries staged", events + fixed)
        rows = insert(
            cursor, LedgerEntry,
            {"tenant_id": str(t), "account_id": "account_id", "kind": "kind", "points": "points",
             "balance_after": "sum(points) OVER (PARTITION BY account_id ORDER BY at, kind, points "
                              "ROWS UNBOUNDED PRECEDING)",
             "reason": "reason", "order_id": "order_id", "campaign_id": "campaign_id",
             "expires_at": "CASE WHEN reason = 'order' THEN at + interval '365 days' END", "created_at": "at"},
            "bench_e ORDER BY at, account_id",
        )  # fmt: skip
        step("ledger entries", rows)
        cursor.execute(
            f"""UPDATE {Account._meta.db_table} a SET balance = s.balance, lifetime_earned = s.earned,
                last_activity_at = s.last FROM (
                    SELECT account_id, sum(points) AS balance, sum(points) FILTER (WHERE kind = 'earn') AS earned,
                           max(created_at) AS last
                    FROM {LedgerEntry._meta.db_table} GROUP BY account_id) s
                WHERE a.id = s.account_id"""
        )
        rows = insert(
            cursor, PointLot,
            {"tenant_id": "tenant_id", "account_id": "account_id", "entry_id": "id", "points": "points",
             "remaining": "CASE WHEN expires_at > now() THEN points ELSE 0 END", "earned_at": "created_at",
             "expires_at": "expires_at", "order_id": "order_id"},
            f"{LedgerEntry._meta.db_table} WHERE reason = 'order'",
        )  # fmt: skip
        step("lots", rows)
        bulk.__exit__(None, None, None)
        step("indexes and foreign keys rebuilt", 0)
        for model in (Member, Account, Order, OrderReturn, Redemption, Code):  # the explicit ids
            if True:
                table = model._meta.db_table
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) "
                    f"FROM {table}"
                )
        cursor.execute("CREATE TABLE bench_marker (key text PRIMARY KEY, value text NOT NULL)")
        for key, value in {**wanted_marker(), "today": TODAY.isoformat()}.items():
            cursor.execute("INSERT INTO bench_marker VALUES (%s, %s)", [key, value])
    step("loaded", 0)


def ensure_indexes() -> None:
    """A kept database gets the indexes the models declare since it was loaded (they are not in the marker)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
        present = {name for (name,) in cursor.fetchall()}
    for model in source_models():
        for index in model._meta.indexes:
            if index.name not in present:
                started = time.perf_counter()
                with connection.schema_editor() as editor:
                    editor.add_index(model, index)
                print(f"index {index.name} added in {time.perf_counter() - started:.1f} s")


def rebuild_report_tables() -> None:
    """Drop and create the report tables from the models (kept data, changed rollups)."""
    with connection.cursor() as cursor:
        for model in report_models():
            cursor.execute(f"DROP TABLE IF EXISTS {model._meta.db_table} CASCADE")
    with connection.schema_editor() as editor:
        for model in report_models():
            editor.create_model(model)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_report_marker (schema text NOT NULL)")
        cursor.execute("DELETE FROM bench_report_marker")
        cursor.execute("INSERT INTO bench_report_marker VALUES (%s)", [fingerprint(report_models())])


def report_tables_current() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('bench_report_marker') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return False
        cursor.execute("SELECT schema FROM bench_report_marker")
        row = cursor.fetchone()
    return row is not None and row[0] == fingerprint(report_models())


# --- measuring ----------------------------------------------------------------------------------------


def drop_os_cache() -> str:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return "dropped"
    except OSError as error:
        return f"not dropped ({error.strerror})"


def restart_postgres() -> None:
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *PG_CLUSTER, "restart"], check=True)
    for _ in range(60):
        try:
            admin_sql("SELECT 1")
            return
        except Exception:
            time.sleep(0.5)
    raise SystemExit("PostgreSQL did not come back")


def go_cold() -> str:
    connection.close()
    if COLD_RESTART:
        restart_postgres()
    cache = drop_os_cache()
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("DISCARD ALL")
    return cache


def measure(run) -> tuple[float, float]:
    """(cold ms, warm ms: the median of RUNS runs after it)."""
    go_cold()
    started = time.perf_counter()
    run()
    cold = (time.perf_counter() - started) * 1000
    warm = []
    for _ in range(RUNS):
        started = time.perf_counter()
        run()
        warm.append((time.perf_counter() - started) * 1000)
    return cold, statistics.median(warm)


def groups(tenant, filters=None):
    """The summary's figure groups, each as the summary computes it, and the series."""
    from reports.selectors import Report, ReportRange

    last = TODAY.replace(day=1) - dt.timedelta(days=1)
    first = (last.replace(day=1) - dt.timedelta(days=334)).replace(day=1)  # 12 whole months
    rng = ReportRange(tenant, first, last)
    now = dt.datetime.combine(TODAY, dt.time(12), tzinfo=dt.UTC)

    def report():
        return Report(rng, filters, using="default")

    def orders(r):  # as `summary` reads them: the discounts once, for the series and the averages
        days = {d: {**v, "discount": 0} for d, v in r.daily_orders().items()}
        discounts = r.daily_discounts()
        for d, v in discounts.items():
            days.setdefault(d, {"orders": 0, "value": 0})["discount"] = v["discount"]
        r._split = (sum(v["n"] for v in discounts.values()), sum((v["v"] for v in discounts.values()), 0))
        return r.orders_block(days)

    def in_snapshot(figure):
        """As the summary reads each group: inside the report's snapshot (`Report.snapshot`)."""

        def run():
            r = report()
            with r.snapshot():
                return figure(r)

        return run

    return rng, {
        "orders (count, value, discount, aov, returned)": in_snapshot(orders),
        "points (by kind, outstanding, expiring)": in_snapshot(lambda r: r.points_block(r.daily(), now)),
        "  outstanding": in_snapshot(lambda r: r.outstanding_by_program()),
        "gift cards": in_snapshot(lambda r: r.gift_cards_block()),
        "campaigns (published, redeemed, failed, redemptions)": in_snapshot(
            lambda r: (r.campaigns_block(), r.daily_redemptions())
        ),
        "members (with orders, active, repeat, engaged)": in_snapshot(
            lambda r: r.members_block(sum((v["value"] for v in r.daily_orders().values()), 0))
        ),
        "tiers": in_snapshot(lambda r: r.tiers_block()),
        "summary (all of the above)": lambda: report().summary(now=now),
        "time series, 12 months by month": lambda: report().timeseries("month"),
    }


def upkeep(tenant) -> None:
    """BENCH_INCREMENT new orders (entries, redemptions) written set-based, folded, rolled back."""
    from loyalty.models import LedgerEntry, Order
    from reports.rollups import rollups_fold
    from rewards.models import Redemption

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT max(id) FROM {Order._meta.db_table}")
            base = cursor.fetchone()[0]
            now = f"'{(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()}'::timestamptz"
            n = f"({base} + g)"
            source = "generate_series(1::bigint, %s) AS g"
            insert(
                cursor, Order,
                {"tenant_id": str(tenant.pk), "member_id": f"1 + g %% {MEMBERS}", "order_id": f"'inc-' || {n}",
                 "amount": "10 + g %% 50", "currency": "'EUR'", "location": "'shop-' || (g %% 10)",
                 "occurred_at": f"{now} - (g %% 3) * interval '1 day'", "created_at": now},
                source, [INCREMENT],
            )  # fmt: skip
            for _ in range(ENTRIES // ORDERS):
                insert(
                    cursor, LedgerEntry,
                    {"tenant_id": str(tenant.pk), "account_id": f"1 + g %% {MEMBERS}", "kind": "'earn'",
                     "points": "10", "balance_after": "0", "reason": "'bench'", "order_id": f"'inc-' || {n}",
                     "created_at": now},
                    source, [INCREMENT],
                )  # fmt: skip
            insert(
                cursor, Redemption,
                {"tenant_id": str(tenant.pk), "member_id": f"1 + g %% {MEMBERS}", "order_id": f"'inc-' || {n}",
                 "order": "'{}'::jsonb", "order_amount": "10", "discount": "1", "total": "9",
                 "integration_name": "'pos'", "created_at": now},
                source, [INCREMENT],
            )  # fmt: skip
        started = time.perf_counter()
        folded = rollups_fold(settle_seconds=0)
        took = time.perf_counter() - started
        transaction.set_rollback(True)
    rows = sum(folded.values())
    print(
        f"upkeep: {INCREMENT:,} new orders with {ENTRIES // ORDERS} entries and 1 redemption each "
        f"({rows:,} source rows) folded in {took * 1000:.0f} ms: {took / INCREMENT * 1e6:.0f} us per order "
        f"(then rolled back); the write path itself: no extra statement"
    )


def main() -> None:
    settings.MIGRATION_MODULES = DisableMigrations()
    started = time.perf_counter()
    global TODAY
    marker = read_marker() if KEEP else None
    loaded_on = (marker or {}).pop("today", None)
    if marker != wanted_marker():
        if marker is not None:
            print(f"kept database {DB_NAME}: marker {marker} does not match; loading again")
        admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        admin_sql(f'CREATE DATABASE "{DB_NAME}"')
        print(f"loading into {DB_NAME}")
        from django.core.management import call_command

        call_command("migrate", run_syncdb=True, verbosity=0)
        with transaction.atomic():
            load(started)
        connection.close()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        print(f"loaded and analysed in {time.perf_counter() - started:.0f} s")
        fresh = True
    else:
        TODAY = dt.date.fromisoformat(loaded_on)  # the history ends there; "now" is noon of that day
        print(f"reusing the kept database {DB_NAME} (BENCH_KEEP), loaded on {TODAY}")
        fresh = False
        ensure_indexes()
    try:
        from members.models import Tenant
        from reports.rollups import rollups_fold

        if fresh or not report_tables_current():
            rebuild_report_tables()
            started = time.perf_counter()
            folded = rollups_fold(settle_seconds=0)
            took = time.perf_counter() - started
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
            print(f"initial fold: {sum(folded.values()):,} rows in {took:.1f} s ({folded})")
        else:
            print(f"report tables current; fold of anything new: {rollups_fold(settle_seconds=0)}")
        tenant = Tenant.objects.get(slug="bench")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT (SELECT count(*) FROM loyalty_order), (SELECT count(*) FROM rewards_ledgerentry), "
                "(SELECT count(*) FROM rewards_redemption), (SELECT count(*) FROM members_member)"
            )
            counts = cursor.fetchone()
        print("data: {:,} orders, {:,} ledger entries, {:,} redemptions, {:,} members".format(*counts))
        cache = go_cold()
        restart = "PostgreSQL restarted before each" if COLD_RESTART else "PostgreSQL NOT restarted (its shared"
        restart += "" if COLD_RESTART else " buffers keep what earlier runs read; BENCH_COLD_RESTART=1 restarts it)"
        print(f"cold = new connection + DISCARD ALL, OS page cache {cache}, {restart}; warm = median of {RUNS}")
        print("machine: shared with other work, so the times are pessimistic")
        rng, figure_groups = groups(tenant)
        print(f"range {rng.first} .. {rng.last}")
        print(f"{'figure group':<56}{'cold ms':>10}{'warm ms':>10}")
        for name, run in figure_groups.items():
            cold, warm = measure(run)
            print(f"{name:<56}{cold:>10.0f}{warm:>10.0f}", flush=True)
        if os.environ.get("BENCH_FILTERS", "1") not in ("0", "", "no"):
            from campaigns.models import Campaign
            from members.models import Segment
            from reports.selectors import ReportFilters

            campaign = Campaign.objects.filter(tenant=tenant).order_by("pk").first()
            segment = Segment.objects.get(tenant=tenant, code="vip")
            for label, filters in (
                ("location=shop-3", ReportFilters(location="shop-3")),
                ("integration=pos", ReportFilters(integration="pos")),
                ("campaign", ReportFilters(campaign_id=campaign.pk)),
                ("tier=gold", ReportFilters(tier_code="gold")),
                ("segment=vip", ReportFilters(segment=segment)),
            ):
                _, by_filter = groups(tenant, filters)
                for part in ("summary (all of the above)", "time series, 12 months by month"):
                    cold, warm = measure(by_filter[part])
                    print(f"{label + ': ' + part.split(' (')[0]:<56}{cold:>10.0f}{warm:>10.0f}", flush=True)
        upkeep(tenant)
    finally:
        connection.close()
        if not KEEP:
            admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        else:
            print(f"kept the database {DB_NAME} (BENCH_KEEP)")


if __name__ == "__main__":
    main()
