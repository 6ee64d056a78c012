"""Rollback of a redemption: usage, budgets, gift card balances and points given back, once."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns.lock_objects import campaigns_for_update, codes_for_update
from campaigns.models import Campaign
from common.answer import Answer
from common.errors import Conflict
from common.events import publish
from loyalty.ledger import post_spend_reversal
from loyalty.models import LedgerEntry
from members.models import Tenant
from rewards.models import GiftCardTransaction, Redemption, RedemptionCode, RedemptionRollback
from rewards.services.redemption.counters import (
    apply_deltas,
    line_deltas,
)
from rewards.services.redemption.parse import ZERO


def redemption_rollback(*, redemption: Redemption, reason: str, user=None, answer: Answer | None = None) -> Redemption:
    """Undo a redemption: usage counts, budgets, gift card balances and points, exactly once.

    `answer(redemption)` is called inside the transaction just before its commit (see `common.answer`)."""
    with transaction.atomic(durable=True):
        locked = Redemption.objects.select_for_update().get(pk=redemption.pk, tenant_id=redemption.tenant_id)
        if locked.status == Redemption.Status.ROLLED_BACK:
            raise Conflict("already_rolled_back", "This redemption was already rolled back.", {"id": locked.pk})
        now = timezone.now()
        lines = list(locked.lines.all())
        tenant = Tenant.objects.get(pk=locked.tenant_id)
        campaigns = campaigns_for_update(tenant=tenant, ids={line.campaign_id for line in lines})
        codes = codes_for_update(tenant=tenant, ids={line.code_id for line in lines if line.code_id})
        gift_debits: dict[int, Decimal] = defaultdict(lambda: ZERO)
        for line in lines:
            if line.kind == RedemptionCode.Kind.GIFT_CARD and line.discount > 0:
                gift_debits[line.code_id] += line.discount
        campaign_d, code_d, usage_d = line_deltas(lines, -1, gift_debits)
        apply_deltas(campaign_d, code_d, usage_d)
        if gift_debits:
            GiftCardTransaction.objects.bulk_create(
                [
                    GiftCardTransaction(
                        tenant_id=locked.tenant_id,
                        code_id=pk,
                        redemption=locked,
                        kind=GiftCardTransaction.Kind.ROLLBACK,
                        amount=credit,
                        balance_after=codes[pk].balance + credit,
                        created_at=now,
                    )
                    for pk, credit in gift_debits.items()
                ]
            )
        reversal_id = None
        if locked.points_entry_id:
            entry = LedgerEntry.objects.get(pk=locked.points_entry_id)
            reversal_id = post_spend_reversal(entry=entry, reason=f"Rollback of redemption {locked.pk}").pk
        try:
            with transaction.atomic():
                RedemptionRollback.objects.create(
                    tenant_id=locked.tenant_id,
                    redemption=locked,
                    reason=(reason or "")[:300],
                    user=user,
                    points_entry_id=reversal_id,
                    created_at=now,
                )
        except IntegrityError as exc:
            raise Conflict("already_rolled_back", "This redemption was already rolled back.") from exc
        RedemptionCode.objects.filter(redemption=locked).update(rolled_back=True)
        locked.status = Redemption.Status.ROLLED_BACK
        locked.save(update_fields=["status"])
        if campaigns:
            Campaign.objects.filter(pk__in=list(campaigns), budget_exhausted_at__isnull=False).update(
                budget_exhausted_at=None
            )
        publish(
            tenant,
            "redemption.rolled_back",
            {
                "id": str(locked.pk),
                "order_id": locked.order_id,
                "reason": reason or "",
                "member": locked.member.external_id if locked.member_id else None,
                "points_restored": locked.points_used,
                "by": getattr(user, "username", None),
            },
        )
        if answer is not None:
            answer(locked)
    return locked
