"""The program document (`PUT /api/v1/programs/{code}`): checked whole, then declared in one transaction.

Bounds: a document the later requests could not apply is refused when it is declared (400 `invalid_program`,
the same from the API and the admin), with the path of each number past its bound:

    expiry.days <= 36500, expiry.years <= 100, expiry.months <= 1200, expiry.count <= 1200 months / 100 years
                                        (`loyalty.expiry`; tiers' expiry too)
    points_value.points, tiers[].threshold, earning_rules[].points, .cap.points
                                        whole numbers <= 2**31 - 1 (an integer column)
    points_value.amount <= 9999999999.99, earning_rules[].points_per_unit <= 99999999.9999,
    .unit_amount 0.01 to 9999999999.99  (their decimal columns)
    tiers[].multiplier, earning_rules[].tier_multipliers.*, .happy_hours[].multiplier
                                        0 to 999.999, at most 3 places (the tier multiplier column)
    qualification_window_months 1 to 120, expiry_warning_days <= 3650, earning_rules[].pending_days <= 3650
    at most 50 tiers, 100 earning rules, 50 categories and 20 happy hours per rule
    earning_rules[].rule                the rule language's limits (`loyalty.rules`: length, terms, nesting)
"""

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from common.answer import Answer
from common.errors import ApplicationError
from common.history import change_reason
from common.money import quantize_money
from common.validation import MAX_INT, NON_FIELD, FieldErrors, decimal_maximum, path
from loyalty import earning
from loyalty.expiry import MAX_WARNING_DAYS, check_policy
from loyalty.models import (
    EarningRule,
    Program,
    Tier,
)
from loyalty.rules import RuleError, check_rule
from loyalty.services.tiers import MAX_QUALIFICATION_MONTHS
from members.models import Tenant

MAX_POINTS_VALUE_AMOUNT = decimal_maximum(Program._meta.get_field("points_value_amount"))
MAX_MULTIPLIER = decimal_maximum(Tier._meta.get_field("multiplier"))
MAX_POINTS_PER_UNIT = decimal_maximum(EarningRule._meta.get_field("points_per_unit"))
MAX_UNIT_AMOUNT = decimal_maximum(EarningRule._meta.get_field("unit_amount"))
MULTIPLIER_PLACES = Tier._meta.get_field("multiplier").decimal_places
MAX_PENDING_DAYS = earning.MAX_PENDING_DAYS
MAX_TIERS = 50
MAX_EARNING_RULES = 100
MAX_CATEGORIES = 50


def _categories(value: Any, at: str, errors: FieldErrors) -> list[str]:
    categories = errors.texts(value, at, required=True, default=[])
    errors.check(len(categories) <= MAX_CATEGORIES, at, f"at most {MAX_CATEGORIES} categories")
    errors.check(all(len(c) <= 100 for c in categories), at, "each category is at most 100 characters")
    return categories


def _validate_document(tenant: Tenant, code: str, doc: Any) -> dict[str, Any]:
    """The document's model values; 400 `invalid_program` with every problem (see `common.validation`)."""
    errors = FieldErrors()
    errors.slug(code, "code")
    if errors.mapping(doc, NON_FIELD, required=True) is None:
        errors.raise_if_any("invalid_program", "The program document must be an object.")
    name = errors.text(doc.get("name"), "name", max_length=200, required=True, strip=True)
    currency = doc.get("currency", tenant.currency)
    errors.check(currency == tenant.currency, "currency", f"must be the tenant's currency {tenant.currency}")
    value = errors.mapping(doc.get("points_value") or {"points": 100, "amount": "1.00"}, "points_value", default={})
    clean = {
        "name": name,
        "currency": currency,
        "points_name": errors.text(doc.get("points_name", "points"), "points_name", max_length=50, required=True),
        "expiry_policy": check_policy(doc.get("expiry"), "expiry", errors),
        "points_value_points": errors.whole(
            value.get("points"), "points_value.points", minimum=1, maximum=MAX_INT, default=100
        ),
        "points_value_amount": quantize_money(
            errors.decimal(
                value.get("amount", "1.00"),
                "points_value.amount",
                maximum=MAX_POINTS_VALUE_AMOUNT,
                required=True,
                default=Decimal("1.00"),
            )
        ),
        "qualification_window_months": errors.whole(
            doc.get("qualification_window_months"),
            "qualification_window_months",
            maximum=MAX_QUALIFICATION_MONTHS,
            default=12,
        )
        or 12,
        "expiry_warning_days": errors.whole(
            doc.get("expiry_warning_days"), "expiry_warning_days", maximum=MAX_WARNING_DAYS, default=14
        ),
        "active": bool(doc.get("active", True)),
    }
    tiers = []
    raw_tiers = errors.array(doc.get("tiers", []), "tiers", required=True, default=[])
    errors.check(len(raw_tiers) <= MAX_TIERS, "tiers", f"at most {MAX_TIERS} tiers")
    for n, raw in enumerate(raw_tiers[:MAX_TIERS]):
        at = path("tiers", n)
        if errors.mapping(raw, at, required=True) is None:
            continue
        tier_code = errors.slug(raw.get("code"), path(at, "code"))
        duplicate = tier_code and tier_code in {t["code"] for t in tiers}
        errors.check(not duplicate, path(at, "code"), "duplicate tier code")
        tiers.append(
            {
                "code": tier_code,
                "name": str(raw.get("name") or tier_code)[:100],
                "threshold": errors.whole(raw.get("threshold"), path(at, "threshold"), default=0),
                "multiplier": errors.decimal(
                    raw.get("multiplier", "1"),
                    path(at, "multiplier"),
                    maximum=MAX_MULTIPLIER,
                    places=MULTIPLIER_PLACES,
                    required=True,
                ),
                "expiry_policy": check_policy(raw["expiry"], path(at, "expiry"), errors)
                if raw.get("expiry") is not None
                else None,
                "benefits": str(raw.get("benefits", "")),
            }
        )
    thresholds = [t["threshold"] for t in tiers]
    errors.check(len(set(thresholds)) == len(thresholds), "tiers", "thresholds must differ")
    tiers.sort(key=lambda t: t["threshold"])
    for rank, tier in enumerate(tiers):
        tier["rank"] = rank
    tier_codes = {t["code"] for t in tiers}
    rules: list[dict[str, Any]] = []
    raw_rules = errors.array(doc.get("earning_rules", []), "earning_rules", required=True, default=[])
    errors.check(len(raw_rules) <= MAX_EARNING_RULES, "earning_rules", f"at most {MAX_EARNING_RULES} earning rules")
    for n, raw in enumerate(raw_rules[:MAX_EARNING_RULES]):
        at = path("earning_rules", n)
        if errors.mapping(raw, at, required=True) is None:
            continue
        rule_code = errors.slug(raw.get("code"), path(at, "code"))
        duplicate = rule_code and rule_code in {r["code"] for r in rules}
        errors.check(not duplicate, path(at, "code"), "duplicate rule code")
        trigger = errors.choice(
            raw.get("trigger", "order_paid"), path(at, "trigger"), EarningRule.Trigger.values, required=True
        )
        event_name = raw.get("event", "") or ""
        if trigger == "event":
            event_name = errors.text(event_name, path(at, "event"), max_length=100, required=True)
        rule_text = errors.text(raw.get("rule"), path(at, "rule"))
        try:
            check_rule(rule_text)
        except RuleError as exc:
            errors.add(path(at, "rule"), exc.message)
        cap = errors.mapping(raw.get("cap"), path(at, "cap"))
        cap_points, cap_period = None, ""
        if cap is not None and errors.check(
            cap.get("per") in earning.CAP_PERIODS,
            path(at, "cap"),
            f"needs points and per ({', '.join(earning.CAP_PERIODS)})",
        ):
            cap_points = errors.whole(cap.get("points"), path(at, "cap", "points"), maximum=MAX_INT, required=True)
            cap_period = cap["per"]
        tier_multipliers = raw.get("tier_multipliers", {})
        apply_tier = True
        if isinstance(tier_multipliers, bool):
            apply_tier, tier_multipliers = tier_multipliers, {}
        elif not errors.check(
            isinstance(tier_multipliers, dict),
            path(at, "tier_multipliers"),
            "must be true/false or an object of tier code to multiplier",
        ):
            tier_multipliers = {}
        for key, multiplier in tier_multipliers.items():
            errors.check(key in tier_codes, path(at, "tier_multipliers", key), "unknown tier")
            errors.decimal(
                multiplier,
                path(at, "tier_multipliers", key),
                maximum=MAX_MULTIPLIER,
                places=MULTIPLIER_PLACES,
                required=True,
            )
        rules.append(
            {
                "code": rule_code,
                "name": str(raw.get("name", ""))[:200],
                "trigger": trigger,
                "event_name": event_name if trigger == "event" else "",
                "points": errors.whole(raw.get("points"), path(at, "points"), maximum=MAX_INT, default=0),
                "points_per_unit": errors.decimal(
                    raw.get("points_per_unit", "0"),
                    path(at, "points_per_unit"),
                    maximum=MAX_POINTS_PER_UNIT,
                    required=True,
                ),
                "unit_amount": errors.decimal(
                    raw.get("unit_amount", "1.00"),
                    path(at, "unit_amount"),
                    minimum="0.01",
                    maximum=MAX_UNIT_AMOUNT,
                    required=True,
                ),
                "rounding": errors.choice(
                    raw.get("rounding", "down"), path(at, "rounding"), tuple(earning.ROUNDINGS), required=True
                ),
                "categories": _categories(raw.get("categories", []), path(at, "categories"), errors),
                "rule": rule_text,
                "apply_tier_multiplier": apply_tier,
                "tier_multipliers": {k: str(v) for k, v in tier_multipliers.items()},
                "happy_hours": earning.validate_happy_hours(raw.get("happy_hours"), path(at, "happy_hours"), errors),
                "cap_points": cap_points,
                "cap_period": cap_period,
                "pending_days": errors.whole(
                    raw.get("pending_days"), path(at, "pending_days"), maximum=MAX_PENDING_DAYS, default=0
                ),
                "starts_at": errors.time(raw.get("starts_at"), path(at, "starts_at")),
                "ends_at": errors.time(raw.get("ends_at"), path(at, "ends_at")),
                "priority": n,
                "active": bool(raw.get("active", True)),
            }
        )
    errors.raise_if_any("invalid_program", "The program document is not valid.")
    return {"program": clean, "tiers": tiers, "rules": rules}


def program_declare(*, tenant: Tenant, code: str, document: dict, answer: Answer | None = None) -> Program:
    """Create or replace a whole program from its document (`PUT /api/v1/programs/{code}`).

    Tiers and rules are matched by code: updated in place, created, or deleted when the document no longer
    names them (members of a deleted tier are left without a tier until the next evaluation).
    `answer(program)` is called inside the transaction just before its commit (see `common.answer`).
    """
    clean = _validate_document(tenant, code, document)
    with transaction.atomic(durable=True):
        program = Program.objects.select_for_update().filter(tenant=tenant, code=code).first()
        if program is None:
            program = Program(tenant=tenant, code=code)
        for key, value in clean["program"].items():
            setattr(program, key, value)
        program._change_reason = "declared"
        program.save()
        existing_tiers = {t.code: t for t in Tier.objects.filter(program=program)}
        for data in clean["tiers"]:
            tier = existing_tiers.pop(data["code"], None) or Tier(tenant=tenant, program=program)
            for key, value in data.items():
                setattr(tier, key, value)
            tier._change_reason = "declared"
            tier.save()
        for tier in existing_tiers.values():
            tier.delete()
        existing_rules = {r.code: r for r in EarningRule.objects.filter(program=program)}
        for data in clean["rules"]:
            rule = existing_rules.pop(data["code"], None) or EarningRule(tenant=tenant, program=program)
            for key, value in data.items():
                setattr(rule, key, value)
            rule._change_reason = "declared"
            rule.save()
        for rule in existing_rules.values():
            rule.delete()
        if answer is not None:
            answer(program)
    return program


# --- reverts: an earlier version declared again (the one path, with the same checks) ------------------------
# Tiers and earning rules hold configuration only; what members did with them (tier statuses, tier changes,
# cap usage, ledger entries) lives in other tables and is never touched by a revert.


def _declare_as(program: Program, document: dict, reason: str) -> Program:
    with change_reason(reason):
        return program_declare(tenant=program.tenant, code=program.code, document=document)


def program_revert(*, program: Program, history_id: int, reason: str = "") -> Program:
    """Declare the program, its tiers and its earning rules as they were after its version `history_id`.

    A declaration saves the program first, then its tiers and rules: the state after that version is the one
    just before the program's next version (or now).
    """
    from loyalty.selectors import program_document

    record = Program.history.filter(id=program.pk, history_id=history_id).first()
    if record is None:
        raise ApplicationError("not_found", "No such version of this program.", status=404)
    following = record.next_record
    at = following.history_date - dt.timedelta(microseconds=1) if following else timezone.now()
    tiers = sorted(Tier.history.as_of(at).filter(program_id=program.pk), key=lambda t: (t.threshold, t.rank))
    rules = sorted(EarningRule.history.as_of(at).filter(program_id=program.pk), key=lambda r: (r.priority, r.code))
    document = program_document(record.instance, tiers=tiers, rules=rules)
    label = f"revert to #{history_id}"
    return _declare_as(program, document, f"{label}: {reason}" if reason else label)


def _part_revert(model, *, part, history_id: int, reason: str, key: str) -> Program:
    from loyalty.selectors import program_document

    record = model.history.filter(id=part.pk, history_id=history_id).first()
    if record is None:
        raise ApplicationError("not_found", "No such version.", status=404)
    program = part.program
    tiers = list(Tier.objects.filter(program=program).order_by("threshold", "rank"))
    rules = list(EarningRule.objects.filter(program=program).order_by("priority", "code"))
    parts = tiers if key == "tiers" else rules
    earlier = record.instance
    parts[:] = [earlier if p.pk == part.pk else p for p in parts]
    if key == "tiers":
        parts.sort(key=lambda t: (t.threshold, t.rank))
    document = program_document(program, tiers=tiers, rules=rules)
    label = f"revert {earlier.code} to #{history_id}"
    return _declare_as(program, document, f"{label}: {reason}" if reason else label)


def tier_revert(*, tier: Tier, history_id: int, reason: str = "") -> Program:
    """Put one tier back to an earlier version, declaring its program with it (its code is its key)."""
    return _part_revert(Tier, part=tier, history_id=history_id, reason=reason, key="tiers")


def earning_rule_revert(*, rule: EarningRule, history_id: int, reason: str = "") -> Program:
    """Put one earning rule back to an earlier version, declaring its program with it (its code is its key)."""
    return _part_revert(EarningRule, part=rule, history_id=history_id, reason=reason, key="rules")
