"""Tiers: up at once when earning passes a threshold, up or down at the scheduled evaluation; every move recorded."""

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from common.events import publish
from common.job_locks import job_lock_take
from common.validation import FieldErrors
from loyalty import ledger
from loyalty import sql as loyalty_sql
from loyalty.expiry import add_months
from loyalty.ledger.posting import Kind
from loyalty.lock_objects import account_lock
from loyalty.models import (
    Account,
    LedgerEntry,
    MemberTier,
    Program,
    Tier,
    TierChange,
)
from members.models import Member


def tier_dict(tier: Tier | None) -> dict[str, Any] | None:
    return {"code": tier.code, "name": tier.name} if tier else None


MAX_QUALIFICATION_MONTHS = 120  # a program's window; a larger stored value is read as this


def qualification_since(program: Program, now: dt.datetime) -> dt.datetime:
    """The start of the qualification window that ends at `now` (the calculator's synthetic year reads it too)."""
    months = min(program.qualification_window_months, MAX_QUALIFICATION_MONTHS)
    return dt.datetime.combine(add_months(now.date(), -months), now.time(), now.tzinfo)


def qualifying_points(account: Account, program: Program, now: dt.datetime) -> int:
    """Points earned in the qualification window, net of returns (spend reversals and adjustments excluded)."""
    since = qualification_since(program, now)
    total = LedgerEntry.objects.filter(
        Q(kind=Kind.EARN) | Q(kind=Kind.REVERSE, reverses__isnull=True), account=account, created_at__gte=since
    ).aggregate(s=Sum("points"))["s"]
    return max(0, total or 0)


def target_tier(tiers: list[Tier], points: int) -> Tier | None:
    """The best tier whose threshold `points` reach (pure)."""
    reached = [t for t in tiers if t.threshold <= points]
    return max(reached, key=lambda t: (t.threshold, t.rank)) if reached else None


def tier_key(tier: Tier | None) -> tuple[int, int]:
    return (-1, -1) if tier is None else (tier.threshold, tier.rank)


def _tier_move(
    *,
    account: Account,
    status: MemberTier | None,
    target: Tier | None,
    points: int,
    reason: str,
    now: dt.datetime,
    staff_user=None,
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
        reason=reason[:100],
        staff_user=staff_user,
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
    target = target_tier(tiers, points)
    current = status.tier if status else None
    if target is not None and (status is None or tier_key(target) > tier_key(current)):
        return _tier_move(account=account, status=status, target=target, points=points, reason="upgrade", now=now).tier
    return current


def tier_state(account: Account) -> tuple[list[Tier], Tier | None]:
    """The program's tiers and the member's current one, in one query (read under the account lock).

    Plain SQL (`loyalty.sql`): it runs on every order, and compiling the queryset cost more than running it.
    """
    tiers = loyalty_sql.tiers_with_held(account)
    return tiers, next((t for t in tiers if t.held), None)


def upgrade_after_earning(
    tiers: list[Tier], current: Tier | None, lifetime_earned: int, qualifying: Callable[[], int]
) -> tuple[Tier, int] | None:
    """The higher tier an earning reaches and the qualifying points it reaches it with, or None (pure).

    Qualifying points (earned in the window, net of returns) never exceed `lifetime_earned` (every earn entry
    ever), so a tier whose threshold is above it cannot be reached: `qualifying()` (the window's sum, a query on a
    real account) is called only when a higher tier is within reach.
    """
    reachable = [t for t in tiers if tier_key(t) > tier_key(current) and t.threshold <= lifetime_earned]
    if not reachable:
        return None
    points = qualifying()
    target = target_tier(tiers, points)
    if target is None or tier_key(target) <= tier_key(current):
        return None
    return target, points


def tier_upgrade_after_earning(account: Account, tiers: list[Tier], current: Tier | None, now: dt.datetime):
    """`_tier_upgrade` for the earning hot path: the window's sum is skipped when no higher tier is reachable
    (`upgrade_after_earning`, which the calculator's synthetic year calls too)."""
    upgrade = upgrade_after_earning(
        tiers, current, account.lifetime_earned, lambda: qualifying_points(account, account.program, now)
    )
    if upgrade is None:
        return current
    target, points = upgrade
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
    target = target_tier(tiers, points)
    current = status.tier if status else None
    if (status is None and target is None) or (status is not None and current == target):
        if status is not None:
            status.qualifying_points, status.evaluated_at = points, now
            status.save(update_fields=["qualifying_points", "evaluated_at"])
        return current
    reason = "upgrade" if tier_key(target) > tier_key(current) else "downgrade"
    if reason == "downgrade" and status is not None and status.protected_until and now < status.protected_until:
        status.qualifying_points, status.evaluated_at = points, now  # support protected this tier until then
        status.save(update_fields=["qualifying_points", "evaluated_at"])
        return current
    return _tier_move(account=account, status=status, target=target, points=points, reason=reason, now=now).tier


def tiers_reevaluate(*, program: Program, now: dt.datetime | None = None, chunk: int = 500) -> int:
    """The scheduled evaluation of every account of a program, in chunks of one transaction each.

    Each chunk takes the program's evaluation lock (`common.job_locks`): an overlapping run stops there."""
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
            if not job_lock_take(f"tiers_reevaluate:{program.pk}"):
                return changed  # an overlapping run of this program's evaluation holds it: it does the rest
            for account_id in ids:
                account = account_lock(account_id)
                before = MemberTier.objects.filter(member_id=account.member_id, program=program).first()
                after = _tier_evaluate_locked(account, now, tiers)
                if (before.tier if before else None) != after:
                    changed += 1
        last_pk = ids[-1]


def tier_assign(
    *,
    member: Member,
    tier: Tier,
    reason: str,
    staff_user,
    protected_until: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> MemberTier:
    """Support sets a member's tier by hand, optionally protected from downgrades until a time.

    An upgrade earned later still applies; the tier moves (and its reason, with the staff user) are recorded.
    """
    now = now or timezone.now()
    errors = FieldErrors()
    reason = errors.text(reason, "reason", max_length=80, required=True, strip=True)
    if protected_until is not None:
        errors.check(protected_until > now, "protected_until", "must be in the future")
    errors.raise_if_any("validation_error", "The tier assignment is incomplete.")
    account = ledger.account_for(member=member, program=tier.program)
    with transaction.atomic(durable=True):
        account = account_lock(account.pk)
        status = MemberTier.objects.filter(member_id=account.member_id, program_id=account.program_id).first()
        points = qualifying_points(account, account.program, now)
        if status is None or status.tier_id != tier.pk:
            status = _tier_move(
                account=account,
                status=status,
                target=tier,
                points=points,
                reason=f"manual: {reason}",
                now=now,
                staff_user=staff_user,
            )
        status.protected_until = protected_until
        status.save(update_fields=["protected_until"])
        return status


def tier_progress(account: Account, now: dt.datetime | None = None) -> dict[str, Any]:
    """Where a member stands: current tier, what keeps it, and what the next one needs (four queries).

    The support console and the cockpit answer "why am I Silver?" from this; it reads, never moves a tier.
    """
    now = now or timezone.now()
    program = account.program
    tiers, current = tier_state(account)
    points = qualifying_points(account, program, now)
    higher = sorted((t for t in tiers if tier_key(t) > tier_key(current)), key=tier_key)
    following = next((t for t in higher if t.threshold > points), None)
    reached = target_tier(tiers, points)
    return {
        "tier": current,
        # A higher tier the points already reach: the member moves up at the next evaluation.
        "due": reached if reached is not None and tier_key(reached) > tier_key(current) else None,
        "qualifying_points": points,
        "window_months": program.qualification_window_months,
        "keeps_current": current is None or points >= current.threshold,
        "short_of_current": max(0, current.threshold - points) if current else 0,
        "next_tier": following,
        "to_next": max(0, following.threshold - points) if following else 0,
        "percent_to_next": min(100, points * 100 // following.threshold) if following and following.threshold else 100,
        "protected_until": MemberTier.objects.filter(member_id=account.member_id, program_id=account.program_id)
        .values_list("protected_until", flat=True)
        .first(),
    }
