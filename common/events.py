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

Sink = Callable[[Any, str, dict], None]
_sinks: list[Sink] = []


def register_sink(sink: Sink) -> None:
    if sink not in _sinks:
        _sinks.append(sink)


def publish(tenant, event_type: str, data: dict) -> None:
    """Record and deliver one event of `tenant`. `data` must be JSON-serialisable."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    for sink in _sinks:
        sink(tenant, event_type, data)
