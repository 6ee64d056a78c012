from collections.abc import Callable
from functools import partial

from django.db import transaction


def after_commit(func: Callable, *args, **kwargs) -> None:
    """Run a side effect only once the surrounding transaction commits (at once outside one).

    Webhooks, emails and task enqueueing go through here: a bare `.delay()` inside a transaction
    would let a worker see rows that may still be rolled back.
    """
    transaction.on_commit(partial(func, *args, **kwargs))


def enqueue(task, *args, **kwargs) -> None:
    """`task.delay(...)` after commit; tasks receive ids, never model instances."""
    after_commit(task.delay, *args, **kwargs)
