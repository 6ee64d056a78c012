"""Celery tasks of rewards: thin, take ids, safe to retry."""

import datetime as dt
import logging

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse
from django.utils import timezone

from rewards.models import ApprovalRequest, EvaluationTrace
from rewards.services.approvals import approvers_for

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def notify_approvers(request_id: int) -> int:
    """Email every possible approver of a support request; returns how many were written to."""
    related = ("member", "requested_by", "tenant", "campaign")
    request = ApprovalRequest.objects.select_related(*related).filter(pk=request_id).first()
    if request is None or request.state != ApprovalRequest.State.PENDING:
        return 0
    recipients = [u.email for u in approvers_for(request) if u.email]
    if not recipients:
        logger.warning("approval request %s has nobody with an email to approve it", request_id)
        return 0
    link = reverse("admin:rewards_approvalrequest_decide", args=[request.pk])
    send_mail(
        f"[{request.tenant.name}] Approval needed: {request.change} for {request.member}",
        f"{request.requested_by.get_username()} asks for {request.change} for {request.member}.\n"
        f"Reason: {request.reason}\n\nDecide in the admin: {link}\n",
        None,
        recipients,
    )
    return len(recipients)


@shared_task(acks_late=True, time_limit=30 * 60, soft_time_limit=29 * 60)
def prune_evaluation_traces(chunk: int = 5000) -> int:
    """Delete traces older than the retention, in chunks of one statement each (safe to run twice at once)."""
    cutoff = timezone.now() - dt.timedelta(days=settings.TRACE_RETENTION_DAYS)
    deleted = 0
    while True:
        ids = list(EvaluationTrace.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:chunk])
        if not ids:
            return deleted
        deleted += EvaluationTrace.objects.filter(pk__in=ids).delete()[0]
