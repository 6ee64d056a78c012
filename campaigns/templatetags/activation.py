"""The admin index's launch panel: activation requests the signed-in marketer may approve."""

from django import template

from campaigns.models import ActivationRequest
from campaigns.services import ENABLE_PERMISSION
from members.admin_tenancy import tenants_for_user

register = template.Library()


@register.inclusion_tag("admin/campaigns/activationrequest/pending.html", takes_context=True)
def pending_activations(context):
    user = context["request"].user
    if not user.has_perm(ENABLE_PERMISSION):
        return {"requests": [], "total": 0}
    pending = (
        ActivationRequest.objects.filter(state=ActivationRequest.State.PENDING, tenant__in=tenants_for_user(user))
        .exclude(requested_by=user)
        .select_related("campaign", "requested_by")
        .order_by("requested_at")
    )
    return {"requests": list(pending[:10]), "total": pending.count()}
