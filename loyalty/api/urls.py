"""Routes of /api/v1/. Every path works with and without its trailing slash (`/?$`)."""

from django.urls import re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from loyalty.api import schema  # noqa: F401  (registers the API-key security scheme)
from loyalty.api.base import ApiNotFoundView
from loyalty.api.views_tenant import TenantDetailApi, TenantFreezeApi, TenantUnfreezeApi

app_name = "api"


def route(pattern: str, view, name: str):
    """`pattern` without slashes at either end; the trailing slash is optional."""
    return re_path(rf"^{pattern}/?$", view, name=name)


urlpatterns = [
    route("schema", SpectacularAPIView.as_view(), "schema"),
    # Swagger UI from drf-spectacular-sidecar's static files (no CDN). Redoc is left out: its page
    # loads web fonts from a CDN.
    route("docs", SpectacularSwaggerView.as_view(url_name="api:schema"), "docs"),
    route("tenant", TenantDetailApi.as_view(), "tenant"),
    route("tenant/freeze", TenantFreezeApi.as_view(), "tenant-freeze"),
    route("tenant/unfreeze", TenantUnfreezeApi.as_view(), "tenant-unfreeze"),
]

# Last: any other path under /api/v1/ is a 404 with the error body (not Django's HTML page).
urlpatterns.append(re_path(r"^.*$", ApiNotFoundView.as_view(), name="not-found"))
