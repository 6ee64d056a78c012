from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from guardian.admin import ReinforcedGuardedModelAdminMixin
from simple_history.admin import SimpleHistoryAdmin

from members.admin_tenancy import TenantScopedAdmin, TenantScopedReadOnlyAdmin, tenants_for_user
from members.models import CustomEvent, Member, Segment, SegmentMember, Tenant
from members.services import tenant_set_frozen


@admin.register(Tenant)
class TenantAdmin(ReinforcedGuardedModelAdminMixin, SimpleHistoryAdmin):
    list_display = ("slug", "name", "currency", "time_zone", "frozen", "frozen_reason")
    list_filter = ("frozen", "currency")
    search_fields = ("slug", "name")
    # The kill switch moves only through the actions below (the service locks the row and records why).
    readonly_fields = ("frozen", "frozen_reason")
    actions = ["freeze", "unfreeze"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(pk__in=tenants_for_user(request.user))

    @admin.action(description=_("Freeze: refuse every redemption and earning of the selected tenants"))
    def freeze(self, request, queryset):
        for tenant in queryset:
            tenant_set_frozen(tenant=tenant, frozen=True, reason=f"frozen in the admin by {request.user.username}")
        self.message_user(request, _("%(n)d tenant(s) frozen.") % {"n": len(queryset)}, messages.WARNING)

    @admin.action(description=_("Unfreeze the selected tenants"))
    def unfreeze(self, request, queryset):
        for tenant in queryset:
            tenant_set_frozen(tenant=tenant, frozen=False)
        self.message_user(request, _("%(n)d tenant(s) unfrozen.") % {"n": len(queryset)}, messages.SUCCESS)


class CustomEventInline(admin.TabularInline):
    model = CustomEvent
    extra = 0
    can_delete = False
    ordering = ("-occurred_at",)
    fields = ("name", "metadata", "occurred_at")
    readonly_fields = fields
    max_num = 0

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-occurred_at")


@admin.register(Member)
class MemberAdmin(TenantScopedAdmin):
    """Members; the rewards app adds the accounts inline (this app does not import those above it)."""

    list_display = ("external_id", "email", "name", "country", "tenant", "marketing_consent", "created_at")
    list_filter = ("tenant", "marketing_consent", "country")
    search_fields = ("external_id", "email", "name", "referral_code")
    readonly_fields = ("referral_code", "marketing_consent_changed_at", "created_at", "updated_at")
    raw_id_fields = ("referred_by",)
    inlines = [CustomEventInline]


@admin.register(CustomEvent)
class CustomEventAdmin(TenantScopedReadOnlyAdmin):
    list_display = ("name", "member", "occurred_at", "tenant")
    list_filter = ("name", "tenant")
    list_select_related = ("member", "tenant")
    search_fields = ("name", "member__external_id")


class SegmentMemberInline(admin.TabularInline):
    model = SegmentMember
    extra = 0
    raw_id_fields = ("member",)


@admin.register(Segment)
class SegmentAdmin(TenantScopedAdmin):
    list_display = ("code", "name", "kind", "tenant", "size")
    list_filter = ("kind", "tenant")
    search_fields = ("code", "name")
    inlines = [SegmentMemberInline]

    @admin.display(description=_("members"))
    def size(self, obj):
        from members.selectors import segment_members

        return segment_members(obj).count()
