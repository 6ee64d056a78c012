"""Campaigns at a glance: the list's columns, flags, filters and search by code; the campaign page's figures,
chart and history; cloning.

Figures kept in other apps' records (validations, rollbacks, failures by reason, the daily series) come through
two hooks that `rewards.admin.campaign_numbers` fills (campaigns may not import rewards):
`campaign_activity(campaign)` and `last_activity_subquery()`.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from campaigns import services
from campaigns.console.forms import ALL_DISCOUNT_FIELDS, DISCOUNT_FIELDS, INCENTIVE_FIELDS
from campaigns.models import Campaign, Code
from campaigns.selectors import (
    STATUSES,
    budget_bars,
    budget_low_q,
    campaign_flags,
    campaign_numbers,
    campaign_status,
    campaign_status_q,
    ends_soon_q,
)
from members.admin_tenancy import tenants_for_user

FLAG_LABELS = {"ends_soon": _("ends within 7 days"), "budget_low": _("under 5 % budget left")}
HISTORY_ROWS = 10


class StatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [(status, _(status)) for status in STATUSES]

    def queryset(self, request, queryset):
        if self.value() in STATUSES:
            return queryset.filter(campaign_status_q(self.value(), timezone.now()))
        return queryset


class AttentionFilter(admin.SimpleListFilter):
    title = _("needs attention")
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return list(FLAG_LABELS.items())

    def queryset(self, request, queryset):
        if self.value() == "ends_soon":
            return queryset.filter(ends_soon_q(timezone.now()))
        if self.value() == "budget_low":
            return queryset.filter(budget_low_q())
        return queryset


class TenantFilter(admin.SimpleListFilter):
    """The user's tenants only (the stock related filter would list every tenant's name)."""

    title = _("tenant")
    parameter_name = "tenant__id__exact"

    def lookups(self, request, model_admin):
        return [(str(t.pk), str(t)) for t in tenants_for_user(request.user).order_by("name")]

    def queryset(self, request, queryset):
        return queryset.filter(tenant_id=self.value()) if self.value() else queryset


class OwnerFilter(admin.SimpleListFilter):
    """The owners of the campaigns the user sees."""

    title = _("owner")
    parameter_name = "owner__id__exact"

    def lookups(self, request, model_admin):
        from django.contrib.auth import get_user_model

        owners = model_admin.get_queryset(request).exclude(owner=None).values("owner_id")
        return [(str(u.pk), u.get_username()) for u in get_user_model().objects.filter(pk__in=owners)]

    def queryset(self, request, queryset):
        return queryset.filter(owner_id=self.value()) if self.value() else queryset


def _bar(used, limit, low: bool, percent: int):
    return format_html(
        '<span class="campaign-bar{}" title="{} / {}"><span style="width:{}%"></span></span> {} / {}',
        " campaign-bar-low" if low else "",
        used,
        limit,
        percent,
        used,
        limit,
    )


class CampaignGlanceMixin:
    """Mixed into `CampaignAdmin` (campaigns/admin.py)."""

    change_form_template = "admin/campaigns/campaign/change_form.html"
    change_list_template = "admin/campaigns/campaign/change_list.html"

    # --- hooks (filled by rewards.admin.campaign_numbers) -----------------------------------------

    def campaign_activity(self, campaign: Campaign) -> dict:
        """Validations, rollbacks, failures by reason and the daily chart: records of a higher app."""
        return {}

    def last_activity_subquery(self):
        """An expression for the time of a campaign's latest redemption, or None."""
        return None

    # --- the list ---------------------------------------------------------------------------------

    def get_queryset(self, request):
        qs = super().get_queryset(request).select_related("tenant", "owner")  # the list shows both
        latest = self.last_activity_subquery()
        return qs.annotate(last_redemption_at=latest) if latest is not None else qs

    def get_search_results(self, request, queryset, search_term):
        """By name, and by one of its codes (exact, as printed: codes are looked up through their unique index)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        tenants = tenants_for_user(request.user)
        codes = Code.objects.filter(tenant__in=tenants, code=term.upper()).values("campaign_id")
        return queryset.filter(Q(name__icontains=term) | Q(pk__in=codes)), False

    @admin.display(description=_("dates"))
    def dates(self, obj):
        start = obj.starts_at.date().isoformat() if obj.starts_at else "…"
        end = obj.ends_at.date().isoformat() if obj.ends_at else "…"
        return f"{start} → {end}"

    def _bar_of(self, obj, label):
        for bar in budget_bars(obj):
            if bar["label"] == label:
                return _bar(bar["used"], bar["limit"], bar["low"], bar["percent"])
        return None

    @admin.display(description=_("redemptions"), ordering="redemptions_count")
    def redemptions(self, obj):
        return self._bar_of(obj, "redemptions") or obj.redemptions_count

    @admin.display(description=_("discount"), ordering="discount_used")
    def discount_given(self, obj):
        return self._bar_of(obj, "discount") or obj.discount_used

    @admin.display(description=_("last activity"))
    def last_activity(self, obj):
        times = [t for t in (obj.updated_at, getattr(obj, "last_redemption_at", None)) if t]
        return max(times) if times else "-"

    @admin.display(description=_("flags"))
    def flags(self, obj):
        flags = campaign_flags(obj)
        if not flags:
            return ""
        return format_html_join(
            " ", '<span class="campaign-flag campaign-flag-{}">{}</span>', ((f, FLAG_LABELS[f]) for f in flags)
        )

    # --- the campaign page ------------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        extra_context["incentive_fields"] = {
            "by_type": INCENTIVE_FIELDS,
            "by_discount": DISCOUNT_FIELDS,
            "discount_fields": ALL_DISCOUNT_FIELDS,
        }
        obj = self.get_object(request, admin.utils.unquote(object_id)) if object_id else None
        if obj is not None and self.has_view_permission(request, obj):
            numbers = campaign_numbers(obj)
            numbers.update(self.campaign_activity(obj))
            extra_context.update(
                numbers=numbers,
                chart=numbers.get("chart"),
                status=campaign_status(obj),
                flag_labels=[FLAG_LABELS[f] for f in numbers["flags"]],
                history=list(obj.history.select_related("history_user").order_by("-history_date")[:HISTORY_ROWS]),
                page_links=self.page_links(obj),
                can_clone=self.has_add_permission(request),
                campaign_type=obj.type,
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def add_view(self, request, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        extra_context["incentive_fields"] = {
            "by_type": INCENTIVE_FIELDS,
            "by_discount": DISCOUNT_FIELDS,
            "discount_fields": ALL_DISCOUNT_FIELDS,
        }
        return super().add_view(request, form_url, extra_context)

    # --- cloning ----------------------------------------------------------------------------------

    def get_urls(self):
        return [
            path("<int:pk>/clone/", self.admin_site.admin_view(self.clone_view), name="campaigns_campaign_clone"),
            *super().get_urls(),
        ]

    def clone_view(self, request, pk):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        campaign = self._campaign_or_404(request, pk)
        if not (self.has_view_permission(request, campaign) and self.has_add_permission(request)):
            raise PermissionDenied
        clone = services.campaign_clone(campaign=campaign, user=request.user)
        self.message_user(request, _("Cloned as %(name)s: a disabled draft without codes.") % {"name": clone.name})
        return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[clone.pk]))

    @admin.action(description=_("Clone the selected campaigns (disabled drafts)"), permissions=["add"])
    def clone_selected(self, request, queryset):
        clones = [
            services.campaign_clone(campaign=c, user=request.user)
            for c in queryset.order_by("pk")
            if self.has_view_permission(request, c)
        ]
        self.message_user(
            request, _("Cloned %(n)d campaigns as disabled drafts.") % {"n": len(clones)}, messages.SUCCESS
        )


class CodeCampaignFilter(admin.SimpleListFilter):
    """The code list by campaign (`?campaign=<id>`, the campaign page's "Codes of this campaign"), among the
    user's tenants' campaigns."""

    title = _("campaign")
    parameter_name = "campaign"
    CHOICES = 200

    def lookups(self, request, model_admin):
        campaigns = Campaign.objects.all()
        if not request.user.is_superuser:
            campaigns = campaigns.filter(tenant__in=tenants_for_user(request.user))
        return [(str(pk), name) for pk, name in campaigns.order_by("-pk").values_list("pk", "name")[: self.CHOICES]]

    def queryset(self, request, queryset):
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(campaign_id=int(value))
        return queryset
