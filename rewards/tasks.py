"""Celery tasks of rewards: thin, take ids, safe to retry."""

import logging

from celery import shared_task
from django.core.mail import send_mail
from django.urls import reverse

from rewards.models import ApprovalRequest
from rewards.services.approvals import approvers_for

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)
def notify_approvers(request_id: int) -> int:
    """Email every possible approver of a support request; returns how many were written to."""
    request = ApprovalRequest.objects.select_related("member", "requested_by", "tenant").filter(pk=request_id).first()
    if request is None or request.state != ApprovalRequest.State.PENDING:
        return 0
    recipients = [u.email for u in approvers_for(request) if u.email]
    if not recipients:
        logger.warning("approval request %s has nobody with an email to approve it", request_id)
        return 0
    link = reverse("admin:rewards_approvalrequest_decide", args=[request.pk])
    send_mail(
        f"[{request.tenant.name}] Approval needed: {request.points:+d} points for {request.member}",
        f"{request.requested_by.get_username()} asks to adjust {request.member} by {request.points:+d} points.\n"
        f"Reason: {request.reason}\n\nDecide in the admin: {link}\n",
        None,
        recipients,
    )
    return len(recipients)
