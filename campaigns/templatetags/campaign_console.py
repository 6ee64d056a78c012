"""The admin index's campaign panel: the campaigns the user may see that need attention."""

from django import template

from campaigns.console.glance import FLAG_LABELS
from campaigns.models import Campaign
from campaigns.selectors import campaign_flags, campaigns_needing_attention
from members.admin_tenancy import tenants_for_user

register = template.Library()


@register.inclusion_tag("admin/campaigns/campaign/attention.html", takes_context=True)
def campaigns_attention(context):
    user = context["request"].user
    if not user.has_perm("campaigns.view_campaign"):
        return {"campaigns": []}
    campaigns = Campaign.objects.all()
    if not user.is_superuser:
        campaigns = campaigns.filter(tenant__in=tenants_for_user(user))
    found = campaigns_needing_attention(campaigns=campaigns)
    return {"campaigns": [(c, [FLAG_LABELS[f] for f in campaign_flags(c)]) for c in found]}
