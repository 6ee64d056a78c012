"""Four eyes for support: an adjustment or apology coupon above the agent's limit becomes a request a second
person decides.

Approval runs the change through the same service (`points_adjust`, `apology_code_give`), exactly once: the
request leaves `pending` by a conditional UPDATE (two approvers at once: one wins), and the ledger entry carries
the request's idempotency key.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.services import apology_code_give
from common.errors import ApplicationError
from common.side_effects import enqueue
from common.validation import FieldErrors
from loyalty.ledger.adjustments import points_adjust
from loyalty.models import LedgerEntry
from members.admin_tenancy import tenants_for_user
from members.models import Member
from rewards.models import ApprovalRequest

APPROVE_PERMISSION = "rewards.approve_approvalrequest"
OVER_LIMIT = "adjustment_over_limit"
APOLOGY_OVER_LIMIT = "apology_over_limit"


def adjustment_apply_or_request(
    *, member: Member, points: int, reason: str, staff_user
) -> tuple[LedgerEntry | None, ApprovalRequest | None]:
    """Adjust now when within the agent's limits; above them, record an approval request instead."""
    try:
        return points_adjust(member=member, points=points, reason=reason, staff_user=staff_user), None
    except ApplicationError as exc:
        if exc.code != OVER_LIMIT:
            raise
    return None, _request(member=member, staff_user=staff_user, reason=reason, points=points)


def apology_give_or_request(*, campaign: Campaign, member: Member, staff_user, reason: str):
    """Give the apology coupon now when within the agent's coupons of the day -> (publication, created, emailed,
    None); beyond them record an approval request instead -> (None, False, False, request)."""
    try:
        return *apology_code_give(campaign=campaign, member=member, staff_user=staff_user, reason=reason), None
    except ApplicationError as exc:
        if exc.code != APOLOGY_OVER_LIMIT:
            raise
    request = _request(
        member=member, staff_user=staff_user, reason=reason, kind=ApprovalRequest.Kind.APOLOGY, campaign=campaign
    )
    return None, False, False, request


def _request(*, member: Member, staff_user, reason: str, kind=ApprovalRequest.Kind.ADJUSTMENT, **change):
    with transaction.atomic():
        request = ApprovalRequest.objects.create(
            tenant_id=member.tenant_id,
            member=member,
            kind=kind,
            reason=reason.strip(),
            requested_by=staff_user,
            **change,
        )
        from rewards.tasks import notify_approvers  # the tasks module imports this one

        enqueue(notify_approvers, request.pk)
    return request


def approvers_for(request: ApprovalRequest) -> list:
    """Active staff who may decide this request: the approve right, access to its tenant, not the requester."""
    app_label, codename = APPROVE_PERMISSION.split(".")
    permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
    users = get_user_model().objects.filter(is_active=True, is_staff=True).exclude(pk=request.requested_by_id)
    users = users.filter(Q(is_superuser=True) | Q(groups__permissions=permission) | Q(user_permissions=permission))
    return [u for u in users.distinct() if tenants_for_user(u).filter(pk=request.tenant_id).exists()]


def approval_decide(*, request: ApprovalRequest, approver, approve: bool, comment: str = "") -> ApprovalRequest:
    """Approve (and carry out) or reject a pending request; the requester cannot decide their own."""
    errors = FieldErrors()
    comment = errors.text(comment, "comment", max_length=300, strip=True)
    errors.raise_if_any("validation_error", "The comment is too long.")
    if request.requested_by_id == approver.pk:
        raise ApplicationError("own_request", "A second person must decide this request.", status=403)
    if not approver.has_perm(APPROVE_PERMISSION) or not tenants_for_user(approver).filter(pk=request.tenant_id):
        raise ApplicationError("forbidden", "You may not decide requests of this tenant.", status=403)
    state = ApprovalRequest.State.APPROVED if approve else ApprovalRequest.State.REJECTED
    with transaction.atomic():
        claimed = ApprovalRequest.objects.filter(pk=request.pk, state=ApprovalRequest.State.PENDING).update(
            state=state, decided_by=approver, decided_at=timezone.now(), comment=comment
        )
    if not claimed:
        raise ApplicationError("already_decided", "Someone already decided this request.", status=409)
    request.refresh_from_db()
    if approve and request.kind == ApprovalRequest.Kind.APOLOGY:
        try:
            publication, _created, _emailed = apology_code_give(
                campaign=request.campaign,
                member=request.member,
                staff_user=request.requested_by,
                reason=f"{request.reason} (approved by {approver.get_username()})",
                approved_by=approver,
            )
        except ApplicationError as exc:
            request.state, request.error = ApprovalRequest.State.FAILED, exc.message[:300]
            request.save(update_fields=["state", "error"])
        else:
            request.publication_id = publication.pk
            request.save(update_fields=["publication_id"])
    elif approve:
        try:
            entry = points_adjust(
                member=request.member,
                points=request.points,
                reason=f"{request.reason} (approved by {approver.get_username()})",
                staff_user=request.requested_by,
                approved_by=approver,
                idempotency_key=f"approval:{request.pk}",
            )
        except ApplicationError as exc:
            request.state, request.error = ApprovalRequest.State.FAILED, exc.message[:300]
            request.save(update_fields=["state", "error"])
        else:
            request.ledger_entry_id = entry.pk
            request.save(update_fields=["ledger_entry_id"])
    return request
