"""Bulk work on many campaigns: enable, disable, extend the end date, change a limit.

Each action first shows a confirmation page (how many campaigns, codes and members holding unredeemed codes it
touches) and asks for a reason; confirmed, it calls the campaign services once per campaign (one history record
each, the reason as its change reason, the user from the request). Enabling and disabling need
`campaigns.enable_campaign`: the action is not offered without it, a direct POST of it is refused by the admin
(an unknown action), and the services refuse it again.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Sum
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from campaigns import services
from campaigns.models import Code
from common.errors import ApplicationError

MAX_EXTENSION_DAYS = 3650
CHANGEABLE_LIMITS = [
    ("redemptions_total", _("Redemptions in total")),
    ("redemptions_per_member", _("Redemptions per member")),
    ("redemptions_per_day", _("Redemptions per day")),
    ("redemptions_per_week", _("Redemptions per week")),
    ("redemptions_per_month", _("Redemptions per month")),
    ("discount_total", _("Discount budget")),
    ("order_value_total", _("Order value budget")),
]


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"), max_length=90, help_text=_("Kept in each campaign's history with your name.")
    )


class ExtendForm(ReasonForm):
    days = forms.IntegerField(
        label=_("Extend by (days)"),
        min_value=1,
        max_value=MAX_EXTENSION_DAYS,
        help_text=_("Added to each campaign's end date; campaigns without an end date are left as they are."),
    )


class LimitForm(ReasonForm):
    limit = forms.ChoiceField(label=_("Limit"), choices=CHANGEABLE_LIMITS)
    value = forms.CharField(
        label=_("New value"), required=False, max_length=20, help_text=_("Empty: unlimited. Money as 1000.00.")
    )


def affected_counts(queryset) -> dict[str, int]:
    """Campaigns, their codes, and the members holding one of their codes not yet redeemed: three aggregates."""
    ids = list(queryset.values_list("pk", flat=True))
    codes = queryset.model.objects.filter(pk__in=ids).aggregate(n=Sum("codes_count"))["n"] or 0
    members = (
        Code.objects.filter(campaign_id__in=ids, member__isnull=False, redeemed_count=0)
        .values("member_id")
        .distinct()
        .count()
    )
    return {"campaigns": len(ids), "codes": codes, "members": members}


class CampaignBulkActionsMixin:
    """Mixed into `CampaignAdmin` (campaigns/admin.py)."""

    def _bulk(self, request, queryset, *, action: str, title, form_class, apply):
        """The confirmation page, then `apply(campaign, form.cleaned_data)` per campaign the user may change."""
        form = form_class(request.POST if "confirm" in request.POST else None)
        if "confirm" in request.POST and form.is_valid():
            done, failed = 0, []
            for campaign in queryset.order_by("pk"):
                if not self.has_change_permission(request, campaign):
                    failed.append(f"{campaign.name}: {_('permission denied')}")
                    continue
                try:
                    if apply(campaign, form.cleaned_data):
                        done += 1
                except ApplicationError as exc:
                    failed.append(f"{campaign.name}: {exc.message} {exc.details or ''}".strip())
            self.message_user(request, _("%(title)s: %(n)d campaigns changed.") % {"title": title, "n": done})
            for line in failed:
                self.message_user(request, line, messages.ERROR)
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "action": action,
            "form": form,
            "queryset": queryset.order_by("pk")[:50],
            "counts": affected_counts(queryset),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
        }
        return TemplateResponse(request, "admin/campaigns/campaign/bulk_confirm.html", context)

    @admin.action(description=_("Enable (launch) the selected campaigns"), permissions=["enable"])
    def enable_selected(self, request, queryset):
        def apply(campaign, data):
            return bool(services.campaign_enable(campaign=campaign, user=request.user, reason=data["reason"]))

        return self._bulk(
            request, queryset, action="enable_selected", title=_("Enable campaigns"), form_class=ReasonForm, apply=apply
        )

    @admin.action(description=_("Disable (kill switch) the selected campaigns"), permissions=["enable"])
    def disable_selected(self, request, queryset):
        def apply(campaign, data):
            return bool(services.campaign_disable(campaign=campaign, user=request.user, reason=data["reason"]))

        return self._bulk(
            request,
            queryset,
            action="disable_selected",
            title=_("Disable campaigns"),
            form_class=ReasonForm,
            apply=apply,
        )

    @admin.action(description=_("Extend the end date of the selected campaigns"), permissions=["change"])
    def extend_end_date(self, request, queryset):
        def apply(campaign, data):
            if campaign.ends_at is None:
                return False
            ends_at = campaign.ends_at + dt.timedelta(days=data["days"])
            services.campaign_update(
                campaign=campaign, data={"ends_at": ends_at.isoformat()}, user=request.user, reason=data["reason"]
            )
            return True

        return self._bulk(
            request, queryset, action="extend_end_date", title=_("Extend end dates"), form_class=ExtendForm, apply=apply
        )

    @admin.action(description=_("Change a limit of the selected campaigns"), permissions=["change"])
    def change_limit(self, request, queryset):
        def apply(campaign, data):
            value = data["value"].strip() or None
            if value is not None and data["limit"].startswith("redemptions_") and value.isdigit():
                value = int(value)
            services.campaign_update(
                campaign=campaign, data={"limits": {data["limit"]: value}}, user=request.user, reason=data["reason"]
            )
            return True

        return self._bulk(
            request, queryset, action="change_limit", title=_("Change a limit"), form_class=LimitForm, apply=apply
        )
