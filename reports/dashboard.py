"""The reports dashboard in the admin (`/admin/reports/dashboard/`): the API's summary and time series of one of the
user's tenants, with a range picker, the API's filters, charts, the API's CSV and digest subscriptions.

One code path with the API: the figures are `reports.selectors.Report`'s, the range rules `reports.ranges`', the
CSV `reports.exports`'. The query parameters are the API's (`from`, `to`, `campaign`, `tier`, `segment`,
`location`, `integration`, `interval`) plus `tenant`, so a page's address names the same figures as the API call.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from campaigns.models import Campaign
from integrations.models import Integration
from loyalty.models import Order, Tier
from members.admin_tenancy import tenants_for_user
from members.models import Segment, Tenant
from reports import services
from reports.exports import report_csv, summary_figures
from reports.models import DailyOrders, ReportSubscription, RollupWatermark
from reports.ranges import InvalidRange, range_check
from reports.selectors import Report, ReportFilters, ReportRange, report_database

PERMISSION = "reports.see_dashboard"
FILTER_NAMES = ("campaign", "tier", "segment", "location", "integration")
INTERVALS = [("day", _("day")), ("week", _("week")), ("month", _("month"))]
PRESETS = {
    "last_7": _("Last 7 days"),
    "last_30": _("Last 30 days"),
    "last_90": _("Last 90 days"),
    "this_month": _("This month"),
    "last_month": _("Last month"),
    "this_year": _("This year"),
}
DEFAULT_PRESET = "last_30"

ENGAGED_DEFINITION = _(
    "Engaged conversion rate = engaged redeemed / engaged published: of the codes published in the range to members "
    "who are engaged in the range (they redeemed a code, paid with points or took a catalog reward), the share "
    "redeemed by the end of the range (four places, 0.0000 when nothing was published to them)."
)

LABELS = {
    "orders.count": _("Orders"),
    "orders.value": _("Order value"),
    "orders.discount": _("Discount"),
    "orders.net": _("Net (value - discount)"),
    "orders.returned": _("Returned"),
    "orders.aov": _("Average order value"),
    "orders.aov_discounted": _("Average order value, with a discount"),
    "orders.aov_full_price": _("Average order value, full price"),
    "points.issued": _("Points issued"),
    "points.spent": _("Points spent"),
    "points.expired": _("Points expired"),
    "points.reversed": _("Points reversed"),
    "points.adjusted": _("Points adjusted (signed)"),
    "points.outstanding": _("Points outstanding at the end (liability)"),
    "points.outstanding_value": _("Outstanding points' value"),
    "points.expiring.30": _("Points expiring within 30 days from now"),
    "points.expiring.60": _("Points expiring within 60 days from now"),
    "points.expiring.90": _("Points expiring within 90 days from now"),
    "gift_cards.issued": _("Gift cards issued"),
    "gift_cards.spent": _("Gift cards spent"),
    "gift_cards.outstanding": _("Gift cards outstanding at the end"),
    "campaigns.published": _("Codes published"),
    "campaigns.redeemed": _("Of those, redeemed"),
    "campaigns.conversion_rate": _("Conversion rate"),
    "campaigns.engaged_published": _("Codes published to engaged members"),
    "campaigns.engaged_redeemed": _("Of those, redeemed"),
    "campaigns.engaged_conversion_rate": _("Engaged conversion rate"),
    "campaigns.redemptions": _("Successful redemptions"),
    "members.with_orders": _("Members with orders"),
    "members.active_30d": _("Active in the last 30 days"),
    "members.active_90d": _("Active in the last 90 days"),
    "members.repeat_purchase_rate": _("Repeat-purchase rate"),
    "members.engaged": _("Engaged members"),
    "members.engaged_revenue": _("Revenue of engaged members"),
    "members.regular_revenue": _("Revenue of everyone else"),
}
SECTIONS = {
    "orders": _("Orders"),
    "points": _("Points"),
    "gift_cards": _("Gift cards"),
    "campaigns": _("Campaigns"),
    "members": _("Members"),
}


def preset_range(preset: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """The days of a preset, ending today (the tenant's today) or with the last complete month."""
    if preset.startswith("last_") and preset[5:].isdigit():
        return today - dt.timedelta(days=int(preset[5:]) - 1), today
    if preset == "this_month":
        return today.replace(day=1), today
    if preset == "last_month":
        last = today.replace(day=1) - dt.timedelta(days=1)
        return last.replace(day=1), last
    if preset == "this_year":
        return today.replace(month=1, day=1), today
    raise ValueError(preset)


def tenant_today(tenant: Tenant) -> dt.date:
    return timezone.now().astimezone(tenant.tz).date()


def locations(tenant: Tenant, using: str) -> list[str]:
    """The tenant's order locations: those of the rollups plus those of the orders not folded in yet (cheap: the
    rollups hold a row per day and location, the tail is small)."""
    folded = DailyOrders.objects.using(using).filter(tenant_id=tenant.pk).values_list("location", flat=True)
    mark = RollupWatermark.objects.using(using).filter(source="order").values_list("last_id", flat=True).first() or 0
    tail = Order.objects.using(using).filter(tenant_id=tenant.pk, id__gt=mark).values_list("location", flat=True)
    return sorted({*folded.distinct(), *tail.distinct()} - {""})


def report_filters(tenant: Tenant, params: dict[str, Any], using: str) -> ReportFilters:
    """The selector's filters from query parameters already checked against the tenant's choices (the form) or
    stored with a subscription; `LookupError` when a segment they name is gone (its filter must not widen)."""
    segment = None
    if params.get("segment"):
        segment = Segment.objects.using(using).filter(tenant_id=tenant.pk, pk=params["segment"]).first()
        if segment is None:
            raise LookupError("segment")
    return ReportFilters(
        campaign_id=int(params["campaign"]) if params.get("campaign") else None,
        tier_code=params.get("tier") or None,
        segment=segment,
        location=params.get("location") or None,
        integration=params.get("integration") or None,
    )


class ReportFiltersForm(forms.Form):
    """The API's filters, their choices limited to the tenant's own."""

    campaign = forms.TypedChoiceField(label=_("Campaign"), required=False, coerce=int, empty_value=None)
    tier = forms.ChoiceField(label=_("Tier (now)"), required=False)
    segment = forms.TypedChoiceField(label=_("Segment (now)"), required=False, coerce=int, empty_value=None)
    location = forms.ChoiceField(label=_("Location"), required=False)
    integration = forms.ChoiceField(label=_("Integration"), required=False)

    def __init__(self, *args, tenant: Tenant, using: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant, self.using = tenant, using
        everything = [("", _("all"))]
        campaigns = Campaign.objects.using(using).filter(tenant_id=tenant.pk).order_by("name", "pk")
        self.fields["campaign"].choices = [*everything, *campaigns.values_list("pk", "name")]
        tiers = Tier.objects.using(using).filter(tenant_id=tenant.pk).order_by("rank", "code")
        seen: dict[str, str] = {}
        for code, name in tiers.values_list("code", "name"):
            seen.setdefault(code, name)
        self.fields["tier"].choices = [*everything, *seen.items()]
        segments = Segment.objects.using(using).filter(tenant_id=tenant.pk).order_by("name", "pk")
        self.fields["segment"].choices = [*everything, *segments.values_list("pk", "name")]
        self.fields["location"].choices = [*everything, *((loc, loc) for loc in locations(tenant, using))]
        names = Integration.objects.using(using).filter(tenant_id=tenant.pk).order_by("name")
        self.fields["integration"].choices = [*everything, *((n, n) for n in names.values_list("name", flat=True))]

    def filter_params(self) -> dict[str, Any]:
        """The chosen filters as query parameters (what a subscription stores), empty ones left out."""
        return {name: self.cleaned_data[name] for name in FILTER_NAMES if self.cleaned_data.get(name)}

    def report_filters(self) -> ReportFilters:
        return report_filters(self.tenant, self.filter_params(), self.using)


class DashboardForm(ReportFiltersForm):
    """The range (dates or a preset), the series' interval and the filters."""

    to = forms.DateField(label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))
    interval = forms.ChoiceField(label=_("Chart by"), choices=INTERVALS, required=False)

    field_order = ["from", "to", "interval", *FILTER_NAMES]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # `from` is a Python keyword: declared here.
        self.fields["from"] = forms.DateField(label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
        self.order_fields(self.field_order)

    def clean(self):
        data = super().clean()
        first, last = data.get("from"), data.get("to")
        if first and last:
            try:
                range_check(first, last)
            except InvalidRange as exc:
                raise forms.ValidationError(exc.message, code="invalid_range") from exc
        data["interval"] = data.get("interval") or "day"
        return data

    def report(self) -> Report:
        rng = ReportRange(self.tenant, self.cleaned_data["from"], self.cleaned_data["to"])
        return Report(rng, self.report_filters(), using=self.using)


class SubscribeForm(ReportFiltersForm):
    frequency = forms.ChoiceField(choices=ReportSubscription.Frequency.choices)


def _check_permission(request) -> None:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied


def _tenant(request, params) -> Tenant | None:
    """The tenant named by `tenant` among the user's (404 for any other), else the user's first; None if they have
    none."""
    tenants = tenants_for_user(request.user).order_by("name", "pk")
    raw = params.get("tenant")
    if raw:
        if not str(raw).isdigit():
            raise Http404
        tenant = tenants.filter(pk=int(raw)).first()
        if tenant is None:
            raise Http404
        return tenant
    return tenants.first()


def _query(tenant: Tenant, params: dict[str, Any], **extra) -> str:
    return urlencode({"tenant": tenant.pk, **{k: v for k, v in params.items() if v not in (None, "")}, **extra})


def figure_sections(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Every figure of a summary but the tiers, grouped by block: (label, dotted name as in the CSV, value)."""
    sections = []
    for key, title in SECTIONS.items():
        rows = []
        for name, value in summary_figures(summary[key], f"{key}."):
            if name.startswith("campaigns.redemptions_failed."):
                label = _("Failed redemptions: %(reason)s") % {"reason": name.rsplit(".", 1)[1]}
            else:
                label = LABELS.get(name, name)
            rows.append({"label": label, "name": name, "value": value})
        sections.append({"key": key, "title": title, "rows": rows})
    return sections


def chart_data(series: dict[str, Any]) -> dict[str, Any]:
    periods = series["periods"]
    data: dict[str, Any] = {"interval": series["interval"], "labels": [p["start"] for p in periods]}
    for name in ("orders", "value", "discount", "points_issued", "points_spent", "points_expired", "redemptions"):
        data[name] = [p[name] for p in periods]
    return data


def dashboard_view(request):
    """The dashboard; `?export=summary|timeseries` answers the API's CSV of the same figures."""
    _check_permission(request)
    tenant = _tenant(request, request.GET)
    context: dict[str, Any] = {**admin.site.each_context(request), "title": _("Reports dashboard"), "tenant": tenant}
    if tenant is None:
        return TemplateResponse(request, "admin/reports/dashboard.html", context)
    using = report_database()
    today = tenant_today(tenant)
    data = request.GET.copy()
    preset = data.get("preset")
    if preset in PRESETS:
        first, last = preset_range(preset, today)
        data["from"], data["to"] = first.isoformat(), last.isoformat()
    elif not data.get("from") and not data.get("to"):
        preset = DEFAULT_PRESET
        first, last = preset_range(preset, today)
        data["from"], data["to"] = first.isoformat(), last.isoformat()
    form = DashboardForm(data, tenant=tenant, using=using)
    tenants = tenants_for_user(request.user).order_by("name", "pk")
    context.update(
        form=form,
        tenants=tenants,
        preset=preset,
        engaged_definition=ENGAGED_DEFINITION,
        subscriptions=ReportSubscription.objects.filter(user=request.user, tenant=tenant, active=True).order_by(
            "frequency", "pk"
        ),
        frequencies=ReportSubscription.Frequency.choices,
    )
    if not form.is_valid():
        return TemplateResponse(request, "admin/reports/dashboard.html", context)
    try:
        report = form.report()
    except LookupError as exc:  # a segment deleted since the choices were read
        raise Http404 from exc
    filters = form.filter_params()
    export = request.GET.get("export")
    if export in ("summary", "timeseries"):
        figures = report.summary() if export == "summary" else report.timeseries(form.cleaned_data["interval"])
        response = HttpResponse(report_csv(figures), content_type="text/csv; charset=utf-8")
        name = f"report-{export}-{tenant.pk}-{form.cleaned_data['from']}-{form.cleaned_data['to']}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    summary = report.summary()
    series = report.timeseries(form.cleaned_data["interval"])
    ranged = {"from": form.cleaned_data["from"].isoformat(), "to": form.cleaned_data["to"].isoformat(), **filters}
    here = {**ranged, "interval": form.cleaned_data["interval"]}
    context.update(
        summary=summary,
        sections=figure_sections(summary),
        chart=chart_data(series),
        filters=filters,
        presets=[
            (key, label, "?" + _query(tenant, {**filters, "interval": form.cleaned_data["interval"]}, preset=key))
            for key, label in PRESETS.items()
        ],
        intervals=[(key, label, "?" + _query(tenant, {**ranged, "interval": key})) for key, label in INTERVALS],
        csv_summary="?" + _query(tenant, here, export="summary"),
        csv_series="?" + _query(tenant, here, export="timeseries"),
    )
    return TemplateResponse(request, "admin/reports/dashboard.html", context)


def _back(tenant: Tenant, params: dict[str, Any]) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("reports_dashboard") + "?" + _query(tenant, params))


def subscribe_view(request):
    """POST: "Email me this weekly/monthly" for the tenant and filters shown."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    _check_permission(request)
    tenant = _tenant(request, request.POST)
    if tenant is None:
        raise Http404
    form = SubscribeForm(request.POST, tenant=tenant, using="default")
    if not form.is_valid():
        messages.error(request, _("The digest could not be set up: %(errors)s") % {"errors": form.errors.as_text()})
        return _back(tenant, {})
    subscription = services.subscription_subscribe(
        user=request.user, tenant=tenant, frequency=form.cleaned_data["frequency"], filters=form.filter_params()
    )
    messages.success(
        request,
        _("You will get this report by email %(frequency)s.") % {"frequency": subscription.get_frequency_display()},
    )
    return _back(tenant, form.filter_params())


def unsubscribe_view(request, pk: int):
    """POST: stop one of the user's own digests (anyone else's is a 404)."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    _check_permission(request)
    subscription = ReportSubscription.objects.filter(pk=pk, user=request.user).select_related("tenant").first()
    if subscription is None:
        raise Http404
    services.subscription_cancel(subscription=subscription)
    messages.success(request, _("You will no longer get this digest."))
    return _back(subscription.tenant, subscription.filters)


urlpatterns = [
    path("", admin.site.admin_view(dashboard_view), name="reports_dashboard"),
    path("subscribe/", admin.site.admin_view(subscribe_view), name="reports_subscribe"),
    path("subscriptions/<int:pk>/cancel/", admin.site.admin_view(unsubscribe_view), name="reports_unsubscribe"),
]
