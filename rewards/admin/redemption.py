"""Redemptions (read-only, with a rollback action through the service), gift card history, catalog, grants."""

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from common.errors import ApplicationError
from loyalty.models import Order
from members.admin_tenancy import TenantScopedAdmin, TenantScopedReadOnlyAdmin, tenants_for_user
from members.form_once import one_time, submitted_once
from members.models import Member
from rewards.admin.explain import explain_link
from rewards.models import GiftCardTransaction, Redemption, RedemptionCode, ReferralGrant, Reward, RewardPurchase
from rewards.services.redemption import redeem, redemption_rollback, validate

ROLLBACK_PERMISSION = "rewards.rollback_redemption"
APPLY_PERMISSION = "rewards.apply_redemption"


class RedemptionCodeInline(admin.TabularInline):
    model = RedemptionCode
    extra = 0
    can_delete = False
    fields = ("kind", "campaign", "code", "discount", "order_amount", "rolled_back", "created_at")
    readonly_fields = fields
    max_num = 0

    def has_change_permission(self, request, obj=None):
        return False


class ApplyForm(forms.Form):
    """A support agent applies codes to a member's order after the fact (recorded with their name)."""

    tenant = forms.ModelChoiceField(queryset=None)
    member = forms.CharField(help_text=_("The member's external id."))
    order_id = forms.CharField(max_length=100)
    amount = forms.DecimalField(max_digits=14, decimal_places=2, min_value=0)
    occurred_at = forms.DateTimeField(
        required=False,
        label=_("Order placed at"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text=_(
            "The codes are judged as of this time (rules, dates, budgets then). Empty: the member's recorded order"
            " with this id, else now. In the tenant's time zone."
        ),
    )
    codes = forms.CharField(help_text=_("Codes separated by commas or spaces."))

    def __init__(self, *args, tenants=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tenant"].queryset = tenants

    def clean_occurred_at(self):
        value = self.cleaned_data["occurred_at"]
        if value is not None and value > timezone.now() + dt.timedelta(minutes=5):
            raise forms.ValidationError(_("An order placed in the future cannot be applied after the fact."))
        return value


def _order_time(data: dict, member: Member) -> dt.datetime:
    """The time the codes are judged at: as typed (tenant's zone), else the recorded order's, else now."""
    typed = data.get("occurred_at")
    if typed is not None:
        return timezone.make_aware(typed, member.tenant.tz) if timezone.is_naive(typed) else typed
    recorded = Order.objects.filter(tenant_id=member.tenant_id, member=member, order_id=data["order_id"]).first()
    return recorded.occurred_at if recorded else timezone.now()


def _recent_orders(member: Member | None, form: ApplyForm) -> list[Order]:
    """The member's latest orders, to pick one instead of typing it (the member typed or prefilled)."""
    if member is None:
        external_id = (form.data.get("member") or form.initial.get("member") or "").strip()
        tenant_id = form.data.get("tenant") or form.initial.get("tenant")
        if not external_id or not str(tenant_id).isdigit():
            return []
        member = Member.objects.filter(
            tenant_id=tenant_id, tenant__in=form.fields["tenant"].queryset, external_id=external_id
        ).first()
        if member is None:
            return []
    return list(Order.objects.filter(tenant_id=member.tenant_id, member=member).order_by("-occurred_at")[:10])


class RollbackForm(forms.Form):
    reason = forms.CharField(max_length=300, help_text=_("Why: kept with the rollback."))


@admin.register(Redemption)
class RedemptionAdmin(TenantScopedReadOnlyAdmin):
    list_display = (
        "pk",
        "order_id",
        "member",
        "discount",
        "gift_cards",
        "points_used",
        "total",
        "status",
        "channel",
        "staff_user",
        "created_at",
    )
    list_filter = ("status", "channel", "tenant")
    list_select_related = ("member", "staff_user", "tenant")
    search_fields = ("order_id", "member__external_id", "lines__code__code")
    inlines = [RedemptionCodeInline]
    readonly_fields = ("rollback_link", "explanation")

    @admin.display(description=_("why"))
    def explanation(self, obj):
        return explain_link(obj.pk)

    @admin.display(description=_("rollback"))
    def rollback_link(self, obj):

        if obj.status == Redemption.Status.ROLLED_BACK:
            return _("rolled back")
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:rewards_redemption_rollback", args=[obj.pk]), _("Roll back")
        )

    def get_urls(self):
        return [
            path("apply/", self.admin_site.admin_view(self.apply_view), name="rewards_redemption_apply"),
            path(
                "<int:pk>/rollback/", self.admin_site.admin_view(self.rollback_view), name="rewards_redemption_rollback"
            ),
            *super().get_urls(),
        ]

    def apply_view(self, request):

        if not request.user.has_perm(APPLY_PERMISSION):
            raise PermissionDenied
        # The member story links here with the tenant and member filled in (GET), so no id is typed.
        initial = request.GET.dict() if request.method == "GET" else None
        form = one_time(ApplyForm(request.POST or None, initial=initial, tenants=tenants_for_user(request.user)))
        preview = member = None
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            member = Member.objects.for_tenant(data["tenant"]).filter(external_id=data["member"].strip()).first()
            if member is None:
                form.add_error("member", _("No such member in this tenant."))
            else:
                as_of = _order_time(data, member)
                arguments = {
                    "tenant": data["tenant"],
                    "member": member,
                    "order": {"amount": str(data["amount"])},
                    "codes": data["codes"].replace(",", " ").split(),
                    "as_of": as_of,
                }
                try:
                    if "apply" not in request.POST:  # first the preview: nothing is written
                        preview = {"result": validate(**arguments, trace=False).as_dict(), "as_of": as_of}
                    else:
                        with submitted_once(form, user=request.user, name="redemption after the fact"):
                            redemption = redeem(
                                **arguments, order_id=data["order_id"], channel="admin", staff_user=request.user
                            )
                except ApplicationError as exc:
                    reasons = [f"{c['code']}: {c['reason']}" for c in exc.details.get("codes", []) if not c["valid"]]
                    form.add_error(None, f"{exc.message} {'; '.join(reasons)}")
                else:
                    if preview is None:
                        self.message_user(request, _("Redemption %(id)s recorded.") % {"id": redemption.pk})
                        return HttpResponseRedirect(reverse("admin:rewards_redemption_change", args=[redemption.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Apply codes to an order"),
            "form": form,
            "preview": preview,
            "orders": _recent_orders(member, form),
        }
        return TemplateResponse(request, "admin/rewards/redemption/apply.html", context)

    def rollback_view(self, request, pk):
        redemption = get_object_or_404(self.get_queryset(request), pk=pk)
        if not request.user.has_perm(ROLLBACK_PERMISSION):
            raise PermissionDenied
        form = one_time(RollbackForm(request.POST or None))
        if request.method == "POST" and form.is_valid():
            try:
                with submitted_once(form, user=request.user, name="rollback"):
                    redemption_rollback(redemption=redemption, reason=form.cleaned_data["reason"], user=request.user)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, _("Redemption %(id)s rolled back.") % {"id": redemption.pk})
            return HttpResponseRedirect(reverse("admin:rewards_redemption_change", args=[redemption.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": redemption,
            "title": _("Roll back redemption %(id)s") % {"id": redemption.pk},
            "form": form,
        }
        return TemplateResponse(request, "admin/rewards/redemption/rollback.html", context)


@admin.register(GiftCardTransaction)
class GiftCardTransactionAdmin(TenantScopedReadOnlyAdmin):
    list_display = ("code", "kind", "amount", "balance_after", "redemption", "created_at")
    list_filter = ("kind", "tenant")
    list_select_related = ("code",)
    search_fields = ("code__code",)


@admin.register(Reward)
class RewardAdmin(TenantScopedAdmin):
    list_display = ("name", "type", "points_cost", "stock", "active", "tenant")
    list_filter = ("type", "active", "tenant")
    search_fields = ("name", "sku")
    raw_id_fields = ("campaign",)


@admin.register(RewardPurchase)
class RewardPurchaseAdmin(TenantScopedReadOnlyAdmin):
    list_display = ("pk", "reward", "member", "points", "code", "status", "created_at")
    list_filter = ("status", "tenant")
    list_select_related = ("reward", "member", "code")
    search_fields = ("member__external_id",)


@admin.register(ReferralGrant)
class ReferralGrantAdmin(TenantScopedReadOnlyAdmin):
    list_display = ("campaign", "referrer", "referred", "order_id", "points", "code", "created_at")
    list_select_related = ("campaign", "referrer", "referred", "code")
    search_fields = ("referrer__external_id", "referred__external_id", "order_id")
