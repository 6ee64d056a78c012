"""Staff sign-in security: the second factor (django-otp TOTP) a staff user sets up, and the check that
requires it of the Admin role when `OTP_REQUIRED_FOR_ADMINS` is on. Brute force is django-axes' (settings).

The pages live under the admin's address (`/admin/two-factor/`) and look like it; a user sets up their own
device here (the admin's "TOTP devices" page is for an Admin removing a lost one).
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import user_passes_test
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django_otp import login as otp_login
from django_otp import user_has_device
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.middleware import is_api

ADMIN_ROLE = "Admin"
SETUP_URL_NAME = "staff_two_factor"


def otp_required(user) -> bool:
    """Whether this staff user must pass a second factor: the Admin role (and superusers) when the setting is on."""
    if not settings.OTP_REQUIRED_FOR_ADMINS or not (user.is_authenticated and user.is_staff):
        return False
    return user.is_superuser or user.groups.filter(name=ADMIN_ROLE).exists()


class OTPRequiredMiddleware:
    """Sends an Admin-role user who has not passed a device in this session to the two-factor page."""

    EXEMPT = ("/admin/two-factor/", "/admin/login/", "/admin/logout/", "/admin/jsi18n/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path_info = request.path_info
        if (
            settings.OTP_REQUIRED_FOR_ADMINS
            and path_info.startswith("/admin/")
            and not path_info.startswith(self.EXEMPT)
            and not is_api(request)
            and otp_required(request.user)
            and not request.user.is_verified()
        ):
            return redirect(f"{reverse(SETUP_URL_NAME)}?next={request.get_full_path()}")
        return self.get_response(request)


class TokenForm(forms.Form):
    token = forms.CharField(
        label=_("Code from your authenticator app"), max_length=8, widget=forms.TextInput(attrs={"autofocus": True})
    )


def _next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("admin:index")


def _pending_device(user) -> TOTPDevice:
    """The user's device being set up (not confirmed yet), made on first visit."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name=str(_("Authenticator app")), confirmed=False)


@user_passes_test(lambda u: u.is_active and u.is_staff, login_url="admin:login")
def two_factor_view(request):
    """Set up an authenticator app (shows its key), or enter a code from the one already set up."""
    user = request.user
    has_device = user_has_device(user, confirmed=True)
    device = None if has_device else _pending_device(user)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        token = form.cleaned_data["token"].strip()
        if device is not None:
            if device.verify_token(token):
                device.confirmed = True
                device.save(update_fields=["confirmed"])
                otp_login(request, device)
                return redirect(_next(request))
        else:
            for candidate in TOTPDevice.objects.filter(user=user, confirmed=True):
                if candidate.verify_token(token):
                    otp_login(request, candidate)
                    return redirect(_next(request))
        form.add_error("token", _("That code is not valid. Check the time on your device and try again."))
    context = {
        **admin.site.each_context(request),
        "title": _("Two-factor sign-in"),
        "form": form,
        "required": otp_required(user),
        "verified": user.is_verified(),
        "setting_up": device is not None,
        "secret": device and _base32(device.bin_key),
        "config_url": device and device.config_url,
        "next": _next(request),
    }
    return TemplateResponse(request, "admin/staff_security/two_factor.html", context)


def _base32(key: bytes) -> str:
    from base64 import b32encode

    return b32encode(key).decode()


urlpatterns = [path("admin/two-factor/", two_factor_view, name=SETUP_URL_NAME)]
