"""The validation engine: pure evaluation of an order against codes, promotions and points.

No I/O here: `rewards.services.redemption` loads the codes, campaigns, usage counters, member facts and
points balance (a fixed number of queries) and calls `evaluate(...)`, both to validate (nothing changes)
and to redeem (the same checks, again, with the rows locked). The result lists every code with its
discount or the contract's reason code, and the usage keys a redemption must count.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext as _

from campaigns import stacking
from campaigns.incentives import ConfigError, GiftCardDebit, Order, PointsPayment, incentive_for
from campaigns.models import Campaign, CampaignType, Code
from campaigns.windows import live_refusal, minute_key, period_key
from common.money import money_str, quantize_money
from loyalty.rules import rule_conditions, rule_matches

ZERO = Decimal("0.00")

MESSAGES = {
    "code_not_found": "This code does not exist.",
    "tenant_frozen": "Redemptions are frozen for this program at the moment.",
    "member_suspended": "This member is suspended: their codes and points cannot be used.",
    "campaign_disabled": "This campaign is disabled.",
    "campaign_not_started": "This campaign has not started yet.",
    "campaign_ended": "This campaign has ended.",
    "outside_active_hours": "This code cannot be used at this time.",
    "code_expired": "This code has expired.",
    "rule_not_met": "The order or the member does not meet the campaign's conditions.",
    "member_required": "This code needs a member.",
    "not_assigned_to_member": "This code belongs to another member.",
    "redemptions_total_exceeded": "This code or campaign has no redemptions left.",
    "redemptions_per_member_exceeded": "The member has used this campaign as often as allowed.",
    "discount_budget_exceeded": "The campaign's discount budget is used up.",
    "order_value_budget_exceeded": "The campaign's order value budget is used up.",
    "stacking_not_allowed": "This code cannot be combined with the other codes of the order.",
    "gift_card_insufficient_balance": "The gift card's balance is too low.",
    "points_insufficient": "The member does not have enough points.",
    "not_a_gift_card": "An amount can only be given for a gift card.",
}

MEMBER_RULE_RE = re.compile(r"\b(member|events|redemptions)\b")


def message(reason: str) -> str:
    return _(MESSAGES.get(reason, reason.replace("_", " ")))


@dataclass
class CodeRequest:
    index: int
    text: str
    amount: Decimal | None = None
    code: Code | None = None


@dataclass
class Line:
    """The outcome for one code (or one promotion)."""

    text: str
    campaign: Campaign | None
    code: Code | None = None
    index: int = 0
    valid: bool = True
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    discount: Decimal = ZERO
    requested: Decimal | None = None
    stage: int = stacking.STAGE_DISCOUNT
    free_shipping: bool = False
    free_items: list[dict[str, Any]] = field(default_factory=list)
    usage_keys: list[str] = field(default_factory=list)
    conditions: list[dict[str, Any]] = field(default_factory=list)  # the rule's, for the trace (never answered)

    def refuse(self, reason: str, /, **details) -> None:
        if self.valid:
            self.valid = False
            self.reason = reason
            self.details = details
            self.discount = ZERO

    @property
    def is_gift_card(self) -> bool:
        return self.stage == stacking.STAGE_GIFT_CARD

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.text, "valid": self.valid}
        if self.valid:
            out["discount"] = money_str(self.discount)
            if self.is_gift_card:
                out["amount"] = money_str(self.discount)
                out["balance_after"] = money_str(self.code.balance - self.discount)
            if self.free_shipping:
                out["free_shipping"] = True
            if self.free_items:
                out["free_items"] = self.free_items
        else:
            out["reason"] = self.reason
            out["message"] = message(self.reason)
            if self.details:
                out["details"] = self.details
        if self.campaign is not None:
            out["campaign"] = str(self.campaign.pk)
            out["campaign_name"] = self.campaign.name
        return out


@dataclass
class PointsRequest:
    requested: int
    balance: int | None  # None: the member has no account (or no member)
    points_per: int = 100
    amount_per: Decimal = Decimal("1.00")
    member_present: bool = True


@dataclass
class Evaluation:
    amount: Decimal
    lines: list[Line]
    promotions: list[Line]
    points_requested: int = 0
    points_used: int = 0
    points_value: Decimal = ZERO
    points_reason: str = ""
    points_details: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return all(line.valid for line in self.lines) and not self.points_reason

    @property
    def applied(self) -> list[Line]:
        return [p for p in self.promotions if p.valid] + [line for line in self.lines if line.valid]

    @property
    def discount(self) -> Decimal:
        return sum((x.discount for x in self.applied if x.stage <= stacking.STAGE_DISCOUNT), ZERO)

    @property
    def gift_cards(self) -> Decimal:
        return sum((x.discount for x in self.applied if x.stage == stacking.STAGE_GIFT_CARD), ZERO)

    @property
    def total(self) -> Decimal:
        return max(ZERO, self.amount - self.discount - self.gift_cards - self.points_value)

    def failures(self) -> list[dict[str, Any]]:
        return [line.as_dict() for line in self.lines if not line.valid]

    def as_dict(self) -> dict[str, Any]:
        points: dict[str, Any] = {"used": self.points_used, "value": money_str(self.points_value)}
        if self.points_reason:
            points.update(valid=False, reason=self.points_reason, message=message(self.points_reason))
            if self.points_details:
                points["details"] = self.points_details
        return {
            "valid": self.valid,
            "order": {
                "amount": money_str(self.amount),
                "discount": money_str(self.discount),
                "gift_cards": money_str(self.gift_cards),
                "points_value": money_str(self.points_value),
                "total": money_str(self.total),
            },
            "codes": [line.as_dict() for line in self.lines],
            "promotions": [
                {"campaign": str(p.campaign.pk), "campaign_name": p.campaign.name, "discount": money_str(p.discount)}
                for p in self.promotions
                if p.valid
            ],
            "points": points,
        }


def stage_of(campaign: Campaign) -> int:
    if campaign.type == CampaignType.PROMOTION:
        return stacking.STAGE_PROMOTION
    if campaign.type == CampaignType.GIFT_CARD:
        return stacking.STAGE_GIFT_CARD
    return stacking.STAGE_DISCOUNT


def needs_member(campaign: Campaign) -> bool:
    return bool(
        campaign.redemptions_per_member
        or campaign.redemptions_per_member_period
        or (campaign.rule and MEMBER_RULE_RE.search(campaign.rule))
    )


def needs_facts(campaign: Campaign) -> bool:
    return bool(campaign.rule and MEMBER_RULE_RE.search(campaign.rule))


def usage_limits(campaign: Campaign, member_id: int | None, now, tz) -> dict[str, tuple[int | None, str, dict]]:
    """The usage keys a redemption of `campaign` counts, each with its limit and the reason when reached."""
    keys: dict[str, tuple[int | None, str, dict]] = {}
    if member_id:
        keys[f"m:{member_id}"] = (campaign.redemptions_per_member, "redemptions_per_member_exceeded", {})
        if campaign.member_period and campaign.redemptions_per_member_period:
            pk = period_key(campaign.member_period, now, tz)
            keys[f"m:{member_id}:{campaign.member_period}:{pk}"] = (
                campaign.redemptions_per_member_period,
                "redemptions_per_member_exceeded",
                {"period": campaign.member_period},
            )
    for period, prefix, limit in (
        ("day", "d", campaign.redemptions_per_day),
        ("week", "w", campaign.redemptions_per_week),
        ("month", "mo", campaign.redemptions_per_month),
    ):
        if limit:
            keys[f"{prefix}:{period_key(period, now, tz)}"] = (limit, "redemptions_total_exceeded", {"period": period})
    if campaign.breaker_enabled:  # the breaker's per-minute counts (`breaker_sweep`); it waits two windows
        keys[minute_key(now)] = (None, "", {})
    return keys


def wanted_usage_keys(campaigns: list[Campaign], member_id: int | None, now, tz) -> list[tuple[int, str]]:
    """The usage counters a judgement reads: those with a limit (the others are counted, never compared)."""
    return [
        (c.pk, key)
        for c in campaigns
        for key, (limit, _, _) in usage_limits(c, member_id, now, tz).items()
        if limit is not None
    ]


class _Tally:
    """What this request already takes from each campaign, so two codes of one campaign count twice."""

    def __init__(self, usage: dict[tuple[int, str], int]):
        self.usage = usage
        self.pending: dict[tuple[int, str], int] = defaultdict(int)
        self.redemptions: dict[int, int] = defaultdict(int)
        self.discount: dict[int, Decimal] = defaultdict(lambda: ZERO)
        self.order_value: dict[int, Decimal] = defaultdict(lambda: ZERO)

    def count(self, campaign_id: int, key: str) -> int:
        return self.usage.get((campaign_id, key), 0) + self.pending[(campaign_id, key)]


def _campaign_refusal(campaign: Campaign, *, now, tz, member_id, tally: _Tally) -> tuple[str, dict] | None:
    return live_refusal(campaign, now, tz)


def _limit_refusal(campaign: Campaign, *, now, tz, member_id, tally: _Tally) -> tuple[str, dict] | None:
    if campaign.redemptions_total is not None and (
        campaign.redemptions_count + tally.redemptions[campaign.pk] >= campaign.redemptions_total
    ):
        return "redemptions_total_exceeded", {"scope": "campaign", "limit": campaign.redemptions_total}
    for key, (limit, reason, details) in usage_limits(campaign, member_id, now, tz).items():
        if limit is not None and tally.count(campaign.pk, key) >= limit:
            return reason, {"limit": limit, **details}
    return None


def _budget_refusal(campaign: Campaign, discount: Decimal, order_amount: Decimal, tally: _Tally):
    if campaign.discount_total is not None and (
        campaign.discount_used + tally.discount[campaign.pk] + discount > campaign.discount_total
    ):
        left = campaign.discount_total - campaign.discount_used - tally.discount[campaign.pk]
        return "discount_budget_exceeded", {"remaining": money_str(max(ZERO, left))}
    if campaign.order_value_total is not None and (
        campaign.order_value_used + tally.order_value[campaign.pk] + order_amount > campaign.order_value_total
    ):
        left = campaign.order_value_total - campaign.order_value_used - tally.order_value[campaign.pk]
        return "order_value_budget_exceeded", {"remaining": money_str(max(ZERO, left))}
    return None


def _take(line: Line, campaign: Campaign, member_id, now, tz, tally: _Tally, order_amount: Decimal) -> None:
    keys = usage_limits(campaign, member_id, now, tz)
    line.usage_keys = list(keys)
    for key in keys:
        tally.pending[(campaign.pk, key)] += 1
    tally.redemptions[campaign.pk] += 1
    tally.discount[campaign.pk] += line.discount
    tally.order_value[campaign.pk] += order_amount


def _stackable(line: Line) -> stacking.Stackable:
    c = line.campaign
    # An empty `combinable_with` means "any category" (see campaigns.stacking).
    combinable = tuple(c.combinable_with) if isinstance(c.combinable_with, list) and c.combinable_with else None
    return stacking.Stackable(
        key=line.text,
        category=c.category,
        exclusive=c.exclusive,
        combinable_with=combinable,
        max_codes=c.max_codes_per_order,
    )


def promotion_candidates(*, promotions, now, tz, member_id, order, context) -> list[Campaign]:
    """Promotions that may apply to `order` regardless of their counters (which need their rows locked).

    The redemption service locks only these, so automatic promotions that cannot apply do not serialise
    every checkout of the tenant on their rows.
    """
    parsed = Order.from_dict(order)
    tally = _Tally({})
    out = []
    for campaign in promotions:
        if _campaign_refusal(campaign, now=now, tz=tz, member_id=member_id, tally=tally):
            continue
        if member_id is None and needs_member(campaign):
            continue
        if campaign.rule and not rule_matches(campaign.rule, context()):
            continue
        try:
            if not incentive_for(campaign.discount).evaluate(parsed, parsed.amount).applies:
                continue
        except ConfigError:
            continue
        out.append(campaign)
    return out


def evaluate(
    *,
    now,
    tz,
    member_id: int | None,
    order: dict[str, Any],
    requests: list[CodeRequest],
    promotions: list[Campaign],
    usage: dict[tuple[int, str], int],
    context: Callable[[], dict[str, Any]],
    points: PointsRequest | None = None,
    frozen: bool = False,
    suspended: bool = False,
    max_codes_per_order: int = stacking.DEFAULT_MAX_CODES_PER_ORDER,
) -> Evaluation:
    parsed = Order.from_dict(order)
    amount = quantize_money(parsed.amount)
    tally = _Tally(usage)
    lines = [
        Line(
            text=r.text,
            campaign=r.code.campaign if r.code else None,
            code=r.code,
            index=r.index,
            requested=r.amount,
            stage=stage_of(r.code.campaign) if r.code else stacking.STAGE_DISCOUNT,
        )
        for r in requests
    ]
    evaluation = Evaluation(amount=amount, lines=lines, promotions=[])
    ctx_cache: dict[str, Any] = {}

    def rule_ok(campaign: Campaign, line: Line | None = None) -> bool:
        if not campaign.rule:
            return True
        if "ctx" not in ctx_cache:
            ctx_cache["ctx"] = context()
        if line is not None:  # what support reads in the trace: each condition and the value it compared
            line.conditions = rule_conditions(campaign.rule, ctx_cache["ctx"])
        return rule_matches(campaign.rule, ctx_cache["ctx"])

    # 1. Each code on its own: existence, kill switches, dates, hours, expiry, member, rule.
    for line in lines:
        if frozen:
            line.refuse("tenant_frozen")
            continue
        if suspended:
            line.refuse("member_suspended")
            continue
        code, campaign = line.code, line.campaign
        if code is None:
            line.refuse("code_not_found")
            continue
        refusal = _campaign_refusal(campaign, now=now, tz=tz, member_id=member_id, tally=tally)
        if refusal:
            line.refuse(refusal[0], **refusal[1])
            continue
        if code.expires_at and now >= code.expires_at:
            line.refuse("code_expired", expired_at=code.expires_at.isoformat())
            continue
        if code.member_id and member_id is None:
            line.refuse("member_required")
            continue
        if code.member_id and code.member_id != member_id:
            line.refuse("not_assigned_to_member")
            continue
        if member_id is None and needs_member(campaign):
            line.refuse("member_required")
            continue
        if line.requested is not None and not line.is_gift_card:
            line.refuse("not_a_gift_card")
            continue
        if not rule_ok(campaign, line):
            line.refuse("rule_not_met", rule=campaign.rule)
            continue

    # 2. Stacking among the codes still valid (in the order given).
    candidates = [line for line in lines if line.valid]
    outcome = stacking.select([_stackable(line) for line in candidates], default_max=max_codes_per_order)
    for index, details in outcome.refused.items():
        candidates[index].refuse("stacking_not_allowed", **details)
    accepted = [line for line in candidates if line.valid]
    accepted_stackables = [_stackable(line) for line in accepted]

    # 3. Promotions that qualify and do not conflict with the codes or each other (none for a suspended member).
    if not frozen and not suspended:
        for campaign in sorted(promotions, key=lambda c: (c.priority, c.pk)):
            if _campaign_refusal(campaign, now=now, tz=tz, member_id=member_id, tally=tally):
                continue
            if member_id is None and needs_member(campaign):
                continue
            if not rule_ok(campaign):
                continue
            line = Line(text=f"promotion:{campaign.pk}", campaign=campaign, stage=stacking.STAGE_PROMOTION)
            stackable = _stackable(line)
            if stacking.conflicting(stackable, accepted_stackables):
                continue
            evaluation.promotions.append(line)
            accepted_stackables.append(stackable)

    # 4. Amounts, stage by stage, each capped by what is left to pay; then limits and budgets.
    remaining = amount
    ordered = sorted(
        evaluation.promotions + accepted,
        key=lambda x: (x.stage, x.campaign.priority if x.stage <= stacking.STAGE_DISCOUNT else 0, x.index),
    )
    for line in ordered:
        campaign = line.campaign
        refusal = _limit_refusal(campaign, now=now, tz=tz, member_id=member_id, tally=tally)
        if refusal is None and line.code is not None and line.code.usage_limit is not None:
            used = line.code.redeemed_count + tally.pending[(campaign.pk, f"code:{line.code.pk}")]
            if used >= line.code.usage_limit:
                refusal = ("redemptions_total_exceeded", {"scope": "code", "limit": line.code.usage_limit})
        if refusal:
            line.refuse(refusal[0], **refusal[1])
            continue
        if line.is_gift_card:
            result = GiftCardDebit(balance=line.code.balance or ZERO, requested=line.requested).evaluate(remaining)
        else:
            try:
                result = incentive_for(campaign.discount).evaluate(parsed, remaining)
            except ConfigError as exc:
                line.refuse("rule_not_met", rule=f"discount.{exc.field}: {exc.message}")
                continue
        if not result.applies:
            line.refuse(result.reason, **result.details)
            continue
        budget = _budget_refusal(campaign, result.discount, amount, tally)
        if budget:
            line.refuse(budget[0], **budget[1])
            continue
        line.discount = result.discount
        line.free_shipping = result.free_shipping
        line.free_items = result.free_items
        remaining -= result.discount
        _take(line, campaign, member_id, now, tz, tally, amount)
        if line.code is not None:
            tally.pending[(campaign.pk, f"code:{line.code.pk}")] += 1
    evaluation.promotions = [p for p in evaluation.promotions if p.valid]

    # 5. Points as payment, last.
    if points is not None and points.requested > 0:
        evaluation.points_requested = points.requested
        if frozen:
            evaluation.points_reason = "tenant_frozen"
        elif suspended:
            evaluation.points_reason = "member_suspended"
        elif not points.member_present:
            evaluation.points_reason = "member_required"
        else:
            payment = PointsPayment(
                balance=points.balance or 0,
                requested=points.requested,
                points_per=points.points_per,
                amount_per=points.amount_per,
            )
            result, used = payment.evaluate(remaining)
            if not result.applies:
                evaluation.points_reason = result.reason
                evaluation.points_details = result.details
            else:
                evaluation.points_used = used
                evaluation.points_value = result.discount
    return evaluation
