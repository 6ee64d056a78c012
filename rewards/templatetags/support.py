"""The admin index's support panel: approval requests waiting for the signed-in approver."""

from django import template

from members.admin_tenancy import tenants_for_user
from rewards.models import ApprovalRequest
from rewards.services.approvals import APPROVE_PERMISSION

register = template.Library()


@register.inclusion_tag("admin/rewards/approvalrequest/pending.html", takes_context=True)
def pending_approvals(context):
    user = context["request"].user
    if not user.has_perm(APPROVE_PERMISSION):
        return {"requests": [], "total": 0}
    pending = (
        ApprovalRequest.objects.filter(state=ApprovalRequest.State.PENDING, tenant__in=tenants_for_user(user))
        .exclude(requested_by=user)
        .select_related("member", "requested_by", "campaign")
        .order_by("requested_at")
    )
    return {"requests": list(pending[:10]), "total": pending.count()}
