"""Redemptions (read-only, with a rollback action through the service), gift card history, catalog, grants."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from common.errors import ApplicationError
from members.admin_tenancy import TenantScopedAdmin, TenantScopedReadOnlyAdmin
from rewards.models import (
    GiftCardTransaction,
    Redemption,
    RedemptionCode,
    ReferralGrant,
    Reward,
    RewardPurchase,
)
from rewards.services.redemption import redemption_rollback

ROLLBACK_PERMISSION = "rewards.rollback_redemption"


class RedemptionCodeInline(admin.TabularInline):
    model = RedemptionCode
    extra = 0
    can_delete = False
    fields = ("kind", "campaign", "code", "discount", "order_amount", "rolled_back", "created_at")
    readonly_fields = fields
    max_num = 0

    def has_change_permission(self, request, obj=None):
        return False


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
    readonly_fields = ("rollback_link",)

    @admin.display(description=_("rollback"))
    def rollback_link(self, obj):
        from django.utils.html import format_html

        if obj.status == Redemption.Status.ROLLED_BACK:
            return _("rolled back")
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:rewards_redemption_rollback", args=[obj.pk]), _("Roll back")
        )

    def get_urls(self):
        return [
            path(
                "<int:pk>/rollback/", self.admin_site.admin_view(self.rollback_view), name="rewards_redemption_rollback"
            ),
            *super().get_urls(),
        ]

    def rollback_view(self, request, pk):
        redemption = get_object_or_404(self.get_queryset(request), pk=pk)
        if not request.user.has_perm(ROLLBACK_PERMISSION):
            raise PermissionDenied
        form = RollbackForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
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
