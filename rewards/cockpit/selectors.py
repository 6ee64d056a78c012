"""What the cockpit shows a member: the support console's selectors, read for the member themselves.

Every section reads a bounded number of rows, so the home page costs the same queries for a member with five
ledger entries as for one with five thousand.
"""

import datetime as dt
from typing import Any

from django.db.models import Exists, OuterRef, Prefetch
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from loyalty.ledger.selectors import member_account, member_points_summary
from loyalty.services.tiers import tier_progress
from members.models import Member, Tenant, TermsAcceptance, TermsVersion
from members.services import terms_current
from rewards.models import Redemption, RedemptionCode, ReferralGrant
from rewards.selectors import member_reward_sections

EXPIRING_DAYS = 90
HOME_ROWS = 20  # per section of the home page; the catalog page lists every reward
REFERRALS_LISTED = 50


def _when(item: dict[str, Any]) -> dict[str, Any]:
    """The selectors answer ISO strings (the API's shape); a page formats datetimes."""
    if item.get("expires_at"):
        item = {**item, "expires_at": parse_datetime(item["expires_at"])}
    return item


def usable_rewards(*, tenant: Tenant, member: Member) -> dict[str, list[dict[str, Any]]]:
    """What the member can use now: their codes and gift cards with balance, running promotions, and the catalog
    rewards they can afford (the `available` sections of the API's member rewards)."""
    usable = {}
    for section in member_reward_sections(tenant=tenant, member=member, status="available"):
        rows = section.rows(section.queryset().order_by(*section.ordering), limit=HOME_ROWS)
        usable[section.name] = [_when(section.render(row)) for row in rows]
    return usable


def referrals(*, member: Member) -> list[dict[str, Any]]:
    """The members this member referred, newest first, each with whether it earned the referrer's reward yet."""
    rewarded = ReferralGrant.objects.filter(tenant_id=member.tenant_id, referrer=member, referred=OuterRef("pk"))
    referred = (
        Member.objects.filter(tenant_id=member.tenant_id, referred_by=member)
        .annotate(rewarded=Exists(rewarded))
        .order_by("-created_at", "-pk")
        .values("name", "created_at", "rewarded")[:REFERRALS_LISTED]
    )
    # A first name only: the referrer sees that a friend joined, not the friend's data.
    return [
        {"name": (row["name"] or "").split(" ")[0], "joined_at": row["created_at"], "rewarded": row["rewarded"]}
        for row in referred
    ]


def recent_redemptions(*, member: Member) -> list[dict[str, Any]]:
    """The member's latest redemptions, newest first: when, the order, the campaigns, the discount and points
    paid, and whether it was rolled back (two queries: the redemptions, their lines with campaign names)."""
    lines = RedemptionCode.objects.select_related("campaign").only(
        "redemption_id", "kind", "discount", "campaign__name", "code__code"
    )
    rows = (
        Redemption.objects.filter(tenant_id=member.tenant_id, member=member)
        .order_by("-created_at", "-pk")
        .prefetch_related(Prefetch("lines", queryset=lines.select_related("code").order_by("pk")))[:HOME_ROWS]
    )
    return [
        {
            "created_at": row.created_at,
            "order_id": row.order_id,
            "campaigns": [line.campaign.name for line in row.lines.all()],
            "codes": [line.code.code for line in row.lines.all() if line.code is not None],
            "discount": row.discount,
            "points_used": row.points_used,
            "rolled_back": row.status == Redemption.Status.ROLLED_BACK,
        }
        for row in rows
    ]


def terms_state(tenant: Tenant, member: Member) -> tuple[TermsVersion | None, TermsAcceptance | None]:
    """The current terms and the member's acceptance of them (None when not accepted): two queries at most."""
    terms = terms_current(tenant)
    if terms is None:
        return None, None
    return terms, TermsAcceptance.objects.filter(tenant=tenant, member=member, terms=terms).first()


def cockpit_home(*, tenant: Tenant, member: Member) -> dict[str, Any]:
    account = member_account(member)
    points = member_points_summary(member)
    horizon = timezone.now() + dt.timedelta(days=EXPIRING_DAYS)
    expiring = []
    for lot in points["expiring"]:
        expires_at = parse_datetime(lot["expires_at"])
        if expires_at <= horizon:
            expiring.append({"points": lot["points"], "expires_at": expires_at})
    return {
        "points": points,
        "expiring": expiring,
        "expiring_days": EXPIRING_DAYS,
        "tier": tier_progress(account) if account is not None else None,
        "usable": usable_rewards(tenant=tenant, member=member),
        "referrals": referrals(member=member),
        "redemptions": recent_redemptions(member=member),
        "terms_to_accept": _terms_to_accept(tenant, member),
    }


def _terms_to_accept(tenant: Tenant, member: Member) -> TermsVersion | None:
    terms, acceptance = terms_state(tenant, member)
    return terms if terms is not None and acceptance is None else None
