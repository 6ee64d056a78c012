"""Writes of the loyalty app: program declaration, earning on orders and events, returns, tiers.

Earning posts to the points ledger of `rewards` (`rewards.services.ledger`): the issue places the earning
orchestration here, next to the rules, while the ledger that everything else spends from lives in `rewards`.
That is the one place `loyalty` reaches up to `rewards`; the ledger itself imports only loyalty's models and
pure modules, so there is no import cycle.

Lock order inside an earning: the member's account row (serialises every earning, cap count, return and
tier move of that member in that program), then the order row.

`order_record_paid` is durable; `order_record_paid_in_transaction` is the same inside a caller's transaction
(`rewards.services.checkout.order_checkout` redeems the order's codes first, then records it and earns on the
amount after discounts). The hot path is a fixed number of queries (17 for an order matching two rules, one of
them capped, with no tier move): the account and the default program in one locked read, the tiers and the
member's tier in one read, every earn entry, lot and balance change of the order in one batch
(`rewards.services.ledger.post_earns`), and the window's sum for tier upgrades only when a higher tier is within
reach of the points ever earned.
"""

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from common.errors import ApplicationError, NotFound
from common.events import publish
from common.money import money_str, quantize_money
from common.plain_sql import insert_with_children, instance, instances, select_list, width
from loyalty import earning
from loyalty.expiry import add_months, normalize_policy
from loyalty.models import (
    EarningCapUsage,
    EarningRule,
    MemberTier,
    Order,
    OrderItem,
    OrderReturn,
    Program,
    Tier,
    TierChange,
)
from loyalty.rule_context import build_rule_context, order_context
from loyalty.rules import RuleError, check_rule, rule_matches
from members.models import CustomEvent, Member, Tenant
from rewards.lock_objects import account_lock
from rewards.models import Account, LedgerEntry
from rewards.selectors import entry_dict
from rewards.services import ledger

Kind = LedgerEntry.Kind


# --- shared helpers ---------------------------------------------------------------------------------


def _refuse_if_frozen(tenant: Tenant, account: Account | None = None) -> None:
    """The kill switch, read fresh from the database so that freezing takes effect at once.

    With a locked account the tenant row came with it (`account_locked_for` joins it), so no extra query.
    """
    frozen = account.tenant.frozen if account is not None else Tenant.objects.filter(pk=tenant.pk, frozen=True).exists()
    if frozen:
        raise ApplicationError("tenant_frozen", "This tenant is frozen: earning is suspended.")


def _member_of(tenant: Tenant, member: Member | str) -> Member:
    if isinstance(member, Member):
        if member.tenant_id != tenant.pk:
            raise NotFound("member_not_found", "No such member.", {"member": member.external_id})
        return member
    # Plain SQL: every order and earning looks the member up (see `common.plain_sql`).
    found = instances(
        Member,
        f"FROM {Member._meta.db_table} t WHERE t.tenant_id = %s AND t.external_id = %s ORDER BY t.id LIMIT 1",
        [tenant.pk, member],
    )
    if not found:
        raise NotFound("member_not_found", "No such member.", {"member": member})
    return found[0]


def member_for(tenant: Tenant, member: Member | str) -> Member:
    """The tenant's member (an instance of the tenant, or an external id); 404 `member_not_found` otherwise."""
    return _member_of(tenant, member)


def _order_of(tenant: Tenant, order_id: str) -> Order | None:
    """The tenant's order with this id (plain SQL: every recording checks it)."""
    found = instances(
        Order,
        f"FROM {Order._meta.db_table} t WHERE t.tenant_id = %s AND t.order_id = %s ORDER BY t.id LIMIT 1",
        [tenant.pk, order_id],
    )
    return found[0] if found else None


def order_recorded(tenant: Tenant, order_id: str) -> "OrderResult | None":
    """The first result of an order id already recorded (a replay answer), or None."""
    existing = _order_of(tenant, order_id)
    return _order_result(existing, created=False) if existing else None


def tier_dict(tier: Tier | None) -> dict[str, Any] | None:
    return {"code": tier.code, "name": tier.name} if tier else None


# --- tiers ------------------------------------------------------------------------------------------


def qualifying_points(account: Account, program: Program, now: dt.datetime) -> int:
    """Points earned in the qualification window, net of returns (spend reversals and adjustments excluded)."""
    since = dt.datetime.combine(add_months(now.date(), -program.qualification_window_months), now.time(), now.tzinfo)
    total = LedgerEntry.objects.filter(
        Q(kind=Kind.EARN) | Q(kind=Kind.REVERSE, reverses__isnull=True), account=account, created_at__gte=since
    ).aggregate(s=Sum("points"))["s"]
    return max(0, total or 0)


def _target_tier(tiers: list[Tier], points: int) -> Tier | None:
    reached = [t for t in tiers if t.threshold <= points]
    return max(reached, key=lambda t: (t.threshold, t.rank)) if reached else None


def _tier_key(tier: Tier | None) -> tuple[int, int]:
    return (-1, -1) if tier is None else (tier.threshold, tier.rank)


def _tier_move(
    *, account: Account, status: MemberTier | None, target: Tier | None, points: int, reason: str, now: dt.datetime
) -> MemberTier:
    """Record a tier change (caller holds the account lock) and emit `member.tier_changed`."""
    previous = status.tier if status else None
    if status is None:
        status = MemberTier.objects.create(
            tenant_id=account.tenant_id,
            member_id=account.member_id,
            program_id=account.program_id,
            tier=target,
            qualifying_points=points,
            changed_at=now,
            evaluated_at=now,
        )
    else:
        status.tier, status.qualifying_points, status.changed_at, status.evaluated_at = target, points, now, now
        status.save(update_fields=["tier", "qualifying_points", "changed_at", "evaluated_at"])
    TierChange.objects.create(
        tenant_id=account.tenant_id,
        member_id=account.member_id,
        program_id=account.program_id,
        from_tier=previous,
        to_tier=target,
        qualifying_points=points,
        reason=reason,
        created_at=now,
    )
    publish(
        account.tenant,
        "member.tier_changed",
        {
            "member": account.member.external_id,
            "program": account.program.code,
            "from": tier_dict(previous),
            "to": tier_dict(target),
            "qualifying_points": points,
            "reason": reason,
        },
    )
    return status


def _tier_upgrade(account: Account, status: MemberTier | None, now: dt.datetime) -> Tier | None:
    """Move up at once when a threshold is passed; never down here (that is the scheduled evaluation)."""
    tiers = list(Tier.objects.filter(program_id=account.program_id))
    if not tiers:
        return status.tier if status else None
    points = qualifying_points(account, account.program, now)
    target = _target_tier(tiers, points)
    current = status.tier if status else None
    if target is not None and (status is None or _tier_key(target) > _tier_key(current)):
        return _tier_move(account=account, status=status, target=target, points=points, reason="upgrade", now=now).tier
    return current


def _tier_state(account: Account) -> tuple[list[Tier], Tier | None]:
    """The program's tiers and the member's current one, in one query (read under the account lock).

    Plain SQL (`common.plain_sql`): it runs on every order, and compiling the queryset cost more than running it.
    """
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
    return tiers, next((t for t in tiers if t.held), None)


def _tier_upgrade_after_earning(account: Account, tiers: list[Tier], current: Tier | None, now: dt.datetime):
    """`_tier_upgrade` for the earning hot path: the window's sum is skipped when no higher tier is reachable.

    Qualifying points (earned in the window, net of returns) never exceed `lifetime_earned` (every earn entry
    ever), so a tier whose threshold is above it cannot be reached by this earning.
    """
    reachable = [t for t in tiers if _tier_key(t) > _tier_key(current) and t.threshold <= account.lifetime_earned]
    if not reachable:
        return current
    points = qualifying_points(account, account.program, now)
    target = _target_tier(tiers, points)
    if target is None or _tier_key(target) <= _tier_key(current):
        return current
    status = MemberTier.objects.filter(member_id=account.member_id, program_id=account.program_id).first()
    return _tier_move(account=account, status=status, target=target, points=points, reason="upgrade", now=now).tier


def tier_evaluate(*, member: Member, program: Program | None = None, now: dt.datetime | None = None) -> Tier | None:
    """Re-evaluate one member's tier up or down against the qualification window; records any change."""
    now = now or timezone.now()
    account = ledger.account_for(member=member, program=program)
    with transaction.atomic(durable=True):
        account = account_lock(account.pk)
        return _tier_evaluate_locked(account, now, list(Tier.objects.filter(program_id=account.program_id)))


def _tier_evaluate_locked(account: Account, now: dt.datetime, tiers: list[Tier]) -> Tier | None:
    status = MemberTier.objects.filter(member_id=account.member_id, program_id=account.program_id).first()
    points = qualifying_points(account, account.program, now)
    target = _target_tier(tiers, points)
    current = status.tier if status else None
    if (status is None and target is None) or (status is not None and current == target):
        if status is not None:
            status.qualifying_points, status.evaluated_at = points, now
            status.save(update_fields=["qualifying_points", "evaluated_at"])
        return current
    reason = "upgrade" if _tier_key(target) > _tier_key(current) else "downgrade"
    return _tier_move(account=account, status=status, target=target, points=points, reason=reason, now=now).tier


def tiers_reevaluate(*, program: Program, now: dt.datetime | None = None, chunk: int = 500) -> int:
    """The scheduled evaluation of every account of a program, in chunks of one transaction each."""
    now = now or timezone.now()
    tiers = list(Tier.objects.filter(program=program))
    changed, last_pk = 0, 0
    while True:
        ids = list(
            Account.objects.filter(program=program, pk__gt=last_pk).order_by("pk").values_list("pk", flat=True)[:chunk]
        )
        if not ids:
            return changed
        with transaction.atomic(durable=True):
            for account_id in ids:
                account = account_lock(account_id)
                before = MemberTier.objects.filter(member_id=account.member_id, program=program).first()
                after = _tier_evaluate_locked(account, now, tiers)
                if (before.tier if before else None) != after:
                    changed += 1
        last_pk = ids[-1]


# --- earning ----------------------------------------------------------------------------------------


@dataclass
class EarnOutcome:
    points_earned: int = 0
    points_pending: int = 0
    entries: list[LedgerEntry] = field(default_factory=list)
    tier: Tier | None = None


def _active_rules(program: Program, trigger: str, at: dt.datetime, event: str = "") -> list[EarningRule]:
    """The rules live at `at`, read fresh on every earning (plain SQL: it runs on every order)."""
    when = connection.ops.adapt_datetimefield_value(at)
    sql = (
        f'FROM {EarningRule._meta.db_table} t WHERE t.program_id = %s AND t."trigger" = %s AND t.active = %s'
        " AND (t.starts_at IS NULL OR t.starts_at <= %s) AND (t.ends_at IS NULL OR t.ends_at > %s)"
    )
    params = [program.pk, trigger, True, when, when]
    if trigger == EarningRule.Trigger.EVENT:
        sql += " AND t.event_name = %s"
        params.append(event)
    return instances(EarningRule, sql + " ORDER BY t.priority, t.code", params)


def _cap(rule: EarningRule, member: Member, points: int, local_day: dt.date) -> int:
    """Points of `rule` still allowed in its cap period; counted under the account lock (so caps hold)."""
    if rule.cap_points is None or not rule.cap_period:
        return points
    start = earning.cap_period_start(rule.cap_period, local_day)
    usage, _ = EarningCapUsage.objects.get_or_create(
        rule=rule, member=member, period_start=start, defaults={"tenant_id": rule.tenant_id}
    )
    allowed = earning.cap_allowance(points, rule.cap_points, usage.points)
    if allowed:
        EarningCapUsage.objects.filter(pk=usage.pk).update(points=F("points") + allowed)
    return allowed


def _earn(
    *,
    account: Account,
    member: Member,
    rules: list[EarningRule],
    context: dict[str, Any],
    at: dt.datetime,
    now: dt.datetime,
    tiers: list[Tier],
    tier: Tier | None,
    label: str,
    order_id: str = "",
    amount: Decimal = Decimal("0"),
    paid_amount: Decimal | None = None,
    items: list[dict] | None = None,
) -> EarnOutcome:
    """Apply the matching rules on the LOCKED account: caps, pending holds, then every earning in one batch."""
    outcome = EarnOutcome(tier=tier)
    had_debt = account.debt > 0
    local = at.astimezone(account.tenant.tz)
    lines: list[ledger.EarnLine] = []
    for rule in rules:
        if not rule_matches(rule.rule, context):
            continue
        breakdown = earning.compute_points(
            earning.RuleSpec.from_rule(rule),
            amount=amount,
            items=items or [],
            local_time=local,
            tier_code=tier.code if tier else None,
            tier_mult=tier.multiplier if tier else None,
            paid_amount=paid_amount,
        )
        points = _cap(rule, member, breakdown.points, local.date()) if breakdown.points else 0
        if points <= 0:
            continue
        reason = f"{label}: {rule.name or rule.code}"
        if rule.pending_days:
            ledger.post_pending(
                account=account,
                points=points,
                reason=reason,
                release_at=now + dt.timedelta(days=rule.pending_days),
                order_id=order_id,
                rule_code=rule.code,
                now=now,
            )
            outcome.points_pending += points
        else:
            lines.append(ledger.EarnLine(points=points, reason=reason, order_id=order_id, rule_code=rule.code))
    if lines:
        policy = (
            ledger.expiry_policy_for(account, tier=tier) if tier else normalize_policy(account.program.expiry_policy)
        )
        outcome.entries = ledger.post_earns(account=account, earns=lines, policy=policy, now=now)
        outcome.points_earned = sum(line.points for line in lines)
        if had_debt:  # the debt repayment written after the earn entries belongs to the answer too
            first = outcome.entries[0].pk
            outcome.entries = list(LedgerEntry.objects.filter(account=account, pk__gte=first).order_by("pk"))
        outcome.tier = _tier_upgrade_after_earning(account, tiers, tier, now)
    return outcome


@dataclass
class OrderResult:
    order_id: str
    member: str
    points_earned: int
    points_pending: int
    entries: list[dict]
    tier: dict | None
    created: bool = True
    order: Order | None = None
    redemption: dict | None = None  # the redemption body when the order carried codes (`order_checkout`)

    def as_dict(self) -> dict[str, Any]:
        body = {
            "order_id": self.order_id,
            "member": self.member,
            "points_earned": self.points_earned,
            "points_pending": self.points_pending,
            "entries": self.entries,
            "tier": self.tier,
        }
        if self.redemption is not None:
            body["redemption"] = self.redemption
        return body


def _order_result(order: Order, created: bool) -> OrderResult:
    data = order.result or {}
    return OrderResult(
        order_id=order.order_id,
        member=data.get("member", ""),
        points_earned=data.get("points_earned", 0),
        points_pending=data.get("points_pending", 0),
        entries=data.get("entries", []),
        tier=data.get("tier"),
        created=created,
        order=order,
        redemption=data.get("redemption"),
    )


def _decimal(value: Any, name: str, errors: dict[str, str], *, minimum: Decimal = Decimal("0")) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        errors[name] = "must be a decimal number"
        return Decimal("0")
    if not number.is_finite() or number < minimum:
        errors[name] = f"must be >= {minimum}"
        return Decimal("0")
    return number


def _clean_items(items: Any, errors: dict[str, str]) -> list[dict]:
    if items in (None, ""):
        return []
    if not isinstance(items, list):
        errors["items"] = "must be a list"
        return []
    out = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            errors[f"items[{n}]"] = "must be an object"
            continue
        quantity = item.get("quantity", 1)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            errors[f"items[{n}].quantity"] = "must be a whole number >= 1"
            continue
        price = _decimal(item.get("unit_price", "0"), f"items[{n}].unit_price", errors)
        out.append(
            {
                "sku": str(item.get("sku", ""))[:100],
                "category": str(item.get("category", ""))[:100],
                "quantity": quantity,
                "unit_price": quantize_money(price),
            }
        )
    return out


def _parse_time(value: Any, name: str, errors: dict[str, str], default: dt.datetime) -> dt.datetime:
    if value in (None, ""):
        return default
    if isinstance(value, str):
        value = parse_datetime(value)
    if not isinstance(value, dt.datetime) or timezone.is_naive(value):
        errors[name] = "must be an ISO 8601 time with an offset"
        return default
    return value


@dataclass(frozen=True)
class PaidOrder:
    """A paid order's input, checked (`order_clean`)."""

    order_id: str
    amount: Decimal
    currency: str
    items: list[dict]
    location: str
    channel: str
    occurred_at: dt.datetime


def order_clean(
    *,
    tenant: Tenant,
    order_id: str,
    amount: Decimal | str,
    currency: str,
    items: list[dict] | None = None,
    location: str = "",
    occurred_at: dt.datetime | str | None = None,
    channel: str = "",
    now: dt.datetime | None = None,
) -> PaidOrder:
    """Check a paid order's input without touching the database: 400 `invalid_order` with the field errors."""
    now = now or timezone.now()
    errors: dict[str, str] = {}
    if not order_id or not isinstance(order_id, str) or len(order_id) > 100:
        errors["order_id"] = "required, at most 100 characters"
    amount = quantize_money(_decimal(amount, "amount", errors))
    if currency != tenant.currency:
        errors["currency"] = f"must be the tenant's currency {tenant.currency}"
    clean_items = _clean_items(items, errors)
    occurred = _parse_time(occurred_at, "occurred_at", errors, now)
    if errors:
        raise ApplicationError("invalid_order", "The order is not valid.", errors, status=400)
    return PaidOrder(order_id, amount, currency, clean_items, location or "", channel or "", occurred)


def order_record_paid(
    *,
    tenant: Tenant,
    member: Member | str,
    order_id: str,
    amount: Decimal | str,
    currency: str,
    items: list[dict] | None = None,
    location: str = "",
    occurred_at: dt.datetime | str | None = None,
    channel: str = "",
) -> OrderResult:
    """Record a paid order and apply the earning rules, once per order id (a retry returns the first result).

    Its own durable transaction; `order_record_paid_in_transaction` is the same inside a caller's transaction
    (the checkout, which redeems codes first).
    """
    now = timezone.now()
    order = order_clean(
        tenant=tenant,
        order_id=order_id,
        amount=amount,
        currency=currency,
        items=items,
        location=location,
        occurred_at=occurred_at,
        channel=channel,
        now=now,
    )
    member = _member_of(tenant, member)
    try:
        with transaction.atomic(durable=True):
            return _order_record_locked(tenant=tenant, member=member, order=order, now=now)
    except IntegrityError:
        existing = Order.objects.for_tenant(tenant).filter(order_id=order.order_id).first()
        if existing is None:
            raise
        return _order_result(existing, created=False)


def order_record_paid_in_transaction(
    *,
    tenant: Tenant,
    member: Member | str,
    order: PaidOrder,
    paid_amount: Decimal | None = None,
    result_extra: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> OrderResult:
    """`order_record_paid` inside the caller's `transaction.atomic()` (no transaction of its own).

    `paid_amount` is what was paid after discounts: the earning rules see it as `order.amount` and pay points on
    it (see `loyalty.earning`); the order itself is recorded with its full `amount` and items, so that returns
    take back points pro rata of the list prices. `result_extra` is stored with the result (a replay returns it).
    An order id already recorded returns the first result with `created=False` and writes nothing; a concurrent
    first recording of the same id surfaces as IntegrityError when the caller's transaction writes the order.
    """
    if not transaction.get_connection().in_atomic_block:
        raise transaction.TransactionManagementError("order_record_paid_in_transaction() needs a transaction.")
    return _order_record_locked(
        tenant=tenant,
        member=_member_of(tenant, member),
        order=order,
        now=now or timezone.now(),
        paid_amount=paid_amount,
        result_extra=result_extra,
    )


def _order_record_locked(
    *,
    tenant: Tenant,
    member: Member,
    order: PaidOrder,
    now: dt.datetime,
    paid_amount: Decimal | None = None,
    result_extra: dict[str, Any] | None = None,
) -> OrderResult:
    account = ledger.default_account_locked(member=member)
    program = account.program if account is not None else None
    # Checked under the account lock: a concurrent retry of this order has committed or not started.
    existing = _order_of(tenant, order.order_id)
    if existing:
        return _order_result(existing, created=False)
    _refuse_if_frozen(tenant, account)
    outcome = EarnOutcome()
    if paid_amount is not None:
        paid_amount = min(quantize_money(max(paid_amount, Decimal("0"))), order.amount)
    if account is not None:
        tiers, tier = _tier_state(account)
        rules = _active_rules(program, EarningRule.Trigger.ORDER_PAID, order.occurred_at)
        context = build_rule_context(
            member=member,
            tier=tier,
            now=now,
            points_balance=account.balance,
            order=order_context(
                order_id=order.order_id,
                amount=order.amount if paid_amount is None else paid_amount,
                currency=order.currency,
                location=order.location,
                channel=order.channel,
                items=order.items,
            ),
            rules_text=" ".join(r.rule for r in rules),
        )
        outcome = _earn(
            account=account,
            member=member,
            rules=rules,
            context=context,
            at=order.occurred_at,
            now=now,
            tiers=tiers,
            tier=tier,
            label=f"order {order.order_id}",
            order_id=order.order_id,
            amount=order.amount,
            paid_amount=paid_amount,
            items=order.items,
        )
    row = Order(
        tenant=tenant,
        member=member,
        program=program,
        order_id=order.order_id,
        amount=order.amount,
        currency=order.currency,
        location=order.location[:100],
        channel=order.channel[:50],
        occurred_at=order.occurred_at,
        created_at=now,
        points_total=outcome.points_earned + outcome.points_pending,
        result={
            "order_id": order.order_id,
            "member": member.external_id,
            "points_earned": outcome.points_earned,
            "points_pending": outcome.points_pending,
            "entries": [entry_dict(e) for e in outcome.entries],
            "tier": tier_dict(outcome.tier),
            **(result_extra or {}),
        },
    )
    insert_with_children(row, [OrderItem(**item) for item in order.items], "order")  # one statement on PostgreSQL
    return _order_result(row, created=True)


@dataclass
class ReturnResult:
    order_id: str
    return_id: str
    amount: str
    points_reversed: int
    points_cancelled: int
    debt_points: int
    entries: list[dict]
    created: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "return_id": self.return_id,
            "amount": self.amount,
            "points_reversed": self.points_reversed,
            "points_cancelled": self.points_cancelled,
            "debt_points": self.debt_points,
            "entries": self.entries,
        }


def _return_result(row: OrderReturn, order_id: str, created: bool) -> ReturnResult:
    return ReturnResult(
        order_id=order_id,
        return_id=row.return_id,
        amount=money_str(row.amount),
        points_reversed=row.points_reversed,
        points_cancelled=row.points_cancelled,
        debt_points=row.debt_points,
        entries=row.result.get("entries", []),
        created=created,
    )


def order_return(
    *,
    tenant: Tenant,
    order_id: str,
    amount: Decimal | str | None = None,
    items: list[dict] | None = None,
    return_id: str | None = None,
) -> ReturnResult:
    """Reverse the points earned on the returned part of an order, proportionally to the money returned.

        The points to take back are computed cumulatively (all returns so far x points granted, half-up) so that
        several partial returns never drift from one full return. Pending points are cancelled first; points
        already spent become a debt paid by the next earnings, while points of the order that already expired are
    not charged again (see `rewards.services.ledger`). Idempotent per
        `return_id`. Returns do not give cap allowance back, and tiers move down only at the scheduled evaluation.
    """
    errors: dict[str, str] = {}
    if (amount is None) == (not items):
        errors["amount"] = "give either an amount or items"
    if amount is not None:
        amount = quantize_money(_decimal(amount, "amount", errors, minimum=Decimal("0.01")))
    if return_id is not None and (not isinstance(return_id, str) or not 0 < len(return_id) <= 100):
        errors["return_id"] = "at most 100 characters"
    if errors:
        raise ApplicationError("invalid_return", "The return is not valid.", errors, status=400)
    order = Order.objects.for_tenant(tenant).filter(order_id=order_id).first()
    if order is None:
        raise NotFound("order_not_found", "No such order.", {"order_id": order_id})
    account = None
    if order.program_id:
        account = Account.objects.filter(member_id=order.member_id, program_id=order.program_id).first()
    with transaction.atomic(durable=True):
        if account is not None:
            account = account_lock(account.pk)
        order = Order.objects.select_for_update().get(pk=order.pk)
        if return_id:
            previous = OrderReturn.objects.filter(order=order, return_id=return_id).first()
            if previous:
                return _return_result(previous, order_id, created=False)
        returned_items = []
        if items:
            by_sku = {i.sku: i for i in order.items.select_for_update()}
            total = Decimal("0")
            for n, item in enumerate(items):
                line = by_sku.get(item.get("sku")) if isinstance(item, dict) else None
                quantity = item.get("quantity", 1) if isinstance(item, dict) else None
                if line is None:
                    errors[f"items[{n}].sku"] = "not an item of this order"
                elif isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
                    errors[f"items[{n}].quantity"] = "must be a whole number >= 1"
                elif line.returned_quantity + quantity > line.quantity:
                    errors[f"items[{n}].quantity"] = f"at most {line.quantity - line.returned_quantity} left"
                else:
                    line.returned_quantity += quantity
                    total += line.unit_price * quantity
                    returned_items.append({"sku": line.sku, "quantity": quantity})
            if errors:
                raise ApplicationError("invalid_return", "The return is not valid.", errors, status=400)
            OrderItem.objects.bulk_update(by_sku.values(), ["returned_quantity"])
            amount = quantize_money(total)
        if order.returned_amount + amount > order.amount:
            raise ApplicationError(
                "return_exceeds_order",
                "More would be returned than was paid.",
                {"amount": money_str(amount), "returnable": money_str(order.amount - order.returned_amount)},
            )
        returned = order.returned_amount + amount
        target = earning.proportional_points(order.points_total, returned, order.amount)
        take = max(0, target - order.points_taken_back)
        taken = ledger.TakeBack()
        if take and account is not None:
            forgiven_before = order.returns.aggregate(s=Sum("points_forgiven"))["s"] or 0
            taken = ledger.post_take_back(
                account=account,
                order_id=order.order_id,
                points=take,
                reason=f"return of order {order.order_id}",
                forgiven_before=forgiven_before,
            )
        order.returned_amount = returned
        order.points_taken_back += take
        order.save(update_fields=["returned_amount", "points_taken_back"])
        row = OrderReturn.objects.create(
            tenant=tenant,
            order=order,
            return_id=return_id or "",
            amount=amount,
            items=returned_items,
            points_cancelled=taken.cancelled,
            points_reversed=taken.reversed,
            debt_points=taken.debt,
            points_forgiven=taken.forgiven,
            result={"entries": [entry_dict(taken.entry)] if taken.entry else []},
        )
        return _return_result(row, order_id, created=True)


@dataclass
class EventResult:
    event: CustomEvent
    points_earned: int
    points_pending: int
    entries: list[dict]
    tier: dict | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event.name,
            "points_earned": self.points_earned,
            "points_pending": self.points_pending,
            "entries": self.entries,
        }


def custom_event_record(
    *,
    tenant: Tenant,
    member: Member | str,
    event: str,
    metadata: dict | None = None,
    occurred_at: dt.datetime | str | None = None,
) -> EventResult:
    """Store a custom event and apply the event's earning rules (caps hold under concurrent calls)."""
    now = timezone.now()
    errors: dict[str, str] = {}
    if not event or not isinstance(event, str) or len(event) > 100:
        errors["event"] = "required, at most 100 characters"
    if metadata is not None and not isinstance(metadata, dict):
        errors["metadata"] = "must be an object"
    occurred = _parse_time(occurred_at, "occurred_at", errors, now)
    if errors:
        raise ApplicationError("invalid_event", "The event is not valid.", errors, status=400)
    member = _member_of(tenant, member)
    with transaction.atomic(durable=True):
        account = ledger.default_account_locked(member=member)
        program = account.program if account is not None else None
        _refuse_if_frozen(tenant, account)
        row = CustomEvent.objects.create(
            tenant=tenant, member=member, name=event, metadata=metadata or {}, occurred_at=occurred
        )
        if account is None:
            return EventResult(event=row, points_earned=0, points_pending=0, entries=[], tier=None)
        tiers, tier = _tier_state(account)
        rules = _active_rules(program, EarningRule.Trigger.EVENT, occurred, event)
        context = build_rule_context(
            member=member,
            tier=tier,
            now=now,
            points_balance=account.balance,
            event={"name": event, "metadata": metadata or {}, "occurred_at": occurred},
            rules_text=" ".join(r.rule for r in rules),
        )
        outcome = _earn(
            account=account,
            member=member,
            rules=rules,
            context=context,
            at=occurred,
            now=now,
            tiers=tiers,
            tier=tier,
            label=f"event {event}",
        )
        return EventResult(
            event=row,
            points_earned=outcome.points_earned,
            points_pending=outcome.points_pending,
            entries=[entry_dict(e) for e in outcome.entries],
            tier=tier_dict(outcome.tier),
        )


# --- program declaration ----------------------------------------------------------------------------


def _code(value: Any, name: str, errors: dict[str, str]) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[-a-zA-Z0-9_]{1,50}", value):
        errors[name] = "required: letters, digits, - and _ (at most 50)"
        return ""
    return value


def _int(value: Any, name: str, errors: dict[str, str], default: int | None = 0) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        errors[name] = "must be a whole number >= 0"
        return default
    return value


def _time(value: Any, name: str, errors: dict[str, str]) -> dt.datetime | None:
    if value in (None, ""):
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None or timezone.is_naive(parsed):
        errors[name] = "must be an ISO 8601 time with an offset"
        return None
    return parsed


def _validate_document(tenant: Tenant, code: str, doc: Any) -> dict[str, Any]:
    errors: dict[str, str] = {}
    if not isinstance(doc, dict):
        raise ApplicationError("invalid_program", "The program document must be an object.", status=400)
    _code(code, "code", errors)
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        errors["name"] = "required, at most 200 characters"
    currency = doc.get("currency", tenant.currency)
    if currency != tenant.currency:
        errors["currency"] = f"must be the tenant's currency {tenant.currency}"
    points_name = doc.get("points_name", "points")
    if not isinstance(points_name, str) or not points_name or len(points_name) > 50:
        errors["points_name"] = "at most 50 characters"
    try:
        expiry = normalize_policy(doc.get("expiry"), field="expiry")
    except ApplicationError as exc:
        errors.update(exc.details)
        expiry = {}
    value = doc.get("points_value") or {"points": 100, "amount": "1.00"}
    value_points = _int(value.get("points") if isinstance(value, dict) else None, "points_value.points", errors, 100)
    value_amount = _decimal(
        value.get("amount", "1.00") if isinstance(value, dict) else "x", "points_value.amount", errors
    )
    if not value_points:
        errors["points_value.points"] = "must be >= 1"
    clean = {
        "name": (name or "").strip(),
        "currency": currency,
        "points_name": points_name,
        "expiry_policy": expiry,
        "points_value_points": value_points,
        "points_value_amount": quantize_money(value_amount),
        "qualification_window_months": _int(
            doc.get("qualification_window_months"), "qualification_window_months", errors, 12
        )
        or 12,
        "expiry_warning_days": _int(doc.get("expiry_warning_days"), "expiry_warning_days", errors, 14),
        "active": bool(doc.get("active", True)),
    }
    tiers, seen = [], set()
    raw_tiers = doc.get("tiers", [])
    if not isinstance(raw_tiers, list):
        errors["tiers"] = "must be a list"
        raw_tiers = []
    for n, raw in enumerate(raw_tiers):
        prefix = f"tiers[{n}]"
        if not isinstance(raw, dict):
            errors[prefix] = "must be an object"
            continue
        tier_code = _code(raw.get("code"), f"{prefix}.code", errors)
        if tier_code in seen:
            errors[f"{prefix}.code"] = "duplicate tier code"
        seen.add(tier_code)
        tier_expiry = None
        if raw.get("expiry") is not None:
            try:
                tier_expiry = normalize_policy(raw["expiry"], field=f"{prefix}.expiry")
            except ApplicationError as exc:
                errors.update(exc.details)
        multiplier = _decimal(raw.get("multiplier", "1"), f"{prefix}.multiplier", errors)
        tiers.append(
            {
                "code": tier_code,
                "name": str(raw.get("name") or tier_code)[:100],
                "threshold": _int(raw.get("threshold", 0), f"{prefix}.threshold", errors),
                "multiplier": multiplier,
                "expiry_policy": tier_expiry,
                "benefits": str(raw.get("benefits", "")),
            }
        )
    thresholds = [t["threshold"] for t in tiers]
    if len(set(thresholds)) != len(thresholds):
        errors["tiers"] = "thresholds must differ"
    tiers.sort(key=lambda t: t["threshold"])
    for rank, tier in enumerate(tiers):
        tier["rank"] = rank
    rules, seen = [], set()
    raw_rules = doc.get("earning_rules", [])
    if not isinstance(raw_rules, list):
        errors["earning_rules"] = "must be a list"
        raw_rules = []
    for n, raw in enumerate(raw_rules):
        prefix = f"earning_rules[{n}]"
        if not isinstance(raw, dict):
            errors[prefix] = "must be an object"
            continue
        rule_code = _code(raw.get("code"), f"{prefix}.code", errors)
        if rule_code in seen:
            errors[f"{prefix}.code"] = "duplicate rule code"
        seen.add(rule_code)
        trigger = raw.get("trigger", "order_paid")
        if trigger not in EarningRule.Trigger.values:
            errors[f"{prefix}.trigger"] = "must be order_paid or event"
        event_name = raw.get("event", "") or ""
        if trigger == "event" and (not isinstance(event_name, str) or not event_name):
            errors[f"{prefix}.event"] = "an event rule names its event"
        rule_text = raw.get("rule", "") or ""
        try:
            check_rule(rule_text)
        except RuleError as exc:
            errors[f"{prefix}.rule"] = exc.message
        rounding = raw.get("rounding", "down")
        if rounding not in earning.ROUNDINGS:
            errors[f"{prefix}.rounding"] = "must be down, half_up or up"
        unit_amount = _decimal(raw.get("unit_amount", "1.00"), f"{prefix}.unit_amount", errors, minimum=Decimal("0.01"))
        cap = raw.get("cap")
        cap_points, cap_period = None, ""
        if cap is not None:
            if not isinstance(cap, dict) or cap.get("per") not in earning.CAP_PERIODS:
                errors[f"{prefix}.cap"] = f"needs points and per ({', '.join(earning.CAP_PERIODS)})"
            else:
                cap_points = _int(cap.get("points"), f"{prefix}.cap.points", errors, None)
                cap_period = cap["per"]
                if cap_points is None:
                    errors[f"{prefix}.cap.points"] = "required"
        categories = raw.get("categories", [])
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            errors[f"{prefix}.categories"] = "must be a list of category names"
            categories = []
        tier_multipliers = raw.get("tier_multipliers", {})
        apply_tier = True
        if isinstance(tier_multipliers, bool):
            apply_tier, tier_multipliers = tier_multipliers, {}
        elif not isinstance(tier_multipliers, dict):
            errors[f"{prefix}.tier_multipliers"] = "must be true/false or an object of tier code to multiplier"
            tier_multipliers = {}
        else:
            for key, val in tier_multipliers.items():
                if key not in seen_tiers(tiers):
                    errors[f"{prefix}.tier_multipliers.{key}"] = "unknown tier"
                _decimal(val, f"{prefix}.tier_multipliers.{key}", errors)
        rules.append(
            {
                "code": rule_code,
                "name": str(raw.get("name", ""))[:200],
                "trigger": trigger,
                "event_name": event_name if trigger == "event" else "",
                "points": _int(raw.get("points", 0), f"{prefix}.points", errors),
                "points_per_unit": _decimal(raw.get("points_per_unit", "0"), f"{prefix}.points_per_unit", errors),
                "unit_amount": unit_amount,
                "rounding": rounding,
                "categories": categories,
                "rule": rule_text,
                "apply_tier_multiplier": apply_tier,
                "tier_multipliers": {k: str(v) for k, v in tier_multipliers.items()},
                "happy_hours": earning.validate_happy_hours(raw.get("happy_hours"), f"{prefix}.happy_hours", errors),
                "cap_points": cap_points,
                "cap_period": cap_period,
                "pending_days": _int(raw.get("pending_days", 0), f"{prefix}.pending_days", errors),
                "starts_at": _time(raw.get("starts_at"), f"{prefix}.starts_at", errors),
                "ends_at": _time(raw.get("ends_at"), f"{prefix}.ends_at", errors),
                "priority": n,
                "active": bool(raw.get("active", True)),
            }
        )
    if errors:
        raise ApplicationError("invalid_program", "The program document is not valid.", errors, status=400)
    return {"program": clean, "tiers": tiers, "rules": rules}


def seen_tiers(tiers: list[dict]) -> set[str]:
    return {t["code"] for t in tiers}


def program_declare(*, tenant: Tenant, code: str, document: dict) -> Program:
    """Create or replace a whole program from its document (`PUT /api/v1/programs/{code}`).

    Tiers and rules are matched by code: updated in place, created, or deleted when the document no longer
    names them (members of a deleted tier are left without a tier until the next evaluation).
    """
    clean = _validate_document(tenant, code, document)
    with transaction.atomic(durable=True):
        program = Program.objects.select_for_update().filter(tenant=tenant, code=code).first()
        if program is None:
            program = Program(tenant=tenant, code=code)
        for key, value in clean["program"].items():
            setattr(program, key, value)
        program._change_reason = "declared"
        program.save()
        existing_tiers = {t.code: t for t in Tier.objects.filter(program=program)}
        for data in clean["tiers"]:
            tier = existing_tiers.pop(data["code"], None) or Tier(tenant=tenant, program=program)
            for key, value in data.items():
                setattr(tier, key, value)
            tier._change_reason = "declared"
            tier.save()
        for tier in existing_tiers.values():
            tier.delete()
        existing_rules = {r.code: r for r in EarningRule.objects.filter(program=program)}
        for data in clean["rules"]:
            rule = existing_rules.pop(data["code"], None) or EarningRule(tenant=tenant, program=program)
            for key, value in data.items():
                setattr(rule, key, value)
            rule._change_reason = "declared"
            rule.save()
        for rule in existing_rules.values():
            rule.delete()
    return program
