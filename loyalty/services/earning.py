"""Earning on paid orders and custom events: the matching rules, caps, pending holds, one batch of entries.

Lock order inside an earning: the member's account row (serialises every earning, cap count, return and
tier move of that member in that program), then the order row. The hot path is a fixed number of queries:
the account and the default program in one locked read, the tiers and the member's tier in one read, every
earn entry, lot and balance change of the order in one batch (`loyalty.ledger.post_earns`), and the window's
sum for tier upgrades only when a higher tier is within reach of the points ever earned.
"""

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from common.answer import Answer
from common.errors import ApplicationError
from common.events import publish
from common.money import quantize_money
from common.plain_sql import insert_with_children
from common.validation import MAX_INT, FieldErrors, decimal_maximum, path
from loyalty import earning, ledger
from loyalty import sql as loyalty_sql
from loyalty.expiry import stored_policy
from loyalty.ledger.selectors import entry_dict
from loyalty.models import (
    Account,
    EarningCapUsage,
    EarningRule,
    LedgerEntry,
    Order,
    OrderItem,
    Program,
    Tier,
)
from loyalty.rule_context import Standing, build_rule_context, order_context
from loyalty.services.tiers import tier_dict, tier_state, tier_upgrade_after_earning
from members.models import CustomEvent, Member, Tenant
from members.selectors import member_for

Kind = LedgerEntry.Kind
SUSPENDED = "member_suspended"  # the answer's reason when a suspended member's order or event earns nothing


def _refuse_if_frozen(tenant: Tenant, account: Account | None = None) -> None:
    """The kill switch, read fresh from the database so that freezing takes effect at once.

    With a locked account the tenant row came with it (`account_locked_for` joins it), so no extra query.
    """
    frozen = account.tenant.frozen if account is not None else Tenant.objects.filter(pk=tenant.pk, frozen=True).exists()
    if frozen:
        raise ApplicationError("tenant_frozen", "This tenant is frozen: earning is suspended.")


def _order_of(tenant: Tenant, order_id: str) -> Order | None:
    """The tenant's order with this id (plain SQL: every recording checks it)."""
    return loyalty_sql.order_of(tenant.pk, order_id)


def order_recorded(tenant: Tenant, order_id: str) -> "OrderResult | None":
    """The first result of an order id already recorded (a replay answer), or None."""
    existing = _order_of(tenant, order_id)
    return _order_result(existing, created=False) if existing else None


@dataclass
class EarnOutcome:
    points_earned: int = 0
    points_pending: int = 0
    entries: list[LedgerEntry] = field(default_factory=list)
    tier: Tier | None = None


def _active_rules(program: Program, trigger: str, at: dt.datetime, event: str = "") -> list[EarningRule]:
    """The rules live at `at`, read fresh on every earning (plain SQL: it runs on every order)."""
    return loyalty_sql.active_earning_rules(program.pk, trigger, at, event)


class _StoredCaps:
    """Cap use in `EarningCapUsage` rows, counted under the account lock (so caps hold under concurrent calls)."""

    def __init__(self, member: Member):
        self.member = member

    def take(self, rule: EarningRule, points: int, local_day: dt.date) -> int:
        if rule.cap_points is None or not rule.cap_period:
            return points
        start = earning.cap_period_start(rule.cap_period, local_day)
        usage, _ = EarningCapUsage.objects.get_or_create(
            rule=rule, member=self.member, period_start=start, defaults={"tenant_id": rule.tenant_id}
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
    """Apply the matching rules on the LOCKED account: caps, pending holds, then every earning in one batch.

    Which rules give how many points is `loyalty.earning.rule_awards` (the calculator's too); this adds the writes.
    """
    outcome = EarnOutcome(tier=tier)
    had_debt = account.debt > 0
    local = at.astimezone(account.tenant.tz)
    lines: list[ledger.EarnLine] = []
    awards = earning.rule_awards(
        rules,
        context,
        local_time=local,
        caps=_StoredCaps(member),
        tier_code=tier.code if tier else None,
        tier_mult=tier.multiplier if tier else None,
        amount=amount,
        items=items,
        paid_amount=paid_amount,
    )
    for award in awards:
        rule, points = award.rule, award.points
        reason = f"{label}: {rule.name or rule.code}"
        if rule.pending_days:
            ledger.post_pending(
                account=account,
                points=points,
                reason=reason,
                release_at=now + dt.timedelta(days=min(rule.pending_days, earning.MAX_PENDING_DAYS)),
                order_id=order_id,
                rule_code=rule.code,
                now=now,
            )
            outcome.points_pending += points
        else:
            lines.append(ledger.EarnLine(points=points, reason=reason, order_id=order_id, rule_code=rule.code))
    total = outcome.points_pending + sum(line.points for line in lines)
    if max(account.balance + account.pending, account.lifetime_earned) + total > MAX_INT:
        raise earning.points_out_of_range(total)
    if lines:
        policy = ledger.expiry_policy_for(account, tier=tier) if tier else stored_policy(account.program.expiry_policy)
        outcome.entries = ledger.post_earns(account=account, earns=lines, policy=policy, now=now)
        outcome.points_earned = sum(line.points for line in lines)
        if had_debt:  # the debt repayment written after the earn entries belongs to the answer too
            first = outcome.entries[0].pk
            outcome.entries = list(LedgerEntry.objects.filter(account=account, pk__gte=first).order_by("pk"))
        outcome.tier = tier_upgrade_after_earning(account, tiers, tier, now)
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
    reason: str = ""  # why nothing was earned: "member_suspended"

    def as_dict(self) -> dict[str, Any]:
        """The contract's body (`OrderOutputSerializer` documents it; the API answers this as it is)."""
        body = {
            "order_id": self.order_id,
            "member": self.member,
            "points_earned": self.points_earned,
            "points_pending": self.points_pending,
            "entries": [_entry_answer(entry) for entry in self.entries],
            "tier": self.tier,
        }
        if self.reason:
            body["reason"] = self.reason
        if self.redemption is not None:
            body["redemption"] = self.redemption
        return body


def _entry_answer(entry: dict[str, Any]) -> dict[str, Any]:
    """A stored entry as the contract has it: the campaign's id is a string (`entry_dict` keeps the number)."""
    campaign = entry.get("campaign")
    return entry if campaign is None or isinstance(campaign, str) else {**entry, "campaign": str(campaign)}


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
        reason=data.get("reason", ""),
    )


MAX_AMOUNT = decimal_maximum(Order._meta.get_field("amount"))
MAX_UNIT_PRICE = decimal_maximum(OrderItem._meta.get_field("unit_price"))


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
    errors = FieldErrors()
    errors.text(order_id, "order_id", max_length=100, required=True)
    amount = errors.decimal(amount, "amount", maximum=MAX_AMOUNT, required=True, default=Decimal("0"))
    errors.check(currency == tenant.currency, "currency", f"must be the tenant's currency {tenant.currency}")
    clean_items = []
    for n, item in enumerate(errors.array(items, "items", default=[])):
        at = path("items", n)
        if errors.mapping(item, at, required=True) is None:
            continue
        quantity = errors.whole(item.get("quantity", 1), path(at, "quantity"), minimum=1, required=True)
        price = errors.decimal(
            item.get("unit_price", "0"), path(at, "unit_price"), maximum=MAX_UNIT_PRICE, required=True
        )
        if quantity is not None and price is not None:
            clean_items.append(
                {
                    "sku": str(item.get("sku", ""))[:100],
                    "category": str(item.get("category", ""))[:100],
                    "quantity": quantity,
                    "unit_price": quantize_money(price),
                }
            )
    occurred = errors.time(occurred_at, "occurred_at", default=now)
    errors.raise_if_any("invalid_order", "The order is not valid.")
    return PaidOrder(order_id, quantize_money(amount), currency, clean_items, location or "", channel or "", occurred)


def order_record_paid_in_transaction(
    *,
    tenant: Tenant,
    member: Member | str,
    order: PaidOrder,
    paid_amount: Decimal | None = None,
    result_extra: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> OrderResult:
    """Record a paid order and apply the earning rules, inside the caller's `transaction.atomic()`.

    The earning step of `rewards.services.checkout.order_checkout`, the one public service that records a paid
    order (it redeems the order's codes first and rewards a referrer after): no transaction of its own, so no
    durable entry point of its own either (loyalty does not import rewards, so the composition lives there).

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
        member=member_for(tenant, member),
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
    if account is not None and not member.is_suspended:
        tiers, tier = tier_state(account)
        rules = _active_rules(program, EarningRule.Trigger.ORDER_PAID, order.occurred_at)
        context = build_rule_context(
            member=member,
            tz=tenant.tz,
            now=now,
            rules=[r.rule for r in rules],
            standing=Standing.of(tier, account.balance),
            order=order_context(
                order_id=order.order_id,
                amount=order.amount if paid_amount is None else paid_amount,
                currency=order.currency,
                location=order.location,
                channel=order.channel,
                items=order.items,
            ),
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
            **({"reason": SUSPENDED} if member.is_suspended else {}),
            **(result_extra or {}),
        },
    )
    insert_with_children(row, [OrderItem(**item) for item in order.items], "order")  # one statement on PostgreSQL
    # In-process only (no outbox row): campaign triggers on paid orders listen to it.
    publish(tenant, "order.paid", {"member_id": member.pk, "order_id": order.order_id, "amount": str(order.amount)})
    return _order_result(row, created=True)


@dataclass
class EventResult:
    event: CustomEvent
    points_earned: int
    points_pending: int
    entries: list[dict]
    tier: dict | None
    reason: str = ""  # why nothing was earned: "member_suspended"

    def as_dict(self) -> dict[str, Any]:
        body = {
            "event": self.event.name,
            "points_earned": self.points_earned,
            "points_pending": self.points_pending,
            "entries": self.entries,
        }
        if self.reason:
            body["reason"] = self.reason
        return body


def custom_event_record(
    *,
    tenant: Tenant,
    member: Member | str,
    event: str,
    metadata: dict | None = None,
    occurred_at: dt.datetime | str | None = None,
    answer: Answer | None = None,
) -> EventResult:
    """Store a custom event and apply the event's earning rules (caps hold under concurrent calls).

    `answer(result)`, when given, is called inside the transaction just before its commit (the API stores
    its idempotent answer there: see `api.idempotency.Answer`).
    """
    now = timezone.now()
    errors = FieldErrors()
    errors.text(event, "event", max_length=100, required=True)
    errors.mapping(metadata, "metadata")
    occurred = errors.time(occurred_at, "occurred_at", default=now)
    errors.raise_if_any("invalid_event", "The event is not valid.")
    member = member_for(tenant, member)
    with transaction.atomic(durable=True):
        account = ledger.default_account_locked(member=member)
        program = account.program if account is not None else None
        _refuse_if_frozen(tenant, account)
        row = CustomEvent.objects.create(
            tenant=tenant, member=member, name=event, metadata=metadata or {}, occurred_at=occurred
        )
        # In-process only (no outbox row): campaign triggers on custom events listen to it.
        publish(tenant, "custom_event.recorded", {"member_id": member.pk, "event_id": row.pk, "name": event})
        if account is None or member.is_suspended:
            reason = SUSPENDED if member.is_suspended else ""
            result = EventResult(event=row, points_earned=0, points_pending=0, entries=[], tier=None, reason=reason)
            if answer is not None:
                answer(result)
            return result
        tiers, tier = tier_state(account)
        rules = _active_rules(program, EarningRule.Trigger.EVENT, occurred, event)
        context = build_rule_context(
            member=member,
            tz=tenant.tz,
            now=now,
            rules=[r.rule for r in rules],
            standing=Standing.of(tier, account.balance),
            event={"name": event, "metadata": metadata or {}, "occurred_at": occurred},
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
        result = EventResult(
            event=row,
            points_earned=outcome.points_earned,
            points_pending=outcome.points_pending,
            entries=[entry_dict(e) for e in outcome.entries],
            tier=tier_dict(outcome.tier),
        )
        if answer is not None:
            answer(result)
        return result
