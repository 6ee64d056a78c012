"""The rule language shared by earning rules, segments and campaign validation rules.

Rules are `rule-engine` expressions (never `eval`), e.g.
`member.country == 'GB' and order.amount >= 50 and [i for i in order.items if i.category == 'apparel']`.
A rule is checked when it is saved: syntax, root names and the attribute names of known objects, so a
typo like `member.contry` is refused at once instead of silently never matching.

What the names mean, their Python types, which of them cost a query and how missing values, numbers and
time zones are expressed: `loyalty.rule_context` (its docstring is the reference; `build_rule_context` builds
the one context every rule is evaluated against).

What a rule may cost (a rule is tenant input evaluated on the shared CPU of every order, event and validation):

- Size, checked when the rule is saved: at most `MAX_RULE_LENGTH` characters, `MAX_RULE_TOKENS` tokens (names,
  literals, operators and brackets: `order.amount >= 50` is 5) and `MAX_RULE_DEPTH` levels of nesting (brackets,
  and the chain of a long `a or b or c ...`). A bigger rule is refused with a message saying which limit it passes.
- Regular expressions (`=~`, `=~~`, `!~`, `!~~`) run on RE2 (`google-re2`), whose matching time is linear in the
  text: `'^(a+)+$'` cannot backtrack. RE2 has no backreferences nor look-around; a pattern using them is refused
  when saved. A regex runs on at most `MAX_REGEX_TEXT` characters: on a longer text the comparison fails and the
  rule does not hold (logged).
- Loops: a comprehension (`[i for i in order.items if ...]`) runs once per element of an array the context bounds
  (items of one order, at most `HISTORY_MAX` events or redemptions); a comprehension inside another one is
  refused (its cost is the product of two arrays: 500 x 500 events took 28 s).
- Functions: `$abs $all $any $max $min $sum $split $parse_float $parse_datetime $parse_timedelta` and `$now`,
  `$today`, `$e`, `$pi`, `$re_groups`. `$range`, `$map`, `$filter` (arrays of any size) and `$random` (a verdict
  must not change between two evaluations) are not available; `$split` returns at most `MAX_SPLIT` parts.
  Bit shifts (`<<`, `>>`) are refused: they make integers of any size.
- Anything else that fails while evaluating (an arithmetic overflow, a date out of range) makes the rule not hold,
  as a missing value does; it never fails the call.
"""

import datetime as dt
import logging
from functools import lru_cache
from typing import Any

import re2
import rule_engine
import rule_engine.ast as ast
import rule_engine.builtins
import rule_engine.parser

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


MAX_RULE_LENGTH = 4000  # characters
MAX_RULE_TOKENS = 300  # names, literals, operators and brackets
MAX_RULE_DEPTH = 50  # nesting of the expression tree (brackets, chains of `or`/`and`/`+`...)
MAX_REGEX_TEXT = 10_000  # characters a regular expression is run on
MAX_REGEX_MEMORY = 8 << 20  # bytes RE2 may use for one compiled pattern
MAX_SPLIT = 500  # parts `$split` returns


class _Regex:
    """An RE2 pattern with the `re.Pattern` methods rule-engine calls, refusing texts above `MAX_REGEX_TEXT`."""

    __slots__ = ("pattern",)

    def __init__(self, pattern: str):
        options = re2.Options()
        options.max_mem = MAX_REGEX_MEMORY
        options.log_errors = False
        self.pattern = re2.compile(pattern, options)

    def _text(self, text: str) -> str:
        if len(text) > MAX_REGEX_TEXT:
            raise rule_engine.errors.EvaluationError(f"text longer than {MAX_REGEX_TEXT} characters for a regex")
        return text

    def match(self, text: str):
        return self.pattern.match(self._text(text))

    def search(self, text: str):
        return self.pattern.search(self._text(text))


@lru_cache(maxsize=512)
def _regex(pattern: str) -> _Regex:
    return _Regex(pattern)


class _Re2Comparison(ast.FuzzyComparisonExpression):
    """`=~` and friends on RE2 (linear time) instead of Python's backtracking `re`."""

    def _compile_regex(self, regex):
        try:
            return _regex(regex)
        except re2.error as error:
            detail = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else str(error)
            raise rule_engine.errors.RegexSyntaxError(
                f"invalid regular expression ({detail}; the rule language uses RE2 syntax: "
                "no backreferences, no look-ahead or look-behind)",
                error=error,
                value=regex,
            ) from None


class _Parser(rule_engine.parser.Parser):
    """rule-engine's grammar, building `_Re2Comparison` for the regex operators.

    rule-engine has no hook for the regex engine (only `regex_flags` for `re`), but its parser builds each node
    from one grammar method: this one is overridden with the same production (ply reads it from the docstring).
    `start` names the start symbol, which ply otherwise takes from the grammar method defined first by line number.
    """

    start = "statement"

    def p_expression_fuzzy_comparison(self, p):
        left, op, right = p[1:4]
        p[0] = rule_engine.parser._DeferredAstNode(_Re2Comparison, args=(self.context, self.op_names[op], left, right))

    p_expression_fuzzy_comparison.__doc__ = rule_engine.parser.Parser.p_expression_fuzzy_comparison.__doc__


class _Rule(rule_engine.Rule):
    parser = _Parser()


def _split(string, sep=None, maxsplit=None):
    if maxsplit is None or not rule_engine.types.is_natural_number(maxsplit) or int(maxsplit) >= MAX_SPLIT:
        maxsplit = MAX_SPLIT - 1
    return tuple(string.split(sep=sep, maxsplit=int(maxsplit)))


_BUILTIN_NAMES = (
    "e pi now today abs any all sum max min parse_datetime parse_float parse_timedelta split re_groups".split()
)


def _builtins(context: rule_engine.Context, tz: dt.tzinfo) -> rule_engine.builtins.Builtins:
    """The builtins of `context` without those of unbounded cost (`$range`, `$map`, `$filter`) or `$random`."""
    full = context.builtins
    values = {name: full._Builtins__values[name] for name in _BUILTIN_NAMES}
    values["split"] = _split
    types = {name: full.resolve_type(name) for name in _BUILTIN_NAMES}
    return rule_engine.builtins.Builtins(values, timezone=tz, value_types=types)


def _root_type(spec: Any):
    if isinstance(spec, dict) or spec is ANY:
        return T.MAPPING(T.STRING)
    return spec


_TYPES = {name: _root_type(spec) for name, spec in SCHEMA.items()}


@lru_cache(maxsize=64)
def _context(tz: dt.tzinfo) -> rule_engine.Context:
    """The rule-engine context of one time zone: a datetime literal without an offset (`d"2026-11-27"`) and
    `$now` are in `tz`, the zone of the context's `now` (the tenant's)."""
    context = rule_engine.Context(
        type_resolver=rule_engine.type_resolver_from_dict(_TYPES), default_value=None, default_timezone=tz
    )
    context.builtins = _builtins(context, tz)
    return context


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


def _attributes(node):
    """The values of a node's attributes: its `__dict__` and the `__slots__` of its classes (`in`, `[i]`, calls)."""
    yield from getattr(node, "__dict__", {}).values()
    for cls in type(node).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if name != "context" and hasattr(node, name):
                yield getattr(node, name)


def _children(node):
    for value in _attributes(node):
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


def _check_size(text: str) -> None:
    """Refuse a rule above the size limits before it is parsed (the parser and the evaluation recurse)."""
    if len(text) > MAX_RULE_LENGTH:
        raise RuleError(f"The rule is too long: at most {MAX_RULE_LENGTH} characters.", text)
    lexer = _Rule.parser._lexer.clone()
    lexer.input(text)
    tokens = depth = 0
    try:
        for token in lexer:
            tokens += 1
            if token.type in ("LPAREN", "LBRACKET", "LBRACE"):
                depth += 1
            elif token.type in ("RPAREN", "RBRACKET", "RBRACE"):
                depth -= 1
            if tokens > MAX_RULE_TOKENS:
                raise RuleError(
                    f"The rule is too big: at most {MAX_RULE_TOKENS} terms (names, values, operators and "
                    "brackets); split it, or use `in [...]` for a list of values.",
                    text,
                )
            if depth > MAX_RULE_DEPTH:
                raise RuleError(f"The rule is nested too deep: at most {MAX_RULE_DEPTH} levels.", text)
    except rule_engine.errors.RuleSyntaxError as exc:
        raise RuleError(f"Syntax error: {exc.message}", text) from exc


def _check_cost(root, text: str) -> None:
    """Refuse trees deeper than `MAX_RULE_DEPTH`, nested comprehensions and bit shifts (iteratively)."""
    stack = [(root, 1, 0)]
    while stack:
        node, depth, loops = stack.pop()
        if depth > MAX_RULE_DEPTH:
            raise RuleError(
                f"The rule is nested too deep: at most {MAX_RULE_DEPTH} levels (a long chain of `or`/`and` counts "
                "one level per term; use `in [...]` for a list of values).",
                text,
            )
        if (
            isinstance(node, ast.SymbolExpression)
            and node.scope == rule_engine.builtins.Builtins.scope_name
            and node.name not in _BUILTIN_NAMES
        ):
            raise RuleError(f"Unknown function ${node.name}; use one of: ${', $'.join(_BUILTIN_NAMES)}.", text)
        if isinstance(node, ast.BitwiseShiftExpression):
            raise RuleError("Bit shifts (<< and >>) are not available in rules.", text)
        if isinstance(node, ast.ComprehensionExpression):
            loops += 1
            if loops > 1:
                raise RuleError("A comprehension inside another one is not available in rules (too costly).", text)
        stack.extend((child, depth + 1, loops) for child in _children(node))


@lru_cache(maxsize=2048)
def compile_rule(text: str, tz: dt.tzinfo = dt.UTC) -> rule_engine.Rule:
    """Parse and check a rule once (per time zone); raises RuleError with a message a marketer can act on."""
    _check_size(text)
    try:
        rule = _Rule(text, context=_context(tz))
    except rule_engine.errors.RuleSyntaxError as exc:
        raise RuleError(f"Syntax error: {exc.message}", text) from exc
    except rule_engine.errors.SymbolResolutionError as exc:
        raise RuleError(f"Unknown name {exc.symbol_name!r}; use one of: {', '.join(SCHEMA)}.", text) from exc
    except rule_engine.errors.EngineError as exc:
        raise RuleError(str(getattr(exc, "message", exc)), text) from exc
    except RecursionError as exc:  # a backstop: the size limits keep rules far from Python's recursion limit
        raise RuleError(f"The rule is nested too deep: at most {MAX_RULE_DEPTH} levels.", text) from exc
    _check_cost(rule.statement.expression, text)
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
    A stored rule that `check_rule` now refuses (saved before a limit existed, or written around the services)
    does not hold either, logged: an order must not fail on old configuration (`check_rule` tells why).
    """
    if not text or not text.strip():
        return True
    now = context.get("now")
    try:
        rule = compile_rule(text.strip(), now.tzinfo if isinstance(now, dt.datetime) and now.tzinfo else dt.UTC)
    except RuleError as exc:
        logger.warning("stored rule %r refused, not met: %s", text[:200], exc.message)
        return False
    try:
        return bool(rule.matches(context))
    except rule_engine.errors.EngineError as exc:
        logger.info("rule %r not met: %s", text, exc)
        return False
    except (ArithmeticError, ValueError, TypeError, RecursionError) as exc:  # an overflow, a date out of range
        logger.warning("rule %r not met, its evaluation failed: %r", text, exc)
        return False


MAX_TRACED_CONDITIONS = 20


def _split_conditions(text: str) -> list[str]:
    """The rule's conditions: its terms joined by `and` / `or` outside brackets, brackets opened recursively."""
    lexer = _Rule.parser._lexer.clone()
    lexer.input(text)
    depth, start, parts = 0, 0, []
    tokens = list(lexer)
    for token in tokens:
        if token.type in ("LPAREN", "LBRACKET", "LBRACE"):
            depth += 1
        elif token.type in ("RPAREN", "RBRACKET", "RBRACE"):
            depth -= 1
        elif depth == 0 and token.type in ("AND", "OR"):
            parts.append(text[start : token.lexpos])
            start = token.lexpos + len(token.value)
    parts.append(text[start:])
    parts = [p.strip() for p in parts if p.strip()]
    if len(parts) == 1:
        inner = parts[0]
        wrapped = tokens and tokens[0].type == "LPAREN" and tokens[-1].type == "RPAREN" and inner == text.strip()
        if wrapped and _brackets_close_at_end(inner):
            return _split_conditions(inner[1:-1])
        return parts
    return [leaf for part in parts for leaf in _split_conditions(part)]


def _brackets_close_at_end(text: str) -> bool:
    """True when the first `(` of `text` is closed by its last character (`(a) or (b)` is not wrapped)."""
    depth = 0
    for i, char in enumerate(text):  # strings with brackets inside fall back to the whole rule as one condition
        depth += char == "("
        depth -= char == ")"
        if depth == 0:
            return i == len(text) - 1
    return False


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value if not isinstance(value, str) else value[:100]
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in list(value)[:10]]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)[:100]


def _compared(expression):
    """The side of a condition that reads the context (`order.amount` in `order.amount >= 50`), if plain."""
    if isinstance(expression, ast.ContainsExpression):
        return expression.member
    if isinstance(expression, ast.LeftOperatorRightExpressionBase) and not isinstance(expression, ast.LogicExpression):
        return expression.left
    return None


def rule_conditions(text: str, context: dict[str, Any]) -> list[dict[str, Any]]:
    """Each condition of a rule with its outcome for `context` (and the value it compared), for the evaluation
    trace: `[{"condition": "order.amount >= 50", "holds": False, "value": "40.00"}, ...]`. A rule that cannot be
    cut into conditions (a ternary, say) is one condition."""
    if not text or not text.strip():
        return []
    now = context.get("now")
    tz = now.tzinfo if isinstance(now, dt.datetime) and now.tzinfo else dt.UTC
    try:
        leaves = _split_conditions(text.strip())[:MAX_TRACED_CONDITIONS]
        compiled = [(leaf, compile_rule(leaf, tz)) for leaf in leaves]
    except (RuleError, rule_engine.errors.EngineError):
        leaves, compiled = [text.strip()], []
        try:
            compiled = [(text.strip(), compile_rule(text.strip(), tz))]
        except RuleError as exc:
            return [{"condition": text.strip()[:200], "holds": False, "error": exc.message}]
    out = []
    for leaf, rule in compiled:
        entry: dict[str, Any] = {"condition": leaf[:200]}
        try:
            entry["holds"] = bool(rule.evaluate(context))
            compared = _compared(rule.statement.expression)
            if compared is not None:
                entry["value"] = _plain(compared.evaluate(context))
        except (rule_engine.errors.EngineError, ArithmeticError, ValueError, TypeError, RecursionError) as exc:
            entry["holds"], entry["error"] = False, str(getattr(exc, "message", exc))[:200]
        out.append(entry)
    return out
