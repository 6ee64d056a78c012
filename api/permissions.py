"""Scopes: a key carries some of `read`, `redeem`, `earn`, `manage`; a view names the one it needs."""

from rest_framework import permissions

from api.errors import ApiError


def scope_for(view, method: str) -> str | None:
    """`required_scope` is one scope, or a dict by method (GET: read, PATCH: manage)."""
    scope = getattr(view, "required_scope", None)
    if isinstance(scope, dict):
        method = "GET" if method.upper() == "HEAD" else method.upper()
        return scope.get(method) or scope.get("*") or ("read" if method == "OPTIONS" else None)
    return scope


class HasScope(permissions.BasePermission):
    """Authenticated by an API key that carries the view's `required_scope` (403 otherwise)."""

    def has_permission(self, request, view) -> bool:
        api_key = getattr(request, "auth", None)
        if api_key is None or not getattr(request.user, "is_authenticated", False):
            return False  # DRF answers 401 (NotAuthenticated) since an authenticator is configured
        scope = scope_for(view, request.method)
        if scope is None and not hasattr(view, request.method.lower()):
            return True  # a method the view does not have: DRF answers 405 next
        if scope is None:
            raise AssertionError(f"{type(view).__name__} must declare required_scope")
        if not api_key.has_scope(scope):
            raise ApiError(
                "insufficient_scope",
                f"This API key lacks the `{scope}` scope.",
                403,
                {"required_scope": scope},
            )
        return True
