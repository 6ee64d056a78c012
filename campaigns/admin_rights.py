"""Rights per campaign in the admin: who reaches a campaign, who grants rights on it, and activation requests.

A user reaches (lists, opens) the campaigns they own or were granted `view_campaign`/`change_campaign` on
(django-guardian, to them or one of their groups); `view_every_campaign` / `change_every_campaign` (Admin,
Analyst and Support agent for viewing) reach all of their tenants'. The role's model permission still decides
what may be done at all: a grant narrows within a role, never widens it (an Analyst granted change changes
nothing). Refusals are the same for the list, the page and a direct POST: the queryset hides the campaign (404),
and a view-only grant makes the change page read-only and a POST to it 403.

Granting: the campaign's owner (with `grant_campaign`, Marketers) or an Admin manages the users' and groups'
rights on the campaign's own "Rights" page (guardian's object permission pages). `ReinforcedGuardedModelAdminMixin`
gates those pages on guardian's model-wide permissions, which would let the holder manage the rights of every
object of every model; here the gate is per campaign instead, and only `view_campaign`/`change_campaign` can be
granted, to active staff of the campaign's tenant.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from guardian.admin import AdminGroupObjectPermissionsForm, AdminUserObjectPermissionsForm, GuardedModelAdminMixin
from guardian.core import ObjectPermissionChecker
from guardian.shortcuts import get_objects_for_user

from campaigns.activation import activation_decide, activation_request, may_decide
from campaigns.discount_cap import discount_cap_errors
from campaigns.models import ActivationRequest, Campaign
from campaigns.services import ENABLE_PERMISSION
from common.errors import ApplicationError
from members.admin_tenancy import TenantScopedReadOnlyAdmin, tenants_for_user
from members.form_once import FIELD as FORM_TOKEN
from members.form_once import one_time, token_claim, token_release

VIEW_EVERY = "campaigns.view_every_campaign"
CHANGE_EVERY = "campaigns.change_every_campaign"
GRANT = "campaigns.grant_campaign"
GRANTABLE = ("view_campaign", "change_campaign")


def _checker(request) -> ObjectPermissionChecker:
    """One guardian checker per request: it caches the user's (and groups') object permissions."""
    checker = getattr(request, "_campaign_rights", None)
    if checker is None:
        checker = request._campaign_rights = ObjectPermissionChecker(request.user)
    return checker


def campaigns_reached(user, qs):
    """`qs` narrowed to the campaigns `user` owns or was granted (all of them for the `*_every_campaign` roles)."""
    if user.is_superuser or user.has_perm(VIEW_EVERY) or user.has_perm(CHANGE_EVERY):
        return qs
    granted = get_objects_for_user(
        user,
        [f"campaigns.{p}" for p in GRANTABLE],
        klass=Campaign,
        any_perm=True,
        accept_global_perms=False,
        with_superuser=False,
    )
    return qs.filter(Q(owner=user) | Q(pk__in=granted.values("pk")))


def reaches(request, campaign: Campaign, *, change: bool) -> bool:
    user = request.user
    if user.is_superuser or user.has_perm(CHANGE_EVERY) or campaign.owner_id == user.pk:
        return True
    if not change and user.has_perm(VIEW_EVERY):
        return True
    checker = _checker(request)
    return checker.has_perm("change_campaign", campaign) or (not change and checker.has_perm("view_campaign", campaign))


def may_grant(request, campaign: Campaign) -> bool:
    user = request.user
    return user.is_superuser or (user.has_perm(GRANT) and (user.has_perm(CHANGE_EVERY) or campaign.owner_id == user.pk))


class _GrantableOnly:
    def get_obj_perms_field_choices(self):
        return [(codename, name) for codename, name in super().get_obj_perms_field_choices() if codename in GRANTABLE]


class CampaignUserRightsForm(_GrantableOnly, AdminUserObjectPermissionsForm):
    pass


class CampaignGroupRightsForm(_GrantableOnly, AdminGroupObjectPermissionsForm):
    pass


class ActivationRequestForm(forms.Form):
    note = forms.CharField(max_length=300, required=False, widget=forms.Textarea(attrs={"rows": 3}))


class CampaignRightsMixin:
    """For `CampaignAdmin` (before `TenantScopedAdmin` in its bases)."""

    change_form_template = "admin/campaigns/campaign/change_form_rights.html"

    # --- who reaches what -------------------------------------------------------------------------

    def get_queryset(self, request):
        return campaigns_reached(request.user, super().get_queryset(request))

    def has_view_permission(self, request, obj=None):
        allowed = super().has_view_permission(request, obj)
        return allowed and (obj is None or reaches(request, obj, change=False))

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or reaches(request, obj, change=True))

    # --- the junior cap as a form error (the services refuse it too) -----------------------------------

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        capped = not request.user.has_perm(ENABLE_PERMISSION)

        class CampaignRightsForm(form):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                one_time(self)
                # Not required: the page sets absolute values, so a replay without the token sets the same
                # values again; the token (which the page always sends) stops a browser retry or double click.
                self.fields[FORM_TOKEN].required = False

            def clean(self):
                cleaned = super().clean()
                tenant = cleaned.get("tenant") or getattr(self.instance, "tenant", None)
                if not capped or tenant is None or self.errors:
                    return cleaned
                discount = cleaned.get("discount", self.instance.discount)
                amount = cleaned.get("gift_card_amount", self.instance.gift_card_amount)
                for key, message in discount_cap_errors(
                    tenant=tenant, discount=discount, gift_card_amount=amount
                ).items():
                    field = "gift_card_amount" if key == "gift_card.amount" else key
                    self.add_error(field if field in self.fields else None, message)
                return cleaned

        return CampaignRightsForm

    def _changeform_view(self, request, object_id, form_url, extra_context):
        """A second POST of the same page (its one-time token taken) changes nothing and says so."""
        token = request.POST.get(FORM_TOKEN) if request.method == "POST" else None
        if not token:
            return super()._changeform_view(request, object_id, form_url, extra_context)
        try:
            claim = token_claim(token, user=request.user, name="campaign page")
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.WARNING)
            return HttpResponseRedirect(request.get_full_path())
        response = super()._changeform_view(request, object_id, form_url, extra_context)
        if not isinstance(response, HttpResponseRedirect):  # shown again with its errors: nothing was saved
            token_release(claim)
        return response

    # --- the campaign page: rights link, activation request --------------------------------------------

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            pending = obj.activation_requests.filter(state=ActivationRequest.State.PENDING).first()
            context.update(
                may_grant=may_grant(request, obj),
                pending_activation=pending,
                may_request_activation=(
                    not obj.enabled
                    and pending is None
                    and not request.user.has_perm(ENABLE_PERMISSION)
                    and self.has_change_permission(request, obj)
                ),
            )
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def get_urls(self):
        return [
            path(
                "<int:pk>/request-activation/",
                self.admin_site.admin_view(self.request_activation_view),
                name="campaigns_campaign_request_activation",
            ),
            *super().get_urls(),
        ]

    def request_activation_view(self, request, pk):
        campaign = get_object_or_404(self.get_queryset(request), pk=pk)
        if not self.has_change_permission(request, campaign):
            raise PermissionDenied
        form = ActivationRequestForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                activation_request(campaign=campaign, user=request.user, note=form.cleaned_data["note"])
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, _("Activation requested: a marketer allowed to launch it will decide."))
            return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": campaign,
            "title": _("Request activation of %(name)s") % {"name": campaign.name},
            "form": form,
        }
        return TemplateResponse(request, "admin/campaigns/campaign/request_activation.html", context)

    # --- granting rights on the campaign's own page (guardian's pages, gated per campaign) ---------------

    def _grantable_campaign(self, request, object_pk) -> Campaign:
        campaign = get_object_or_404(self.get_queryset(request), pk=object_pk)
        if not may_grant(request, campaign):
            raise PermissionDenied
        return campaign

    def obj_perms_manage_view(self, request, object_pk):
        self._grantable_campaign(request, object_pk)
        return GuardedModelAdminMixin.obj_perms_manage_view(self, request, object_pk)

    def obj_perms_manage_user_view(self, request, object_pk, user_id):
        campaign = self._grantable_campaign(request, object_pk)
        target = get_object_or_404(get_user_model(), pk=user_id)
        staff_of_tenant = (
            target.is_active and target.is_staff and tenants_for_user(target).filter(pk=campaign.tenant_id).exists()
        )
        if not staff_of_tenant:
            self.message_user(request, _("%(user)s is not staff of this tenant.") % {"user": target}, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:campaigns_campaign_permissions", args=[campaign.pk]))
        return GuardedModelAdminMixin.obj_perms_manage_user_view(self, request, object_pk, user_id)

    def obj_perms_manage_group_view(self, request, object_pk, group_id):
        self._grantable_campaign(request, object_pk)
        return GuardedModelAdminMixin.obj_perms_manage_group_view(self, request, object_pk, group_id)

    def get_obj_perms_manage_user_form(self, request):
        return CampaignUserRightsForm

    def get_obj_perms_manage_group_form(self, request):
        return CampaignGroupRightsForm


class DecisionForm(forms.Form):
    comment = forms.CharField(max_length=300, required=False, widget=forms.Textarea(attrs={"rows": 3}))


@admin.register(ActivationRequest)
class ActivationRequestAdmin(TenantScopedReadOnlyAdmin):
    list_display = ("requested_at", "campaign", "requested_by", "note", "state", "decided_by", "comment", "decide")
    list_filter = ("state", "tenant")
    list_select_related = ("campaign", "requested_by", "decided_by")
    search_fields = ("campaign__name", "note")
    ordering = ("-requested_at",)

    @admin.display(description=_("decision"))
    def decide(self, obj):
        if obj.state != ActivationRequest.State.PENDING:
            return obj.get_state_display()
        url = reverse("admin:campaigns_activationrequest_decide", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("approve or reject"))

    def get_urls(self):
        return [
            path(
                "<int:pk>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="campaigns_activationrequest_decide",
            ),
            *super().get_urls(),
        ]

    def decide_view(self, request, pk: int):
        activation = get_object_or_404(
            self.get_queryset(request).select_related("campaign", "requested_by", "decided_by"), pk=pk
        )
        allowed = may_decide(activation, request.user)
        form = DecisionForm(request.POST or None)
        if request.method == "POST":
            if not allowed:
                raise PermissionDenied
            if form.is_valid():
                try:
                    activation = activation_decide(
                        request=activation,
                        approver=request.user,
                        approve="approve" in request.POST,
                        comment=form.cleaned_data["comment"],
                    )
                except ApplicationError as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                else:
                    self.message_user(request, activation.get_state_display(), messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:campaigns_activationrequest_decide", args=[activation.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": activation,
            "campaign": activation.campaign,
            "title": _("Activation request %(id)s") % {"id": activation.pk},
            "form": form,
            "may_decide": allowed and activation.state == ActivationRequest.State.PENDING,
        }
        return TemplateResponse(request, "admin/campaigns/activationrequest/decide.html", context)
