"""Erasure hooks: the apps above `members` remove an erased member's personal data from their own tables.

`members.services.member_erase` empties the member's own rows; copies live elsewhere (the webhook outbox keeps
`member.created` with the email, an idempotency record keeps the answer of a `PUT /members/..` with every field,
traces and order answers name the external id). Each app registers a hook here at start (as the event sinks of
`common.events`), so dependencies keep pointing one way. A hook runs inside the erasure's transaction, with the
member row locked: it writes set-based updates found through an index (the member id, the tenant and event type,
the integration), never a scan of a whole table, and it must be safe to run twice.
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Erased:
    """One erased member, as the hooks need it: what to find the copies by and what to write instead."""

    tenant_id: int
    member_id: int
    created_at: dt.datetime
    external_id_before: str
    external_id: str  # the same, or a pseudonym when the tenant lets erased ids be reused
    referral_code: str  # the new one: the old one began with the name

    @property
    def external_id_changed(self) -> bool:
        return self.external_id != self.external_id_before


Hook = Callable[[Erased], None]
_hooks: list[Hook] = []


def register(hook: Hook) -> None:
    if hook not in _hooks:
        _hooks.append(hook)


def erase_copies(erased: Erased) -> None:
    for hook in _hooks:
        hook(erased)
