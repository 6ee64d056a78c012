from django.contrib import admin
from guardian.admin import ReinforcedGuardedModelAdminMixin
from simple_history.admin import SimpleHistoryAdmin

from members.admin_tenancy import tenants_for_user
from members.models import Tenant


@admin.register(Tenant)
class TenantAdmin(ReinforcedGuardedModelAdminMixin, SimpleHistoryAdmin):
    list_display = ("slug", "name", "currency", "time_zone", "frozen")
    list_filter = ("frozen", "currency")
    search_fields = ("slug", "name")

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=tenants_for_user(request.user))
