"""The loyalty app's plain SQL, all of it: the default program, the hot reads of earning, the batch statements.

Why plain SQL: every order runs the hot reads, and compiling a queryset cost more CPU than PostgreSQL spends
answering it (see `common.plain_sql`); the batch jobs work on sets. Each statement runs on PostgreSQL and
SQLite unless it says otherwise (the earning batch, one statement of data-modifying CTEs, is PostgreSQL's;
`loyalty.ledger.posting` makes the same writes with the ORM on SQLite).

Each rule is written once and every reader uses it:

- `default_program_id()`: the tenant's default program, its active program with the lowest id. The ledger
  (`loyalty.ledger.default_program`), the earning lock (`default_account_for_update`), the member's points
  summary and tier (`loyalty.ledger.selectors`, `loyalty.selectors`) all read it through this subquery.
- `_due()`: a lot is due to expire when it still holds points and its expiry has come.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection

from common.plain_sql import insert_values, instance, instances, select_list, width
from loyalty.models import (
    Account,
    EarningRule,
    ExpiryWarning,
    LedgerEntry,
    LotConsumption,
    MemberTier,
    Order,
    PointLot,
    Program,
    Tier,
)
from members.models import Tenant


def _in(values) -> str:
    return ", ".join(["%s"] * len(values))


def _at(value):
    """A datetime as the ORM passes it to the database (SQLite compares text)."""
    return connection.ops.adapt_datetimefield_value(value)


# --- the default program ----------------------------------------------------------------------------------


def default_program_id(tenant_id) -> tuple[str, list]:
    """`SELECT id` of the tenant's default program (its active program with the lowest id): a subquery."""
    sql = (
        f"SELECT dp.id FROM {Program._meta.db_table} dp"
        " WHERE dp.tenant_id = %s AND dp.active = %s ORDER BY dp.id LIMIT 1"
    )
    return sql, [tenant_id, True]


def default_program(tenant_id) -> Program | None:
    sql, params = default_program_id(tenant_id)
    found = instances(Program, f"FROM {Program._meta.db_table} t WHERE t.id = ({sql})", params)
    return found[0] if found else None


_TENANT, _PROGRAM, _MEMBER = (Account._meta.get_field(name) for name in ("tenant", "program", "member"))


def default_account_for_update(member) -> Account | None:
    """The member's account in the tenant's default program, locked, with tenant, program and member, in ONE
    query; None when the member has no account there yet."""
    program_sql, program_params = default_program_id(member.tenant_id)
    sql = (
        f"SELECT {select_list(Account, 'a')}, {select_list(Tenant, 'tn')}, {select_list(Program, 'p')}"
        f" FROM {Account._meta.db_table} a JOIN {Tenant._meta.db_table} tn ON tn.id = a.tenant_id"
        f" JOIN {Program._meta.db_table} p ON p.id = a.program_id"
        f" WHERE a.member_id = %s AND a.program_id = ({program_sql}) ORDER BY a.id LIMIT 1"
    )
    if connection.features.has_select_for_update_of:
        sql += " FOR UPDATE OF a"
    with connection.cursor() as cursor:
        cursor.execute(sql, [member.pk, *program_params])
        row = cursor.fetchone()
    if row is None:
        return None
    a, t = width(Account), width(Tenant)
    account = instance(Account, "a", row[:a])
    _TENANT.set_cached_value(account, instance(Tenant, "tn", row[a : a + t]))
    _PROGRAM.set_cached_value(account, instance(Program, "p", row[a + t :]))
    _MEMBER.set_cached_value(account, member)  # the caller's instance: no need to read it again
    return account


# --- hot reads of earning -----------------------------------------------------------------------------------


def order_of(tenant_id, order_id: str) -> Order | None:
    """The tenant's order with this id."""
    found = instances(
        Order,
        f"FROM {Order._meta.db_table} t WHERE t.tenant_id = %s AND t.order_id = %s ORDER BY t.id LIMIT 1",
        [tenant_id, order_id],
    )
    return found[0] if found else None


def _live_rules(program_id, at: dt.datetime) -> tuple[str, list]:
    """`FROM ... WHERE` of the program's rules live at `at`: active, started, not ended."""
    when = _at(at)
    sql = (
        f"FROM {EarningRule._meta.db_table} t WHERE t.program_id = %s AND t.active = %s"
        " AND (t.starts_at IS NULL OR t.starts_at <= %s) AND (t.ends_at IS NULL OR t.ends_at > %s)"
    )
    return sql, [program_id, True, when, when]


_RULE_ORDER = " ORDER BY t.priority, t.code"


def active_earning_rules(program_id, trigger: str, at: dt.datetime, event: str = "") -> list[EarningRule]:
    """The program's rules of `trigger` live at `at` (active, started, not ended), in priority order."""
    sql, params = _live_rules(program_id, at)
    sql += ' AND t."trigger" = %s'
    params.append(trigger)
    if trigger == EarningRule.Trigger.EVENT:
        sql += " AND t.event_name = %s"
        params.append(event)
    return instances(EarningRule, sql + _RULE_ORDER, params)


def live_earning_rules(program_id, at: dt.datetime) -> list[EarningRule]:
    """Every rule of the program live at `at`, orders' and events' alike, in the order `active_earning_rules`
    gives each trigger's (the calculator reads them in one query)."""
    sql, params = _live_rules(program_id, at)
    return instances(EarningRule, sql + _RULE_ORDER, params)


def tiers_with_held(account: Account) -> list[Tier]:
    """The program's tiers in threshold order, each with `.held`: whether it is the member's current tier."""
    n = width(Tier)
    sql = (
        f"SELECT {select_list(Tier, 't')}, EXISTS(SELECT 1 FROM {MemberTier._meta.db_table} m"
        " WHERE m.member_id = %s AND m.program_id = %s AND m.tier_id = t.id)"
        f' FROM {Tier._meta.db_table} t WHERE t.program_id = %s ORDER BY t.threshold, t."rank", t.id'
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [account.member_id, account.program_id, account.program_id])
        rows = cursor.fetchall()
    tiers = []
    for row in rows:
        tier = instance(Tier, "t", row[:n])
        tier.held = bool(row[n])
        tiers.append(tier)
    return tiers


def earns_insert(account: Account, entries: list[LedgerEntry], lots: list[PointLot], *, total: int, now) -> list[int]:
    """PostgreSQL only: the earn entries, one lot per entry and the cached figures (added to, as with F()) in
    one statement; the entries' ids, in entry order."""
    head, params = insert_values(LedgerEntry, entries)
    sql = f"WITH e AS ({head} RETURNING id)"
    # A multi-row INSERT draws its ids from the sequence in VALUES order: the n-th smallest id is the n-th entry's,
    # and the lots (one INSERT, in entry order, so that FIFO by id stays the entries' order) point at them.
    rows = []
    for n, lot in enumerate(lots):
        body, lot_params = insert_values(
            PointLot, [lot], computed={"entry_id": f"(SELECT id FROM e ORDER BY id LIMIT 1 OFFSET {n})"}
        )
        head_of_lots, _, row = body.partition(" VALUES ")
        rows.append(row)
        params += lot_params
    sql += f", l AS ({head_of_lots} VALUES {', '.join(rows)})"
    table = connection.ops.quote_name(Account._meta.db_table)
    sql += (
        f", a AS (UPDATE {table} SET balance = balance + %s, lifetime_earned = lifetime_earned + %s,"
        " last_activity_at = %s WHERE id = %s) SELECT ARRAY(SELECT id FROM e ORDER BY id)"
    )
    params += [total, total, now, account.pk]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        (ids,) = cursor.fetchone()
    return ids


# --- expiry (batch jobs) ---------------------------------------------------------------------------------


def _due(lot: str) -> str:
    """The lot `lot` is due to expire at the moment given by one parameter: points left, expiry come."""
    return f"{lot}.remaining > 0 AND {lot}.expires_at <= %s"


def expire_balances(account_ids: list[int], now) -> None:
    """Lower each account's cached balance by the points of its due lots (the accounts are locked)."""
    account_t, lot_t = Account._meta.db_table, PointLot._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {account_t} SET balance = balance - (SELECT SUM(l.remaining) FROM {lot_t} l "
            f"WHERE l.account_id = {account_t}.id AND {_due('l')}) WHERE id IN ({_in(account_ids)})",
            [_at(now), *account_ids],
        )


def expire_lots(account_ids: list[int], entry_ids: list[int], now) -> int:
    """Record what each expire entry takes from the due lots of its account, then empty those lots: the number
    of lots expired."""
    lot_t, entry_t, cons_t = PointLot._meta.db_table, LedgerEntry._meta.db_table, LotConsumption._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {cons_t} (lot_id, entry_id, points) "
            f"SELECT l.id, e.id, l.remaining FROM {lot_t} l JOIN {entry_t} e ON e.account_id = l.account_id "
            f"WHERE l.account_id IN ({_in(account_ids)}) AND e.id IN ({_in(entry_ids)}) AND {_due('l')}",
            [*account_ids, *entry_ids, _at(now)],
        )
        cursor.execute(
            f"UPDATE {lot_t} SET remaining = 0 WHERE account_id IN ({_in(account_ids)}) AND {_due(lot_t)}",
            [*account_ids, _at(now)],
        )
        return cursor.rowcount


def expiry_warnings_insert(program_id, now, until) -> list[int]:
    """One warning per account and expiry time of the program's lots expiring in (now, until], unless already
    written (the unique (account, expires_at)); the ids of the new ones."""
    lot_t, account_t, warn_t = PointLot._meta.db_table, Account._meta.db_table, ExpiryWarning._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {warn_t} (tenant_id, account_id, expires_at, points, created_at) "
            f"SELECT l.tenant_id, l.account_id, l.expires_at, SUM(l.remaining), %s FROM {lot_t} l "
            f"JOIN {account_t} a ON a.id = l.account_id "
            f"WHERE a.program_id = %s AND l.remaining > 0 AND l.expires_at > %s AND l.expires_at <= %s "
            f"GROUP BY l.tenant_id, l.account_id, l.expires_at "
            f"ON CONFLICT (account_id, expires_at) DO NOTHING RETURNING id",
            [_at(now), program_id, _at(now), _at(until)],
        )
        return [row[0] for row in cursor.fetchall()]
