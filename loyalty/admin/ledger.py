"""Read-only ledger admin with corrections through the posting service.

Entries and accounts are never edited here: the account page lists its entries (balances annotated in the
query so a drift from the sum of entries shows at once), and "Adjust points" (action and per-account form,
permission `loyalty.adjust_points`) calls `points_adjust` with the staff user and a mandatory reason.
The member page gets an accounts inline from here (registered from above: `members` does not import `rewards`).
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F, IntegerField, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from simple_history.admin import SimpleHistoryAdmin

from common.errors import ApplicationError
from loyalty.ledger import points_adjust
from loyalty.ledger.adjustments import staff_adjustment_limit, staff_adjustment_used
from loyalty.models import Account, AdjustmentLimit, ExpiryWarning, LedgerEntry, PendingPoints
from members.admin import MemberAdmin
from members.admin_history import HistoryAdminMixin
from members.admin_tenancy import TenantScopedReadOnlyAdmin

ADJUST_PERMISSION = "loyalty.adjust_points"


def _entries_total():
    return Coalesce(
        Subquery(
            LedgerEntry.objects.filter(account=OuterRef("pk")).values("account").annotate(s=Sum("points")).values("s"),
            output_field=IntegerField(),
        ),
        0,
    )


class LedgerEntryInline(admin.TabularInline):
    model = LedgerEntry
    fk_name = "account"
    extra = 0
    can_delete = False
    ordering = ("-created_at", "-id")
    fields = ("created_at", "kind", "points", "balance_after", "reason", "order_id", "expires_at", "staff_user")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class AdjustPointsForm(forms.Form):
    points = forms.IntegerField(help_text=_("Positive adds points, negative removes them (oldest first)."))
    reason = forms.CharField(max_length=300, help_text=_("Mandatory: shown in the member's ledger."))

    def clean_points(self):
        if self.cleaned_data["points"] == 0:
            raise forms.ValidationError(_("Zero changes nothing."))
        return self.cleaned_data["points"]


@admin.register(Account)
class AccountAdmin(TenantScopedReadOnlyAdmin):
    list_display = (
        "pk",
        "member",
        "program",
        "balance",
        "entries_total",
        "pending",
        "lifetime_earned",
        "debt",
        "last_activity_at",
    )
    list_select_related = ("member", "program")
    list_filter = ("program__tenant", "program")
    search_fields = ("member__external_id", "member__email")
    readonly_fields = ("member", "program", "balance", "pending", "lifetime_earned", "debt", "last_activity_at")
    inlines = [LedgerEntryInline]
    actions = ["adjust_points"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(entries_total=_entries_total())

    @admin.display(description=_("sum of entries"), ordering="entries_total")
    def entries_total(self, obj):
        return obj.entries_total

    @admin.action(description=_("Adjust points (staff correction)"), permissions=["adjust"])
    def adjust_points(self, request, queryset):
        accounts = list(queryset[:2])
        if len(accounts) != 1:
            self.message_user(request, _("Choose exactly one account to adjust."), messages.WARNING)
            return None
        return HttpResponseRedirect(reverse("admin:loyalty_account_adjust", args=[accounts[0].pk]))

    def has_adjust_permission(self, request):
        return request.user.has_perm(ADJUST_PERMISSION)

    def get_urls(self):
        return [
            path(
                "<int:account_id>/adjust/", self.admin_site.admin_view(self.adjust_view), name="loyalty_account_adjust"
            ),
            *super().get_urls(),
        ]

    def adjust_view(self, request, account_id: int):
        if not self.has_adjust_permission(request):
            raise PermissionDenied
        account = get_object_or_404(self.get_queryset(request).select_related("member", "program"), pk=account_id)
        form = AdjustPointsForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                entry = points_adjust(
                    account=account,
                    points=form.cleaned_data["points"],
                    reason=form.cleaned_data["reason"],
                    staff_user=request.user,
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(
                    request,
                    _("Adjusted by %(points)+d points; the balance is now %(balance)d.")
                    % {"points": entry.points, "balance": entry.balance_after},
                    messages.SUCCESS,
                )
                back = request.GET.get("next", "")
                if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
                    back = reverse("admin:loyalty_account_change", args=[account.pk])
                return HttpResponseRedirect(back)
        limit = staff_adjustment_limit(request.user)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "account": account,
            "form": form,
            "limit": limit,
            "used_today": staff_adjustment_used(request.user, timezone.localdate()) if limit else 0,
            "title": _("Adjust points of %(member)s") % {"member": account.member},
        }
        return TemplateResponse(request, "admin/loyalty/account/adjust.html", context)


@admin.register(AdjustmentLimit)
class AdjustmentLimitAdmin(HistoryAdminMixin, SimpleHistoryAdmin):
    """Per role and per user: a user's own limit replaces their roles'; no limit at all means unlimited."""

    list_display = ("__str__", "group", "user", "per_action", "per_day", "apologies_per_day")
    list_select_related = ("group", "user")
    autocomplete_fields = ("user",)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(TenantScopedReadOnlyAdmin):
    list_display = (
        "created_at",
        "kind",
        "points",
        "balance_after",
        "current_balance",
        "member",
        "reason",
        "order_id",
        "expires_at",
        "staff_user",
    )
    list_filter = ("kind", "tenant")
    list_select_related = ("account__member", "staff_user")
    search_fields = ("account__member__external_id", "order_id", "reason")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(current=F("account__balance"))

    @admin.display(description=_("current balance"), ordering="current")
    def current_balance(self, obj):
        return obj.current

    @admin.display(description=_("member"), ordering="account__member__external_id")
    def member(self, obj):
        return obj.account.member


@admin.register(PendingPoints)
class PendingPointsAdmin(TenantScopedReadOnlyAdmin):
    list_display = ("account", "points", "cancelled_points", "status", "order_id", "release_at")
    list_filter = ("status",)
    search_fields = ("order_id", "account__member__external_id")


@admin.register(ExpiryWarning)
class ExpiryWarningAdmin(TenantScopedReadOnlyAdmin):
    list_display = ("account", "points", "expires_at", "created_at")


class AccountInline(admin.TabularInline):
    model = Account
    extra = 0
    can_delete = False
    fields = ("program", "balance", "pending", "lifetime_earned", "debt", "last_activity_at")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


MemberAdmin.inlines = [*MemberAdmin.inlines, AccountInline]
