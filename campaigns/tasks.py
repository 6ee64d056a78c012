"""Celery tasks of campaigns: thin, take ids, call services, safe to retry."""

from celery import shared_task

from campaigns import distribution, reminders, services, triggers
from campaigns.emails import code_email_send
from common.side_effects import publish_task


@shared_task(acks_late=True, time_limit=30 * 60, soft_time_limit=29 * 60)
def generate_codes_job(job_id: int) -> int:
    """Bulk code generation; re-running tops the job up to its count without duplicates."""
    return services.code_generation_run(job_id=job_id).created


@shared_task(time_limit=120, soft_time_limit=110)
def circuit_breaker_sweep() -> list[int]:
    """Every minute (beat): pause campaigns whose redemption rate or budget burn is abnormal."""
    return services.breaker_sweep()


@shared_task(
    acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5, time_limit=60, soft_time_limit=50
)
def send_code_email(publication_id: int, message: str = "") -> bool:
    """The code's email to its member (consent checked at sending time); retried while the mail server is down."""
    return code_email_send(publication_id=publication_id, message=message)


@shared_task(acks_late=True, time_limit=120, soft_time_limit=110)
def fire_event_triggers(tenant_id: int, event_type: str, data: dict) -> int:
    """After a member joined, reached a tier, paid an order or did a custom event: the campaign triggers it fires."""
    return len(triggers.triggers_fire_for_event(tenant_id=tenant_id, event_type=event_type, data=data))


@shared_task(acks_late=True, time_limit=30 * 60, soft_time_limit=29 * 60)
def run_tenant_daily_triggers(tenant_id: int) -> int:
    """One tenant's birthday and segment-entry triggers for its local today (a no-op once done today)."""
    return triggers.triggers_run_daily(tenant_id=tenant_id)


@shared_task(time_limit=120, soft_time_limit=110)
def daily_triggers_sweep() -> int:
    """Hourly (beat): a task per tenant with daily triggers, so each is run soon after the tenant's midnight."""
    tenant_ids = triggers.tenants_with_daily_triggers()
    for tenant_id in tenant_ids:
        publish_task(run_tenant_daily_triggers, tenant_id)
    return len(tenant_ids)


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def notify_activation_approvers(request_id: int) -> int:
    """Email the marketers who may approve an activation request; returns how many were written to."""
    from campaigns.activation import activation_approvers_notify

    return activation_approvers_notify(request_id=request_id)


@shared_task(acks_late=True, time_limit=15 * 60, soft_time_limit=14 * 60)
def run_segment_send(send_id: int) -> bool:
    """A few batches of a send to a segment, then queue itself again while members are pending (idempotent)."""
    more = distribution.segment_send_run(send_id=send_id)
    if more:
        publish_task(run_segment_send, send_id)
    return more


@shared_task(time_limit=10 * 60, soft_time_limit=9 * 60)
def reminders_sweep() -> dict:
    """Every few minutes (beat): write the reminders that fell due and send them, in batches; safe to overlap."""
    return reminders.reminders_send_due().as_dict()
