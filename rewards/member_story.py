"""Reads for the support console: find a member without knowing an id, and one member's whole story.

They compose members, the ledger, campaigns and rewards, so they live in the highest app they need. Every
section is a page of rows (a count and a slice), so the story costs the same number of queries for a member with
ten entries as for one with ten thousand.
"""

import dataclasses
import datetime as dt
from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.paginator import Page, Paginator
from django.db.models import F, Q, QuerySet, Value
from django.db.models.functions import Replace
from django.utils import timezone
from simple_history.utils import get_history_model_for_model

from campaigns.models import Code, Publication
from campaigns.reminders import member_reminders
from campaigns.selectors import campaign_status
from loyalty.ledger.selectors import ledger_entries, member_account, member_points_summary
from loyalty.models import LedgerEntry, Order, TierChange
from loyalty.services.tiers import tier_progress
from members.models import CustomEvent, Member
from rewards.models import Redemption, ReferralGrant, RewardPurchase

SEARCH_LIMIT = 50
PHONE_SEPARATORS = " -.()/+"
PAGE_SIZE = 25


@dataclasses.dataclass
class CodeFinding:
    """A code the search matched that no member holds or redeemed: which campaign it belongs to and its state."""

    code: Code
    campaign_state: str
    uses_left: int | None


@dataclasses.dataclass
class SearchResult:
    members: list[Member]
    codes: list[CodeFinding]
    truncated: bool


def _code_texts(query: str) -> list[str]:
    return sorted({query, query.upper()})


def _digits_only(expression):
    for separator in PHONE_SEPARATORS:
        expression = Replace(expression, Value(separator), Value(""))
    return expression


def member_search(*, tenants: QuerySet, query: str) -> SearchResult:
    """Members of the given tenants by email, external id, phone, name, referral code, or a code they hold,
    were published or redeemed; a matched code without any member is reported as a finding (coupon finder)."""
    query = query.strip()
    if not query:
        return SearchResult([], [], False)
    codes = Code.objects.filter(tenant__in=tenants, code__in=_code_texts(query))
    code_members = Q(pk__in=codes.filter(member__isnull=False).values("member"))
    code_members |= Q(pk__in=Publication.objects.filter(code__in=codes).values("member"))
    code_members |= Q(pk__in=Redemption.objects.filter(lines__code__in=codes).values("member"))
    by_text = (
        Q(email__iexact=query)
        | Q(external_id=query)
        | Q(referral_code__iexact=query)
        | Q(name__icontains=query)
        | Q(email__istartswith=query)
    )
    members = Member.objects.filter(tenant__in=tenants)
    digits = "".join(ch for ch in query if ch.isdigit())
    if len(digits) >= 6 and len(digits) * 2 >= len(query.replace(" ", "")):
        # Phones are stored as typed: compare digits only, and the last nine, so "+33 6 12.." finds "06 12..".
        members = members.annotate(phone_digits=_digits_only(F("phone")))
        by_text |= Q(phone_digits__endswith=digits[-9:])
    found = list(
        members.filter(by_text | code_members)
        .select_related("tenant")
        .order_by("tenant__slug", "email", "pk")[: SEARCH_LIMIT + 1]
    )
    findings = []
    if not found:
        now = timezone.now()
        for code in codes.select_related("campaign", "tenant")[:SEARCH_LIMIT]:
            left = None if code.usage_limit is None else max(0, code.usage_limit - code.redeemed_count)
            findings.append(CodeFinding(code, campaign_status(code.campaign, now), left))
    return SearchResult(found[:SEARCH_LIMIT], findings, len(found) > SEARCH_LIMIT)


@dataclasses.dataclass
class LedgerFilter:
    kind: str = ""
    since: dt.date | None = None
    until: dt.date | None = None


def _page(queryset: QuerySet, number: Any) -> Page:
    return Paginator(queryset, PAGE_SIZE).get_page(number)


def _ledger(member: Member, filters: LedgerFilter) -> QuerySet[LedgerEntry]:
    entries = ledger_entries(member).select_related("staff_user")
    if filters.kind:
        entries = entries.filter(kind=filters.kind)
    if filters.since:
        entries = entries.filter(created_at__date__gte=filters.since)
    if filters.until:
        entries = entries.filter(created_at__date__lte=filters.until)
    return entries


def member_story(member: Member, *, pages: dict[str, Any], filters: LedgerFilter) -> dict[str, Any]:
    """Everything support needs about one member; `pages` holds the page number asked for each section."""
    tenant_id = member.tenant_id
    account = member_account(member)
    history_model = get_history_model_for_model(Member)
    sections = {
        "ledger": _ledger(member, filters),
        "codes": Publication.objects.filter(tenant_id=tenant_id, member=member)
        .select_related("code", "campaign")
        .order_by("-published_at", "-pk"),
        "reminders": member_reminders(member),
        "redemptions": Redemption.objects.filter(tenant_id=tenant_id, member=member)
        .select_related("staff_user", "rollback")
        .prefetch_related("lines__code", "lines__campaign")
        .order_by("-created_at", "-pk"),
        "orders": Order.objects.filter(tenant_id=tenant_id, member=member).order_by("-occurred_at", "-pk"),
        "purchases": RewardPurchase.objects.filter(tenant_id=tenant_id, member=member)
        .select_related("reward", "code")
        .order_by("-created_at", "-pk"),
        "referrals": ReferralGrant.objects.filter(tenant_id=tenant_id, referrer=member)
        .select_related("referred", "campaign")
        .order_by("-created_at", "-pk"),
        "events": CustomEvent.objects.filter(tenant_id=tenant_id, member=member).order_by("-occurred_at", "-pk"),
        "tier_changes": TierChange.objects.filter(tenant_id=tenant_id, member=member).select_related(
            "from_tier", "to_tier", "staff_user"
        ),
        "staff_actions": LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Member), object_id=str(member.pk)
        )
        .select_related("user")
        .order_by("-action_time", "-pk"),
        "history": history_model.objects.filter(id=member.pk).select_related("history_user").order_by("-history_date"),
    }
    return {
        "member": member,
        "account": account,
        "points": member_points_summary(member),
        "tier": tier_progress(account) if account is not None else None,
        "referred_members": Member.objects.filter(tenant_id=tenant_id, referred_by=member).count(),
        "pages": {name: _page(queryset, pages.get(name)) for name, queryset in sections.items()},
        "ledger_kinds": LedgerEntry.Kind.choices,
    }
