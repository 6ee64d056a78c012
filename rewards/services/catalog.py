"""The reward catalog (rewards bought with points) and referral rewards.

`reward_purchase` spends the points through the ledger and issues what was bought in the same durable
transaction: a coupon code of a `loyalty_reward` campaign, a gift card with the reward's value, a product
fulfilment record (its id is the fulfilment id), or a cashback record. Lock order: the reward row (stock),
then the campaign (codes), then the points account, consistent with the redemption engine's order.

`referral_reward_grant` gives the referrer their reward when the referred member's first paid order reaches
the referral campaign's minimum, once per referred member (a unique constraint is the backstop).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from campaigns.lock_objects import campaign_for_update
from campaigns.models import Campaign, CampaignType
from campaigns.services import publication_assign
from campaigns.sql import campaign_counts_add, live_campaigns
from common.answer import Answer
from common.errors import ApplicationError
from common.money import money_str
from loyalty.ledger import account_for, post_earn, post_spend
from loyalty.models import MemberTier, Order
from members.models import Member, Tenant
from rewards.models import GiftCardTransaction, ReferralGrant, Reward, RewardPurchase


def member_tier_codes(member: Member) -> set[str]:

    return set(
        MemberTier.objects.filter(tenant_id=member.tenant_id, member=member, tier__isnull=False).values_list(
            "tier__code", flat=True
        )
    )


def _check_reward(tenant: Tenant, member: Member, reward: Reward) -> None:
    if reward.tenant_id != tenant.pk or member.tenant_id != tenant.pk or not reward.active:
        raise ApplicationError("reward_not_found", "No such reward.", status=404)
    if member.is_suspended:
        raise ApplicationError("member_suspended", "This member is suspended: points cannot be spent.")
    if reward.tier_codes and not (member_tier_codes(member) & set(reward.tier_codes)):
        raise ApplicationError(
            "tier_required", "This reward is reserved to members of some tiers.", {"tiers": reward.tier_codes}
        )


def reward_purchase(*, tenant: Tenant, member: Member, reward: Reward, answer: Answer | None = None) -> RewardPurchase:
    """Buy `reward` with points: `points_insufficient`, `reward_out_of_stock`, `tier_required`, `member_suspended`
    (422).

    `answer(purchase)` is called inside the transaction just before its commit (see `common.answer`)."""

    _check_reward(tenant, member, reward)
    with transaction.atomic(durable=True):
        locked = Reward.objects.select_for_update().get(pk=reward.pk, tenant=tenant)
        if locked.stock is not None and locked.stock <= 0:
            raise ApplicationError("reward_out_of_stock", "This reward is out of stock.", {"reward": str(locked.pk)})
        campaign = None
        if locked.type in (Reward.Type.COUPON, Reward.Type.GIFT_CARD_CREDIT):
            if locked.campaign_id is None:
                raise ApplicationError("reward_out_of_stock", "This reward has no campaign to issue from.")
            campaign = campaign_for_update(campaign=locked.campaign)
        account = account_for(member=member)
        entry = post_spend(account=account, points=locked.points_cost, reason=f"Reward: {locked.name}"[:300])
        purchase = RewardPurchase(
            tenant=tenant, member=member, reward=locked, points=locked.points_cost, points_entry_id=entry.pk
        )
        if locked.type == Reward.Type.COUPON:
            publication, _ = publication_assign(campaign=campaign, member=member, reuse=False, generate=True)
            purchase.code = publication.code
        elif locked.type == Reward.Type.GIFT_CARD_CREDIT:
            amount = locked.value or campaign.gift_card_amount
            publication, _ = publication_assign(campaign=campaign, member=member, reuse=False, balance=amount)
            purchase.code = publication.code
            purchase.amount = amount
            GiftCardTransaction.objects.create(
                tenant=tenant,
                code=publication.code,
                kind=GiftCardTransaction.Kind.ISSUE,
                amount=amount,
                balance_after=amount,
            )
        elif locked.type == Reward.Type.PRODUCT:
            purchase.status = RewardPurchase.Fulfilment.PENDING
        else:
            purchase.amount = locked.value
        purchase.save()
        if locked.stock is not None:
            Reward.objects.filter(pk=locked.pk).update(stock=F("stock") - 1)
        if answer is not None:
            answer(purchase)
    return purchase


def reward_purchase_document(purchase: RewardPurchase) -> dict[str, Any]:
    """What a reward redemption answers: the code, the gift card credit or the fulfilment id."""
    reward = purchase.reward
    doc: dict[str, Any] = {
        "id": str(purchase.pk),
        "reward": str(reward.pk),
        "name": reward.name,
        "type": reward.type,
        "points": purchase.points,
        "status": purchase.status,
        "code": purchase.code.code if purchase.code_id else None,
        "created_at": purchase.created_at.isoformat(),
    }
    if reward.type == Reward.Type.GIFT_CARD_CREDIT:
        doc["gift_card"] = {"code": purchase.code.code, "balance": money_str(purchase.amount)}
    if reward.type == Reward.Type.PRODUCT:
        doc["fulfilment_id"] = str(purchase.pk)
        doc["sku"] = reward.sku
    if reward.type == Reward.Type.CASHBACK:
        doc["cashback"] = money_str(purchase.amount or Decimal("0"))
    return doc


# --- referral -------------------------------------------------------------------------------------------


def _referral_campaigns(tenant_id: int, now):
    return live_campaigns(tenant_id, CampaignType.REFERRAL, now)


def _is_first_order(member: Member, order_id: str) -> bool:

    return not Order.objects.filter(tenant_id=member.tenant_id, member=member).exclude(order_id=order_id).exists()


def referral_reward_grant(*, member: Member, order_id: str, amount: Decimal) -> list[ReferralGrant]:
    """Reward the member's referrer for this paid order if it is their first and reaches the minimum.

    Composable: call it inside the transaction that records the order (or on its own). Returns the grants
    made (none when the member was not referred, the order is not their first, too small, or already
    rewarded).
    """
    referrer = member.referred_by
    if referrer is None or referrer.tenant_id != member.tenant_id or not _is_first_order(member, order_id):
        return []
    now = timezone.now()
    grants = []
    with transaction.atomic():
        for campaign in _referral_campaigns(member.tenant_id, now):
            minimum = Decimal(str(campaign.config.get("min_order_amount") or "0"))
            if Decimal(str(amount)) < minimum:
                continue
            campaign = campaign_for_update(campaign=campaign)
            if campaign.redemptions_total is not None and campaign.redemptions_count >= campaign.redemptions_total:
                continue  # its limit is reached (locked: the count is current; the check constraint backs it)
            try:
                with transaction.atomic():
                    grant = ReferralGrant.objects.create(
                        tenant_id=member.tenant_id,
                        campaign=campaign,
                        referrer=referrer,
                        referred=member,
                        order_id=order_id,
                    )
            except IntegrityError:
                continue  # this referred member already earned their referrer a reward
            _pay_referrer(grant, campaign)
            grants.append(grant)
    return grants


def _pay_referrer(grant: ReferralGrant, campaign: Campaign) -> None:

    config = campaign.config or {}
    fields = []
    if config.get("points"):
        entry = post_earn(
            account=account_for(member=grant.referrer),
            points=int(config["points"]),
            reason=f"Referral of {grant.referred.external_id}"[:300],
            order_id=grant.order_id,
            campaign_id=campaign.pk,
            idempotency_key=f"referral:{campaign.pk}:{grant.referred_id}",
        )
        grant.points, grant.points_entry_id = int(config["points"]), entry.pk
        fields += ["points", "points_entry_id"]
    if config.get("reward_campaign"):
        reward_campaign = Campaign.objects.filter(tenant_id=campaign.tenant_id, pk=config["reward_campaign"]).first()
        if reward_campaign is not None:
            reward_campaign = campaign_for_update(campaign=reward_campaign)
            publication, _ = publication_assign(
                campaign=reward_campaign, member=grant.referrer, reuse=False, generate=True
            )
            grant.code = publication.code
            fields.append("code")
    if fields:
        grant.save(update_fields=fields)
    campaign_counts_add({campaign.pk: {"redemptions_count": 1}})
