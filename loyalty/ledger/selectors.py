"""Reads of the points ledger: a member's points summary, their ledger, the member object of the contract.

Each is a fixed number of queries whatever the number of entries or lots (the member read is three).
"""

from typing import Any

from django.db.models import QuerySet, Sum
from django.db.models.expressions import RawSQL
from django.utils import timezone

from loyalty.models import Account, LedgerEntry, PointLot, Program
from loyalty.selectors import member_tier
from loyalty.sql import default_program_id
from members.models import CONSENT_CHANNELS, Member

EXPIRING_LISTED = 10


def entry_dict(entry: LedgerEntry) -> dict[str, Any]:
    """A ledger entry in the contract's shape."""
    return {
        "id": entry.pk,
        "kind": entry.kind,
        "points": entry.points,
        "balance_after": entry.balance_after,
        "reason": entry.reason,
        "order_id": entry.order_id,
        "campaign": entry.campaign_id,
        "created_at": entry.created_at.isoformat(),
        "expires_at": entry.expires_at.isoformat() if entry.expires_at else None,
    }


def member_account(member: Member, program: Program | None = None) -> Account | None:
    accounts = Account.objects.filter(tenant_id=member.tenant_id, member=member)
    if program is not None:
        return accounts.filter(program=program).first()
    return accounts.filter(program_id=RawSQL(*default_program_id(member.tenant_id))).first()


def member_points_summary(member: Member, program: Program | None = None) -> dict[str, Any]:
    """`{"balance", "pending", "lifetime_earned", "expiring": [{"points", "expires_at"}]}` in two queries.

    `expiring` lists the next expiry dates with the points still left on them, soonest first.
    """
    account = member_account(member, program)
    if account is None:
        return {"balance": 0, "pending": 0, "lifetime_earned": 0, "expiring": []}
    expiring = (
        PointLot.objects.filter(account=account, remaining__gt=0, expires_at__gt=timezone.now())
        .values("expires_at")
        .annotate(points=Sum("remaining"))
        .order_by("expires_at")[:EXPIRING_LISTED]
    )
    return {
        "balance": account.balance,
        "pending": account.pending,
        "lifetime_earned": account.lifetime_earned,
        "expiring": [{"points": row["points"], "expires_at": row["expires_at"].isoformat()} for row in expiring],
    }


def ledger_entries(member: Member, program: Program | None = None) -> QuerySet[LedgerEntry]:
    """The member's ledger entries, newest first (a queryset: paginate it; render with `entry_dict`)."""
    entries = LedgerEntry.objects.filter(tenant_id=member.tenant_id, account__member=member)
    if program is not None:
        entries = entries.filter(account__program=program)
    return entries.order_by("-created_at", "-pk")


def _iso(value):
    return value.isoformat() if value else None


def member_detail(member: Member, program: Program | None = None) -> dict[str, Any]:
    """The member object of the contract (with tier and points) in three queries."""
    tier = member_tier(member, program)
    return {
        "external_id": member.external_id,
        "email": member.email,
        "name": member.name,
        "phone": member.phone,
        "country": member.country,
        "city": member.city,
        "birth_date": member.birth_date.isoformat() if member.birth_date else None,
        "attributes": member.attributes,
        "marketing_consent": member.marketing_consent,
        "consent": {channel: getattr(member, f"{channel}_consent") for channel in CONSENT_CHANNELS},
        "consent_changed_at": {
            channel: _iso(getattr(member, f"{channel}_consent_changed_at")) for channel in CONSENT_CHANNELS
        },
        "status": member.status,
        "tier": {"code": tier.code, "name": tier.name} if tier else None,
        "points": member_points_summary(member, program),
        "referral_code": member.referral_code,
        "created_at": member.created_at.isoformat(),
    }
