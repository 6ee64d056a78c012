"""Celery tasks of members: thin, take ids, safe to retry and to run twice at once."""

import logging

from celery import shared_task

from members.models import Member
from members.services import erasure_due_ids, member_erase, used_tokens_prune

logger = logging.getLogger(__name__)


@shared_task(name="members.tasks.erase_due_members", acks_late=True, time_limit=30 * 60, soft_time_limit=29 * 60)
def erase_due_members(chunk: int = 500) -> int:
    """Carry out the erasure requests whose grace period (ERASURE_GRACE_DAYS) is over; -> members erased.

    The due set is read in chunks; each member is erased by `member_erase`, which locks the member and does
    nothing for one already erased, so a second run at the same time erases nobody twice."""
    erased = 0
    while True:
        ids = erasure_due_ids(limit=chunk)
        if not ids:
            return erased
        for member in Member.objects.filter(pk__in=ids).order_by("pk"):
            _member, now_erased = member_erase(member=member, automatic=True)
            erased += now_erased
        if len(ids) < chunk:
            return erased


@shared_task(name="members.tasks.prune_used_tokens", acks_late=True, time_limit=10 * 60, soft_time_limit=9 * 60)
def prune_used_tokens() -> dict[str, int]:
    """Delete cockpit link uses and admin form tokens that can no longer be used (two set-based DELETEs)."""
    pruned = used_tokens_prune()
    logger.info("pruned used tokens: %s", pruned)
    return pruned
