from django.contrib import admin
from django.urls import include, path

from config import staff_security
from config.health import healthz
from reports import dashboard as reports_dashboard
from reports.audit import audit_view

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    *staff_security.urlpatterns,  # /admin/two-factor/, before the admin's catch-all
    path("admin/audit/", admin.site.admin_view(audit_view), name="audit"),
    path("admin/reports/dashboard/", include(reports_dashboard)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("api.urls")),
    # The member cockpit, one per tenant (members, not staff: its own sign-in, see rewards/cockpit/auth.py).
    path("cockpit/<slug:tenant_slug>/", include("rewards.cockpit.urls")),
]
