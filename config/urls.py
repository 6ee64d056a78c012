from django.contrib import admin
from django.urls import include, path

from config.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("api.urls")),
    # The member cockpit, one per tenant (members, not staff: its own sign-in, see rewards/cockpit/auth.py).
    path("cockpit/<slug:tenant_slug>/", include("rewards.cockpit.urls")),
]
