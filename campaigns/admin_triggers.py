"""The console of automatic distributions: a campaign's triggers, and what they did (fired, skipped and why).

Triggers are saved through `campaigns.triggers.campaign_trigger_save` (its checks become form errors); firings
are read-only, filterable by campaign, trigger, kind, state and reason, scoped to the user's tenants.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from campaigns.models import CampaignTrigger, TriggerFiring
from campaigns.triggers import campaign_trigger_save, campaign_trigger_summary, trigger_check
from members.admin_tenancy import TenantScopedAdmin, TenantScopedReadOnlyAdmin


class CampaignTriggerForm(forms.ModelForm):
    class Meta:
        model = CampaignTrigger
        fields = (
            "campaign",
            "kind",
            "enabled",
            "tier_code",
            "order_number",
            "min_amount",
            "event_name",
            "segment",
            "repeat",
            "repeat_days",
        )

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        trigger = self.instance
        for name in self.Meta.fields:
            if name in cleaned:
                setattr(trigger, name, cleaned[name])
        trigger.tenant_id = trigger.campaign.tenant_id if trigger.campaign_id else None
        for name, message in trigger_check(trigger=trigger).items():
            self.add_error(name, message)
        return cleaned


@admin.register(CampaignTrigger)
class CampaignTriggerAdmin(TenantScopedAdmin):
    form = CampaignTriggerForm
    list_display = ("campaign", "kind", "enabled", "repeat", "checked_on", "created_at")
    list_select_related = ("campaign", "tenant")
    list_filter = ("kind", "enabled", "repeat")
    search_fields = ("campaign__name", "event_name", "tier_code")
    raw_id_fields = ("campaign",)

    def save_model(self, request, obj, form, change):
        campaign_trigger_save(trigger=obj, user=request.user)


@admin.register(TriggerFiring)
class TriggerFiringAdmin(TenantScopedReadOnlyAdmin):
    list_display = ("created_at", "campaign", "trigger", "member", "occurrence_key", "state", "reason", "code")
    list_select_related = ("campaign", "trigger", "member", "publication__code")
    list_filter = (
        ("campaign", admin.RelatedOnlyFieldListFilter),
        ("trigger", admin.RelatedOnlyFieldListFilter),
        "trigger__kind",
        "state",
        "reason",
    )
    search_fields = ("member__external_id", "occurrence_key")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-pk")

    @admin.display(description=_("code"))
    def code(self, obj):
        return obj.publication.code.code if obj.publication_id else "-"


def campaign_trigger_links(campaign) -> list[tuple[str, str]]:
    """(label, address) for the campaign page: what its triggers did, linked to their firings."""
    summary = campaign_trigger_summary(campaign)
    if not summary["published"] and not summary["skipped"]:
        return []
    label = _("Triggers: %(published)d published, %(skipped)d skipped") % summary
    return [(label, reverse("admin:campaigns_triggerfiring_changelist") + f"?campaign__id__exact={campaign.pk}")]
