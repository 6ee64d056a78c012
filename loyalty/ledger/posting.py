"""Posting: every change to points is an append-only entry written here, under the account's row lock.

The `post_*` functions compose INSIDE a caller's transaction (earning, the redemption engine, the catalog):
each expects the account row locked (`loyalty.lock_objects`), then writes the entry, the lots and the cached
figures with F().

Debt rule (returns of points already spent): a return reverses what the balance still holds (the returned
order's own lots first, then the oldest); the rest is recorded as `Account.debt` and is never taken from a
balance the member does not have. Points of the returned order that already expired are not charged again
(they are "forgiven", not turned into debt). Each later earning pays the debt first: the earn entry is written
in full (so the member sees what they earned), directly followed by a `reverse` entry "debt repayment" of
min(earned, debt).
"""

import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django.db.models import F, Sum
from django.utils import timezone

from common.errors import ApplicationError, Conflict
from common.events import publish
from loyalty import sql as loyalty_sql
from loyalty.expiry import compute_expires_at, inactivity_expires_at, is_inactivity, stored_policy
from loyalty.ledger.accounts import expiry_policy_for
from loyalty.lock_objects import account_lock
from loyalty.models import (
    Account,
    LedgerEntry,
    LotConsumption,
    PendingPoints,
    PointLot,
)

Kind = LedgerEntry.Kind


_ACTIVITY_KINDS = {Kind.EARN, Kind.REDEEM}


def idempotent_entry(account: Account, key: str | None, points: int, kind: str) -> LedgerEntry | None:
    if not key:
        return None
    existing = LedgerEntry.objects.filter(account=account, idempotency_key=key).first()
    if existing is None:
        return None
    if existing.points != points or existing.kind != kind:
        raise Conflict("idempotency_key_reused", "This idempotency key was used for a different change.", {"key": key})
    return existing


def _touch_activity(account: Account, now: dt.datetime, policy: dict | None) -> None:
    """Earning or spending (already stamped in `last_activity_at`): under `inactivity` every live lot's expiry
    moves forward."""
    account.last_activity_at = now
    if policy is None:
        policy = stored_policy(account.program.expiry_policy)
    if is_inactivity(policy):
        PointLot.objects.filter(account=account, remaining__gt=0, inactivity=True).update(
            expires_at=inactivity_expires_at(policy, now, account.tenant.tz)
        )


def credit_entry(
    account: Account,
    *,
    points: int,
    kind: str,
    reason: str,
    now: dt.datetime,
    policy: dict | None = None,
    expiries: list[tuple[dt.datetime | None, int]] | None = None,
    order_id: str = "",
    rule_code: str = "",
    campaign_id: int | None = None,
    staff_user=None,
    idempotency_key: str | None = None,
    pay_debt: bool = True,
) -> LedgerEntry:
    """Add points as one entry and its lot(s). `expiries` (transfers) gives the lots' own expiry times."""
    if points <= 0:
        raise ApplicationError("invalid_points", "Points must be a positive whole number.", {"points": points})
    if expiries is None:
        if policy is None:
            policy = expiry_policy_for(account)
        expiries = [(compute_expires_at(policy, now, account.tenant.tz), points)]
    inactivity = is_inactivity(policy)
    balance_after = account.balance + points
    entry = LedgerEntry.objects.create(
        tenant_id=account.tenant_id,
        account=account,
        kind=kind,
        points=points,
        balance_after=balance_after,
        reason=reason[:300],
        order_id=order_id,
        rule_code=rule_code,
        campaign_id=campaign_id,
        staff_user=staff_user,
        idempotency_key=idempotency_key or None,
        expires_at=min((e for e, _ in expiries if e is not None), default=None),
        created_at=now,
    )
    PointLot.objects.bulk_create(
        [
            PointLot(
                tenant_id=account.tenant_id,
                account=account,
                entry=entry,
                points=n,
                remaining=n,
                earned_at=now,
                expires_at=expires_at,
                inactivity=inactivity,
                order_id=order_id,
            )
            for expires_at, n in expiries
        ]
    )
    changes = {"balance": F("balance") + points}
    if kind in _ACTIVITY_KINDS:
        changes["last_activity_at"] = now
    if kind == Kind.EARN:
        changes["lifetime_earned"] = F("lifetime_earned") + points
        account.lifetime_earned += points
    Account.objects.filter(pk=account.pk).update(**changes)
    account.balance = balance_after
    if kind in _ACTIVITY_KINDS:
        _touch_activity(account, now, policy)
    if pay_debt and kind == Kind.EARN and account.debt > 0:
        _pay_debt(account, available=points, now=now, order_id=order_id)
    return entry


def _pay_debt(account: Account, *, available: int, now: dt.datetime, order_id: str = "") -> LedgerEntry | None:
    pay = min(available, account.debt, account.balance)
    if pay <= 0:
        return None
    entry = debit_entry(account, points=pay, kind=Kind.REVERSE, reason="debt repayment", now=now, order_id=order_id)
    Account.objects.filter(pk=account.pk).update(debt=F("debt") - pay)
    account.debt -= pay
    return entry


def _expire_lots_of_locked(account: Account, lots: list[PointLot], now: dt.datetime) -> LedgerEntry | None:
    """Expire the given due lots of one locked account (the inline form of the expiry job)."""
    total = sum(lot.remaining for lot in lots)
    if total <= 0:
        return None
    entry = LedgerEntry.objects.create(
        tenant_id=account.tenant_id,
        account=account,
        kind=Kind.EXPIRE,
        points=-total,
        balance_after=account.balance - total,
        reason="expired",
        created_at=now,
    )
    LotConsumption.objects.bulk_create([LotConsumption(lot=lot, entry=entry, points=lot.remaining) for lot in lots])
    for lot in lots:
        lot.remaining = 0
    PointLot.objects.bulk_update(lots, ["remaining"])
    Account.objects.filter(pk=account.pk).update(balance=F("balance") - total)
    account.balance -= total
    publish(account.tenant, "points.expired", _expired_payload(account, entry))
    return entry


def _expired_payload(account: Account, entry: LedgerEntry) -> dict:
    return {
        "member": account.member.external_id,
        "program": account.program.code,
        "points": -entry.points,
        "balance": entry.balance_after,
        "entry_id": entry.pk,
        "expired_at": entry.created_at.isoformat(),
    }


def debit_entry(
    account: Account,
    *,
    points: int,
    kind: str,
    reason: str,
    now: dt.datetime,
    order_id: str = "",
    prefer_order_id: str = "",
    campaign_id: int | None = None,
    staff_user=None,
    idempotency_key: str | None = None,
) -> LedgerEntry:
    """Take points from the oldest unexpired lots (FIFO); due lots are expired first, inline."""
    if points <= 0:
        raise ApplicationError("invalid_points", "Points must be a positive whole number.", {"points": points})
    lots = list(PointLot.objects.filter(account=account, remaining__gt=0).order_by("earned_at", "pk"))
    due = [lot for lot in lots if lot.expires_at is not None and lot.expires_at <= now]
    if due:
        _expire_lots_of_locked(account, due, now)
        lots = [lot for lot in lots if lot.remaining > 0]
    if prefer_order_id:
        lots.sort(key=lambda lot: lot.order_id != prefer_order_id)  # stable: FIFO inside each group
    available = sum(lot.remaining for lot in lots)
    if available < points or account.balance < points:
        raise ApplicationError(
            "points_insufficient",
            "Not enough points.",
            {"balance": account.balance, "requested": points},
        )
    entry = LedgerEntry.objects.create(
        tenant_id=account.tenant_id,
        account=account,
        kind=kind,
        points=-points,
        balance_after=account.balance - points,
        reason=reason[:300],
        order_id=order_id,
        campaign_id=campaign_id,
        staff_user=staff_user,
        idempotency_key=idempotency_key or None,
        created_at=now,
    )
    left, touched, consumptions = points, [], []
    for lot in lots:
        if left == 0:
            break
        take = min(lot.remaining, left)
        lot.remaining -= take
        left -= take
        touched.append(lot)
        consumptions.append(LotConsumption(lot=lot, entry=entry, points=take))
    PointLot.objects.bulk_update(touched, ["remaining"])
    LotConsumption.objects.bulk_create(consumptions)
    changes = {"balance": F("balance") - points}
    if kind in _ACTIVITY_KINDS:
        changes["last_activity_at"] = now
    Account.objects.filter(pk=account.pk).update(**changes)
    account.balance -= points
    if kind in _ACTIVITY_KINDS:
        _touch_activity(account, now, None)
    return entry


def lock_account(account: Account) -> Account:
    """The account row, locked and fresh; use the returned object for the `post_*` calls."""
    return account_lock(account.pk)


def post_earn(
    *,
    account: Account,
    points: int,
    reason: str,
    order_id: str = "",
    rule_code: str = "",
    campaign_id: int | None = None,
    idempotency_key: str | None = None,
    policy: dict | None = None,
    now: dt.datetime | None = None,
    locked: bool = False,
) -> LedgerEntry:
    """Earned points: an `earn` entry and a lot expiring by the policy (tier override), then debt repayment.

    Emits `points.earned` (not again for a repeated idempotency key).
    """
    if not locked:
        account = account_lock(account.pk)
    existing = idempotent_entry(account, idempotency_key, points, Kind.EARN)
    if existing:
        return existing
    entry = credit_entry(
        account,
        points=points,
        kind=Kind.EARN,
        reason=reason,
        now=now or timezone.now(),
        policy=policy,
        order_id=order_id,
        rule_code=rule_code,
        campaign_id=campaign_id,
        idempotency_key=idempotency_key,
    )
    publish(account.tenant, "points.earned", earned_payload(account, entry))
    return entry


@dataclass(frozen=True)
class EarnLine:
    """One earning of a batch (`post_earns`): an `earn` entry and its lot."""

    points: int
    reason: str
    order_id: str = ""
    rule_code: str = ""
    campaign_id: int | None = None


def _write_earns(account: Account, entries: list[LedgerEntry], lots: list[PointLot], *, total: int, now) -> None:
    """The entries, one lot per entry, and the cached figures (added to, as with F()): one statement on PostgreSQL.

    Compiling three ORM statements cost more CPU than PostgreSQL spends running them (see `common.plain_sql`);
    SQLite keeps the ORM. Sets the entries' primary keys as `bulk_create` does.
    """
    if connection.vendor != "postgresql":
        LedgerEntry.objects.bulk_create(entries)
        for entry, lot in zip(entries, lots, strict=True):
            lot.entry = entry
        PointLot.objects.bulk_create(lots)
        Account.objects.filter(pk=account.pk).update(
            balance=F("balance") + total, lifetime_earned=F("lifetime_earned") + total, last_activity_at=now
        )
        return
    ids = loyalty_sql.earns_insert(account, entries, lots, total=total, now=now)
    for entry, lot, pk in zip(entries, lots, ids, strict=True):
        entry.pk = pk
        entry._state.adding, entry._state.db = False, connection.alias
        lot.entry = entry


def post_earns(
    *, account: Account, earns: list[EarnLine], policy: dict | None = None, now: dt.datetime | None = None
) -> list[LedgerEntry]:
    """Several earnings on one account that the CALLER HAS LOCKED, in a fixed number of queries.

    The hot path of earning (an order matching several rules): the entries go in one INSERT, their lots in
    one INSERT, the cached figures in one UPDATE with F(), whatever the number of lines; then the debt is paid
    once from what was earned (one `reverse` entry) and `points.earned` is emitted per entry, exactly as
    `post_earn` does line by line. Without idempotency keys: the caller's own uniqueness (one order id, one
    event row) makes the batch happen once.
    """
    if not earns:
        return []
    now = now or timezone.now()
    if policy is None:
        policy = expiry_policy_for(account)
    expires_at = compute_expires_at(policy, now, account.tenant.tz)
    inactivity = is_inactivity(policy)
    balance, entries = account.balance, []
    for line in earns:
        if isinstance(line.points, bool) or not isinstance(line.points, int) or line.points <= 0:
            raise ApplicationError("invalid_points", "Points must be a positive whole number.", {"points": line.points})
        balance += line.points
        entries.append(
            LedgerEntry(
                tenant_id=account.tenant_id,
                account=account,
                kind=Kind.EARN,
                points=line.points,
                balance_after=balance,
                reason=line.reason[:300],
                order_id=line.order_id,
                rule_code=line.rule_code,
                campaign_id=line.campaign_id,
                expires_at=expires_at,
                created_at=now,
            )
        )
    lots = [
        PointLot(
            tenant_id=account.tenant_id,
            account=account,
            points=entry.points,
            remaining=entry.points,
            earned_at=now,
            expires_at=expires_at,
            inactivity=inactivity,
            order_id=entry.order_id,
        )
        for entry in entries
    ]
    total = balance - account.balance
    _write_earns(account, entries, lots, total=total, now=now)
    account.balance, account.lifetime_earned = balance, account.lifetime_earned + total
    _touch_activity(account, now, policy)
    for entry in entries:
        publish(account.tenant, "points.earned", earned_payload(account, entry))
    if account.debt > 0:
        _pay_debt(account, available=total, now=now, order_id=earns[0].order_id)
    return entries


def post_spend(
    *,
    account: Account,
    points: int,
    reason: str,
    idempotency_key: str | None = None,
    order_id: str = "",
    campaign_id: int | None = None,
) -> LedgerEntry:
    """Spend points (kind `redeem`) inside the caller's transaction: locks the account, consumes lots FIFO.

    Raises ApplicationError("points_insufficient"), or "tenant_frozen" when the tenant's kill switch is on;
    a repeated idempotency key returns the first entry.
    """
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
        raise ApplicationError("invalid_points", "Points must be a positive whole number.", {"points": points})
    account = account_lock(account.pk)
    existing = idempotent_entry(account, idempotency_key, -points, Kind.REDEEM)
    if existing:
        return existing
    if account.tenant.frozen:  # the kill switch, read with the locked account
        raise ApplicationError("tenant_frozen", "This tenant is frozen: points cannot be spent.")
    return debit_entry(
        account,
        points=points,
        kind=Kind.REDEEM,
        reason=reason,
        now=timezone.now(),
        order_id=order_id,
        campaign_id=campaign_id,
        idempotency_key=idempotency_key,
    )


def post_spend_reversal(*, entry: LedgerEntry, reason: str) -> LedgerEntry:
    """Put the points of a debit entry back into exactly the lots they came from, once (Conflict after)."""
    account = account_lock(entry.account_id)
    if entry.points >= 0 or entry.kind not in (Kind.REDEEM, Kind.ADJUST, Kind.TRANSFER):
        raise ApplicationError("entry_not_reversible", "Only spent points can be put back.", {"entry": entry.pk})
    if LedgerEntry.objects.filter(reverses=entry).exists():
        raise Conflict("already_reversed", "These points were already put back.", {"entry": entry.pk})
    consumptions = list(LotConsumption.objects.filter(entry=entry).select_related("lot"))
    lots = []
    for consumption in consumptions:
        consumption.lot.remaining += consumption.points
        lots.append(consumption.lot)
    points = -entry.points
    reversal = LedgerEntry.objects.create(
        tenant_id=account.tenant_id,
        account=account,
        kind=Kind.REVERSE,
        points=points,
        balance_after=account.balance + points,
        reason=(reason or "reversal")[:300],
        order_id=entry.order_id,
        campaign_id=entry.campaign_id,
        reverses=entry,
        created_at=timezone.now(),
    )
    PointLot.objects.bulk_update(lots, ["remaining"])
    LotConsumption.objects.bulk_create(
        [LotConsumption(lot=c.lot, entry=reversal, points=-c.points) for c in consumptions]
    )
    Account.objects.filter(pk=account.pk).update(balance=F("balance") + points)
    account.balance += points
    return reversal


def post_pending(
    *,
    account: Account,
    points: int,
    reason: str,
    release_at: dt.datetime,
    order_id: str = "",
    rule_code: str = "",
    now: dt.datetime | None = None,
) -> PendingPoints:
    """Hold points until `release_at` (caller holds the account lock)."""
    pending = PendingPoints.objects.create(
        tenant_id=account.tenant_id,
        account=account,
        points=points,
        reason=reason[:300],
        order_id=order_id,
        rule_code=rule_code,
        earned_at=now or timezone.now(),
        release_at=release_at,
    )
    Account.objects.filter(pk=account.pk).update(pending=F("pending") + points)
    account.pending += points
    return pending


@dataclass
class TakeBack:
    cancelled: int = 0
    reversed: int = 0
    debt: int = 0
    forgiven: int = 0
    entry: LedgerEntry | None = None


def post_take_back(*, account: Account, order_id: str, points: int, reason: str, forgiven_before: int = 0) -> TakeBack:
    """Take back `points` granted by an order (a return), with the account locked by the caller.

    Pending points of the order are cancelled first (they were never spendable); the rest is reversed from
    the balance (the order's own lots first); what the balance no longer holds becomes debt, except the
    order's points that already expired (`forgiven`: they are gone already and are not charged twice;
    `forgiven_before` is what earlier returns of the order already counted that way).
    """
    result = TakeBack()
    left = points
    pendings = list(
        PendingPoints.objects.filter(account=account, order_id=order_id, status=PendingPoints.Status.PENDING).order_by(
            "pk"
        )
    )
    for pending in pendings:
        if left == 0:
            break
        cancel = min(pending.open_points, left)
        pending.cancelled_points += cancel
        if pending.cancelled_points == pending.points:
            pending.status = PendingPoints.Status.CANCELLED
        pending.save(update_fields=["cancelled_points", "status"])
        left -= cancel
        result.cancelled += cancel
    if result.cancelled:
        Account.objects.filter(pk=account.pk).update(pending=F("pending") - result.cancelled)
        account.pending -= result.cancelled
    if left:
        now = timezone.now()
        # Due lots are expired first so that the balances used below are the spendable ones.
        live = list(PointLot.objects.filter(account=account, remaining__gt=0))
        due = [lot for lot in live if lot.expires_at is not None and lot.expires_at <= now]
        if due:
            _expire_lots_of_locked(account, due, now)
        # What is left of the order's own points is taken first; then its expired points are forgiven; what
        # was spent is taken from the rest of the balance, and what the balance cannot give becomes debt.
        own = min(left, sum(lot.remaining for lot in live if lot.order_id == order_id and lot.remaining > 0))
        if left > own:
            expired_of_order = (
                LotConsumption.objects.filter(
                    lot__account=account, lot__order_id=order_id, entry__kind=Kind.EXPIRE
                ).aggregate(s=Sum("points"))["s"]
                or 0
            )
            result.forgiven = max(0, min(left - own, expired_of_order - forgiven_before))
        other = min(left - own - result.forgiven, account.balance - own)
        reverse = own + other
        if reverse:
            result.entry = debit_entry(
                account,
                points=reverse,
                kind=Kind.REVERSE,
                reason=reason,
                now=now,
                order_id=order_id,
                prefer_order_id=order_id,
            )
            result.reversed = reverse
        result.debt = left - reverse - result.forgiven
        if result.debt:
            Account.objects.filter(pk=account.pk).update(debt=F("debt") + result.debt)
            account.debt += result.debt
    return result


def earned_payload(account: Account, entry: LedgerEntry) -> dict:
    return {
        "member": account.member.external_id,
        "program": account.program.code,
        "points": entry.points,
        "balance": entry.balance_after,
        "order_id": entry.order_id,
        "reason": entry.reason,
        "entry_id": entry.pk,
        "expires_at": entry.expires_at.isoformat() if entry.expires_at else None,
    }
