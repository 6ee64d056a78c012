"""Reads of the loyalty app: the program document (export) and a member's tier."""

from typing import Any

from django.db.models.expressions import RawSQL

from loyalty.models import EarningRule, MemberTier, Program, Tier
from loyalty.sql import default_program_id
from members.models import Member


def _policy(policy: dict | None) -> dict | None:
    return dict(policy) if policy else None


def _rule_document(rule: EarningRule) -> dict[str, Any]:
    doc: dict[str, Any] = {"code": rule.code, "trigger": rule.trigger}
    if rule.name:
        doc["name"] = rule.name
    if rule.trigger == EarningRule.Trigger.EVENT:
        doc["event"] = rule.event_name
    if rule.points:
        doc["points"] = rule.points
    if rule.points_per_unit:
        doc["points_per_unit"] = str(rule.points_per_unit.normalize())
        doc["unit_amount"] = str(rule.unit_amount)
    doc["rounding"] = rule.rounding
    if rule.rule:
        doc["rule"] = rule.rule
    if rule.categories:
        doc["categories"] = list(rule.categories)
    if rule.tier_multipliers:
        doc["tier_multipliers"] = dict(rule.tier_multipliers)
    elif not rule.apply_tier_multiplier:
        doc["tier_multipliers"] = False
    if rule.happy_hours:
        doc["happy_hours"] = list(rule.happy_hours)
    if rule.cap_points is not None:
        doc["cap"] = {"points": rule.cap_points, "per": rule.cap_period}
    if rule.pending_days:
        doc["pending_days"] = rule.pending_days
    if rule.starts_at:
        doc["starts_at"] = rule.starts_at.isoformat()
    if rule.ends_at:
        doc["ends_at"] = rule.ends_at.isoformat()
    if not rule.active:
        doc["active"] = False
    return doc


def program_document(
    program: Program, *, tiers: list[Tier] | None = None, rules: list[EarningRule] | None = None
) -> dict[str, Any]:
    """The program as the document `program_declare` accepts (export; the admin imports the same).

    `tiers` and `rules`, in document order, stand for the stored ones: the admin declares the rows of its
    inlines as edited (unsaved), over the program as edited in its form.
    """
    if tiers is None:
        tiers = list(Tier.objects.filter(program=program).order_by("threshold", "rank"))
    if rules is None:
        rules = list(EarningRule.objects.filter(program=program).order_by("priority", "code"))
    tier_documents = []
    for tier in tiers:
        doc = {"code": tier.code, "name": tier.name, "threshold": tier.threshold, "multiplier": str(tier.multiplier)}
        if tier.expiry_policy:
            doc["expiry"] = _policy(tier.expiry_policy)
        if tier.benefits:
            doc["benefits"] = tier.benefits
        tier_documents.append(doc)
    return {
        "name": program.name,
        "currency": program.currency,
        "points_name": program.points_name,
        "expiry": _policy(program.expiry_policy) or {"policy": "never"},
        "points_value": {"points": program.points_value_points, "amount": str(program.points_value_amount)},
        "qualification_window_months": program.qualification_window_months,
        "expiry_warning_days": program.expiry_warning_days,
        "active": program.active,
        "tiers": tier_documents,
        "earning_rules": [_rule_document(r) for r in rules],
    }


def member_tier(member: Member, program: Program | None = None) -> Tier | None:
    """The member's current tier in `program` (default: the tenant's program); one query."""
    statuses = MemberTier.objects.filter(member=member).select_related("tier")
    if program is not None:
        statuses = statuses.filter(program=program)
    else:
        statuses = statuses.filter(program_id=RawSQL(*default_program_id(member.tenant_id)))
    status = statuses.first()
    return status.tier if status else None
