"""Staff corrections and transfers: durable services with a mandatory reason, each one append-only entry."""

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from common.errors import ApplicationError
from common.validation import FieldErrors, field_error
from loyalty.ledger.accounts import account_for
from loyalty.ledger.posting import Kind, credit_entry, debit_entry, idempotent_entry
from loyalty.lock_objects import account_lock, accounts_lock
from loyalty.models import (
    Account,
    AdjustmentLimit,
    AdjustmentUsage,
    LedgerEntry,
    LotConsumption,
    Program,
)
from members.models import Member


def staff_adjustment_limit(user) -> AdjustmentLimit | None:
    """The limit that binds `user`: their own, else the most generous of their roles'; None means no limit
    (superusers, and staff whose roles have none: the Admin role)."""
    if user is None or user.is_superuser:
        return None
    own = AdjustmentLimit.objects.filter(user=user).first()
    if own is not None:
        return own
    return AdjustmentLimit.objects.filter(group__user=user).order_by("-per_day", "-per_action").first()


def staff_adjustment_used(user, day: dt.date) -> int:
    return AdjustmentUsage.objects.filter(user=user, day=day).values_list("points", flat=True).first() or 0


def _take_staff_allowance(staff_user, points: int, now: dt.datetime) -> None:
    """Count `points` against the staff user's limits (inside the adjustment's transaction) or refuse."""
    limit = staff_adjustment_limit(staff_user)
    if limit is None:
        return
    amount = abs(points)
    if amount > limit.per_action:
        raise ApplicationError(
            "adjustment_over_limit",
            f"{amount} points is above your limit of {limit.per_action} per adjustment.",
            {"per_action": limit.per_action},
            status=403,
        )
    day = timezone.localdate(now)
    AdjustmentUsage.objects.get_or_create(user=staff_user, day=day)
    # Conditional: two adjustments at once cannot both pass the day's limit.
    taken = AdjustmentUsage.objects.filter(user=staff_user, day=day, points__lte=limit.per_day - amount).update(
        points=F("points") + amount
    )
    if not taken:
        used = staff_adjustment_used(staff_user, day)
        raise ApplicationError(
            "adjustment_over_limit",
            f"{amount} points would pass your limit of {limit.per_day} per day ({used} used today).",
            {"per_day": limit.per_day, "used": used},
            status=403,
        )


def apology_allowance_take(*, staff_user, now: dt.datetime | None = None) -> None:
    """Count one apology coupon against the staff user's day (inside the coupon's transaction) or refuse.

    The same limit row as points adjustments: support leads set both in one place.
    """
    limit = staff_adjustment_limit(staff_user)
    if limit is None or limit.apologies_per_day is None:
        return
    day = timezone.localdate(now or timezone.now())
    AdjustmentUsage.objects.get_or_create(user=staff_user, day=day)
    # Conditional: two coupons at once cannot both pass the day's limit.
    taken = AdjustmentUsage.objects.filter(user=staff_user, day=day, apologies__lt=limit.apologies_per_day).update(
        apologies=F("apologies") + 1
    )
    if not taken:
        raise ApplicationError(
            "apology_over_limit",
            f"You have given your {limit.apologies_per_day} apology coupons for today.",
            {"apologies_per_day": limit.apologies_per_day},
            status=403,
        )


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
    approved_by=None,
) -> LedgerEntry:
    """A staff correction (kind `adjust`): positive adds a lot under the expiry policy, negative spends FIFO.

    Within the staff user's limits, unless a second person approved it (`approved_by`, the four-eyes path).
    """
    errors = FieldErrors()
    errors.text(reason, "reason", required=True, strip=True)
    if errors.whole(points, "points", minimum=None, required=True) is not None:
        errors.check(points != 0, "points", "must not be 0")
    errors.raise_if_any("invalid_adjustment", "The adjustment is incomplete.")
    account = _resolve_account(account, member, program)
    with transaction.atomic(durable=True):
        account = account_lock(account.pk)
        existing = idempotent_entry(account, idempotency_key, points, Kind.ADJUST)
        if existing:
            return existing
        now = timezone.now()
        if staff_user is not None and approved_by is None:
            _take_staff_allowance(staff_user, points, now)
        if points > 0:
            return credit_entry(
                account,
                points=points,
                kind=Kind.ADJUST,
                reason=reason.strip(),
                now=now,
                staff_user=staff_user,
                idempotency_key=idempotency_key,
                pay_debt=False,
            )
        return debit_entry(
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
    if not isinstance(reason, str) or not reason.strip():
        raise field_error("invalid_transfer", "A reason is required.", "reason", "required")
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
        raise ApplicationError("invalid_points", "Points must be a positive whole number.", {"points": points})
    source = account_for(member=from_member, program=program)
    target = account_for(member=to_member, program=source.program)
    with transaction.atomic(durable=True):
        locked = {a.pk: a for a in accounts_lock([source.pk, target.pk])}
        source, target = locked[source.pk], locked[target.pk]
        if source.tenant.frozen:
            raise ApplicationError("tenant_frozen", "This tenant is frozen: points cannot move.")
        existing = idempotent_entry(source, idempotency_key, -points, Kind.TRANSFER)
        if existing:
            credit = LedgerEntry.objects.get(account=target, idempotency_key=f"{idempotency_key}:in")
            return TransferResult(debit=existing, credit=credit, created=False)
        now = timezone.now()
        debit = debit_entry(
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
        credit = credit_entry(
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
