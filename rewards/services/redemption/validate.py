"""Validation: the engine's verdict on an order and its codes, without writing anything."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from campaigns import engine
from members.models import Member, Tenant
from rewards.services.redemption.load import (
    campaigns_and_frozen,
    check_member,
    codes_by_text,
    context_loader,
    points_request_for,
    usage_counts,
)
from rewards.services.redemption.parse import parse_request
from rewards.services.redemption.traces import trace_record


class ValidationResult:
    """The outcome of `validate`: `.valid`, `.as_dict()` (the contract's validation body)."""

    def __init__(self, evaluation: engine.Evaluation):
        self.evaluation = evaluation

    @property
    def valid(self) -> bool:
        return self.evaluation.valid

    def as_dict(self) -> dict[str, Any]:
        return self.evaluation.as_dict()


def evaluate(*, tenant, member, order, requests, points_request, codes, promotions, now, frozen, context=None):
    by_text = {c.code: c for c in codes}
    for request in requests:
        request.code = by_text.get(request.text)
    involved = {c.campaign.pk: c.campaign for c in codes} | {p.pk: p for p in promotions}
    usage = usage_counts(list(involved.values()), member.pk if member else None, now, tenant.tz)
    evaluation = engine.evaluate(
        now=now,
        tz=tenant.tz,
        member_id=member.pk if member else None,
        order=order,
        requests=requests,
        promotions=promotions,
        usage=usage,
        context=context or context_loader(tenant, member, order, now, [c.rule for c in involved.values()]),
        points=points_request,
        frozen=frozen,
        suspended=member is not None and member.is_suspended,
    )
    evaluation.usage = usage  # the counters as read, for the evaluation trace
    return evaluation


def validate(
    *,
    tenant: Tenant,
    member: Member | None = None,
    order: dict,
    codes: list,
    points: int = 0,
    as_of: dt.datetime | None = None,
    channel: str = "",
    integration=None,
    trace: bool = True,
):
    """Evaluate `order` against `codes`, promotions and `points`; changes nothing.

    `as_of` judges them at a past time (support's preview of a redemption applied after the fact). Every
    validation leaves an evaluation trace, except support's replays and previews (`trace=False`).
    """
    check_member(tenant, member)
    order, requests, points = parse_request(order=order, codes=codes, points=points)
    now = as_of or timezone.now()
    texts = {r.text for r in requests}
    frozen, code_campaigns, promotions = campaigns_and_frozen(tenant, texts, now)
    by_id = {c.pk: c for c in code_campaigns}
    found = codes_by_text(tenant, texts, campaign_ids=set(by_id))
    for code in found:
        code.campaign = by_id[code.campaign_id]
    points_request, _account = points_request_for(tenant, member, points)
    evaluation = evaluate(
        tenant=tenant,
        member=member,
        order=order,
        requests=requests,
        points_request=points_request,
        codes=found,
        promotions=promotions,
        now=now,
        frozen=frozen,
    )
    if not trace:
        return ValidationResult(evaluation)
    trace_record(
        tenant=tenant,
        kind="validation",
        evaluation=evaluation,
        member=member,
        order=order,
        codes=[r.text for r in requests],
        points=points,
        at=now,
        now=timezone.now(),
        channel=channel,
        integration=integration,
    )
    return ValidationResult(evaluation)
