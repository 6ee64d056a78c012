"""Scheduled jobs of the points program: thin, idempotent, safe to retry; the work is in the services.

Tier re-evaluation (members move down only here) and the ledger's batch jobs (`loyalty.ledger.jobs`).
"""

import logging

from celery import shared_task

from loyalty import ledger
from loyalty.models import Program
from loyalty.services.tiers import tiers_reevaluate

logger = logging.getLogger(__name__)


@shared_task(name="loyalty.tasks.reevaluate_tiers", time_limit=60 * 60, soft_time_limit=59 * 60)
def reevaluate_tiers() -> dict:
    changed = {}
    for program in Program.objects.filter(active=True, tiers__isnull=False).distinct().order_by("pk"):
        changed[program.pk] = tiers_reevaluate(program=program)
    return {"changed": changed}


@shared_task(name="loyalty.tasks.expire_points", time_limit=30 * 60, soft_time_limit=29 * 60)
def expire_points() -> dict:
    """Expire every lot past its time (set-based, in batches; a re-run after a crash expires nothing twice)."""
    result = ledger.points_expire_due()
    return {
        "skipped": result.skipped,
        "batches": result.batches,
        "accounts": result.accounts,
        "lots": result.lots,
        "points": result.points,
    }


@shared_task(name="loyalty.tasks.release_pending_points", time_limit=15 * 60, soft_time_limit=14 * 60)
def release_pending_points() -> dict:
    result = ledger.pending_release_due()
    return {"skipped": result.skipped, "released": result.released, "points": result.points}


@shared_task(name="loyalty.tasks.send_expiry_warnings", time_limit=15 * 60, soft_time_limit=14 * 60)
def send_expiry_warnings() -> dict:
    """`points.expiring_soon` and an email, once per account and expiry time."""
    return {"warnings": ledger.expiry_warnings_send()}


@shared_task(name="loyalty.tasks.reconcile_ledger", time_limit=30 * 60, soft_time_limit=29 * 60)
def reconcile_ledger() -> dict:
    """Balance == sum of entries == sum of live lots, for every account; mismatches are logged as errors."""
    mismatches = ledger.ledger_reconcile()
    return {"mismatches": len(mismatches), "accounts": [m["pk"] for m in mismatches[:100]]}
