"""The one path for every change to points: accounts, entries, lots, pending points, debts, expiry.

Public services (`points_adjust`, `points_transfer`, `points_expire_due`, `pending_release_due`,
`expiry_warnings_send`) run in their own durable transaction. The `post_*` functions are for composition
INSIDE a caller's transaction (earning in `loyalty.services`, the redemption engine): each locks the account
row first (`rewards.lock_objects`), then writes the entry, the lots and the cached figures with F().

Invariants kept here and checked by `ledger_reconcile` and the property test:
balance == sum(entry points) == sum(lot remaining) >= 0, and no lot below zero.

Debt rule (returns of points already spent): a return reverses what the balance still holds (the returned
order's own lots first, then the oldest); the rest is recorded as `Account.debt` and is never taken from a
balance the member does not have. Points of the returned order that already expired are not charged again
(they are "forgiven", not turned into debt). Each later earning pays the debt first: the earn entry is written in full
(so the member sees what they earned), directly followed by a `reverse` entry "debt repayment" of
min(earned, debt).
"""

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.db.models import F, IntegerField, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from common.errors import ApplicationError, Conflict
from common.events import publish
from common.plain_sql import insert_values
from common.side_effects import after_commit
from loyalty.expiry import compute_expires_at, inactivity_expires_at, is_inactivity, normalize_policy
from loyalty.models import MemberTier, Program
from members.models import Member, Tenant
from rewards.lock_objects import account_lock, accounts_lock, default_account_lock
from rewards.models import Account, ExpiryWarning, LedgerEntry, LotConsumption, PendingPoints, PointLot

logger = logging.getLogger(__name__)

Kind = LedgerEntry.Kind
_ACTIVITY_KINDS = {Kind.EARN, Kind.REDEEM}


# --- accounts -------------------------------------------------------------------------------------


def default_program(tenant) -> Program | None:
    """The tenant's program used when none is named: its active program with the lowest id."""
    return Program.objects.for_tenant(tenant).filter(active=True).order_by("pk").first()


def account_for(*, member: Member, program: Program | None = None) -> Account:
    """The member's account in `program` (default: the tenant's program), created on first use.

    Not durable on purpose: it is a get-or-create resting on the unique (member, program) constraint, safe
    inside a caller's transaction and on its own.
    """
    if program is None:
        program = default_program(member.tenant_id)
        if program is None:
            raise ApplicationError("program_not_found", "This tenant has no active loyalty program.", status=404)
    if program.tenant_id != member.tenant_id:
        raise ApplicationError("program_not_found", "The program belongs to another tenant.", status=404)
    account = Account.objects.filter(member=member, program=program).first()
    if account:
        return account
    try:
        with transaction.atomic():
            return Account.objects.create(tenant_id=member.tenant_id, member=member, program=program)
    except IntegrityError:
        return Account.objects.get(member=member, program=program)


def account_locked_for(*, member: Member, program: Program) -> Account:
    """The member's account in `program`, created if needed, locked (one query when it exists)."""
    account = (
        Account.objects.select_related("tenant", "program", "member")
        .select_for_update(of=("self",))
        .filter(member=member, program=program)
        .first()
    )
    if account is None:
        account = _account_create_locked(member=member, program=program)
    return account


def _account_create_locked(*, member: Member, program: Program) -> Account:
    """Create the account (a savepoint: a concurrent creator wins the unique constraint) and lock it."""
    if program.tenant_id != member.tenant_id:
        raise ApplicationError("program_not_found", "The program belongs to another tenant.", status=404)
    try:
        with transaction.atomic():
            created = Account.objects.create(tenant_id=member.tenant_id, member=member, program=program)
    except IntegrityError:
        created = Account.objects.get(member=member, program=program)
    return account_lock(created.pk)


def default_account_locked(*, member: Member) -> Account | None:
    """The member's account in the tenant's default program, locked (one query when it exists), created on
    first use; None when the tenant has no active program."""
    account = default_account_lock(member)
    if account is not None:
        return account
    program = default_program(member.tenant_id)
    return _account_create_locked(member=member, program=program) if program is not None else None


def expiry_policy_for(account: Account, tier=None) -> dict:
    """The policy for points earned now: the member's tier override, else the program's."""
    if tier is None:
        status = MemberTier.objects.filter(member_id=account.member_id, program_id=account.program_id).select_related(
            "tier"
        )
        status = status.first()
        tier = status.tier if status else None
    if tier is not None and tier.expiry_policy:
        return normalize_policy(tier.expiry_policy)
    return normalize_policy(account.program.expiry_policy or None)


# --- private posting steps (caller holds the account lock) ----------------------------------------


def _check_idempotent(account: Account, key: str | None, points: int, kind: str) -> LedgerEntry | None:
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
        policy = normalize_policy(account.program.expiry_policy or None)
    if is_inactivity(policy):
        PointLot.objects.filter(account=account, remaining__gt=0, inactivity=True).update(
            expires_at=inactivity_expires_at(policy, now, account.tenant.tz)
        )


def _credit(
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
    entry = _debit(account, points=pay, kind=Kind.REVERSE, reason="debt repayment", now=now, order_id=order_id)
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


def _debit(
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


# --- composition API (inside the caller's transaction) --------------------------------------------


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
    existing = _check_idempotent(account, idempotency_key, points, Kind.EARN)
    if existing:
        return existing
    entry = _credit(
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
    publish(account.tenant, "points.earned", _earned_payload(account, entry))
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
        publish(account.tenant, "points.earned", _earned_payload(account, entry))
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
    existing = _check_idempotent(account, idempotency_key, -points, Kind.REDEEM)
    if existing:
        return existing
    if account.tenant.frozen:  # the kill switch, read with the locked account
        raise ApplicationError("tenant_frozen", "This tenant is frozen: points cannot be spent.")
    return _debit(
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
            result.entry = _debit(
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


# --- public services (durable) --------------------------------------------------------------------


def _resolve_account(account: Account | None, member: Member | None, program: Program | None) -> Account:
    if account is not None:
        return account
    if member is None:
        raise ApplicationError("member_required", "Name the member or the account.", status=400)
    return account_for(member=member, program=program)


def points_adjust(
    *,
    points: int,
    reason: str,
    staff_user,
    account: Account | None = None,
    member: Member | None = None,
    program: Program | None = None,
    idempotency_key: str | None = None,
) -> LedgerEntry:
    """A staff correction (kind `adjust`): positive adds a lot under the expiry policy, negative spends FIFO."""
    errors = {}
    if not reason or not reason.strip():
        errors["reason"] = "A reason is required."
    if not isinstance(points, int) or isinstance(points, bool) or points == 0:
        errors["points"] = "A non-zero whole number is required."
    if errors:
        raise ApplicationError("invalid_adjustment", "The adjustment is incomplete.", errors, status=400)
    account = _resolve_account(account, member, program)
    with transaction.atomic(durable=True):
        account = account_lock(account.pk)
        existing = _check_idempotent(account, idempotency_key, points, Kind.ADJUST)
        if existing:
            return existing
        now = timezone.now()
        if points > 0:
            return _credit(
                account,
                points=points,
                kind=Kind.ADJUST,
                reason=reason.strip(),
                now=now,
                staff_user=staff_user,
                idempotency_key=idempotency_key,
                pay_debt=False,
            )
        return _debit(
            account,
            points=-points,
            kind=Kind.ADJUST,
            reason=reason.strip(),
            now=now,
            staff_user=staff_user,
            idempotency_key=idempotency_key,
        )


@dataclass
class TransferResult:
    debit: LedgerEntry
    credit: LedgerEntry
    created: bool = True


def points_transfer(
    *,
    from_member: Member,
    to_member: Member,
    points: int,
    reason: str,
    staff_user=None,
    program: Program | None = None,
    idempotency_key: str | None = None,
) -> TransferResult:
    """Move points between two members of one tenant; the moved points keep their expiry times."""
    if from_member.tenant_id != to_member.tenant_id:
        raise ApplicationError("transfer_cross_tenant", "Points move only between members of one tenant.")
    if from_member.pk == to_member.pk:
        raise ApplicationError("transfer_same_member", "Choose two different members.")
    if not reason or not reason.strip():
        raise ApplicationError("invalid_transfer", "A reason is required.", {"reason": "required"}, status=400)
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
        raise ApplicationError("invalid_points", "Points must be a positive whole number.", {"points": points})
    source = account_for(member=from_member, program=program)
    target = account_for(member=to_member, program=source.program)
    with transaction.atomic(durable=True):
        locked = {a.pk: a for a in accounts_lock([source.pk, target.pk])}
        source, target = locked[source.pk], locked[target.pk]
        if source.tenant.frozen:
            raise ApplicationError("tenant_frozen", "This tenant is frozen: points cannot move.")
        existing = _check_idempotent(source, idempotency_key, -points, Kind.TRANSFER)
        if existing:
            credit = LedgerEntry.objects.get(account=target, idempotency_key=f"{idempotency_key}:in")
            return TransferResult(debit=existing, credit=credit, created=False)
        now = timezone.now()
        debit = _debit(
            source,
            points=points,
            kind=Kind.TRANSFER,
            reason=f"{reason.strip()} (to {to_member.external_id})",
            now=now,
            staff_user=staff_user,
            idempotency_key=idempotency_key,
        )
        expiries: dict[dt.datetime | None, int] = {}
        for consumption in LotConsumption.objects.filter(entry=debit).select_related("lot"):
            expiries[consumption.lot.expires_at] = expiries.get(consumption.lot.expires_at, 0) + consumption.points
        credit = _credit(
            target,
            points=points,
            kind=Kind.TRANSFER,
            reason=f"{reason.strip()} (from {from_member.external_id})",
            now=now,
            expiries=list(expiries.items()),
            staff_user=staff_user,
            idempotency_key=f"{idempotency_key}:in" if idempotency_key else None,
        )
        return TransferResult(debit=debit, credit=credit)


# --- batch jobs -----------------------------------------------------------------------------------


@dataclass
class ExpiryRunResult:
    batches: int = 0
    accounts: int = 0
    lots: int = 0
    points: int = 0
    entry_ids: list[int] = field(default_factory=list)


@dataclass
class _BatchAccount:
    pk: int
    tenant_id: int
    balance: int
    member_external_id: str
    program_code: str


def _in(values) -> str:
    return ", ".join(["%s"] * len(values))


def points_expire_due(
    *, now: dt.datetime | None = None, batch_lots: int = 20000, batch_accounts: int = 2000
) -> ExpiryRunResult:
    """Expire every lot past its time, in set-based batches (one durable transaction each).

    Each batch: pick up to `batch_accounts` accounts with due lots (from a sample of `batch_lots` due lots, read
    through the partial index on live lots' expiry), lock them in id order, then in bulk statements write one
    `expire` entry per account (for all its due lots), record the lot consumptions, zero the lots and
    lower the cached balances. A crash loses at most the uncommitted batch, and a re-run finds only lots
    still unexpired: nothing is expired twice.
    """
    now = now or timezone.now()
    result = ExpiryRunResult()
    lot_t, entry_t, cons_t = PointLot._meta.db_table, LedgerEntry._meta.db_table, LotConsumption._meta.db_table
    account_t = Account._meta.db_table
    db_now = connection.ops.adapt_datetimefield_value(now)  # raw SQL parameters, as the ORM would pass them
    while True:
        with transaction.atomic(durable=True):
            sample = PointLot.objects.filter(remaining__gt=0, expires_at__lte=now).values_list("account_id", flat=True)
            account_ids = sorted(set(sample[:batch_lots]))[:batch_accounts]
            if not account_ids:
                break
            # Locked in id order; read as plain rows (no model instances: this is the batch's hot spot).
            rows = (
                Account.objects.filter(pk__in=account_ids)
                .order_by("pk")
                .select_for_update(of=("self",))
                .values_list("pk", "tenant_id", "balance", "member__external_id", "program__code")
            )
            accounts = {
                pk: _BatchAccount(pk, tenant_id, balance, ext, code) for pk, tenant_id, balance, ext, code in rows
            }
            tenants = Tenant.objects.in_bulk({a.tenant_id for a in accounts.values()})
            ids = list(accounts)
            due = (
                PointLot.objects.filter(account_id__in=ids, remaining__gt=0, expires_at__lte=now)
                .values("account_id")
                .annotate(pts=Sum("remaining"))
                .values_list("account_id", "pts")
            )
            expired = dict(due)
            # The accounts are locked, so their balances are current: each loses the sum of its due lots.
            changed = []
            for account_id, pts in expired.items():
                accounts[account_id].balance -= pts
                changed.append(accounts[account_id])
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {account_t} SET balance = balance - (SELECT SUM(l.remaining) FROM {lot_t} l "
                    f"WHERE l.account_id = {account_t}.id AND l.remaining > 0 AND l.expires_at <= %s) "
                    f"WHERE id IN ({_in(ids)})",
                    [db_now, *ids],
                )
                entries = LedgerEntry.objects.bulk_create(
                    [
                        LedgerEntry(
                            tenant_id=account.tenant_id,
                            account_id=account.pk,
                            kind=Kind.EXPIRE,
                            points=-int(expired[account.pk]),
                            balance_after=account.balance,
                            reason="expired",
                            created_at=now,
                        )
                        for account in changed
                    ],
                    batch_size=5000,
                )
                entry_ids = [e.pk for e in entries]
                cursor.execute(
                    f"INSERT INTO {cons_t} (lot_id, entry_id, points) "
                    f"SELECT l.id, e.id, l.remaining FROM {lot_t} l JOIN {entry_t} e ON e.account_id = l.account_id "
                    f"WHERE l.account_id IN ({_in(ids)}) AND e.id IN ({_in(entry_ids)}) "
                    f"AND l.remaining > 0 AND l.expires_at <= %s",
                    [*ids, *entry_ids, db_now],
                )
                cursor.execute(
                    f"UPDATE {lot_t} SET remaining = 0 "
                    f"WHERE account_id IN ({_in(ids)}) AND remaining > 0 AND expires_at <= %s",
                    [*ids, db_now],
                )
                result.lots += cursor.rowcount
            for entry in entries:
                account = accounts[entry.account_id]
                publish(
                    tenants[account.tenant_id],
                    "points.expired",
                    {
                        "member": account.member_external_id,
                        "program": account.program_code,
                        "points": -entry.points,
                        "balance": entry.balance_after,
                        "entry_id": entry.pk,
                        "expired_at": entry.created_at.isoformat(),
                    },
                )
            result.batches += 1
            result.accounts += len(entries)
            result.points += sum(-e.points for e in entries)
            if len(result.entry_ids) < 10000:
                result.entry_ids.extend(entry_ids[: 10000 - len(result.entry_ids)])
    return result


@dataclass
class ReleaseResult:
    released: int = 0
    points: int = 0


def pending_release_due(*, now: dt.datetime | None = None, batch_size: int = 500) -> ReleaseResult:
    """Make pending points whose hold is over spendable (an `earn` entry and a lot each), in batches."""
    now = now or timezone.now()
    result = ReleaseResult()
    while True:
        with transaction.atomic(durable=True):
            due = PendingPoints.objects.filter(status=PendingPoints.Status.PENDING, release_at__lte=now)
            account_ids = sorted(set(due.values_list("account_id", flat=True)[:batch_size]))
            if not account_ids:
                break
            accounts = {a.pk: a for a in accounts_lock(account_ids)}
            # Re-read under the locks: a return may have cancelled some meanwhile.
            rows = list(due.filter(account_id__in=account_ids).order_by("account_id", "pk"))
            tiers = {
                (s.member_id, s.program_id): s.tier
                for s in MemberTier.objects.filter(
                    member_id__in=[a.member_id for a in accounts.values()]
                ).select_related("tier")
            }
            for pending in rows:
                account = accounts[pending.account_id]
                points = pending.open_points
                pending.status = PendingPoints.Status.RELEASED
                if points > 0:
                    Account.objects.filter(pk=account.pk).update(pending=F("pending") - points)
                    account.pending -= points
                    policy = expiry_policy_for(account, tier=tiers.get((account.member_id, account.program_id)))
                    pending.released_entry = _credit(
                        account,
                        points=points,
                        kind=Kind.EARN,
                        reason=pending.reason,
                        now=now,
                        policy=policy,
                        order_id=pending.order_id,
                        rule_code=pending.rule_code,
                    )
                    publish(account.tenant, "points.earned", _earned_payload(account, pending.released_entry))
                    result.points += points
                pending.save(update_fields=["status", "released_entry"])
                result.released += 1
    return result


def _earned_payload(account: Account, entry: LedgerEntry) -> dict:
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


def _send_expiry_email(to: str, subject: str, body: str) -> None:
    try:
        send_mail(subject, body, None, [to])
    except Exception:  # an unreachable mail server must not undo the warning; it is logged
        logger.exception("expiry warning email to %s failed", to)


def expiry_warnings_send(*, now: dt.datetime | None = None) -> int:
    """Queue one reminder per account and expiry time for points expiring within each program's warning days.

    The unique (account, expires_at) row written with ON CONFLICT DO NOTHING makes it once per lot window,
    whatever the number of runs. Emits `points.expiring_soon` and sends an email after commit.
    """
    now = now or timezone.now()
    sent = 0
    lot_t, account_t, warn_t = PointLot._meta.db_table, Account._meta.db_table, ExpiryWarning._meta.db_table
    db = connection.ops.adapt_datetimefield_value
    with transaction.atomic(durable=True):
        ids: list[int] = []
        for program_id, days in Program.objects.filter(active=True).values_list("pk", "expiry_warning_days"):
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {warn_t} (tenant_id, account_id, expires_at, points, created_at) "
                    f"SELECT l.tenant_id, l.account_id, l.expires_at, SUM(l.remaining), %s FROM {lot_t} l "
                    f"JOIN {account_t} a ON a.id = l.account_id "
                    f"WHERE a.program_id = %s AND l.remaining > 0 AND l.expires_at > %s AND l.expires_at <= %s "
                    f"GROUP BY l.tenant_id, l.account_id, l.expires_at "
                    f"ON CONFLICT (account_id, expires_at) DO NOTHING RETURNING id",
                    [db(now), program_id, db(now), db(now + dt.timedelta(days=days))],
                )
                ids.extend(row[0] for row in cursor.fetchall())
        for warning in ExpiryWarning.objects.filter(pk__in=ids).select_related(
            "tenant", "account__member", "account__program"
        ):
            member, program = warning.account.member, warning.account.program
            publish(
                warning.tenant,
                "points.expiring_soon",
                {
                    "member": member.external_id,
                    "program": program.code,
                    "points": warning.points,
                    "expires_at": warning.expires_at.isoformat(),
                },
            )
            if member.email:
                after_commit(
                    _send_expiry_email,
                    member.email,
                    f"{warning.points} {program.points_name} expire soon",
                    f"Hello {member.name or member.external_id},\n\n{warning.points} {program.points_name} of "
                    f"{program.name} expire on {warning.expires_at.astimezone(warning.tenant.tz):%Y-%m-%d}.\n",
                )
            sent += 1
    return sent


def ledger_reconcile(*, tenant=None) -> list[dict]:
    """Accounts whose cached balance differs from the sum of their entries or of their lots (should be none)."""
    accounts = Account.objects.all() if tenant is None else Account.objects.for_tenant(tenant)
    entries_sum = (
        LedgerEntry.objects.filter(account=OuterRef("pk")).values("account").annotate(s=Sum("points")).values("s")
    )
    lots_sum = (
        PointLot.objects.filter(account=OuterRef("pk")).values("account").annotate(s=Sum("remaining")).values("s")
    )
    rows = (
        accounts.annotate(
            entries_total=Coalesce(Subquery(entries_sum, output_field=IntegerField()), 0),
            lots_total=Coalesce(Subquery(lots_sum, output_field=IntegerField()), 0),
        )
        .filter(~Q(balance=F("entries_total")) | ~Q(balance=F("lots_total")))
        .values("pk", "tenant_id", "member_id", "balance", "entries_total", "lots_total")
    )
    mismatches = [dict(row) for row in rows]
    for row in mismatches:
        logger.error("ledger mismatch: %s", row)
    return mismatches
