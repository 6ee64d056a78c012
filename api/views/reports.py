"""Reports over the API (scope `read`): the summary and the time series of a range of days, as JSON or CSV."""

from django.utils.translation import gettext_lazy as _
from rest_framework import renderers, serializers
from rest_framework.response import Response

from api.base import ApiView
from api.lookups import campaign_or_404
from api.schema import api_schema
from api.serializers import validated
from common.errors import ApplicationError, NotFound
from loyalty.models import Tier
from members.models import Segment
from reports.exports import report_csv
from reports.ranges import InvalidRange, range_check
from reports.selectors import Report, ReportFilters, ReportRange, report_database


class ReportCSVRenderer(renderers.BaseRenderer):
    """CSV of the same figures (`reports.exports.report_csv`, which the dashboard's download uses too)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return report_csv(data if isinstance(data, dict) else {}).encode(self.charset)


class ReportQuerySerializer(serializers.Serializer):
    # `from` is a Python keyword: the field is declared below the class.
    to = serializers.DateField(help_text=_("The last day of the range (inclusive), in the tenant's time zone."))
    campaign = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1, help_text=_("Campaign id."))
    tier = serializers.SlugField(required=False, max_length=50, help_text=_("Tier code: the member's tier now."))
    segment = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1, help_text=_("Segment id."))
    location = serializers.CharField(required=False, max_length=100, help_text=_("The order's location."))
    integration = serializers.CharField(required=False, max_length=200, help_text=_("Integration name."))
    format = serializers.ChoiceField(
        choices=["json", "csv"], required=False, help_text=_("`csv` answers CSV (as `Accept: text/csv` does).")
    )


ReportQuerySerializer._declared_fields = {
    "from": serializers.DateField(help_text=_("The first day of the range (inclusive), in the tenant's time zone.")),
    **ReportQuerySerializer._declared_fields,
}


class TimeseriesQuerySerializer(ReportQuerySerializer):
    interval = serializers.ChoiceField(choices=["day", "week", "month"], default="day")


TimeseriesQuerySerializer._declared_fields = {
    **ReportQuerySerializer._declared_fields,
    "interval": TimeseriesQuerySerializer._declared_fields["interval"],
}

# --- output (documented; the selector's dict is the answer) -----------------------------------------


class ReportOrdersSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    value = serializers.CharField(help_text=_("Sum of the amounts as sent."))
    discount = serializers.CharField(help_text=_("Discounts of their successful redemptions (linked by order id)."))
    net = serializers.CharField(help_text=_("value - discount"))
    returned = serializers.CharField(help_text=_("Returned amounts recorded in the range."))
    aov = serializers.CharField()
    aov_discounted = serializers.CharField()
    aov_full_price = serializers.CharField()


class ReportExpiringSerializer(serializers.Serializer):
    pass


for _days in ("30", "60", "90"):
    ReportExpiringSerializer._declared_fields[_days] = serializers.IntegerField(
        help_text=_("Points expiring within this many days from now.")
    )


class PointsFiguresSerializer(serializers.Serializer):
    issued = serializers.IntegerField()
    spent = serializers.IntegerField()
    expired = serializers.IntegerField()
    reversed = serializers.IntegerField(help_text=_("Sum of the absolute points of `reverse` entries."))
    adjusted = serializers.IntegerField(help_text=_("Signed sum of `adjust` entries."))
    outstanding = serializers.IntegerField(help_text=_("Sum of every entry up to the end of `to`."))
    outstanding_value = serializers.CharField()
    expiring = ReportExpiringSerializer()


class GiftCardFiguresSerializer(serializers.Serializer):
    issued = serializers.CharField()
    spent = serializers.CharField()
    outstanding = serializers.CharField()


class CampaignFiguresSerializer(serializers.Serializer):
    published = serializers.IntegerField()
    redeemed = serializers.IntegerField()
    conversion_rate = serializers.CharField()
    engaged_published = serializers.IntegerField(
        help_text=_("Publications in the range to members who are `engaged` in the range.")
    )
    engaged_redeemed = serializers.IntegerField(help_text=_("Of those, the codes redeemed by the end of `to`."))
    engaged_conversion_rate = serializers.CharField(help_text=_("engaged_redeemed / engaged_published (4 places)."))
    redemptions = serializers.IntegerField()
    redemptions_failed = serializers.DictField(child=serializers.IntegerField(), help_text=_("Attempts by reason."))


class MemberFiguresSerializer(serializers.Serializer):
    with_orders = serializers.IntegerField()
    active_30d = serializers.IntegerField()
    active_90d = serializers.IntegerField()
    repeat_purchase_rate = serializers.CharField()
    engaged = serializers.IntegerField()
    engaged_revenue = serializers.CharField()
    regular_revenue = serializers.CharField()


class TierFiguresSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    members = serializers.IntegerField()
    moved_up = serializers.IntegerField(help_text=_("Moves into this tier from a lower one (or from none)."))
    moved_down = serializers.IntegerField(help_text=_("Moves into this tier from a higher one."))


class ReportSummarySerializer(serializers.Serializer):
    to = serializers.DateField()
    currency = serializers.CharField()
    orders = ReportOrdersSerializer()
    points = PointsFiguresSerializer()
    gift_cards = GiftCardFiguresSerializer()
    campaigns = CampaignFiguresSerializer()
    members = MemberFiguresSerializer()
    tiers = TierFiguresSerializer(many=True)


ReportSummarySerializer._declared_fields = {"from": serializers.DateField(), **ReportSummarySerializer._declared_fields}


class ReportPeriodSerializer(serializers.Serializer):
    start = serializers.DateField(help_text=_("The first day of the period (weeks start on Monday)."))
    orders = serializers.IntegerField()
    value = serializers.CharField()
    discount = serializers.CharField()
    points_issued = serializers.IntegerField()
    points_spent = serializers.IntegerField()
    points_expired = serializers.IntegerField()
    redemptions = serializers.IntegerField()


class ReportTimeseriesSerializer(serializers.Serializer):
    interval = serializers.CharField()
    periods = ReportPeriodSerializer(many=True)


REPORT_ERRORS = {
    400: ["validation_error", "invalid_range"],
    404: ["campaign_not_found", "segment_not_found", "tier_not_found"],
}

SUMMARY_DESCRIPTION = """Figures of the tenant over the days `from`..`to` (inclusive, in the tenant's time zone),
as defined in the API contract, and equal to the raw sums over the underlying rows.

Extra figures: `campaigns.engaged_conversion_rate`, the conversion of engaged members, is
`engaged_redeemed / engaged_published` where `engaged_published` counts the publications in the range to members
who are *engaged* in the range (they redeemed a code, paid with points or took a catalog reward), and
`engaged_redeemed` how many of those published codes were redeemed by the end of `to` (four places, "0.0000"
when nothing was published to them). `points.reversed` sums the absolute points of `reverse` entries.

Filters: `tier` and `segment` narrow every figure to those members (tier and segment as of now). `location`
narrows orders, returns and the figures made of orders. `integration` narrows redemptions, failed attempts and
discounts, and orders to those with a successful redemption through it. `campaign` narrows redemptions, discounts
(its redemption lines), publications, gift cards (its codes) and points (entries naming it), and orders to those
with a successful redemption of it; failed attempts are not attributed to a campaign (zero under that filter).
`tiers`: members per tier now; `moved_up`/`moved_down` count the moves into each tier in the range.

`Accept: text/csv` or `?format=csv` answers the same figures as `figure,value` rows."""


class ReportApiView(ApiView):
    required_scope = "read"
    renderer_classes = [renderers.JSONRenderer, ReportCSVRenderer]
    query_serializer = ReportQuerySerializer

    def finalize_response(self, request, response, *args, **kwargs):
        if response.status_code >= 400:  # errors keep the contract's JSON body, whatever was asked for
            request.accepted_renderer = renderers.JSONRenderer()
            request.accepted_media_type = "application/json"
        return super().finalize_response(request, response, *args, **kwargs)

    def report(self, request) -> tuple[Report, dict]:
        query = validated(self.query_serializer, request.query_params)
        try:
            range_check(query["from"], query["to"])
        except InvalidRange as exc:
            raise ApplicationError("invalid_range", exc.message, exc.detail, 400) from exc
        db = report_database()
        tenant = self.tenant
        campaign_id = segment = tier_code = None
        if "campaign" in query:
            campaign_id = campaign_or_404(tenant, query["campaign"]).pk
        if "segment" in query:
            segment = Segment.objects.using(db).filter(tenant_id=tenant.pk, pk=query["segment"]).first()
            if segment is None:
                raise NotFound("segment_not_found", "No such segment.", {"segment": str(query["segment"])})
        if "tier" in query:
            if not Tier.objects.using(db).filter(tenant_id=tenant.pk, code=query["tier"]).exists():
                raise NotFound("tier_not_found", "No such tier.", {"tier": query["tier"]})
            tier_code = query["tier"]
        filters = ReportFilters(
            campaign_id=campaign_id,
            tier_code=tier_code,
            segment=segment,
            location=query.get("location"),
            integration=query.get("integration"),
        )
        return Report(ReportRange(tenant, query["from"], query["to"]), filters, using=db), query


class ReportSummaryApi(ReportApiView):
    @api_schema(
        summary="Report: the figures of a range of days",
        description=SUMMARY_DESCRIPTION,
        parameters=[ReportQuerySerializer],
        responses={200: ReportSummarySerializer},
        errors=REPORT_ERRORS,
        tags=["reports"],
    )
    def get(self, request):
        report, _query = self.report(request)
        return Response(report.summary())


class ReportTimeseriesApi(ReportApiView):
    query_serializer = TimeseriesQuerySerializer

    @api_schema(
        summary="Report: figures per day, week or month",
        description="One period per interval in the range, empty ones included; weeks start on Monday and a "
        "period's `start` may precede `from` (the week or month holding it). The periods add up to the summary "
        "of the same range and filters. `Accept: text/csv` or `?format=csv` answers one CSV row per period.",
        parameters=[TimeseriesQuerySerializer],
        responses={200: ReportTimeseriesSerializer},
        errors=REPORT_ERRORS,
        tags=["reports"],
    )
    def get(self, request):
        report, query = self.report(request)
        return Response(report.timeseries(query["interval"]))
