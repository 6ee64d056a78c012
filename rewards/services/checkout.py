"""The checkout: the ONE public service that records a paid order, in one durable transaction.

Every paid order goes through `order_checkout`: the API (`POST /api/v1/orders`), the demo loader, the benches
and the tests; an order without codes is a checkout with nothing to redeem. Loyalty keeps only the earning
step that runs inside this transaction (`order_record_paid_in_transaction`): it cannot import rewards, and a
second durable entry point there would record orders without redemptions or referral rewards.

`order_checkout` composes the existing services, each in its in-transaction form:

1. `rewards.services.redemption.redeem_in_transaction`: the codes (and qualifying promotions, and points as
   payment) are redeemed all or nothing. A refusal raises the same 422 `redemption_failed` body as
   `POST /api/v1/redemptions`, and the whole transaction rolls back: no redemption, no order, no points, no
   usage. (The engine's failure counters and `redemption.failed` are not written either: they would share the
   rolled-back transaction; the standalone `redeem` records them.)
2. `loyalty.services.earning.order_record_paid_in_transaction`: the paid order is recorded and the earning rules apply.
   **Points are earned on what the member paid after discounts**: the order amount minus the discounts of codes
   and promotions, minus the value paid with points (points do not earn points). Gift cards count as money
   paid (they were bought with money that earned nothing). Earning rules see that figure as `order.amount`;
   rules on categories take the discount off their items pro rata. The order itself keeps its full amount and
   items, so that returns take points back pro rata of list prices.
3. `rewards.services.catalog.referral_reward_grant`: the referrer of a referred member is rewarded for the
   member's first paid order whose paid amount (after discounts, as above) reaches the referral campaign's
   minimum, once per referred member (a unique constraint is the backstop).

Idempotent per order id: an order id already recorded returns its first result (with its redemption) and
changes nothing, also when a concurrent first attempt commits while this one waits for its locks (the retry
then rolls back whatever it did and answers with the first result).

Lock order: the referral campaigns (only for a referred member's first order), then the redemption's campaigns
and codes, then the member's points account, then the referrer's account. Referral campaigns are never
redeemed with codes, so taking them first does not cross the redemption engine's order.
"""

from __future__ import annotations

import datetime as dt
from contextlib import nullcontext
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns.lock_objects import campaigns_for_update
from campaigns.models import Campaign, CampaignType
from common.answer import Answer
from common.errors import ApplicationError
from common.plain_sql import batched
from loyalty.models import Order
from loyalty.services.earning import (
    OrderResult,
    PaidOrder,
    order_clean,
    order_record_paid_in_transaction,
    order_recorded,
)
from members.models import Member, Tenant
from members.selectors import member_for
from rewards.services.catalog import referral_reward_grant
from rewards.services.redemption import redeem_in_transaction
from rewards.services.redemption.traces import trace_record

ZERO = Decimal("0.00")


class _Replay(Exception):
    """The order id was recorded by a concurrent attempt: roll back and answer with its first result."""

    def __init__(self, result: OrderResult):
        self.result = result


class _RedemptionRefused(Exception):
    def __init__(self, error: ApplicationError):
        self.error = error


def _redemption_order(order: PaidOrder) -> dict:
    """The order in the redemption engine's shape (`POST /api/v1/validations`)."""
    return {
        "amount": str(order.amount),
        "location": order.location,
        "items": [
            {
                "sku": item["sku"],
                "category": item["category"],
                "quantity": item["quantity"],
                "unit_price": str(item["unit_price"]),
            }
            for item in order.items
        ],
    }


def paid_amount_after(amount: Decimal, *, discount: Decimal, points_value: Decimal) -> Decimal:
    """What earns points (and counts for the referral minimum): the amount after discounts and points paid."""
    return max(ZERO, amount - discount - points_value)


def _lock_referral_campaigns(tenant: Tenant, member: Member) -> None:
    """A referred member's possibly first order: lock the referral campaigns before anything else (lock order)."""
    if member.referred_by_id is None:
        return
    if Order.objects.filter(tenant_id=tenant.pk, member=member).exists():
        return  # not their first order: no grant can follow
    ids = list(
        Campaign.objects.filter(tenant_id=tenant.pk, type=CampaignType.REFERRAL, enabled=True).values_list(
            "pk", flat=True
        )
    )
    campaigns_for_update(tenant=tenant, ids=ids)


def order_checkout(
    *,
    tenant: Tenant,
    member: Member | str,
    order_id: str,
    amount: Decimal | str,
    currency: str,
    items: list[dict] | None = None,
    location: str = "",
    occurred_at: dt.datetime | str | None = None,
    channel: str = "",
    codes: list | None = None,
    points: int = 0,
    integration=None,
    answer: Answer | None = None,
) -> OrderResult:
    """Redeem the order's codes, record it as paid, earn points on what was paid, reward a referrer: all or nothing.

    `answer(result)`, when given, is called inside the transaction just before its commit, for a first
    recording only (the API stores its idempotent answer there); a replay writes nothing and is not answered.

    Returns the order's result (`created=False` for a replay of an order id already recorded); with codes or
    points its `redemption` is the redemption body of `POST /api/v1/redemptions`. Raises 400 `invalid_order`
    (or the redemption engine's 400 `validation_error` for malformed codes), 404 `member_not_found`,
    422 `redemption_failed` (nothing written), 422 `tenant_frozen`.
    """
    now = timezone.now()
    order = order_clean(
        tenant=tenant,
        order_id=order_id,
        amount=amount,
        currency=currency,
        items=items,
        location=location,
        occurred_at=occurred_at,
        channel=channel,
        now=now,
    )
    member = member_for(tenant, member)
    wants_redemption = bool(codes) or bool(points)
    # Without codes, the last writes (the events, the stored answer) go to the server as one statement; with
    # codes, the redemption's statements run as they come (the referral grant after them may read its rows).
    last_writes = nullcontext() if wants_redemption else batched()
    try:
        with transaction.atomic(durable=True), last_writes:
            if wants_redemption:  # without codes the check under the account lock is enough (one query less)
                replay = order_recorded(tenant, order.order_id)
                if replay is not None:
                    return replay
            _lock_referral_campaigns(tenant, member)
            redemption = None
            paid = order.amount
            if wants_redemption:
                try:
                    redemption = redeem_in_transaction(
                        tenant=tenant,
                        member=member,
                        order_id=order.order_id,
                        order=_redemption_order(order),
                        codes=codes or [],
                        points=points or 0,
                        channel=order.channel,
                        integration=integration,
                    )
                except ApplicationError as exc:
                    if exc.code == "redemption_failed":
                        raise _RedemptionRefused(exc) from None
                    raise
                paid = paid_amount_after(
                    order.amount, discount=redemption.discount, points_value=redemption.points_value
                )
            result = order_record_paid_in_transaction(
                tenant=tenant,
                member=member,
                order=order,
                paid_amount=paid if redemption is not None else None,
                result_extra={"redemption": redemption.result} if redemption is not None else None,
                now=now,
            )
            if not result.created:
                raise _Replay(result)
            if member.referred_by_id is not None:
                referral_reward_grant(member=member, order_id=order.order_id, amount=paid)
            if answer is not None:
                answer(result)
            return result
    except _Replay as replay:
        return replay.result
    except _RedemptionRefused as refused:
        # A concurrent first attempt of this order id may have used the codes: then this is a replay.
        replay = order_recorded(tenant, order.order_id)
        if replay is not None:
            return replay
        evaluation = refused.error.evaluation
        trace_record(  # the refused attempt, on its own now that the checkout rolled back
            tenant=tenant,
            kind="redemption",
            evaluation=evaluation,
            member=member,
            order_id=order.order_id,
            order=_redemption_order(order),
            codes=[line.text for line in evaluation.lines],
            points=points or 0,
            at=now,
            now=timezone.now(),
            channel=order.channel,
            integration=integration,
        )
        raise refused.error from None
    except IntegrityError:
        replay = order_recorded(tenant, order.order_id)
        if replay is None:
            raise
        return replay
