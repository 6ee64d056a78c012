"""The program document (`PUT /api/v1/programs/{code}`): checked whole, then declared in one transaction."""

import datetime as dt
import re
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from common.errors import ApplicationError
from common.money import quantize_money
from loyalty import earning
from loyalty.expiry import normalize_policy
from loyalty.models import (
    EarningRule,
    Program,
    Tier,
)
from loyalty.rules import RuleError, check_rule
from loyalty.services.earning import _decimal
from members.models import Tenant


def _code(value: Any, name: str, errors: dict[str, str]) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[-a-zA-Z0-9_]{1,50}", value):
        errors[name] = "required: letters, digits, - and _ (at most 50)"
        return ""
    return value


def _int(value: Any, name: str, errors: dict[str, str], default: int | None = 0) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        errors[name] = "must be a whole number >= 0"
        return default
    return value


def _time(value: Any, name: str, errors: dict[str, str]) -> dt.datetime | None:
    if value in (None, ""):
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None or timezone.is_naive(parsed):
        errors[name] = "must be an ISO 8601 time with an offset"
        return None
    return parsed


def _validate_document(tenant: Tenant, code: str, doc: Any) -> dict[str, Any]:
    errors: dict[str, str] = {}
    if not isinstance(doc, dict):
        raise ApplicationError("invalid_program", "The program document must be an object.", status=400)
    _code(code, "code", errors)
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        errors["name"] = "required, at most 200 characters"
    currency = doc.get("currency", tenant.currency)
    if currency != tenant.currency:
        errors["currency"] = f"must be the tenant's currency {tenant.currency}"
    points_name = doc.get("points_name", "points")
    if not isinstance(points_name, str) or not points_name or len(points_name) > 50:
        errors["points_name"] = "at most 50 characters"
    try:
        expiry = normalize_policy(doc.get("expiry"), field="expiry")
    except ApplicationError as exc:
        errors.update(exc.details)
        expiry = {}
    value = doc.get("points_value") or {"points": 100, "amount": "1.00"}
    value_points = _int(value.get("points") if isinstance(value, dict) else None, "points_value.points", errors, 100)
    value_amount = _decimal(
        value.get("amount", "1.00") if isinstance(value, dict) else "x", "points_value.amount", errors
    )
    if not value_points:
        errors["points_value.points"] = "must be >= 1"
    clean = {
        "name": (name or "").strip(),
        "currency": currency,
        "points_name": points_name,
        "expiry_policy": expiry,
        "points_value_points": value_points,
        "points_value_amount": quantize_money(value_amount),
        "qualification_window_months": _int(
            doc.get("qualification_window_months"), "qualification_window_months", errors, 12
        )
        or 12,
        "expiry_warning_days": _int(doc.get("expiry_warning_days"), "expiry_warning_days", errors, 14),
        "active": bool(doc.get("active", True)),
    }
    tiers, seen = [], set()
    raw_tiers = doc.get("tiers", [])
    if not isinstance(raw_tiers, list):
        errors["tiers"] = "must be a list"
        raw_tiers = []
    for n, raw in enumerate(raw_tiers):
        prefix = f"tiers[{n}]"
        if not isinstance(raw, dict):
            errors[prefix] = "must be an object"
            continue
        tier_code = _code(raw.get("code"), f"{prefix}.code", errors)
        if tier_code in seen:
            errors[f"{prefix}.code"] = "duplicate tier code"
        seen.add(tier_code)
        tier_expiry = None
        if raw.get("expiry") is not None:
            try:
                tier_expiry = normalize_policy(raw["expiry"], field=f"{prefix}.expiry")
            except ApplicationError as exc:
                errors.update(exc.details)
        multiplier = _decimal(raw.get("multiplier", "1"), f"{prefix}.multiplier", errors)
        tiers.append(
            {
                "code": tier_code,
                "name": str(raw.get("name") or tier_code)[:100],
                "threshold": _int(raw.get("threshold", 0), f"{prefix}.threshold", errors),
                "multiplier": multiplier,
                "expiry_policy": tier_expiry,
                "benefits": str(raw.get("benefits", "")),
            }
        )
    thresholds = [t["threshold"] for t in tiers]
    if len(set(thresholds)) != len(thresholds):
        errors["tiers"] = "thresholds must differ"
    tiers.sort(key=lambda t: t["threshold"])
    for rank, tier in enumerate(tiers):
        tier["rank"] = rank
    rules, seen = [], set()
    raw_rules = doc.get("earning_rules", [])
    if not isinstance(raw_rules, list):
        errors["earning_rules"] = "must be a list"
        raw_rules = []
    for n, raw in enumerate(raw_rules):
        prefix = f"earning_rules[{n}]"
        if not isinstance(raw, dict):
            errors[prefix] = "must be an object"
            continue
        rule_code = _code(raw.get("code"), f"{prefix}.code", errors)
        if rule_code in seen:
            errors[f"{prefix}.code"] = "duplicate rule code"
        seen.add(rule_code)
        trigger = raw.get("trigger", "order_paid")
        if trigger not in EarningRule.Trigger.values:
            errors[f"{prefix}.trigger"] = "must be order_paid or event"
        event_name = raw.get("event", "") or ""
        if trigger == "event" and (not isinstance(event_name, str) or not event_name):
            errors[f"{prefix}.event"] = "an event rule names its event"
        rule_text = raw.get("rule", "") or ""
        try:
            check_rule(rule_text)
        except RuleError as exc:
            errors[f"{prefix}.rule"] = exc.message
        rounding = raw.get("rounding", "down")
        if rounding not in earning.ROUNDINGS:
            errors[f"{prefix}.rounding"] = "must be down, half_up or up"
        unit_amount = _decimal(raw.get("unit_amount", "1.00"), f"{prefix}.unit_amount", errors, minimum=Decimal("0.01"))
        cap = raw.get("cap")
        cap_points, cap_period = None, ""
        if cap is not None:
            if not isinstance(cap, dict) or cap.get("per") not in earning.CAP_PERIODS:
                errors[f"{prefix}.cap"] = f"needs points and per ({', '.join(earning.CAP_PERIODS)})"
            else:
                cap_points = _int(cap.get("points"), f"{prefix}.cap.points", errors, None)
                cap_period = cap["per"]
                if cap_points is None:
                    errors[f"{prefix}.cap.points"] = "required"
        categories = raw.get("categories", [])
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            errors[f"{prefix}.categories"] = "must be a list of category names"
            categories = []
        tier_multipliers = raw.get("tier_multipliers", {})
        apply_tier = True
        if isinstance(tier_multipliers, bool):
            apply_tier, tier_multipliers = tier_multipliers, {}
        elif not isinstance(tier_multipliers, dict):
            errors[f"{prefix}.tier_multipliers"] = "must be true/false or an object of tier code to multiplier"
            tier_multipliers = {}
        else:
            for key, val in tier_multipliers.items():
                if key not in seen_tiers(tiers):
                    errors[f"{prefix}.tier_multipliers.{key}"] = "unknown tier"
                _decimal(val, f"{prefix}.tier_multipliers.{key}", errors)
        rules.append(
            {
                "code": rule_code,
                "name": str(raw.get("name", ""))[:200],
                "trigger": trigger,
                "event_name": event_name if trigger == "event" else "",
                "points": _int(raw.get("points", 0), f"{prefix}.points", errors),
                "points_per_unit": _decimal(raw.get("points_per_unit", "0"), f"{prefix}.points_per_unit", errors),
                "unit_amount": unit_amount,
                "rounding": rounding,
                "categories": categories,
                "rule": rule_text,
                "apply_tier_multiplier": apply_tier,
                "tier_multipliers": {k: str(v) for k, v in tier_multipliers.items()},
                "happy_hours": earning.validate_happy_hours(raw.get("happy_hours"), f"{prefix}.happy_hours", errors),
                "cap_points": cap_points,
                "cap_period": cap_period,
                "pending_days": _int(raw.get("pending_days", 0), f"{prefix}.pending_days", errors),
                "starts_at": _time(raw.get("starts_at"), f"{prefix}.starts_at", errors),
                "ends_at": _time(raw.get("ends_at"), f"{prefix}.ends_at", errors),
                "priority": n,
                "active": bool(raw.get("active", True)),
            }
        )
    if errors:
        raise ApplicationError("invalid_program", "The program document is not valid.", errors, status=400)
    return {"program": clean, "tiers": tiers, "rules": rules}


def seen_tiers(tiers: list[dict]) -> set[str]:
    return {t["code"] for t in tiers}


def program_declare(*, tenant: Tenant, code: str, document: dict) -> Program:
    """Create or replace a whole program from its document (`PUT /api/v1/programs/{code}`).

    Tiers and rules are matched by code: updated in place, created, or deleted when the document no longer
    names them (members of a deleted tier are left without a tier until the next evaluation).
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
    return program
