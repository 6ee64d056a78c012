"""Validation, redemption and rollback: what every checkout calls. This module is the package's face.

- `validate(...)` evaluates an order against codes, automatic promotions and points and changes nothing.
- `redeem(...)` runs the same evaluation again inside one durable transaction with the campaign and code
  rows locked (campaigns, then codes, then the points account: the global lock order), and writes all or
  nothing: the redemption and its lines, the campaign and code counters, the usage counters (one
  set-based statement each), gift card debits and the points spend.
- `redeem_in_transaction(...)`: the same, inside the caller's `transaction.atomic()` (checkout compositions);
  `redeem_with_answer(answer=..., ...)`: `redeem` calling `answer(redemption)` just before its commit.
- `redemption_rollback(...)` restores all of it exactly once.

Each runs a fixed number of queries whatever the number of items, codes and rules.
"""

from rewards.services.redemption.documents import redemption_document
from rewards.services.redemption.load import member_redemptions, rule_context_for
from rewards.services.redemption.redeem import redeem, redeem_in_transaction, redeem_with_answer
from rewards.services.redemption.rollback import redemption_rollback
from rewards.services.redemption.validate import ValidationResult, validate

__all__ = [
    "ValidationResult",
    "member_redemptions",
    "redeem",
    "redeem_in_transaction",
    "redeem_with_answer",
    "redemption_document",
    "redemption_rollback",
    "rule_context_for",
    "validate",
]
