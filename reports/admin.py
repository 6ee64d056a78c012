"""The digest subscriptions in the console: who gets which tenant's figures, and since when; read-only (the
dashboard subscribes and unsubscribes), with an action that stops the selected ones through the service."""

from django.contrib import admin, messages
from django.db.models import Max
from django.utils.translation import gettext_lazy as _

from members.admin_tenancy import TenantScopedReadOnlyAdmin
from reports import services
from reports.models import ReportSubscription


@admin.register(ReportSubscription)
class ReportSubscriptionAdmin(TenantScopedReadOnlyAdmin):
    list_display = ("user", "tenant", "frequency", "filters", "active", "created_at", "last_period")
    list_filter = ("frequency", "active")
    list_select_related = ("user", "tenant")
    search_fields = ("user__username", "user__email")
    actions = ["stop_selected"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(last=Max("digests__period_start"))

    @admin.display(description=_("last period sent or being sent"), ordering="last")
    def last_period(self, obj):
        return obj.last

    def has_stop_permission(self, request):
        return request.user.has_perm("reports.change_reportsubscription")

    @admin.action(description=_("Stop the selected digests"), permissions=["stop"])
    def stop_selected(self, request, queryset):
        stopped = 0
        for subscription in queryset.filter(active=True):  # the user's tenants only (get_queryset)
            services.subscription_cancel(subscription=subscription)
            stopped += 1
        messages.success(request, _("%(n)d digests stopped.") % {"n": stopped})
