"""Redemption: every code of a request redeemed all or nothing, under the locks of campaigns, codes, account."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from campaigns import engine
from campaigns.lock_objects import (
    campaigns_and_codes_for_update,
    campaigns_of_codes_for_update,
    codes_named_for_update,
)
from campaigns.sql import campaign_counts_add, live_promotion_exists, live_promotions_and_frozen_or_locked
from common.errors import ApplicationError
from common.events import publish
from common.plain_sql import batched, flush, insert_values, insert_with_children, update_values
from common.validation import FieldErrors, field_error
from loyalty.ledger import post_spend
from members.models import Member, Tenant
from rewards.models import EvaluationTrace, GiftCardTransaction, Redemption, RedemptionCode
from rewards.services.redemption.counters import (
    apply_deltas,
    exhausted_limit,
    line_deltas,
    mark_exhausted,
)
from rewards.services.redemption.documents import redemption_document
from rewards.services.redemption.load import (
    check_member,
    context_loader,
    points_request_for,
)
from rewards.services.redemption.parse import INVALID, ZERO, parse_request
from rewards.services.redemption.traces import trace_build, trace_record, traces_on
from rewards.services.redemption.validate import evaluate


class _Refused(Exception):
    def __init__(self, evaluation: engine.Evaluation):
        self.evaluation = evaluation


BUDGET_REASONS = {
    "discount_budget_exceeded": "discount_total",
    "order_value_budget_exceeded": "order_value_total",
}


def _prepare(*, tenant, member, order_id, order, codes, points) -> tuple[str, dict, list, int]:
    """Check the input (before any transaction): (order_id, order, code requests, points)."""
    check_member(tenant, member)
    errors = FieldErrors()
    errors.text(order_id, "order_id", max_length=100, required=True, strip=True)
    order, requests, points = parse_request(order=order, codes=codes, points=points, errors=errors)
    if not requests and not points and not live_promotion_exists(tenant.pk, timezone.now()):
        raise field_error(*INVALID, "codes", "nothing to redeem: give codes or points")
    return order_id.strip(), order, requests, points


def _refusal_error(evaluation: engine.Evaluation) -> ApplicationError:
    error = ApplicationError(
        "redemption_failed",
        "The redemption was refused; nothing was redeemed.",
        details=evaluation.as_dict(),
    )
    error.evaluation = evaluation
    return error


def redeem(
    *,
    tenant: Tenant,
    member: Member | None,
    order_id: str,
    order: dict,
    codes: list,
    points: int = 0,
    channel: str = "",
    integration=None,
    staff_user=None,
    as_of: dt.datetime | None = None,
) -> Redemption:
    """Redeem every code (and the qualifying promotions, and points) on one order, or nothing.

    `as_of` (support, after the fact) judges the codes against the rules and campaign state at that past time;
    the redemption is still recorded now.

    Runs in its own durable transaction. Raises ApplicationError("redemption_failed", details=<the
    validation body>) when any part is refused; the failure is then counted on the campaigns involved and
    `redemption.failed` is emitted (in a transaction of its own, after the refused one rolled back).
    """
    return _redeem_durable(
        tenant=tenant,
        member=member,
        order_id=order_id,
        order=order,
        codes=codes,
        points=points,
        channel=channel,
        integration=integration,
        staff_user=staff_user,
        as_of=as_of,
    )


def redeem_with_answer(
    *,
    answer: Callable[[Redemption], None],
    refused: Callable[[ApplicationError], None] | None = None,
    **arguments,
) -> Redemption:
    """`redeem(**arguments)`, calling `answer(redemption)` inside its transaction just before the commit.

    For the API: it stores its idempotent response there, so that the redemption and the answer to its
    retries commit together (and one commit, not two, waits for the disk). A refusal writes too (the failure
    counted on the campaigns, `redemption.failed`): `refused(error)` is called inside that transaction just
    before its commit, with the ApplicationError then raised, so that its answer commits with those writes.
    """
    return _redeem_durable(**arguments, answer=answer, refused=refused)


def _redeem_durable(
    *,
    tenant,
    member,
    order_id,
    order,
    codes,
    points=0,
    channel="",
    integration=None,
    staff_user=None,
    answer=None,
    as_of=None,
    refused=None,
) -> Redemption:
    order_id, order, requests, points = _prepare(
        tenant=tenant, member=member, order_id=order_id, order=order, codes=codes, points=points
    )
    try:
        # The last writes (counters, trace, event, the stored answer) go to the server as one statement.
        with transaction.atomic(durable=True), batched():
            redemption = _redeem_locked(
                tenant=tenant,
                member=member,
                order_id=order_id,
                order=order,
                requests=requests,
                points=points,
                channel=channel,
                integration=integration,
                staff_user=staff_user,
                as_of=as_of,
            )
            if answer is not None:
                answer(redemption)
    except _Refused as refusal:
        trace = {
            "order_id": order_id,
            "order": order,
            "codes": [r.text for r in requests],
            "points": points,
            "at": as_of or timezone.now(),
            "channel": channel,
            "integration": integration,
        }
        error = _refusal_error(refusal.evaluation)
        _record_failure(
            tenant=tenant,
            member=member,
            order_id=order_id,
            evaluation=refusal.evaluation,
            trace=trace,
            before_commit=(lambda: refused(error)) if refused is not None else None,
        )
        raise error from None
    return redemption


def redeem_in_transaction(
    *,
    tenant: Tenant,
    member: Member | None,
    order_id: str,
    order: dict,
    codes: list,
    points: int = 0,
    channel: str = "",
    integration=None,
    staff_user=None,
) -> Redemption:
    """`redeem(...)` inside the caller's `transaction.atomic()`, for compositions such as a checkout.

    Same arguments, checks, locks (campaigns, then codes, then the points account) and writes as `redeem`,
    but no transaction of its own: the caller commits or rolls back. A refusal raises the same
    ApplicationError("redemption_failed") (with the engine's evaluation as `.evaluation`) after rolling
    back what this call wrote (a savepoint); the failure is not counted on the campaigns and no
    `redemption.failed` is emitted, since those writes would share the caller's fate.
    """
    if not connection.in_atomic_block:
        raise transaction.TransactionManagementError("redeem_in_transaction() needs the caller's transaction.atomic().")
    order_id, order, requests, points = _prepare(
        tenant=tenant, member=member, order_id=order_id, order=order, codes=codes, points=points
    )
    try:
        with transaction.atomic():
            return _redeem_locked(
                tenant=tenant,
                member=member,
                order_id=order_id,
                order=order,
                requests=requests,
                points=points,
                channel=channel,
                integration=integration,
                staff_user=staff_user,
            )
    except _Refused as refused:
        raise _refusal_error(refused.evaluation) from None


def _apply_writes(*, campaign_d, code_d, usage_d, redemption: Redemption, trace) -> None:
    """The counters, the usage counters, the evaluation trace (and the points entry's link, when points paid):
    one statement on PostgreSQL."""
    also = [insert_values(EvaluationTrace, [trace])] if trace is not None else []
    if redemption.points_entry_id:
        also.append(update_values(redemption, ["points_entry_id"]))
    apply_deltas(campaign_d, code_d, usage_d, also=also)


def _redeem_locked(*, tenant, member, order_id, order, requests, points, channel, integration, staff_user, as_of=None):
    now = timezone.now()
    at = as_of or now  # the time the codes are judged at: the order's, when support applies them afterwards
    texts = {r.text for r in requests}
    # Read first the kill switch and the live promotions (usually none), and when there are none, in the same
    # statement, the campaigns and codes of the request, locked; else those are read once, locked, below.
    frozen, live_promotions, locked = live_promotions_and_frozen_or_locked(tenant.pk, texts, at)
    context = context_loader(tenant, member, order, at, [p.rule for p in live_promotions])
    candidates = (
        []
        if frozen
        else engine.promotion_candidates(
            promotions=live_promotions,
            now=at,
            tz=tenant.tz,
            member_id=member.pk if member else None,
            order=order,
            context=context,
        )
    )
    promotion_ids = [p.pk for p in candidates]
    # The global lock order: campaigns, then codes (then the points account, in the ledger).
    if promotion_ids:
        campaigns = campaigns_of_codes_for_update(tenant=tenant, texts=texts, ids=promotion_ids)
        codes = codes_named_for_update(tenant=tenant, texts=texts, campaign_ids=set(campaigns))
        for code in codes:
            code.campaign = campaigns[code.campaign_id]
    elif locked is not None:
        campaigns, codes = locked
    else:
        campaigns, codes = campaigns_and_codes_for_update(tenant=tenant, texts=texts)
    context.rules.extend(code.campaign.rule for code in codes)
    promotions = [campaigns[pk] for pk in promotion_ids if pk in campaigns]
    points_request, account = points_request_for(tenant, member, points)
    evaluation = evaluate(
        tenant=tenant,
        member=member,
        order=order,
        requests=requests,
        points_request=points_request,
        codes=codes,
        promotions=promotions,
        now=at,
        frozen=frozen,
        context=context,
    )
    if not evaluation.valid:
        raise _Refused(evaluation)

    redemption = Redemption(
        tenant=tenant,
        member=member,
        order_id=order_id,
        order=order,
        order_amount=evaluation.amount,
        discount=evaluation.discount,
        gift_cards=evaluation.gift_cards,
        points_used=evaluation.points_used,
        points_value=evaluation.points_value,
        total=evaluation.total,
        channel=channel or "",
        integration_id=getattr(integration, "pk", None),
        integration_name=str(integration)[:200] if integration is not None else "",
        staff_user=staff_user,
        created_at=now,
    )
    applied = evaluation.applied
    lines = [
        RedemptionCode(
            tenant=tenant,
            redemption=redemption,
            campaign=x.campaign,
            code=x.code,
            member=member,
            kind=(
                RedemptionCode.Kind.PROMOTION
                if x.code is None
                else RedemptionCode.Kind.GIFT_CARD
                if x.is_gift_card
                else RedemptionCode.Kind.CODE
            ),
            discount=x.discount,
            order_amount=evaluation.amount,
            usage_keys=x.usage_keys,
            created_at=now,
        )
        for x in applied
    ]
    insert_with_children(redemption, lines, "redemption")  # one statement on PostgreSQL
    gift_debits: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for x in applied:
        if x.is_gift_card and x.discount > 0:
            gift_debits[x.code.pk] += x.discount
    campaign_d, code_d, usage_d = line_deltas(lines, +1, gift_debits)
    if gift_debits:
        codes_by_pk = {c.pk: c for c in codes}
        GiftCardTransaction.objects.bulk_create(
            [
                GiftCardTransaction(
                    tenant=tenant,
                    code_id=pk,
                    redemption=redemption,
                    kind=GiftCardTransaction.Kind.DEBIT,
                    amount=-debit,
                    balance_after=codes_by_pk[pk].balance - debit,
                    created_at=now,
                )
                for pk, debit in gift_debits.items()
            ]
        )
    if evaluation.points_used:
        try:
            entry = post_spend(
                account=account,
                points=evaluation.points_used,
                reason=f"Paid order {order_id} with points",
                order_id=order_id,
                idempotency_key=f"redemption:{redemption.pk}",
            )
        except ApplicationError as exc:
            if exc.code != "points_insufficient":
                raise
            evaluation.points_reason = "points_insufficient"
            evaluation.points_used, evaluation.points_value = 0, ZERO
            raise _Refused(evaluation) from None
        redemption.points_entry_id = entry.pk
    # The answer is not written with the row: it is derived from it (`redemption_document`); the stored copies
    # are the idempotent answer to retries and the event's.
    body = redemption_document(redemption, lines=lines, evaluation=evaluation)
    redemption.result = body
    trace = None
    if traces_on():
        trace = trace_build(  # the counters as this attempt read them, before its own counts
            tenant=tenant,
            kind="redemption",
            evaluation=evaluation,
            member=member,
            order_id=order_id,
            order=order,
            codes=[r.text for r in requests],
            points=points,
            at=at,
            now=now,
            channel=channel,
            integration=integration,
            redemption_id=redemption.pk,
        )
    _apply_writes(campaign_d=campaign_d, code_d=code_d, usage_d=usage_d, redemption=redemption, trace=trace)
    for pk, (n, discount, order_value) in campaign_d.items():
        campaign = campaigns[pk]
        campaign.redemptions_count += n
        campaign.discount_used += discount
        campaign.order_value_used += order_value
        limit = exhausted_limit(campaign)
        if limit and campaign.budget_exhausted_at is None:
            flush()  # the counters first: the same campaign row
            mark_exhausted(campaign, limit, now)
    publish(tenant, "redemption.succeeded", body)
    return redemption


def _record_failure(
    *,
    tenant,
    member,
    order_id,
    evaluation: engine.Evaluation,
    trace: dict | None = None,
    before_commit: Callable[[], None] | None = None,
) -> None:
    """Count the failure on the campaigns involved, note budgets that ran out, emit `redemption.failed`.

    `before_commit()` is called inside the transaction just before its commit (the API's stored answer)."""
    now = timezone.now()
    campaign_ids = {line.campaign.pk for line in evaluation.lines if line.campaign is not None and not line.valid}
    exhausted = {
        line.campaign.pk: BUDGET_REASONS.get(line.reason)
        or (
            "redemptions_total"
            if line.reason == "redemptions_total_exceeded" and line.details.get("scope") == "campaign"
            else ""
        )
        for line in evaluation.lines
        if line.campaign is not None and not line.valid
    }
    with transaction.atomic(durable=True), batched():
        if trace is not None:
            trace_record(tenant=tenant, kind="redemption", evaluation=evaluation, member=member, now=now, **trace)
        campaign_counts_add({pk: {"redemptions_failed": 1} for pk in campaign_ids})
        for line in evaluation.lines:
            limit = exhausted.get(line.campaign.pk) if line.campaign else ""
            if limit:
                flush()  # the counts first: the same campaign row
                mark_exhausted(line.campaign, limit, now)
                exhausted[line.campaign.pk] = ""
        publish(
            tenant,
            "redemption.failed",
            {
                "order_id": order_id,
                "member": member.external_id if member else None,
                "codes": evaluation.failures(),
                "points": evaluation.as_dict()["points"],
            },
        )
        if before_commit is not None:
            before_commit()
