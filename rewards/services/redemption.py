"""Validation, redemption and rollback: what every checkout calls.

- `validate(...)` evaluates an order against codes, automatic promotions and points and changes nothing.
- `redeem(...)` runs the same evaluation again inside one durable transaction with the campaign and code
  rows locked (campaigns, then codes, then the points account: the global lock order), and writes all or
  nothing: the redemption and its lines, the campaign and code counters, the usage counters (one
  set-based statement each), gift card debits and the points spend.
- `redeem_in_transaction(...)`: the same, inside the caller's `transaction.atomic()` (checkout compositions);
  `redeem_with_answer(answer=..., ...)`: `redeem` calling `answer(redemption)` just before its commit.
- `redemption_rollback(...)` restores all of it exactly once.

Each runs a fixed number of queries whatever the number of items, codes and rules.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from campaigns import engine
from campaigns.codes import normalize
from campaigns.context import facts_needed, member_facts, rule_context
from campaigns.events import campaign_budget_exhausted
from campaigns.lock_objects import campaigns_for_update, codes_for_update
from campaigns.models import Campaign, CampaignType, CampaignUsage, Code
from common.errors import ApplicationError, Conflict
from common.events import publish
from common.money import money_str
from common.plain_sql import insert_with_children, instance, instances, select_list, width
from members.models import Member, Tenant
from rewards.models import GiftCardTransaction, Redemption, RedemptionCode, RedemptionRollback

ZERO = Decimal("0.00")
MAX_CODES_IN_REQUEST = 20
REDEMPTIONS_LOOKBACK_DAYS = 400


class ValidationResult:
    """The outcome of `validate`: `.valid`, `.as_dict()` (the contract's validation body)."""

    def __init__(self, evaluation: engine.Evaluation):
        self.evaluation = evaluation

    @property
    def valid(self) -> bool:
        return self.evaluation.valid

    def as_dict(self) -> dict[str, Any]:
        return self.evaluation.as_dict()


# --- input --------------------------------------------------------------------------------------


def _bad(field: str, msg: str):
    return ApplicationError("validation_error", "The request is malformed.", {field: [msg]}, status=400)


def _money(value, field: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise _bad(field, "A decimal amount is required.") from exc
    if not number.is_finite() or number < 0:
        raise _bad(field, "A non-negative amount is required.")
    return number


def _parse_order(order: Any) -> dict[str, Any]:
    if not isinstance(order, dict):
        raise _bad("order", "An object is required.")
    items = order.get("items") or []
    if not isinstance(items, list):
        raise _bad("order.items", "A list is required.")
    clean_items = []
    for item in items:
        if not isinstance(item, dict):
            raise _bad("order.items", "Each item is an object.")
        quantity = item.get("quantity", 1)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise _bad("order.items", "quantity is a positive whole number.")
        clean_items.append(
            {
                "sku": str(item.get("sku") or ""),
                "category": str(item.get("category") or ""),
                "quantity": quantity,
                "unit_price": str(_money(item.get("unit_price", "0"), "order.items")),
            }
        )
    clean = dict(order)
    clean["items"] = clean_items
    if order.get("amount") is not None:
        clean["amount"] = str(_money(order["amount"], "order.amount"))
    elif not clean_items:
        raise _bad("order.amount", "An amount or items are required.")
    if order.get("shipping") is not None:
        clean["shipping"] = str(_money(order["shipping"], "order.shipping"))
    return clean


def _parse_codes(codes: Any) -> list[engine.CodeRequest]:
    if codes is None:
        return []
    if not isinstance(codes, list):
        raise _bad("codes", "A list is required.")
    if len(codes) > MAX_CODES_IN_REQUEST:
        raise _bad("codes", f"At most {MAX_CODES_IN_REQUEST} codes.")
    requests = []
    for index, entry in enumerate(codes):
        amount = None
        if isinstance(entry, dict):
            text, raw_amount = entry.get("code"), entry.get("amount")
            if raw_amount is not None:
                amount = _money(raw_amount, "codes")
                if amount <= 0:
                    raise _bad("codes", "A gift card amount must be positive.")
        else:
            text = entry
        if not isinstance(text, str) or not text.strip() or len(text) > 60:
            raise _bad("codes", "Each code is a string (or an object with code and amount).")
        requests.append(engine.CodeRequest(index=index, text=normalize(text), amount=amount))
    return requests


def _parse_points(points: Any) -> int:
    if points in (None, ""):
        return 0
    if isinstance(points, bool) or not isinstance(points, int) or points < 0:
        raise _bad("points", "A non-negative whole number is required.")
    return points


# --- loading (a fixed number of queries) ------------------------------------------------------------


def _promotions_qs(tenant, now):
    from django.db.models import Q

    return Campaign.objects.for_tenant(tenant).filter(
        Q(starts_at__isnull=True) | Q(starts_at__lte=now),
        Q(ends_at__isnull=True) | Q(ends_at__gt=now),
        type=CampaignType.PROMOTION,
        enabled=True,
    )


def _is_live_promotion(campaign: Campaign, now) -> bool:
    """The filter of `_promotions_qs`, on a loaded row."""
    return (
        campaign.type == CampaignType.PROMOTION
        and campaign.enabled
        and (campaign.starts_at is None or campaign.starts_at <= now)
        and (campaign.ends_at is None or campaign.ends_at > now)
    )


def _placeholders(values) -> str:
    return ", ".join(["%s"] * len(values))


def _campaigns_and_frozen(tenant, texts, now) -> tuple[bool, list[Campaign], list[Campaign]]:
    """One query (unlocked): the tenant's kill switch, the campaigns of the codes `texts`, the live promotions.

    Returns (frozen, campaigns of the codes, live promotions). The tenant flag is read fresh, so the kill
    switch takes effect at once whatever object the caller holds.
    """
    campaign_table, code_table = Campaign._meta.db_table, Code._meta.db_table
    columns = select_list(Campaign, "c")
    frozen_sql = f"(SELECT t.frozen FROM {Tenant._meta.db_table} t WHERE t.id = %s)"
    # Two index scans (the codes' unique (tenant, code), the campaigns' (tenant, type, enabled)), not one OR.
    branches, params = [], []
    texts = sorted(texts)
    if texts:
        branches.append(
            f"SELECT {columns}, {frozen_sql}, 1 FROM {campaign_table} c WHERE c.tenant_id = %s AND c.id IN "
            f"(SELECT k.campaign_id FROM {code_table} k WHERE k.tenant_id = %s AND k.code IN ({_placeholders(texts)}))"
        )
        params += [tenant.pk, tenant.pk, tenant.pk, *texts]
    branches.append(
        f"SELECT {columns}, {frozen_sql}, 0 FROM {campaign_table} c WHERE c.tenant_id = %s AND c.type = %s "
        "AND c.enabled = %s AND (c.starts_at IS NULL OR c.starts_at <= %s) AND (c.ends_at IS NULL OR c.ends_at > %s)"
    )
    params += [tenant.pk, tenant.pk, str(CampaignType.PROMOTION), True, now, now]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(branches) + " ORDER BY 1", params)
        fetched = cursor.fetchall()
    n = width(Campaign)
    rows = []
    for row in fetched:
        campaign = instance(Campaign, "c", row[:n])
        campaign.tenant_frozen, campaign.for_code = row[n], row[n + 1]
        rows.append(campaign)
    frozen = bool(rows[0].tenant_frozen) if rows else _frozen(tenant)
    code_campaigns = [c for c in rows if c.for_code]
    promotions = [c for c in rows if not c.for_code]
    # A promotion that also has codes comes twice: one instance per role is fine (same row, read once).
    return frozen, code_campaigns, promotions


def _codes(tenant, texts, *, campaign_ids=None, lock: bool = False) -> list[Code]:
    """The tenant's codes named `texts` (optionally only of `campaign_ids`), locked in primary key order."""
    if not texts:
        return []
    texts = sorted(texts)
    sql = f"FROM {Code._meta.db_table} t WHERE t.tenant_id = %s AND t.code IN ({_placeholders(texts)})"
    params: list[Any] = [tenant.pk, *texts]
    if campaign_ids is not None:
        if not campaign_ids:
            return []
        ids = sorted(campaign_ids)
        sql += f" AND t.campaign_id IN ({_placeholders(ids)})"
        params += ids
    sql += " ORDER BY t.id"
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return instances(Code, sql, params)


def _usage(campaigns: list[Campaign], member_id, now, tz) -> dict[tuple[int, str], int]:
    wanted = engine.wanted_usage_keys(campaigns, member_id, now, tz)
    if not wanted:
        return {}
    ids, keys = sorted({c for c, _ in wanted}), sorted({k for _, k in wanted})
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT campaign_id, key, count FROM {CampaignUsage._meta.db_table} "
            f"WHERE campaign_id IN ({_placeholders(ids)}) AND key IN ({_placeholders(keys)})",
            [*ids, *keys],
        )
        rows = cursor.fetchall()
    return {(c, k): n for c, k, n in rows}


def member_redemptions(member: Member, now) -> list[dict[str, Any]]:
    """The member's past redemptions as the rule language sees them (`redemptions`)."""
    rows = (
        RedemptionCode.objects.filter(
            tenant_id=member.tenant_id,
            member=member,
            rolled_back=False,
            created_at__gte=now - dt.timedelta(days=REDEMPTIONS_LOOKBACK_DAYS),
        )
        .order_by("-created_at")
        .values("campaign_id", "campaign__name", "campaign__type", "code__code", "discount", "created_at")[:500]
    )
    return [
        {
            "campaign": str(r["campaign_id"]),
            "campaign_id": r["campaign_id"],
            "campaign_name": r["campaign__name"],
            "campaign_type": r["campaign__type"],
            "code": r["code__code"],
            "discount": r["discount"],
            "created_at": r["created_at"],
        }
        for r in rows
    ]


def _context_loader(tenant, member, order, now, rules):
    """The rule context, built once (on first use) with only the member facts the rules read."""
    cache: dict[str, Any] = {}

    def load() -> dict[str, Any]:
        if "ctx" not in cache:
            needs = facts_needed(rules)
            facts = member_facts(member, now=now, needs=needs) if member else None
            redemptions = member_redemptions(member, now) if member and "redemptions" in needs else []
            cache["ctx"] = rule_context(order=order, now=now, tz=tenant.tz, facts=facts, redemptions=redemptions)
        return cache["ctx"]

    return load


def _points_request(tenant, member, points: int):
    """(PointsRequest, account or None) for `points` requested; reads only (no account is created here)."""
    if points <= 0:
        return None, None
    if member is None:
        return engine.PointsRequest(requested=points, balance=None, member_present=False), None
    from rewards.models import Account
    from rewards.services.ledger import default_program

    program = default_program(tenant)
    if program is None:
        return engine.PointsRequest(requested=points, balance=0), None
    account = Account.objects.filter(tenant=tenant, member=member, program=program).first()
    return (
        engine.PointsRequest(
            requested=points,
            balance=account.balance if account else 0,
            points_per=program.points_value_points,
            amount_per=program.points_value_amount,
        ),
        account,
    )


def _evaluate(*, tenant, member, order, requests, points_request, codes, promotions, now, frozen, context=None):
    by_text = {c.code: c for c in codes}
    for request in requests:
        request.code = by_text.get(request.text)
    involved = {c.campaign.pk: c.campaign for c in codes} | {p.pk: p for p in promotions}
    usage = _usage(list(involved.values()), member.pk if member else None, now, tenant.tz)
    return engine.evaluate(
        now=now,
        tz=tenant.tz,
        member_id=member.pk if member else None,
        order=order,
        requests=requests,
        promotions=promotions,
        usage=usage,
        context=context or _context_loader(tenant, member, order, now, [c.rule for c in involved.values()]),
        points=points_request,
        frozen=frozen,
    )


def _frozen(tenant) -> bool:
    """Read fresh: the tenant kill switch takes effect at once, whatever object the caller holds."""
    return bool(Tenant.objects.filter(pk=tenant.pk).values_list("frozen", flat=True).first())


def _check_member(tenant, member):
    if member is not None and member.tenant_id != tenant.pk:
        raise ApplicationError("member_not_found", "No such member.", status=404)


# --- validate -------------------------------------------------------------------------------------


def validate(*, tenant: Tenant, member: Member | None = None, order: dict, codes: list, points: int = 0):
    """Evaluate `order` against `codes`, promotions and `points`; changes nothing."""
    _check_member(tenant, member)
    order = _parse_order(order)
    requests = _parse_codes(codes)
    points = _parse_points(points)
    now = timezone.now()
    texts = {r.text for r in requests}
    frozen, code_campaigns, promotions = _campaigns_and_frozen(tenant, texts, now)
    by_id = {c.pk: c for c in code_campaigns}
    found = _codes(tenant, texts, campaign_ids=set(by_id))
    for code in found:
        code.campaign = by_id[code.campaign_id]
    points_request, _account = _points_request(tenant, member, points)
    evaluation = _evaluate(
        tenant=tenant,
        member=member,
        order=order,
        requests=requests,
        points_request=points_request,
        codes=found,
        promotions=promotions,
        now=now,
        frozen=frozen,
    )
    return ValidationResult(evaluation)


# --- counters (set-based, PostgreSQL; a portable fallback for SQLite) ------------------------------


def _apply_campaign_deltas(deltas: dict[int, tuple[int, Decimal, Decimal]]) -> None:
    if not deltas:
        return
    if connection.vendor == "postgresql":
        table = Campaign._meta.db_table
        values = ", ".join(["(%s::bigint, %s::int, %s::numeric, %s::numeric)"] * len(deltas))
        params: list[Any] = []
        for pk, (n, discount, order_value) in sorted(deltas.items()):
            params += [pk, n, discount, order_value]
        with connection.cursor() as cursor:
            cursor.execute(
                f"""UPDATE {table} AS c SET redemptions_count = c.redemptions_count + v.n,
                        discount_used = c.discount_used + v.d, order_value_used = c.order_value_used + v.o
                    FROM (VALUES {values}) AS v(id, n, d, o) WHERE c.id = v.id""",
                params,
            )
        return
    for pk, (n, discount, order_value) in deltas.items():
        Campaign.objects.filter(pk=pk).update(
            redemptions_count=F("redemptions_count") + n,
            discount_used=F("discount_used") + discount,
            order_value_used=F("order_value_used") + order_value,
        )


def _apply_code_deltas(deltas: dict[int, tuple[int, Decimal]]) -> None:
    if not deltas:
        return
    if connection.vendor == "postgresql":
        table = Code._meta.db_table
        values = ", ".join(["(%s::bigint, %s::int, %s::numeric)"] * len(deltas))
        params: list[Any] = []
        for pk, (n, balance) in sorted(deltas.items()):
            params += [pk, n, balance]
        with connection.cursor() as cursor:
            cursor.execute(
                f"""UPDATE {table} AS c SET redeemed_count = c.redeemed_count + v.n,
                        balance = CASE WHEN c.balance IS NULL THEN NULL ELSE c.balance + v.b END
                    FROM (VALUES {values}) AS v(id, n, b) WHERE c.id = v.id""",
                params,
            )
        return
    for pk, (n, balance) in deltas.items():
        Code.objects.filter(pk=pk).update(redeemed_count=F("redeemed_count") + n)
        Code.objects.filter(pk=pk, balance__isnull=False).update(balance=F("balance") + balance)


def _apply_usage_deltas(deltas: dict[tuple[int, str], tuple[int, Decimal]]) -> None:
    if not deltas:
        return
    table = CampaignUsage._meta.db_table
    rows = sorted(deltas.items())
    if connection.vendor == "postgresql":
        values = ", ".join(["(%s::bigint, %s, %s::int, %s::numeric)"] * len(rows))
    else:
        values = ", ".join(["(%s, %s, %s, %s)"] * len(rows))
    params: list[Any] = []
    for (campaign_id, key), (n, discount) in rows:
        params += [campaign_id, key, n, discount]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {table} (campaign_id, key, count, discount) VALUES {values}
                ON CONFLICT (campaign_id, key) DO UPDATE SET count = {table}.count + EXCLUDED.count,
                    discount = {table}.discount + EXCLUDED.discount""",
            params,
        )


def _deltas(lines: list[RedemptionCode], sign: int, gift_debits: dict[int, Decimal]):
    campaign_d: dict[int, list] = defaultdict(lambda: [0, ZERO, ZERO])
    code_d: dict[int, list] = defaultdict(lambda: [0, ZERO])
    usage_d: dict[tuple[int, str], list] = defaultdict(lambda: [0, ZERO])
    for line in lines:
        c = campaign_d[line.campaign_id]
        c[0] += sign
        c[1] += sign * line.discount
        c[2] += sign * line.order_amount
        if line.code_id:
            code_d[line.code_id][0] += sign
        for key in line.usage_keys:
            u = usage_d[(line.campaign_id, key)]
            u[0] += sign
            u[1] += sign * line.discount
    for code_id, debit in gift_debits.items():
        code_d[code_id][1] += -sign * debit
    return (
        {k: tuple(v) for k, v in campaign_d.items()},
        {k: tuple(v) for k, v in code_d.items()},
        {k: tuple(v) for k, v in usage_d.items()},
    )


def _exhausted_limit(campaign: Campaign) -> str:
    """Which limit of `campaign` (with its counters as they now stand) is used up, if any."""
    if campaign.redemptions_total is not None and campaign.redemptions_count >= campaign.redemptions_total:
        return "redemptions_total"
    if campaign.discount_total is not None and campaign.discount_used >= campaign.discount_total:
        return "discount_total"
    if campaign.order_value_total is not None and campaign.order_value_used >= campaign.order_value_total:
        return "order_value_total"
    return ""


def _mark_exhausted(campaign: Campaign, limit: str, now) -> None:
    """Set `budget_exhausted_at` once and emit `campaign.budget_exhausted` (inside the caller's transaction)."""
    if Campaign.objects.filter(pk=campaign.pk, budget_exhausted_at__isnull=True).update(budget_exhausted_at=now):
        campaign.budget_exhausted_at = now
        campaign_budget_exhausted(campaign, limit=limit)


# --- redeem ---------------------------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, evaluation: engine.Evaluation):
        self.evaluation = evaluation


BUDGET_REASONS = {
    "discount_budget_exceeded": "discount_total",
    "order_value_budget_exceeded": "order_value_total",
}


def _prepare(*, tenant, member, order_id, order, codes, points) -> tuple[str, dict, list, int]:
    """Check the input (before any transaction): (order_id, order, code requests, points)."""
    _check_member(tenant, member)
    if not isinstance(order_id, str) or not order_id.strip() or len(order_id) > 100:
        raise _bad("order_id", "An order id of 1 to 100 characters is required.")
    order = _parse_order(order)
    requests = _parse_codes(codes)
    points = _parse_points(points)
    if not requests and not points and not _promotions_qs(tenant, timezone.now()).exists():
        raise _bad("codes", "Nothing to redeem: give codes or points.")
    return order_id.strip(), order, requests, points


def _refusal_error(evaluation: engine.Evaluation) -> ApplicationError:
    error = ApplicationError(
        "redemption_failed",
        "The redemption was refused; nothing was redeemed.",
        details=evaluation.as_dict(),
    )
    error.evaluation = evaluation
    return error


def redeem(
    *,
    tenant: Tenant,
    member: Member | None,
    order_id: str,
    order: dict,
    codes: list,
    points: int = 0,
    channel: str = "",
    integration=None,
    staff_user=None,
) -> Redemption:
    """Redeem every code (and the qualifying promotions, and points) on one order, or nothing.

    Runs in its own durable transaction. Raises ApplicationError("redemption_failed", details=<the
    validation body>) when any part is refused; the failure is then counted on the campaigns involved and
    `redemption.failed` is emitted (in a transaction of its own, after the refused one rolled back).
    """
    return _redeem_durable(
        tenant=tenant,
        member=member,
        order_id=order_id,
        order=order,
        codes=codes,
        points=points,
        channel=channel,
        integration=integration,
        staff_user=staff_user,
    )


def redeem_with_answer(*, answer: Callable[[Redemption], None], **arguments) -> Redemption:
    """`redeem(**arguments)`, calling `answer(redemption)` inside its transaction just before the commit.

    For the API: it stores its idempotent response there, so that the redemption and the answer to its
    retries commit together (and one commit, not two, waits for the disk).
    """
    return _redeem_durable(**arguments, answer=answer)


def _redeem_durable(
    *, tenant, member, order_id, order, codes, points=0, channel="", integration=None, staff_user=None, answer=None
) -> Redemption:
    order_id, order, requests, points = _prepare(
        tenant=tenant, member=member, order_id=order_id, order=order, codes=codes, points=points
    )
    try:
        with transaction.atomic(durable=True):
            redemption = _redeem_locked(
                tenant=tenant,
                member=member,
                order_id=order_id,
                order=order,
                requests=requests,
                points=points,
                channel=channel,
                integration=integration,
                staff_user=staff_user,
            )
            if answer is not None:
                answer(redemption)
    except _Refused as refused:
        _record_failure(tenant=tenant, member=member, order_id=order_id, evaluation=refused.evaluation)
        raise _refusal_error(refused.evaluation) from None
    return redemption


def redeem_in_transaction(
    *,
    tenant: Tenant,
    member: Member | None,
    order_id: str,
    order: dict,
    codes: list,
    points: int = 0,
    channel: str = "",
    integration=None,
    staff_user=None,
) -> Redemption:
    """`redeem(...)` inside the caller's `transaction.atomic()`, for compositions such as a checkout.

    Same arguments, checks, locks (campaigns, then codes, then the points account) and writes as `redeem`,
    but no transaction of its own: the caller commits or rolls back. A refusal raises the same
    ApplicationError("redemption_failed") (with the engine's evaluation as `.evaluation`) after rolling
    back what this call wrote (a savepoint); the failure is not counted on the campaigns and no
    `redemption.failed` is emitted, since those writes would share the caller's fate.
    """
    if not connection.in_atomic_block:
        raise transaction.TransactionManagementError("redeem_in_transaction() needs the caller's transaction.atomic().")
    order_id, order, requests, points = _prepare(
        tenant=tenant, member=member, order_id=order_id, order=order, codes=codes, points=points
    )
    try:
        with transaction.atomic():
            return _redeem_locked(
                tenant=tenant,
                member=member,
                order_id=order_id,
                order=order,
                requests=requests,
                points=points,
                channel=channel,
                integration=integration,
                staff_user=staff_user,
            )
    except _Refused as refused:
        raise _refusal_error(refused.evaluation) from None


def _apply_writes(*, campaign_d, code_d, usage_d, redemption: Redemption) -> None:
    """The counters, the usage counters and the redemption's answer: one statement on PostgreSQL."""
    if connection.vendor != "postgresql":
        _apply_campaign_deltas(campaign_d)
        _apply_code_deltas(code_d)
        _apply_usage_deltas(usage_d)
        redemption.save(update_fields=["points_entry_id", "result"])
        return
    ctes: list[str] = []
    params: list[Any] = []
    if campaign_d:
        table = Campaign._meta.db_table
        values = ", ".join(["(%s::bigint, %s::int, %s::numeric, %s::numeric)"] * len(campaign_d))
        for pk, (n, discount, order_value) in sorted(campaign_d.items()):
            params += [pk, n, discount, order_value]
        ctes.append(
            f"""campaign_counts AS (UPDATE {table} AS c SET redemptions_count = c.redemptions_count + v.n,
                    discount_used = c.discount_used + v.d, order_value_used = c.order_value_used + v.o
                FROM (VALUES {values}) AS v(id, n, d, o) WHERE c.id = v.id RETURNING c.id)"""
        )
    if code_d:
        table = Code._meta.db_table
        values = ", ".join(["(%s::bigint, %s::int, %s::numeric)"] * len(code_d))
        for pk, (n, balance) in sorted(code_d.items()):
            params += [pk, n, balance]
        ctes.append(
            f"""code_counts AS (UPDATE {table} AS c SET redeemed_count = c.redeemed_count + v.n,
                    balance = CASE WHEN c.balance IS NULL THEN NULL ELSE c.balance + v.b END
                FROM (VALUES {values}) AS v(id, n, b) WHERE c.id = v.id RETURNING c.id)"""
        )
    if usage_d:
        table = CampaignUsage._meta.db_table
        rows = sorted(usage_d.items())
        values = ", ".join(["(%s::bigint, %s, %s::int, %s::numeric)"] * len(rows))
        for (campaign_id, key), (n, discount) in rows:
            params += [campaign_id, key, n, discount]
        ctes.append(
            f"""usage_counts AS (INSERT INTO {table} (campaign_id, key, count, discount) VALUES {values}
                ON CONFLICT (campaign_id, key) DO UPDATE SET count = {table}.count + EXCLUDED.count,
                    discount = {table}.discount + EXCLUDED.discount RETURNING 1)"""
        )
    with_clause = ("WITH " + ", ".join(ctes) + " ") if ctes else ""
    params += [redemption.points_entry_id, json.dumps(redemption.result, cls=DjangoJSONEncoder), redemption.pk]
    with connection.cursor() as cursor:
        cursor.execute(
            f"{with_clause}UPDATE {Redemption._meta.db_table} SET points_entry_id = %s, result = %s::jsonb "
            "WHERE id = %s",
            params,
        )


def _redeem_locked(*, tenant, member, order_id, order, requests, points, channel, integration, staff_user):
    now = timezone.now()
    texts = {r.text for r in requests}
    frozen, code_campaigns, unlocked_promotions = _campaigns_and_frozen(tenant, texts, now)
    context = _context_loader(
        tenant, member, order, now, [c.rule for c in code_campaigns] + [p.rule for p in unlocked_promotions]
    )
    candidates = (
        []
        if frozen
        else engine.promotion_candidates(
            promotions=unlocked_promotions,
            now=now,
            tz=tenant.tz,
            member_id=member.pk if member else None,
            order=order,
            context=context,
        )
    )
    promotion_ids = [p.pk for p in candidates]
    # The global lock order: campaigns, then codes (then the points account, in the ledger).
    campaigns = campaigns_for_update(tenant=tenant, ids={c.pk for c in code_campaigns} | set(promotion_ids))
    codes = _codes(tenant, texts, campaign_ids=set(campaigns), lock=True)
    for code in codes:
        code.campaign = campaigns[code.campaign_id]
    promotions = [campaigns[pk] for pk in promotion_ids if pk in campaigns]
    points_request, account = _points_request(tenant, member, points)
    evaluation = _evaluate(
        tenant=tenant,
        member=member,
        order=order,
        requests=requests,
        points_request=points_request,
        codes=codes,
        promotions=promotions,
        now=now,
        frozen=frozen,
        context=context,
    )
    if not evaluation.valid:
        raise _Refused(evaluation)

    redemption = Redemption(
        tenant=tenant,
        member=member,
        order_id=order_id,
        order=order,
        order_amount=evaluation.amount,
        discount=evaluation.discount,
        gift_cards=evaluation.gift_cards,
        points_used=evaluation.points_used,
        points_value=evaluation.points_value,
        total=evaluation.total,
        channel=channel or "",
        integration_id=getattr(integration, "pk", None),
        integration_name=str(integration)[:200] if integration is not None else "",
        staff_user=staff_user,
        created_at=now,
    )
    applied = evaluation.applied
    lines = [
        RedemptionCode(
            tenant=tenant,
            redemption=redemption,
            campaign=x.campaign,
            code=x.code,
            member=member,
            kind=(
                RedemptionCode.Kind.PROMOTION
                if x.code is None
                else RedemptionCode.Kind.GIFT_CARD
                if x.is_gift_card
                else RedemptionCode.Kind.CODE
            ),
            discount=x.discount,
            order_amount=evaluation.amount,
            usage_keys=x.usage_keys,
            created_at=now,
        )
        for x in applied
    ]
    insert_with_children(redemption, lines, "redemption")  # one statement on PostgreSQL
    gift_debits: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for x in applied:
        if x.is_gift_card and x.discount > 0:
            gift_debits[x.code.pk] += x.discount
    campaign_d, code_d, usage_d = _deltas(lines, +1, gift_debits)
    if gift_debits:
        codes_by_pk = {c.pk: c for c in codes}
        GiftCardTransaction.objects.bulk_create(
            [
                GiftCardTransaction(
                    tenant=tenant,
                    code_id=pk,
                    redemption=redemption,
                    kind=GiftCardTransaction.Kind.DEBIT,
                    amount=-debit,
                    balance_after=codes_by_pk[pk].balance - debit,
                    created_at=now,
                )
                for pk, debit in gift_debits.items()
            ]
        )
    if evaluation.points_used:
        from rewards.services.ledger import post_spend

        try:
            entry = post_spend(
                account=account,
                points=evaluation.points_used,
                reason=f"Paid order {order_id} with points",
                order_id=order_id,
                idempotency_key=f"redemption:{redemption.pk}",
            )
        except ApplicationError as exc:
            if exc.code != "points_insufficient":
                raise
            evaluation.points_reason = "points_insufficient"
            evaluation.points_used, evaluation.points_value = 0, ZERO
            raise _Refused(evaluation) from None
        redemption.points_entry_id = entry.pk
    body = redemption_document(redemption, lines=lines, evaluation=evaluation)
    redemption.result = body
    _apply_writes(campaign_d=campaign_d, code_d=code_d, usage_d=usage_d, redemption=redemption)
    for pk, (n, discount, order_value) in campaign_d.items():
        campaign = campaigns[pk]
        campaign.redemptions_count += n
        campaign.discount_used += discount
        campaign.order_value_used += order_value
        limit = _exhausted_limit(campaign)
        if limit and campaign.budget_exhausted_at is None:
            _mark_exhausted(campaign, limit, now)
    publish(tenant, "redemption.succeeded", body)
    return redemption


def _record_failure(*, tenant, member, order_id, evaluation: engine.Evaluation) -> None:
    """Count the failure on the campaigns involved, note budgets that ran out, emit `redemption.failed`."""
    now = timezone.now()
    campaign_ids = {line.campaign.pk for line in evaluation.lines if line.campaign is not None and not line.valid}
    exhausted = {
        line.campaign.pk: BUDGET_REASONS.get(line.reason)
        or (
            "redemptions_total"
            if line.reason == "redemptions_total_exceeded" and line.details.get("scope") == "campaign"
            else ""
        )
        for line in evaluation.lines
        if line.campaign is not None and not line.valid
    }
    with transaction.atomic(durable=True):
        if campaign_ids:
            Campaign.objects.filter(pk__in=campaign_ids).update(redemptions_failed=F("redemptions_failed") + 1)
        for line in evaluation.lines:
            limit = exhausted.get(line.campaign.pk) if line.campaign else ""
            if limit:
                _mark_exhausted(line.campaign, limit, now)
                exhausted[line.campaign.pk] = ""
        publish(
            tenant,
            "redemption.failed",
            {
                "order_id": order_id,
                "member": member.external_id if member else None,
                "codes": evaluation.failures(),
                "points": evaluation.as_dict()["points"],
            },
        )


# --- rollback -------------------------------------------------------------------------------------


def redemption_rollback(*, redemption: Redemption, reason: str, user=None) -> Redemption:
    """Undo a redemption: usage counts, budgets, gift card balances and points, exactly once."""
    with transaction.atomic(durable=True):
        locked = Redemption.objects.select_for_update().get(pk=redemption.pk, tenant_id=redemption.tenant_id)
        if locked.status == Redemption.Status.ROLLED_BACK:
            raise Conflict("already_rolled_back", "This redemption was already rolled back.", {"id": locked.pk})
        now = timezone.now()
        lines = list(locked.lines.all())
        tenant = Tenant.objects.get(pk=locked.tenant_id)
        campaigns = campaigns_for_update(tenant=tenant, ids={line.campaign_id for line in lines})
        codes = codes_for_update(tenant=tenant, ids={line.code_id for line in lines if line.code_id})
        gift_debits: dict[int, Decimal] = defaultdict(lambda: ZERO)
        for line in lines:
            if line.kind == RedemptionCode.Kind.GIFT_CARD and line.discount > 0:
                gift_debits[line.code_id] += line.discount
        campaign_d, code_d, usage_d = _deltas(lines, -1, gift_debits)
        _apply_campaign_deltas(campaign_d)
        _apply_code_deltas(code_d)
        _apply_usage_deltas(usage_d)
        if gift_debits:
            GiftCardTransaction.objects.bulk_create(
                [
                    GiftCardTransaction(
                        tenant_id=locked.tenant_id,
                        code_id=pk,
                        redemption=locked,
                        kind=GiftCardTransaction.Kind.ROLLBACK,
                        amount=credit,
                        balance_after=codes[pk].balance + credit,
                        created_at=now,
                    )
                    for pk, credit in gift_debits.items()
                ]
            )
        reversal_id = None
        if locked.points_entry_id:
            from rewards.models import LedgerEntry
            from rewards.services.ledger import post_spend_reversal

            entry = LedgerEntry.objects.get(pk=locked.points_entry_id)
            reversal_id = post_spend_reversal(entry=entry, reason=f"Rollback of redemption {locked.pk}").pk
        try:
            with transaction.atomic():
                RedemptionRollback.objects.create(
                    tenant_id=locked.tenant_id,
                    redemption=locked,
                    reason=(reason or "")[:300],
                    user=user,
                    points_entry_id=reversal_id,
                    created_at=now,
                )
        except IntegrityError as exc:
            raise Conflict("already_rolled_back", "This redemption was already rolled back.") from exc
        RedemptionCode.objects.filter(redemption=locked).update(rolled_back=True)
        locked.status = Redemption.Status.ROLLED_BACK
        locked.save(update_fields=["status"])
        if campaigns:
            Campaign.objects.filter(pk__in=list(campaigns), budget_exhausted_at__isnull=False).update(
                budget_exhausted_at=None
            )
        publish(
            tenant,
            "redemption.rolled_back",
            {
                "id": str(locked.pk),
                "order_id": locked.order_id,
                "reason": reason or "",
                "member": locked.member.external_id if locked.member_id else None,
                "points_restored": locked.points_used,
                "by": getattr(user, "username", None),
            },
        )
    return locked


# --- documents ------------------------------------------------------------------------------------


def redemption_document(redemption: Redemption, *, lines=None, evaluation: engine.Evaluation | None = None) -> dict:
    """The contract's redemption body (`POST /api/v1/redemptions` 201)."""
    if lines is None:
        lines = list(redemption.lines.select_related("code", "campaign"))
    member = redemption.member
    return {
        "id": str(redemption.pk),
        "order_id": redemption.order_id,
        "member": member.external_id if member else None,
        "status": str(redemption.status),
        "codes": [
            {
                "code": line.code.code if line.code_id else None,
                "campaign": str(line.campaign_id),
                "kind": str(line.kind),
                "discount": money_str(line.discount),
                "redemption_id": str(line.pk),
            }
            for line in lines
        ],
        "order": {
            "amount": money_str(redemption.order_amount),
            "discount": money_str(redemption.discount),
            "gift_cards": money_str(redemption.gift_cards),
            "points_value": money_str(redemption.points_value),
            "total": money_str(redemption.total),
        },
        "points": {"used": redemption.points_used, "value": money_str(redemption.points_value)},
        "created_at": redemption.created_at.isoformat(),
    }
