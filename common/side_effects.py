"""Side effects after commit: webhooks, emails and task enqueueing.

A side effect runs only once the surrounding transaction has committed, and it can no longer undo that
commit: whatever it raises is logged, never turned into an error answer for a write that succeeded. In
particular publishing a task to the broker may fail (Redis down, a network split): the write stands, the
failure is logged with the task's name and arguments. Work that must happen is recovered by a periodic
sweep over the rows the write left (webhook deliveries: `integrations.dispatch_due_webhooks`); a task with
no sweep (a code generation job, a code's email, an approval notice) is only logged: its row stays pending.
"""

import logging
from collections.abc import Callable
from functools import partial

from django.db import transaction
from kombu.exceptions import OperationalError

from common.outage import Circuit

logger = logging.getLogger("common.side_effects")

# While the broker is down, publishing is not even tried for a few seconds at a time: each attempt costs
# the publish retries (about half a second), and the result would be the same.
broker_circuit = Circuit("the Celery broker", fallback="tasks are not published until it is back")


def after_commit(func: Callable, *args, **kwargs) -> None:
    """Run a side effect only once the surrounding transaction commits (at once outside one).

    Webhooks, emails and task enqueueing go through here: a bare `.delay()` inside a transaction
    would let a worker see rows that may still be rolled back. `robust=True`: a failing side effect is
    logged by Django and does not stop the others nor fail the request whose transaction committed.
    """
    transaction.on_commit(partial(func, *args, **kwargs), robust=True)


def publish_task(task, *args, countdown: float | None = None, **kwargs) -> bool:
    """`task.delay(...)` (with `countdown`: `apply_async`) now; False (logged) when the broker refused it.

    Eager mode (no broker: tests, `make demo`) runs the task in-process and lets its errors through, so
    a bug in a task is not hidden; only publishing to a broker can fail this way.
    """

    def send():
        if countdown is None:
            task.delay(*args, **kwargs)
        else:
            task.apply_async(args, kwargs, countdown=countdown)

    if task.app.conf.task_always_eager:
        send()
        return True
    call = tuple(args) + tuple(kwargs.items())
    if not broker_circuit.should_try():
        logger.warning("task %s%r not published (the broker is down); the write it follows stands", task.name, call)
        return False
    try:
        send()
    except Exception as exc:  # noqa: BLE001 - the broker is down or refused: the caller's write has committed
        if isinstance(exc, OperationalError | OSError):  # cannot reach the broker, not a bad message
            broker_circuit.failed(exc)
        logger.warning(
            "task %s%r not published (%s: %s); the write it follows stands", task.name, call, type(exc).__name__, exc
        )
        return False
    broker_circuit.succeeded()
    return True


def enqueue(task, *args, **kwargs) -> None:
    """`task.delay(...)` after commit; tasks receive ids, never model instances. A broker failure is logged."""
    transaction.on_commit(partial(publish_task, task, *args, **kwargs))
