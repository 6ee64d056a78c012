"""The staff site's middleware, passed over by the touchpoint API (`/api/v1/`, but for its HTML docs page).

An API request carries a key, never a session: it reads no session, user, message or history context and
renders no page to guard with a content security policy. Each class here is the library's, so the admin's
checks still find them, and does nothing on API paths; the security, common, CSRF (the API views are exempt),
static files, frame options (Django's deploy check asks for that very class) and request id middleware still
run everywhere.
"""

from csp.middleware import CSPMiddleware as _CSPMiddleware
from django.contrib.auth.middleware import AuthenticationMiddleware as _AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware as _MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as _SessionMiddleware
from django_otp.middleware import OTPMiddleware as _OTPMiddleware
from simple_history.middleware import HistoryRequestMiddleware as _history_request_middleware

API_PREFIX = "/api/v1/"
API_PAGES = ("/api/v1/docs",)  # HTML: the site's middleware applies


def is_api(request) -> bool:
    path = request.path_info
    return path.startswith(API_PREFIX) and not path.startswith(API_PAGES)


class _SiteOnly:
    def __call__(self, request):
        if is_api(request):
            return self.get_response(request)
        return super().__call__(request)


class CSPMiddleware(_SiteOnly, _CSPMiddleware):
    pass


class SessionMiddleware(_SiteOnly, _SessionMiddleware):
    pass


class AuthenticationMiddleware(_SiteOnly, _AuthenticationMiddleware):
    pass


class MessageMiddleware(_SiteOnly, _MessageMiddleware):
    pass


def HistoryRequestMiddleware(get_response):  # noqa: N802 (the library's name)
    """simple_history's request context, for staff requests (API writes record no staff user anyway)."""
    site = _history_request_middleware(get_response)

    def middleware(request):
        return get_response(request) if is_api(request) else site(request)

    return middleware


class OTPMiddleware(_SiteOnly, _OTPMiddleware):
    pass
