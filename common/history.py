"""History plumbing (django-simple-history) with no domain: the staff's reason for a change, and what changed
between two versions of a record.

A staff reason typed in the admin is held for the length of one save (`change_reason`) and written on every
history row that save makes (`history_change_reason`), over the service's own reason ("updated").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.dispatch import receiver
from simple_history.signals import pre_create_historical_record

REASON_MAX_LENGTH = 100  # simple-history's history_change_reason column

_reason: ContextVar[str] = ContextVar("staff_change_reason", default="")


@contextmanager
def change_reason(text: str) -> Iterator[None]:
    """Every history row written inside the block carries `text` as its reason (when `text` is not empty)."""
    token = _reason.set((text or "").strip()[:REASON_MAX_LENGTH])
    try:
        yield
    finally:
        _reason.reset(token)


def set_change_reason(text: str) -> None:
    """Sets the reason for the rest of the enclosing `change_reason` block (the admin sets it from its form)."""
    _reason.set((text or "").strip()[:REASON_MAX_LENGTH])


@receiver(pre_create_historical_record, dispatch_uid="common.history.staff_reason")
def _staff_reason(sender, history_instance, **kwargs) -> None:
    reason = _reason.get()
    if reason:
        history_instance.history_change_reason = reason


@dataclass(frozen=True)
class FieldChange:
    field: str  # the model field's name
    label: str  # its verbose name
    old: Any
    new: Any


def version_changes(new, old, *, exclude: tuple[str, ...] | frozenset[str] = ()) -> list[FieldChange]:
    """Field by field, what differs from historical record (or instance) `old` to historical record `new`.

    Uses simple-history's `diff_against`; foreign keys compare by id (no query per field).
    """
    delta = new.diff_against(old, excluded_fields=list(exclude), foreign_keys_are_objs=False)
    opts = new.instance_type._meta
    changes = []
    for change in delta.changes:
        field = opts.get_field(change.field)
        changes.append(FieldChange(change.field, str(field.verbose_name), change.old, change.new))
    return changes
