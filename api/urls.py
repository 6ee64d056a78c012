"""Routes of /api/v1/. Every path works with and without its trailing slash (`/?$`)."""

from django.urls import re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from api import schema  # noqa: F401  (registers the API-key security scheme)
from api.base import ApiNotFoundView
from api.views import campaigns, cockpit, earning, members, redemptions, reports
from api.views.tenant import TenantDetailApi, TenantFreezeApi, TenantUnfreezeApi

app_name = "api"

SEGMENT = r"[^/]+"


def route(pattern: str, view, name: str):
    """`pattern` without slashes at either end; the trailing slash is optional."""
    return re_path(rf"^{pattern}/?$", view, name=name)


urlpatterns = [
    route("schema", SpectacularAPIView.as_view(), "schema"),
    # Swagger UI from drf-spectacular-sidecar's static files (no CDN), its start-up script served as a
    # file (`?script`) rather than inline, as the Content-Security-Policy wants. Redoc is left out: its page
    # loads web fonts from a CDN and starts with an inline script.
    route("docs", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), "docs"),
    route("tenant", TenantDetailApi.as_view(), "tenant"),
    route("tenant/freeze", TenantFreezeApi.as_view(), "tenant-freeze"),
    route("tenant/unfreeze", TenantUnfreezeApi.as_view(), "tenant-unfreeze"),
    # Members
    route(rf"members/(?P<external_id>{SEGMENT})", members.MemberApi.as_view(), "member"),
    route(rf"members/(?P<external_id>{SEGMENT})/ledger", members.MemberLedgerApi.as_view(), "member-ledger"),
    route(rf"members/(?P<external_id>{SEGMENT})/rewards", members.MemberRewardsApi.as_view(), "member-rewards"),
    route(
        rf"members/(?P<external_id>{SEGMENT})/reward-redemptions",
        members.MemberRewardRedemptionApi.as_view(),
        "member-reward-redemptions",
    ),
    route(
        rf"members/(?P<external_id>{SEGMENT})/cockpit-link",
        cockpit.MemberCockpitLinkApi.as_view(),
        "member-cockpit-link",
    ),
    # Earning and programs
    route("orders", earning.OrderCreateApi.as_view(), "orders"),
    route(rf"orders/(?P<order_id>{SEGMENT})/returns", earning.OrderReturnApi.as_view(), "order-returns"),
    route("events", earning.EventCreateApi.as_view(), "events"),
    route(rf"programs/(?P<code>{SEGMENT})", earning.ProgramApi.as_view(), "program"),
    # Campaigns and distribution
    route("campaigns", campaigns.CampaignCreateApi.as_view(), "campaigns"),
    route(rf"campaigns/(?P<campaign_id>{SEGMENT})", campaigns.CampaignApi.as_view(), "campaign"),
    route(rf"campaigns/(?P<campaign_id>{SEGMENT})/enable", campaigns.CampaignEnableApi.as_view(), "campaign-enable"),
    route(rf"campaigns/(?P<campaign_id>{SEGMENT})/disable", campaigns.CampaignDisableApi.as_view(), "campaign-disable"),
    route(rf"campaigns/(?P<campaign_id>{SEGMENT})/stats", campaigns.CampaignStatsApi.as_view(), "campaign-stats"),
    route("publications", campaigns.PublicationCreateApi.as_view(), "publications"),
    # Validation, redemption, catalog
    route("validations", redemptions.ValidationApi.as_view(), "validations"),
    route("redemptions", redemptions.RedemptionCreateApi.as_view(), "redemptions"),
    route(
        rf"redemptions/(?P<redemption_id>{SEGMENT})/rollback",
        redemptions.RedemptionRollbackApi.as_view(),
        "redemption-rollback",
    ),
    route("rewards", redemptions.RewardCatalogApi.as_view(), "rewards"),
    # Reports
    route("reports/summary", reports.ReportSummaryApi.as_view(), "reports-summary"),
    route("reports/timeseries", reports.ReportTimeseriesApi.as_view(), "reports-timeseries"),
]

# Last: any other path under /api/v1/ is a 404 with the error body (not Django's HTML page).
urlpatterns.append(re_path(r"^.*$", ApiNotFoundView.as_view(), name="not-found"))
