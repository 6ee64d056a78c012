"""A member's data export (GDPR art. 15 and 20): everything the tenant holds about them, as one JSON document.

It reads several apps (members, loyalty, campaigns, rewards), so it lives in `rewards`, the highest app it needs
(ARCHITECTURE.md). One query per section whatever the history's length, and the document is written as it is
read (`.iterator()`: rows come in chunks, on PostgreSQL through a server-side cursor), so a member with a
hundred thousand ledger entries costs no more memory than one with ten.
"""

import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import F
from django.utils import timezone

from campaigns.models import Publication
from loyalty.models import Account, LedgerEntry, MemberTier, Order, OrderItem, OrderReturn, TierChange
from members.models import (
    CONSENT_CHANNELS,
    ConsentChange,
    CustomEvent,
    ErasureRequest,
    Member,
    Tenant,
    TermsAcceptance,
)
from rewards.models import Redemption, RedemptionCode, RewardPurchase

CHUNK = 2000
ALIAS = "out_"  # the prefix of values() aliases (an alias may not be a field's name); dropped in the document
PROFILE = ("external_id", "email", "name", "phone", "country", "city", "birth_date", "attributes", "referral_code")


def _profile(member: Member) -> dict[str, Any]:
    profile: dict[str, Any] = {name: getattr(member, name) for name in PROFILE}
    profile["status"] = member.status
    profile["created_at"] = member.created_at
    profile["consent"] = {c: getattr(member, f"{c}_consent") for c in CONSENT_CHANNELS}
    profile["consent_changed_at"] = {c: getattr(member, f"{c}_consent_changed_at") for c in CONSENT_CHANNELS}
    return profile


def _sections(tenant: Tenant, member: Member) -> list[tuple[str, Iterable[dict[str, Any]]]]:
    """(name, rows) in the document's order; each `rows` is one lazy query of the member's rows only.

    A related row is named by its code or name (`out_program`: the program's code), never by a database id."""
    mine = {"tenant": tenant, "member": member}
    entries = LedgerEntry.objects.filter(tenant=tenant, account__member=member)
    return [
        (
            "consent_history",
            ConsentChange.objects.filter(**mine)
            .order_by("changed_at", "pk")
            .values("channel", "granted", "source", "changed_at"),
        ),
        (
            "terms_acceptances",
            TermsAcceptance.objects.filter(**mine)
            .order_by("accepted_at", "pk")
            .values("accepted_at", out_version=F("terms__version")),
        ),
        (
            "accounts",
            Account.objects.filter(**mine)
            .order_by("pk")
            .values("balance", "pending", "lifetime_earned", "debt", "created_at", out_program=F("program__code")),
        ),
        (
            "ledger_entries",
            entries.order_by("created_at", "pk").values(
                "id",
                "kind",
                "points",
                "balance_after",
                "reason",
                "order_id",
                "created_at",
                "expires_at",
                out_program=F("account__program__code"),
            ),
        ),
        (
            "tiers",
            MemberTier.objects.filter(**mine)
            .order_by("pk")
            .values("qualifying_points", "changed_at", out_program=F("program__code"), out_tier=F("tier__code")),
        ),
        (
            "tier_changes",
            TierChange.objects.filter(**mine)
            .order_by("created_at", "pk")
            .values("reason", "created_at", out_from=F("from_tier__code"), out_to=F("to_tier__code")),
        ),
        (
            "orders",
            Order.objects.filter(**mine)
            .order_by("occurred_at", "pk")
            .values(
                "order_id",
                "amount",
                "returned_amount",
                "currency",
                "location",
                "channel",
                "occurred_at",
                "points_total",
                "points_taken_back",
            ),
        ),
        (
            "order_items",
            OrderItem.objects.filter(order__tenant=tenant, order__member=member)
            .order_by("order_id", "pk")
            .values("sku", "category", "quantity", "unit_price", "returned_quantity", out_order=F("order__order_id")),
        ),
        (
            "order_returns",
            OrderReturn.objects.filter(tenant=tenant, order__member=member)
            .order_by("created_at", "pk")
            .values(
                "return_id",
                "amount",
                "items",
                "points_cancelled",
                "points_reversed",
                "created_at",
                out_order=F("order__order_id"),
            ),
        ),
        (
            "codes",
            Publication.objects.filter(**mine)
            .order_by("published_at", "pk")
            .values(
                "channel",
                "published_at",
                out_code=F("code__code"),
                out_campaign=F("campaign__name"),
                out_expires_at=F("code__expires_at"),
                out_redeemed_count=F("code__redeemed_count"),
                out_balance=F("code__balance"),
            ),
        ),
        (
            "redemptions",
            Redemption.objects.filter(**mine)
            .order_by("created_at", "pk")
            .values(
                "id",
                "order_id",
                "order_amount",
                "discount",
                "gift_cards",
                "points_used",
                "total",
                "channel",
                "status",
                "created_at",
            ),
        ),
        (
            "redemption_codes",
            RedemptionCode.objects.filter(tenant=tenant, redemption__member=member)
            .order_by("created_at", "pk")
            .values(
                "kind",
                "discount",
                "rolled_back",
                "created_at",
                out_redemption=F("redemption_id"),
                out_code=F("code__code"),
                out_campaign=F("campaign__name"),
            ),
        ),
        (
            "reward_purchases",
            RewardPurchase.objects.filter(**mine)
            .order_by("created_at", "pk")
            .values("points", "amount", "status", "created_at", out_reward=F("reward__name"), out_code=F("code__code")),
        ),
        (
            "events",
            CustomEvent.objects.filter(**mine).order_by("occurred_at", "pk").values("name", "metadata", "occurred_at"),
        ),
        (
            "erasure_requests",
            ErasureRequest.objects.filter(**mine)
            .order_by("requested_at", "pk")
            .values("state", "requested_at", "carried_out_at", "cancelled_at"),
        ),
    ]


def _dumps(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)


def member_export_chunks(*, tenant: Tenant, member: Member) -> Iterator[str]:
    """The export as pieces of one JSON object: `{"exported_at", "tenant", "profile", "<section>": [...], ...}`.

    Rows are read in chunks and written one by one; nothing but a chunk is held in memory."""
    head = {"exported_at": timezone.now(), "tenant": tenant.slug, "profile": _profile(member)}
    yield _dumps(head)[:-1]
    for name, rows in _sections(tenant, member):
        yield f", {_dumps(name)}: ["
        for i, row in enumerate(rows.iterator(chunk_size=CHUNK)):
            yield ("" if i == 0 else ", ") + _dumps({k.removeprefix(ALIAS): v for k, v in row.items()})
        yield "]"
    yield "}\n"


def member_export(*, tenant: Tenant, member: Member) -> dict[str, Any]:
    """The whole export as one dictionary (tests, management commands)."""
    return json.loads("".join(member_export_chunks(tenant=tenant, member=member)))
