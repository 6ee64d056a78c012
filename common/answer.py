"""`answer=`: how a write service hands its result to its caller inside its own transaction.

A public write service that takes `answer: Answer | None = None` calls `answer(result)` inside its durable
transaction as the last step before the commit, with the very object it then returns. The API passes its
idempotent-answer writer there (`api.idempotency.Answer`), so that a write's effects and the answer to its
retries commit together: a crash can lose both, never one of them. Other callers (admin, tasks) pass nothing.
"""

from collections.abc import Callable
from typing import Any

Answer = Callable[[Any], None]
