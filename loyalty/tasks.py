"""Scheduled loyalty jobs: tier re-evaluation (members move down only here)."""

from celery import shared_task

from loyalty.models import Program
from loyalty.services import tiers_reevaluate


@shared_task(name="loyalty.tasks.reevaluate_tiers", time_limit=60 * 60, soft_time_limit=59 * 60)
def reevaluate_tiers() -> dict:
    changed = {}
    for program in Program.objects.filter(active=True, tiers__isnull=False).distinct().order_by("pk"):
        changed[program.pk] = tiers_reevaluate(program=program)
    return {"changed": changed}
