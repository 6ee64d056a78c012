"""The evaluation trace of one attempt: built from what the engine read and decided, written as one row."""

import datetime as dt
from typing import Any

from django.conf import settings

from campaigns import engine
from common.money import money_str
from common.plain_sql import batching, execute_together, insert_values
from rewards.models import EvaluationTrace

COUNTERS = (
    ("redemptions_count", "redemptions_total"),
    ("discount_used", "discount_total"),
    ("order_value_used", "order_value_total"),
)


def _counters(campaign) -> dict[str, Any]:
    """The campaign's totals against their limits, as the attempt read them."""
    out = {}
    for used, limit in COUNTERS:
        value, cap = getattr(campaign, used), getattr(campaign, limit)
        out[used] = money_str(value) if not isinstance(value, int) else value
        if cap is not None:
            out[limit] = money_str(cap) if not isinstance(cap, int) else cap
    return out


def _line(line: engine.Line, usage: dict) -> dict[str, Any]:
    out = line.as_dict()
    out.pop("message", None)  # derived from the reason when the trace is read (and translated then)
    out["stage"] = line.stage
    campaign = line.campaign
    if campaign is not None:
        out["rule"] = campaign.rule or ""
        if line.conditions:
            out["conditions"] = line.conditions
        out["counters"] = _counters(campaign)
        out["usage"] = {key: n for (cid, key), n in usage.items() if cid == campaign.pk}
        if line.code is not None and line.code.usage_limit is not None:
            out["code_uses"] = {"used": line.code.redeemed_count, "limit": line.code.usage_limit}
    return out


def trace_document(
    *, evaluation: engine.Evaluation, member, order: dict, codes: list, points: int, at: dt.datetime
) -> dict[str, Any]:
    usage = getattr(evaluation, "usage", {})
    return {
        "at": at.isoformat(),
        "input": {"member": member.external_id if member else None, "order": order, "codes": codes, "points": points},
        "lines": [_line(line, usage) for line in evaluation.lines],
        "promotions": [_line(line, usage) for line in evaluation.promotions],
        "applied": [line.text for line in evaluation.applied],
        # The answer's totals and points; its per-code part is `lines` (kept once: the row stays small).
        "result": {key: value for key, value in evaluation.as_dict().items() if key not in ("codes", "promotions")},
    }


def _reasons(evaluation: engine.Evaluation) -> list[str]:
    reasons = [line.reason for line in evaluation.lines if not line.valid]
    if evaluation.points_reason:
        reasons.append(evaluation.points_reason)
    return reasons


def trace_build(
    *,
    tenant,
    kind: str,
    evaluation: engine.Evaluation,
    member,
    order_id: str = "",
    order: dict,
    codes: list,
    points: int = 0,
    at: dt.datetime,
    now: dt.datetime,
    channel: str = "",
    integration=None,
    redemption_id: int | None = None,
) -> EvaluationTrace:
    """The trace row of an attempt, unsaved (a redemption writes it within its own last statement);
    `codes` are the texts as presented, the counters as the attempt read them."""
    texts = list(codes)
    return EvaluationTrace(
        tenant=tenant,
        kind=kind,
        succeeded=evaluation.valid,  # a redemption is traced as succeeded only once it is written
        member_id=member.pk if member else None,
        member_external_id=member.external_id if member else "",
        order_id=order_id[:100],
        redemption_id=redemption_id,
        codes=texts,
        reasons=_reasons(evaluation),
        channel=(channel or "")[:50],
        integration_name=str(integration)[:200] if integration is not None else "",
        document=trace_document(evaluation=evaluation, member=member, order=order, codes=texts, points=points, at=at),
        created_at=now,
    )


def traces_on() -> bool:
    return settings.EVALUATION_TRACES


def trace_record(**arguments) -> EvaluationTrace | None:
    """Write the trace (`trace_build`'s arguments) in the caller's transaction, if any (and traces are on);
    with its batch of writes when it has one (the trace's id is then not read back)."""
    if not traces_on():
        return None
    trace = trace_build(**arguments)
    if batching():
        execute_together([insert_values(EvaluationTrace, [trace])])
    else:
        trace.save(force_insert=True)
    return trace
