"""The points ledger: accounts, append-only entries, lots, pending points, debts, expiry.

Every change to points goes through this package. Public services (`points_adjust`, `points_transfer`,
`points_expire_due`, `pending_release_due`, `expiry_warnings_send`) run in their own durable transaction;
the `post_*` functions compose inside a caller's transaction, under the account's row lock. This module is
the package's face: callers write `from loyalty import ledger` and `ledger.post_earn(...)`.
"""

from loyalty.ledger.accounts import (
    account_for,
    account_locked_for,
    default_account_locked,
    default_program,
    expiry_policy_for,
)
from loyalty.ledger.adjustments import TransferResult, points_adjust, points_transfer
from loyalty.ledger.jobs import (
    ExpiryRunResult,
    ReleaseResult,
    expiry_warnings_send,
    ledger_reconcile,
    pending_release_due,
    points_expire_due,
)
from loyalty.ledger.posting import (
    EarnLine,
    TakeBack,
    lock_account,
    post_earn,
    post_earns,
    post_pending,
    post_spend,
    post_spend_reversal,
    post_take_back,
)

__all__ = [
    "EarnLine",
    "ExpiryRunResult",
    "ReleaseResult",
    "TakeBack",
    "TransferResult",
    "account_for",
    "account_locked_for",
    "default_account_locked",
    "default_program",
    "expiry_policy_for",
    "expiry_warnings_send",
    "ledger_reconcile",
    "lock_account",
    "pending_release_due",
    "points_adjust",
    "points_expire_due",
    "points_transfer",
    "post_earn",
    "post_earns",
    "post_pending",
    "post_spend",
    "post_spend_reversal",
    "post_take_back",
]
