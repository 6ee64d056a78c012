"""The cockpit's own sign-in: a member in the session under one key, never a Django user.

The admin signs in staff users (`_auth_user_id`); the cockpit keeps `{"tenant", "member"}` under
`SESSION_KEY` instead, so a member signed in to the cockpit is nobody to the admin and a staff user is nobody
to the cockpit. Every cockpit view reads the member again (one query), so a member suspended or erased since
signing in is refused at once.
"""

import functools
import logging
import re

from django.conf import settings
from django.core.cache import cache
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext

from loyalty.sql import default_program
from members.models import Member, Tenant

logger = logging.getLogger("rewards.cockpit")

SESSION_KEY = "cockpit"


def cockpit_sign_in(request, member: Member) -> None:
    """A new session key (no fixation), with the member and their tenant under the cockpit's key."""
    request.session.cycle_key()
    request.session[SESSION_KEY] = {"tenant": member.tenant_id, "member": member.pk}


def cockpit_sign_out(request) -> None:
    """Ends the cockpit session only: a staff session in the same browser is left alone."""
    request.session.pop(SESSION_KEY, None)
    request.session.cycle_key()


def _session_member(request, tenant: Tenant) -> Member | None:
    signed_in = request.session.get(SESSION_KEY)
    if not isinstance(signed_in, dict) or signed_in.get("tenant") != tenant.pk:
        return None
    return Member.objects.for_tenant(tenant).filter(pk=signed_in.get("member")).first()


def cockpit_tenant(request, tenant_slug: str) -> Tenant:
    """The tenant of a cockpit URL (404 if unknown), the one the middleware read when it did (no second query)."""
    tenant = getattr(request, "cockpit_tenant", None)
    if tenant is None or tenant.slug != tenant_slug:
        tenant = get_object_or_404(Tenant, slug=tenant_slug)
    return tenant


def cockpit_view(view):
    """The tenant named in the URL (404 if unknown) and the member signed in to its cockpit, or the sign-in page.

    The view is called as `view(request, tenant, member, **kwargs)`.
    """

    @functools.wraps(view)
    def wrapper(request, tenant_slug: str, **kwargs):
        tenant = cockpit_tenant(request, tenant_slug)
        member = _session_member(request, tenant)
        if member is None:
            return redirect("cockpit:sign-in", tenant_slug=tenant.slug)
        if member.status != Member.Status.ACTIVE:
            request.session.pop(SESSION_KEY, None)
            return TemplateResponse(
                request, "cockpit/refused.html", {"tenant": tenant, "brand": brand(tenant)}, status=403
            )
        member.tenant = tenant
        return view(request, tenant, member, **kwargs)

    return wrapper


def next_path_allowed(tenant: Tenant, path: str) -> bool:
    """Where a link may send the member on to: a path of this tenant's cockpit, nothing else."""
    return (
        bool(path)
        and url_has_allowed_host_and_scheme(path, allowed_hosts=None)
        and path.startswith(f"/cockpit/{tenant.slug}/")
        and "\\" not in path
        and "//" not in path
    )


def _counted(key: str, limit: int, seconds: int) -> bool:
    """Counts one request under `key`; False once more than `limit` were counted in the window."""
    cache.add(key, 0, seconds)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, seconds)
        count = 1
    return count <= limit


def sign_in_request_allowed(*, tenant: Tenant, email: str, address: str) -> bool:
    """Rate limit of sign-in emails, per email (of the tenant) and per client address, in the cache.

    Both are counted whether or not the email is known, so the limit says nothing about accounts. If the cache
    is unreachable the request is let through (logged): signing in matters more than the limit.
    """
    seconds = settings.COCKPIT_SIGN_IN_WINDOW_MINUTES * 60
    try:
        by_email = _counted(
            f"cockpit-sign-in:email:{tenant.pk}:{email.strip().lower()}", settings.COCKPIT_SIGN_IN_PER_EMAIL, seconds
        )
        by_address = _counted(f"cockpit-sign-in:address:{address}", settings.COCKPIT_SIGN_IN_PER_ADDRESS, seconds)
    except Exception:  # noqa: BLE001 (any cache failure)
        logger.warning("cockpit sign-in rate limit not checked: the cache is unreachable", exc_info=True)
        return True
    return by_email and by_address


def _text_on(colour: str) -> str:
    """Black or white, whichever contrasts more with `colour` (WCAG relative luminance)."""

    def channel(hex_pair: str) -> float:
        c = int(hex_pair, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(colour[i : i + 2]) for i in (1, 3, 5))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    # Contrast with black (L + 0.05) / 0.05 against white 1.05 / (L + 0.05).
    return "#000000" if (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) else "#ffffff"


DEFAULT_COLOUR = "#1f4e8c"


def brand(tenant: Tenant) -> dict[str, str]:
    """The tenant's look in the cockpit: header colour and the text colour that reads on it, logo, and what its
    default program calls points (one query)."""
    colour = tenant.brand_colour if re.fullmatch(r"#[0-9a-fA-F]{6}", tenant.brand_colour or "") else DEFAULT_COLOUR
    program = default_program(tenant.pk)
    return {
        "colour": colour,
        "text": _text_on(colour),
        "logo_url": tenant.logo_url,
        "points": (program.points_name if program is not None else "") or gettext("points"),
    }
