"""The campaign console's "Test rule" page: a campaign's rule, and a whole validation, for a member and an order.

It validates through the redemption engine of this app, so it extends the campaign console from here (an admin
page that composes several apps lives in the highest app it needs): `CampaignAdmin` below replaces the one
`campaigns.admin` registers, adding the page and its link.
"""

import json

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from campaigns import admin as campaigns_admin
from campaigns.models import Campaign, CampaignType, Code
from campaigns.selectors import campaign_document
from common.errors import ApplicationError
from loyalty.rules import RuleError, check_rule, rule_matches
from members.models import Member
from rewards.services.redemption import rule_context_for, validate
from rewards.services.redemption.parse import parse_request


class RuleTestForm(forms.Form):
    member = forms.CharField(required=False, help_text=_("External id of a member (optional)."))
    order = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80}),
        initial=json.dumps(
            {
                "amount": "120.00",
                "items": [{"sku": "TSHIRT", "category": "apparel", "quantity": 2, "unit_price": "60.00"}],
            },
            indent=2,
        ),
        help_text=_("A sample order as the API takes it (JSON)."),
    )

    def clean_order(self):
        try:
            value = json.loads(self.cleaned_data["order"])
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(_("Not valid JSON: %(e)s") % {"e": exc}) from exc
        if not isinstance(value, dict):
            raise forms.ValidationError(_("An object is required."))
        return value


def rule_test(*, campaign: Campaign, member_external_id: str, order: dict) -> dict:
    """Evaluate the campaign's rule (and a full validation with one of its codes) for a member and an order."""
    member = None
    if member_external_id:
        member = Member.objects.for_tenant(campaign.tenant_id).filter(external_id=member_external_id.strip()).first()
        if member is None:
            return {"error": _("No member %(id)s in this tenant.") % {"id": member_external_id}}
    now = timezone.now()
    try:
        # The context validation builds for this order, whole (every fact, to show it), so the verdict is its.
        check_rule(campaign.rule)  # a stored rule the limits refuse: say why (`rule_matches` only says "no")
        context = rule_context_for(campaign.tenant, member, parse_request(order=order, codes=[], points=0)[0], now)
        matches = rule_matches(campaign.rule, context)
    except RuleError as exc:
        return {"error": exc.message}
    except ApplicationError as exc:  # an order validation would refuse (parse_request), with the field at fault
        return {"error": f"{exc.message} {json.dumps(exc.details)}"}
    outcome = {"rule": campaign.rule or "(always)", "rule_matches": matches, "context": context}
    code = Code.objects.filter(campaign=campaign).order_by("pk").first()
    if code is not None or campaign.type == CampaignType.PROMOTION:
        try:
            result = validate(tenant=campaign.tenant, member=member, order=order, codes=[code.code] if code else [])
            outcome["validation"] = result.as_dict()
        except ApplicationError as exc:
            outcome["validation"] = {"error": exc.code, "details": exc.details}
    outcome["campaign"] = campaign_document(campaign)
    return outcome


class CampaignAdmin(campaigns_admin.CampaignAdmin):
    def get_urls(self):
        return [
            path(
                "<int:pk>/test-rule/",
                self.admin_site.admin_view(self.test_rule_view),
                name="campaigns_campaign_test_rule",
            ),
            *super().get_urls(),
        ]

    def page_links(self, obj) -> list[tuple[str, str]]:
        return [
            (_("Test rule"), reverse("admin:campaigns_campaign_test_rule", args=[obj.pk])),
            *super().page_links(obj),
        ]

    def test_rule_view(self, request, pk):
        campaign = self._campaign_or_404(request, pk)
        if not self.has_view_permission(request, campaign):
            raise PermissionDenied
        form = RuleTestForm(request.POST or None)
        outcome = None
        if request.method == "POST" and form.is_valid():
            outcome = rule_test(
                campaign=campaign, member_external_id=form.cleaned_data["member"], order=form.cleaned_data["order"]
            )
            if outcome.get("error"):
                form.add_error(None, outcome["error"])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": campaign,
            "title": _("Test the rule of %(name)s") % {"name": campaign.name},
            "form": form,
            "outcome": outcome,
            "outcome_json": json.dumps(outcome, indent=2, default=str) if outcome else "",
        }
        return TemplateResponse(request, "admin/campaigns/campaign/test_rule.html", context)


admin.site.unregister(Campaign)
admin.site.register(Campaign, CampaignAdmin)
