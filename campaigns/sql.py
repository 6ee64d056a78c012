"""The campaigns app's plain SQL, all of it: live campaigns, the hot reads (locked or not), the counters.

Why plain SQL: the hot paths (validate, redeem) run these on every checkout, and compiling a queryset cost
more CPU than PostgreSQL spends answering it (see `common.plain_sql`). Every statement here runs on both
PostgreSQL and SQLite, with the one exception named where it is (the bulk insert of generated codes).

Each rule is written once and every reader uses it:

- `live()`: a campaign is live while it is enabled, started and not ended. It is the SQL form of
  `campaigns.windows.schedule_refusal` (the same rule on a loaded row, with the reason); a table test
  (tests/campaigns/test_liveness.py) holds the two to the same verdict on both vendors. Active hours need
  the tenant's time zone and stay in Python (`campaigns.windows.live_refusal`).
- `_for_update()`: the one way a hot read locks rows, in primary-key order (house rule 2).
- `counts_sql()`: the one way to add to the counters of campaigns and codes (`F()`-like, no read first);
  `usage_sql()` the one upsert of the usage counters.
"""

from __future__ import annotations

from typing import Any

from django.db import connection

from campaigns.models import Campaign, CampaignType, CampaignUsage, Code
from common.plain_sql import execute_together, instance, instances, select_list, width
from members.models import Tenant


def _in(values) -> str:
    return ", ".join(["%s"] * len(values))


def _at(now):
    """`now` as the ORM passes a datetime to the database (SQLite compares text)."""
    return connection.ops.adapt_datetimefield_value(now)


# --- live campaigns ---------------------------------------------------------------------------------------


def live(alias: str) -> str:
    """The campaign `alias` is live: enabled, started, not ended (parameters: `live_params(now)`)."""
    return (
        f"{alias}.enabled = %s AND ({alias}.starts_at IS NULL OR {alias}.starts_at <= %s)"
        f" AND ({alias}.ends_at IS NULL OR {alias}.ends_at > %s)"
    )


def live_params(now) -> list:
    at = _at(now)
    return [True, at, at]


def _live_of_type(alias: str) -> str:
    return f"{alias}.tenant_id = %s AND {alias}.type = %s AND {live(alias)}"


def _live_of_type_params(tenant_id, kind, now) -> list:
    return [tenant_id, str(kind), *live_params(now)]


def live_campaigns(tenant_id, kind, now) -> list[Campaign]:
    """The tenant's live campaigns of type `kind`, in primary-key order."""
    return instances(
        Campaign,
        f"FROM {Campaign._meta.db_table} t WHERE {_live_of_type('t')} ORDER BY t.id",
        _live_of_type_params(tenant_id, kind, now),
    )


def _frozen(tenant_id_sql: str) -> str:
    """The tenant's kill switch, read fresh (the tenant's id is `tenant_id_sql`: a column or `%s`)."""
    return f"(SELECT tn.frozen FROM {Tenant._meta.db_table} tn WHERE tn.id = {tenant_id_sql})"


def live_promotion_exists(tenant_id, now) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {Campaign._meta.db_table} c WHERE {_live_of_type('c')})",
            _live_of_type_params(tenant_id, CampaignType.PROMOTION, now),
        )
        return bool(cursor.fetchone()[0])


def applying_promotion_ids(tenant_id, now) -> tuple[str, list]:
    """`SELECT id` of the promotions that apply by themselves now, but for their active hours: live, and the
    tenant not frozen (validation reads the same, `campaigns_and_frozen`). A subquery for a paged queryset."""
    sql = f"SELECT c.id FROM {Campaign._meta.db_table} c WHERE {_live_of_type('c')} AND NOT {_frozen('c.tenant_id')}"
    return sql, _live_of_type_params(tenant_id, CampaignType.PROMOTION, now)


def _of_codes(alias: str, texts: list[str]) -> str:
    """`alias.id` is the campaign of one of the tenant's codes named `texts` (parameters: tenant id, *texts)."""
    codes = Code._meta.db_table
    return f"{alias}.id IN (SELECT k.campaign_id FROM {codes} k WHERE k.tenant_id = %s AND k.code IN ({_in(texts)}))"


def campaigns_and_frozen(tenant_id, texts, now) -> tuple[bool, list[Campaign], list[Campaign]]:
    """One query (unlocked): the tenant's kill switch, the campaigns of the codes `texts`, the live promotions.

    Returns (frozen, campaigns of the codes, live promotions). The tenant flag is read fresh, so the kill
    switch takes effect at once whatever object the caller holds.
    """
    columns = select_list(Campaign, "c")
    frozen_sql = _frozen("%s")
    # Two index scans (the codes' unique (tenant, code), the campaigns' (tenant, type, enabled)), not one OR.
    branches, params = [], []
    texts = sorted(texts)
    if texts:
        branches.append(
            f"SELECT {columns}, {frozen_sql}, 1 FROM {Campaign._meta.db_table} c "
            f"WHERE c.tenant_id = %s AND {_of_codes('c', texts)}"
        )
        params += [tenant_id, tenant_id, tenant_id, *texts]
    branches.append(f"SELECT {columns}, {frozen_sql}, 0 FROM {Campaign._meta.db_table} c WHERE {_live_of_type('c')}")
    params += [tenant_id, *_live_of_type_params(tenant_id, CampaignType.PROMOTION, now)]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(branches) + " ORDER BY 1", params)
        fetched = cursor.fetchall()
        if not fetched:
            cursor.execute(f"SELECT {frozen_sql}", [tenant_id])
            frozen = bool(cursor.fetchone()[0])
    n = width(Campaign)
    rows = []
    for row in fetched:
        campaign = instance(Campaign, "c", row[:n])
        campaign.tenant_frozen, campaign.for_code = row[n], row[n + 1]
        rows.append(campaign)
    if rows:
        frozen = bool(rows[0].tenant_frozen)
    # A promotion that also has codes comes twice: one instance per role is fine (same row, read once).
    return frozen, [c for c in rows if c.for_code], [c for c in rows if not c.for_code]


def live_promotions_and_frozen(tenant_id, now) -> tuple[bool, list[Campaign]]:
    """One small query (unlocked): the tenant's kill switch and its live promotions (the redemption's first read;
    the campaigns of its codes are then read once, locked: `campaigns_and_codes_for_update`)."""
    columns = select_list(Campaign, "c")
    sql = (
        f"SELECT tn.frozen, {columns} FROM {Tenant._meta.db_table} tn LEFT JOIN {Campaign._meta.db_table} c"
        f" ON c.tenant_id = tn.id AND c.type = %s AND {live('c')} WHERE tn.id = %s ORDER BY c.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [str(CampaignType.PROMOTION), *live_params(now), tenant_id])
        rows = cursor.fetchall()
    if not rows:
        return False, []
    return bool(rows[0][0]), [instance(Campaign, "c", row[1:]) for row in rows if row[1] is not None]


def live_promotions_and_frozen_or_locked(tenant_id, texts, now):
    """The redemption's first read, one statement: (frozen, live promotions, locked) where `locked` is
    `campaigns_and_codes_for_update(tenant_id, texts)`'s answer when the tenant has no live promotion (the
    usual case: nothing else is to be locked, so the codes and campaigns are locked in the same statement),
    and None when it has some (their candidates decide what else to lock: the caller locks in a second one).

    The locking CTE runs only when the promotions CTE is empty (a one-time filter), so with promotions it locks
    nothing and the global lock order (campaigns ascending, then codes) is kept by the caller's second read.
    Without row locks (SQLite) it is the same read.
    """
    texts = sorted(texts)
    if not texts or connection.vendor != "postgresql":
        frozen, promotions = live_promotions_and_frozen(tenant_id, now)
        if promotions:
            return frozen, promotions, None
        return frozen, promotions, campaigns_and_codes_for_update(tenant_id, texts)
    campaign, code = Campaign._meta.db_table, Code._meta.db_table
    n, m = width(Campaign), width(Code)
    sql = (
        f"WITH p AS (SELECT {select_list(Campaign, 'c')} FROM {campaign} c WHERE {_live_of_type('c')}),"
        f" k AS (SELECT {select_list(Campaign, 'c')}, {select_list(Code, 't')} FROM {campaign} c"
        f" JOIN {code} t ON t.campaign_id = c.id WHERE t.tenant_id = %s AND t.code IN ({_in(texts)})"
        " AND c.tenant_id = %s AND NOT EXISTS (SELECT 1 FROM p) ORDER BY c.id, t.id FOR UPDATE)"
        f" SELECT tn.frozen, x.* FROM {Tenant._meta.db_table} tn LEFT JOIN"
        f" (SELECT 0 AS role, p.*, {', '.join(['NULL'] * m)} FROM p UNION ALL SELECT 1, k.* FROM k) x ON TRUE"
        " WHERE tn.id = %s"
    )
    params = [*_live_of_type_params(tenant_id, CampaignType.PROMOTION, now), tenant_id, *texts, tenant_id, tenant_id]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return False, [], ({}, [])
    frozen = bool(rows[0][0])
    promotions = sorted((instance(Campaign, "c", row[2 : 2 + n]) for row in rows if row[1] == 0), key=lambda c: c.pk)
    if promotions:
        return frozen, promotions, None
    campaigns: dict[int, Campaign] = {}
    codes = []
    for row in rows:
        if row[1] != 1:
            continue
        campaign_row = campaigns.get(row[2])
        if campaign_row is None:
            campaign_row = campaigns[row[2]] = instance(Campaign, "c", row[2 : 2 + n])
        code_row = instance(Code, "t", row[2 + n : 2 + n + m])
        code_row.campaign = campaign_row
        codes.append(code_row)
    codes.sort(key=lambda c: c.pk)
    return frozen, [], (campaigns, codes)


# --- hot reads, locked or not ---------------------------------------------------------------------------


def _rows(model, where: str, params: list, *, lock: bool) -> list:
    """`model` rows (table `t`) matching `where`, in primary-key order; locked (FOR UPDATE) with `lock`."""
    sql = f"FROM {model._meta.db_table} t WHERE {where} ORDER BY t.id"
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return instances(model, sql, params)


def rows_by_id(model, tenant_id, ids, *, lock: bool) -> dict[int, Any]:
    """The tenant's `model` rows (campaigns or codes) with these ids, by id."""
    ids = sorted(ids)
    if not ids:
        return {}
    rows = _rows(model, f"t.tenant_id = %s AND t.id IN ({_in(ids)})", [tenant_id, *ids], lock=lock)
    return {row.pk: row for row in rows}


def codes_by_text(tenant_id, texts, *, campaign_ids=None, lock: bool) -> list[Code]:
    """The tenant's codes named `texts` (optionally only of `campaign_ids`)."""
    texts = sorted(texts)
    if not texts or (campaign_ids is not None and not campaign_ids):
        return []
    where, params = f"t.tenant_id = %s AND t.code IN ({_in(texts)})", [tenant_id, *texts]
    if campaign_ids is not None:
        ids = sorted(campaign_ids)
        where += f" AND t.campaign_id IN ({_in(ids)})"
        params += ids
    return _rows(Code, where, params, lock=lock)


def campaigns_and_codes_for_update(tenant_id, texts) -> tuple[dict[int, Campaign], list[Code]]:
    """The tenant's codes named `texts` and their campaigns, locked, in one statement: ({id: campaign}, codes in
    primary-key order, each with its `.campaign`).

    Rows come in (campaign, code) order and PostgreSQL locks each row's campaign before its code, so the
    global lock order holds (campaigns ascending; a code only after its own campaign). Without rows to lock
    (SQLite) it is the same read.
    """
    texts = sorted(texts)
    if not texts:
        return {}, []
    sql = (
        f"SELECT {select_list(Campaign, 'c')}, {select_list(Code, 't')} FROM {Campaign._meta.db_table} c"
        f" JOIN {Code._meta.db_table} t ON t.campaign_id = c.id"
        f" WHERE t.tenant_id = %s AND t.code IN ({_in(texts)}) AND c.tenant_id = %s ORDER BY c.id, t.id"
    )
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, [tenant_id, *texts, tenant_id])
        rows = cursor.fetchall()
    n = width(Campaign)
    campaigns: dict[int, Campaign] = {}
    codes = []
    for row in rows:
        campaign = campaigns.get(row[0])
        if campaign is None:
            campaign = campaigns[row[0]] = instance(Campaign, "c", row[:n])
        code = instance(Code, "t", row[n:])
        code.campaign = campaign
        codes.append(code)
    codes.sort(key=lambda code: code.pk)
    return campaigns, codes


def campaigns_of_codes_for_update(tenant_id, texts, ids) -> dict[int, Campaign]:
    """The campaigns of the tenant's codes named `texts` and those with `ids` (promotions), locked, by id."""
    texts, ids = sorted(texts), sorted(ids)
    branches, params = [], [tenant_id]
    if texts:
        branches.append(_of_codes("t", texts))
        params += [tenant_id, *texts]
    if ids:
        branches.append(f"t.id IN ({_in(ids)})")
        params += ids
    if not branches:
        return {}
    rows = _rows(Campaign, f"t.tenant_id = %s AND ({' OR '.join(branches)})", params, lock=True)
    return {row.pk: row for row in rows}


def usage_counts(wanted: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """The usage counters (campaign, key) -> count of the pairs `wanted` (missing ones are 0)."""
    if not wanted:
        return {}
    ids, keys = sorted({c for c, _ in wanted}), sorted({k for _, k in wanted})
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT campaign_id, key, count FROM {CampaignUsage._meta.db_table} "
            f"WHERE campaign_id IN ({_in(ids)}) AND key IN ({_in(keys)})",
            [*ids, *keys],
        )
        return {(c, k): n for c, k, n in cursor.fetchall()}


# --- counters ------------------------------------------------------------------------------------------


def counts_sql(model, deltas: dict[int, dict[str, Any]]) -> tuple[str, list]:
    """`UPDATE` adding `deltas` ({id: {counter field: amount}}) to rows of `model`: each counter becomes
    itself plus the amount, in one statement for all rows (a NULL stays NULL: a code without balance).
    ("", []) when there is nothing to add."""
    rows = sorted((pk, d) for pk, d in deltas.items())
    names = sorted({name for _, d in rows for name, amount in d.items() if amount})
    if not names:
        return "", []
    quote = connection.ops.quote_name
    pk = quote(model._meta.pk.column)
    sets, params = [], []
    for name in names:
        column = quote(model._meta.get_field(name).column)
        sets.append(f"{column} = {column} + CASE {pk}{' WHEN %s THEN %s' * len(rows)} ELSE 0 END")
        for row_pk, d in rows:
            params += [row_pk, d.get(name, 0)]
    ids = [row_pk for row_pk, _ in rows]
    sql = f"UPDATE {quote(model._meta.db_table)} SET {', '.join(sets)} WHERE {pk} IN ({_in(ids)})"
    return sql, [*params, *ids]


def usage_sql(deltas: dict[tuple[int, str], dict[str, Any]]) -> tuple[str, list]:
    """The upsert adding `deltas` ({(campaign id, key): {"count": n, "discount": d}}) to the usage counters."""
    if not deltas:
        return "", []
    table = CampaignUsage._meta.db_table
    rows = sorted(deltas.items())
    params: list[Any] = []
    for (campaign_id, key), d in rows:
        params += [campaign_id, key, d.get("count", 0), d.get("discount", 0)]
    sql = (
        f"INSERT INTO {table} (campaign_id, key, count, discount) VALUES {', '.join(['(%s, %s, %s, %s)'] * len(rows))}"
        f" ON CONFLICT (campaign_id, key) DO UPDATE SET count = {table}.count + EXCLUDED.count,"
        f" discount = {table}.discount + EXCLUDED.discount"
    )
    return sql, params


def campaign_counts_add(deltas: dict[int, dict[str, Any]]) -> None:
    """Add to campaigns' counters (`redemptions_count`, `codes_count`, `published_count`, ...): {id: {field: n}}."""
    execute_together([counts_sql(Campaign, deltas)])


def code_insert_skipping_taken(*, tenant_id, campaign_id, codes, usage_limit, expires_at, balance, now) -> int:
    """Insert generated codes, skipping texts the tenant already has; the number inserted.

    PostgreSQL only (the texts travel as one array); on SQLite `campaigns.codes.insert_codes` makes the
    same write with `bulk_create(ignore_conflicts=True)`.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {Code._meta.db_table} (tenant_id, campaign_id, code, is_shared, usage_limit, redeemed_count,
                                 expires_at, initial_balance, balance, created_at)
            SELECT %s, %s, c, false, %s, 0, %s, %s, %s, %s FROM unnest(%s::text[]) AS c ORDER BY c
            ON CONFLICT (tenant_id, code) DO NOTHING
            """,
            [tenant_id, campaign_id, usage_limit, expires_at, balance, balance, now, sorted(codes)],
        )
        return cursor.rowcount
