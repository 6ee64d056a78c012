"""Activation requests: a junior marketer asks, a marketer with the enable right approves or rejects.

Approval runs `campaign_enable` and moves the request out of `pending` by a conditional UPDATE inside that one
transaction (its `answer` hook): two approvers at once queue on the campaign's row lock, the second finds the
request decided and rolls back, so the campaign is enabled (and its event published) once. The requester can
never decide their own request: checked here, and refused by the `activation_not_by_requester` constraint.
"""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from campaigns.models import ActivationRequest, Campaign
from campaigns.services import ENABLE_PERMISSION, campaign_enable
from common.errors import ApplicationError
from common.side_effects import enqueue
from common.validation import FieldErrors
from members.admin_tenancy import tenants_for_user

logger = logging.getLogger(__name__)
State = ActivationRequest.State


def _text(value: str, at: str) -> str:
    errors = FieldErrors()
    text = errors.text(value, at, max_length=300, strip=True)
    errors.raise_if_any("validation_error", "The text is too long (at most 300 characters).")
    return text or ""


def activation_request(*, campaign: Campaign, user, note: str = "") -> ActivationRequest:
    """Record a request to launch `campaign` and email its approvers after commit; one pending per campaign."""
    note = _text(note, "note")
    if campaign.enabled:
        raise ApplicationError("already_enabled", "This campaign is already enabled.", status=409)
    if not tenants_for_user(user).filter(pk=campaign.tenant_id).exists():
        raise ApplicationError("forbidden", "You may not work with this tenant.", status=403)
    try:
        with transaction.atomic(durable=True):
            request = ActivationRequest.objects.create(
                tenant_id=campaign.tenant_id, campaign=campaign, requested_by=user, note=note
            )
            from campaigns.tasks import notify_activation_approvers  # the tasks module imports the services

            enqueue(notify_activation_approvers, request.pk)
    except IntegrityError as exc:
        raise ApplicationError(
            "already_requested", "An activation request for this campaign is already waiting.", status=409
        ) from exc
    return request


def activation_approvers(request: ActivationRequest) -> list:
    """Active staff who may decide: the enable right, access to the request's tenant, not the requester."""
    app_label, codename = ENABLE_PERMISSION.split(".")
    permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
    users = get_user_model().objects.filter(is_active=True, is_staff=True).exclude(pk=request.requested_by_id)
    users = users.filter(Q(is_superuser=True) | Q(groups__permissions=permission) | Q(user_permissions=permission))
    return [u for u in users.distinct() if tenants_for_user(u).filter(pk=request.tenant_id).exists()]


def may_decide(request: ActivationRequest, user) -> bool:
    return (
        request.requested_by_id != user.pk
        and user.has_perm(ENABLE_PERMISSION)
        and tenants_for_user(user).filter(pk=request.tenant_id).exists()
    )


def activation_decide(*, request: ActivationRequest, approver, approve: bool, comment: str = "") -> ActivationRequest:
    """Approve (the campaign is enabled) or reject (with a comment) a pending request."""
    comment = _text(comment, "comment")
    if request.requested_by_id == approver.pk:
        raise ApplicationError("own_request", "A second person must decide this request.", status=403)
    if not may_decide(request, approver):
        raise ApplicationError("forbidden", "You may not launch campaigns of this tenant.", status=403)
    decision = {"decided_by": approver, "decided_at": timezone.now(), "comment": comment}

    def claim(state: str) -> None:
        moved = ActivationRequest.objects.filter(pk=request.pk, state=State.PENDING).update(state=state, **decision)
        if not moved:
            raise ApplicationError("already_decided", "Someone already decided this request.", status=409)

    if approve:
        requester = request.requested_by.get_username()
        campaign_enable(
            campaign=request.campaign,
            user=approver,
            reason=f"by {approver.get_username()} on the request of {requester}",
            answer=lambda _campaign: claim(State.APPROVED),
        )
    else:
        with transaction.atomic(durable=True):
            claim(State.REJECTED)
    request.refresh_from_db()
    return request


def activation_approvers_notify(*, request_id: int) -> int:
    """Email every possible approver of a pending request; returns how many were written to."""
    request = (
        ActivationRequest.objects.select_related("campaign", "requested_by", "tenant").filter(pk=request_id).first()
    )
    if request is None or request.state != State.PENDING:
        return 0
    recipients = [u.email for u in activation_approvers(request) if u.email]
    if not recipients:
        logger.warning("activation request %s has nobody with an email to approve it", request_id)
        return 0
    link = reverse("admin:campaigns_activationrequest_decide", args=[request.pk])
    send_mail(
        f"[{request.tenant.name}] Activation requested: {request.campaign.name}",
        f"{request.requested_by.get_username()} asks to launch the campaign {request.campaign.name}.\n"
        f"{request.note}\n\nApprove or reject it in the admin: {link}\n",
        None,
        recipients,
    )
    return len(recipients)
