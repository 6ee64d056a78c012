"""Admin tenant scoping: a staff user sees only the tenants they are granted, and their rows.

Access to a tenant is the guardian object permission `members.access_tenant` on that tenant (a support
agent serves one tenant); the model-level permission (the Admin role) or superuser status covers all.
"""

from django.contrib import admin
from django.db.models import QuerySet
from guardian.admin import ReinforcedGuardedModelAdminMixin
from guardian.shortcuts import get_objects_for_user
from simple_history.admin import SimpleHistoryAdmin

from members.admin_history import HistoryAdminMixin
from members.models import Tenant, TenantOwned

ACCESS_TENANT = "members.access_tenant"


def tenants_for_user(user) -> QuerySet[Tenant]:
    if not (user and user.is_active and user.is_staff):
        return Tenant.objects.none()
    if user.is_superuser:
        return Tenant.objects.all()
    return get_objects_for_user(user, ACCESS_TENANT, klass=Tenant, accept_global_perms=True)


class TenantScopedAdminMixin:
    """Confines a ModelAdmin's rows and foreign-key choices to the user's tenants."""

    tenant_lookup = "tenant"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(**{f"{self.tenant_lookup}__in": tenants_for_user(request.user)})

    def _scope_choices(self, db_field, request, kwargs):
        model = db_field.related_model
        if request.user.is_superuser or model is None:
            return
        if model is Tenant:
            kwargs["queryset"] = tenants_for_user(request.user)
        elif issubclass(model, TenantOwned):
            base = kwargs.get("queryset", model._default_manager.all())
            kwargs["queryset"] = base.filter(tenant__in=tenants_for_user(request.user))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        self._scope_choices(db_field, request, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        self._scope_choices(db_field, request, kwargs)
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class TenantScopedAdmin(
    TenantScopedAdminMixin, HistoryAdminMixin, ReinforcedGuardedModelAdminMixin, SimpleHistoryAdmin
):
    """The base for configuration and master data: tenant scope, per-object rights, history (with reasons, diffs
    and service-made reverts: `members.admin_history`)."""

    list_select_related = ("tenant",)


class TenantScopedReadOnlyAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """For append-only records (the ledger): viewable, never changed or deleted in the admin."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
