"""The campaign console's figures kept in this app's records (validations, rollbacks, failures by reason, the
daily chart, the latest redemption): `CampaignAdmin` below fills the hooks of `campaigns.console.glance`
(campaigns may not import rewards) and replaces the registered campaign admin, as the "Test rule" page does."""

from django.contrib import admin
from django.db.models import OuterRef, Subquery

from campaigns.models import Campaign
from rewards.admin import campaign_rule_tester
from rewards.campaign_numbers import campaign_activity
from rewards.models import RedemptionCode


class CampaignAdmin(campaign_rule_tester.CampaignAdmin):
    def campaign_activity(self, campaign):
        return campaign_activity(campaign)

    def last_activity_subquery(self):
        # One index probe per listed campaign: (campaign, created_at) is `redemption_line_campaign`.
        latest = RedemptionCode.objects.filter(campaign=OuterRef("pk")).order_by("-created_at").values("created_at")
        return Subquery(latest[:1])


admin.site.unregister(Campaign)
admin.site.register(Campaign, CampaignAdmin)
