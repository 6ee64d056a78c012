"""The cockpit's language: the member's pick in the switcher, else their browser's, else their tenant's.

Only pages under /cockpit/<tenant slug>/ (the calculator's included) get a language of their own; the admin and
the API keep LANGUAGE_CODE. Django's LocaleMiddleware would translate the whole site and answer the API in the
browser's language, hence this small middleware that acts only on views taking a `tenant_slug` under the
cockpit's prefix. The pick is kept in a cookie of the cockpit's paths (it outlives signing out, and works on the
sign-in page before any session exists).
"""

from django.conf import settings
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django.utils.translation.trans_real import parse_accept_lang_header
from django.views.decorators.http import require_POST

from members.languages import locale_language, offered_languages, supported_language
from members.models import Tenant
from rewards.cockpit.auth import cockpit_tenant, next_path_allowed

COCKPIT_PREFIX = "/cockpit/"
COOKIE_MAX_AGE = 365 * 24 * 3600


def tenant_language(tenant: Tenant) -> str:
    """What a tenant's cockpit speaks by default: its locale, else the site's LANGUAGE_CODE, else English."""
    return tenant.language


def cockpit_language(request, tenant: Tenant) -> str:
    offered = offered_languages()
    picked = supported_language(request.COOKIES.get(settings.COCKPIT_LANGUAGE_COOKIE), offered)
    if picked:
        return picked
    for code, _quality in parse_accept_lang_header(request.headers.get("Accept-Language", "")):
        if code == "*":
            break
        accepted = supported_language(code, offered)
        if accepted:
            return accepted
    return tenant_language(tenant)


class CockpitLanguageMiddleware:
    """Activates the cockpit's language for the cockpit's views, and only them; says which in the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            response = self.get_response(request)
        finally:
            language = getattr(request, "cockpit_language", None)
            if language is not None:
                translation.deactivate()
        if language is not None:
            response.headers.setdefault("Content-Language", language)
            patch_vary_headers(response, ("Accept-Language", "Cookie"))
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        slug = view_kwargs.get("tenant_slug")
        if not isinstance(slug, str) or not request.path_info.startswith(COCKPIT_PREFIX):
            return None
        tenant = Tenant.objects.filter(slug=slug).first()
        request.cockpit_tenant = tenant
        if tenant is not None:
            language = cockpit_language(request, tenant)
        else:
            language = locale_language(None)
        translation.activate(language)
        request.LANGUAGE_CODE = request.cockpit_language = language
        return None


@require_POST
def language_pick(request, tenant_slug: str):
    """The switcher: keeps the picked language in the cookie and goes back to the page it was on.

    An unknown language changes nothing (as Django's set_language); `next` must be a page of this cockpit.
    """
    tenant = cockpit_tenant(request, tenant_slug)
    next_path = request.POST.get("next", "")
    if not next_path_allowed(tenant, next_path):
        next_path = reverse("cockpit:home", kwargs={"tenant_slug": tenant.slug})
    response = HttpResponseRedirect(next_path, status=303)
    language = supported_language(request.POST.get("language"))
    if language is not None:
        response.set_cookie(
            settings.COCKPIT_LANGUAGE_COOKIE,
            language,
            max_age=COOKIE_MAX_AGE,
            path=COCKPIT_PREFIX,
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=True,
            samesite="Lax",
        )
    return response
