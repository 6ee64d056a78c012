"""Idempotency records: how long a stored first answer is kept, and the purge of older ones.

The claim and replay of `Idempotency-Key` requests is the API's (`api.idempotency`); the records are this app's.
"""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.job_locks import job_lock_take
from integrations.models import IdempotencyRecord


def _setting(name: str, default):
    return getattr(settings, name, default)


def retention() -> timedelta:
    return timedelta(hours=max(24, _setting("IDEMPOTENCY_RETENTION_HOURS", 48)))


def idempotency_records_purge(*, older_than: timedelta | None = None, chunk: int = 5000) -> int:
    """Delete records past retention, in chunks; safe to re-run. An overlapping run (the job's advisory lock
    is taken, `common.job_locks`) stops at once: the other run deletes the rest."""
    cutoff = timezone.now() - (older_than or retention())
    total = 0
    while True:
        with transaction.atomic(durable=True):
            if not job_lock_take("idempotency_records_purge"):
                return total
            ids = list(IdempotencyRecord.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:chunk])
            if not ids:
                return total
            total += IdempotencyRecord.objects.filter(pk__in=ids).delete()[0]


@shared_task(name="integrations.purge_idempotency_records", time_limit=600, soft_time_limit=540)
def purge_idempotency_records() -> int:
    return idempotency_records_purge()
