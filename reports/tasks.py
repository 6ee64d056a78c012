"""Scheduled jobs of the reports: thin and safe to re-run (the work is in `reports.rollups`)."""

from celery import shared_task

from reports.digests import digests_send_due
from reports.rollups import rollups_fold, rollups_recheck


@shared_task(name="reports.tasks.fold_rollups", time_limit=10 * 60, soft_time_limit=9 * 60)
def fold_rollups() -> dict:
    """Fold the rows written since the last run into the daily rollups."""
    return {"folded": rollups_fold()}


@shared_task(name="reports.tasks.recheck_rollups", time_limit=60 * 60, soft_time_limit=59 * 60)
def recheck_rollups(days: int = 7) -> dict:
    """Recompute the recent days from raw rows; repairs and logs drift, returns how many rows had drifted."""
    return {"drifted": rollups_recheck(days=days)}


@shared_task(name="reports.tasks.send_digests", time_limit=30 * 60, soft_time_limit=29 * 60)
def send_digests() -> dict:
    """Email each subscription's last complete week or month, once (safe to run twice at once)."""
    return {"sent": digests_send_due()}
