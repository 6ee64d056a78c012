"""The rule language shared by earning rules, segments and campaign validation rules.

Rules are `rule-engine` expressions (never `eval`), e.g.
`member.country == 'GB' and order.amount >= 50 and [i for i in order.items if i.category == 'apparel']`.
A rule is checked when it is saved: syntax, root names and the attribute names of known objects, so a
typo like `member.contry` is refused at once instead of silently never matching.

What the names mean, their Python types, which of them cost a query and how missing values, numbers and
time zones are expressed: `loyalty.rule_context` (its docstring is the reference; `build_rule_context` builds
the one context every rule is evaluated against).
"""

import datetime as dt
import logging
from functools import lru_cache
from typing import Any

import rule_engine
import rule_engine.ast as ast

from common.errors import ApplicationError

logger = logging.getLogger(__name__)

T = rule_engine.DataType
ANY = None  # a free-form mapping: any attribute name is accepted

# What a rule can see. Nested dicts list the attribute names a rule may use; ANY leaves them open. `rule-engine`
# has one number type (FLOAT, held as a Decimal): the context gives ints for counts and Decimals for money.
# Every name is documented in `loyalty.rule_context` (tests/loyalty/test_rule_context.py keeps the two in step).
SCHEMA: dict[str, Any] = {
    "member": {
        "external_id": T.STRING,
        "email": T.STRING,
        "name": T.STRING,
        "phone": T.STRING,
        "country": T.STRING,
        "city": T.STRING,
        "birth_date": T.DATETIME,
        "age": T.FLOAT,
        "attributes": ANY,
        "marketing_consent": T.BOOLEAN,
        "tier": {"code": T.STRING, "name": T.STRING, "rank": T.FLOAT},
        "segments": T.ARRAY,
        "lifetime_spend": T.FLOAT,
        "spend_30d": T.FLOAT,
        "spend_90d": T.FLOAT,
        "spend_365d": T.FLOAT,
        "orders_count": T.FLOAT,
        "points_balance": T.FLOAT,
        "created_at": T.DATETIME,
        "referral_code": T.STRING,
    },
    "order": {
        "order_id": T.STRING,
        "amount": T.FLOAT,
        "currency": T.STRING,
        "location": T.STRING,
        "channel": T.STRING,
        "items": T.ARRAY,
        "quantity": T.FLOAT,
    },
    "event": {"name": T.STRING, "metadata": ANY, "occurred_at": T.DATETIME},
    "events": T.ARRAY,
    "redemptions": T.ARRAY,
    "now": T.DATETIME,
}


def _root_type(spec: Any):
    if isinstance(spec, dict) or spec is ANY:
        return T.MAPPING(T.STRING)
    return spec


_TYPES = {name: _root_type(spec) for name, spec in SCHEMA.items()}


@lru_cache(maxsize=64)
def _context(tz: dt.tzinfo) -> rule_engine.Context:
    """The rule-engine context of one time zone: a datetime literal without an offset (`d"2026-11-27"`) and
    `$now` are in `tz`, the zone of the context's `now` (the tenant's)."""
    return rule_engine.Context(
        type_resolver=rule_engine.type_resolver_from_dict(_TYPES), default_value=None, default_timezone=tz
    )


class RuleError(ApplicationError):
    status = 400

    def __init__(self, message: str, rule: str):
        super().__init__("invalid_rule", message, {"rule": rule}, status=400)


def _schema_of(node) -> Any:
    """The schema entry an expression refers to, or ANY when it is not a known object path."""
    if isinstance(node, ast.SymbolExpression):
        return SCHEMA.get(node.name, ANY)
    if isinstance(node, ast.GetAttributeExpression):
        parent = _schema_of(node.object)
        if isinstance(parent, dict):
            return parent.get(node.name, ANY)
    return ANY


def _children(node):
    for value in vars(node).values() if hasattr(node, "__dict__") else ():
        if isinstance(value, ast.ASTNodeBase):
            yield value
        elif isinstance(value, list | tuple):
            yield from (v for v in value if isinstance(v, ast.ASTNodeBase))


def _check_attribute_names(node, text: str) -> None:
    if isinstance(node, ast.GetAttributeExpression):
        parent = _schema_of(node.object)
        if isinstance(parent, dict) and node.name not in parent:
            known = ", ".join(sorted(parent))
            raise RuleError(f"Unknown name {node.name!r}; known here: {known}.", text)
    for child in _children(node):
        _check_attribute_names(child, text)


@lru_cache(maxsize=2048)
def compile_rule(text: str, tz: dt.tzinfo = dt.UTC) -> rule_engine.Rule:
    """Parse and check a rule once (per time zone); raises RuleError with a message a marketer can act on."""
    try:
        rule = rule_engine.Rule(text, context=_context(tz))
    except rule_engine.errors.RuleSyntaxError as exc:
        raise RuleError(f"Syntax error: {exc.message}", text) from exc
    except rule_engine.errors.SymbolResolutionError as exc:
        raise RuleError(f"Unknown name {exc.symbol_name!r}; use one of: {', '.join(SCHEMA)}.", text) from exc
    except rule_engine.errors.EngineError as exc:
        raise RuleError(str(getattr(exc, "message", exc)), text) from exc
    _check_attribute_names(rule.statement.expression, text)
    return rule


def check_rule(text: str) -> None:
    """Validator for forms and serializers (empty means "always")."""
    if text and text.strip():
        compile_rule(text.strip())


def rule_matches(text: str, context: dict[str, Any]) -> bool:
    """True when the rule holds for `context` (an empty rule always holds).

    A value missing at run time (a member without a country, say) makes the rule not hold rather
    than fail the checkout. Datetime literals without an offset are read in the zone of `context["now"]`.
    """
    if not text or not text.strip():
        return True
    now = context.get("now")
    rule = compile_rule(text.strip(), now.tzinfo if isinstance(now, dt.datetime) and now.tzinfo else dt.UTC)
    try:
        return bool(rule.matches(context))
    except rule_engine.errors.EngineError as exc:
        logger.info("rule %r not met: %s", text, exc)
        return False
