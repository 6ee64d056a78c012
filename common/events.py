"""Domain events: one publish() for every app, whatever delivers them.

Apps low in the dependency order (members) emit events too, but webhook delivery lives in `loyalty`.
Sinks register here at app start (an infrastructure hook, not business logic), so dependencies keep
pointing one way. A sink runs inside the caller's transaction: it writes its outbox/audit row there and
schedules delivery after commit.
"""

from collections.abc import Callable
from typing import Any

EVENT_TYPES = (
    "member.created",
    "member.tier_changed",
    "points.earned",
    "points.expired",
    "points.expiring_soon",
    "code.published",
    "redemption.succeeded",
    "redemption.failed",
    "redemption.rolled_back",
    "campaign.created",
    "campaign.enabled",
    "campaign.disabled",
    "campaign.budget_exhausted",
)

# In-process only: no outbox row, no webhook (the contract's event list is the one above). They let a higher app
# react to what a lower one recorded (campaign triggers on paid orders and custom events) without an import upward.
INTERNAL_EVENT_TYPES = ("order.paid", "custom_event.recorded")

Sink = Callable[[Any, str, dict], None]
_sinks: list[Sink] = []
_listeners: dict[str, list[Sink]] = {}


def register_sink(sink: Sink) -> None:
    if sink not in _sinks:
        _sinks.append(sink)


def subscribe(event_type: str, listener: Sink) -> None:
    """Call `listener(tenant, event_type, data)` on every publish of `event_type`, inside the caller's transaction.

    A listener must not be able to fail that transaction: it schedules its work after commit (a task with ids).
    """
    if event_type not in EVENT_TYPES + INTERNAL_EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    listeners = _listeners.setdefault(event_type, [])
    if listener not in listeners:
        listeners.append(listener)


def publish(tenant, event_type: str, data: dict) -> None:
    """Record and deliver one event of `tenant`. `data` must be JSON-serialisable."""
    internal = event_type in INTERNAL_EVENT_TYPES
    if event_type not in EVENT_TYPES and not internal:
        raise ValueError(f"unknown event type {event_type!r}")
    if not internal:
        for sink in _sinks:
            sink(tenant, event_type, data)
    for listener in _listeners.get(event_type, ()):
        listener(tenant, event_type, data)
