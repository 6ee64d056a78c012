"""Generated from the URL conf: every API endpoint refuses a missing key and hides other tenants.

A new endpoint cannot escape: its path parameters need a builder in PATH_OBJECTS (which makes the
object in *another* tenant), and an endpoint without path parameters must be listed in
NO_PATH_OBJECT with the reason it cannot leak another tenant's objects through its path.
"""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from loyalty.api.base import ApiView

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")


def _walk(patterns, prefix=""):
    for pattern in patterns:
        regex = prefix + str(pattern.pattern.regex.pattern).lstrip("^")
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, regex.rstrip("$"))
        elif isinstance(pattern, URLPattern):
            yield regex, pattern


def api_endpoints():
    """(regex, view class, methods) of every key-protected view under /api/v1/."""
    found = []
    for regex, pattern in _walk(get_resolver().url_patterns):
        view_class = getattr(pattern.callback, "view_class", None)
        if not regex.startswith("api/v1/") or view_class is None or not issubclass(view_class, ApiView):
            continue
        methods = [m for m in METHODS if hasattr(view_class, m)]
        found.append((regex, view_class, methods))
    return found


PARAM = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def params_of(regex: str) -> list[str]:
    return PARAM.findall(regex)


def url_for(regex: str, values: dict) -> str:
    path = PARAM.sub(lambda m: str(values[m.group(1)]), regex)
    return "/" + path.replace("/?$", "").rstrip("$")


# Path parameter -> builder of such an object in the given tenant (returns the value for the path).
PATH_OBJECTS: dict = {}

# Endpoints with no object in their path, and why their path cannot reach another tenant.
NO_PATH_OBJECT = {
    "TenantDetailApi": "the key's own tenant",
    "TenantFreezeApi": "acts on the key's own tenant",
    "TenantUnfreezeApi": "acts on the key's own tenant",
}

# (view, method) that create-or-update by a key from the path: another tenant's id makes a *new*
# object in the caller's tenant; the other tenant's object must stay untouched (checked below).
UPSERTS: set = set()

ENDPOINTS = api_endpoints()


def test_the_walk_finds_the_endpoints():
    names = {view.__name__ for _, view, _ in ENDPOINTS}
    assert {"TenantDetailApi", "TenantFreezeApi"} <= names


@pytest.mark.parametrize("regex,view,methods", ENDPOINTS, ids=[v.__name__ for _, v, _ in ENDPOINTS])
def test_every_endpoint_is_classified(regex, view, methods):
    params = params_of(regex)
    if params:
        missing = [p for p in params if p not in PATH_OBJECTS]
        assert not missing, f"{view.__name__}: add a builder for {missing} to PATH_OBJECTS"
    else:
        assert view.__name__ in NO_PATH_OBJECT, f"{view.__name__}: classify it in NO_PATH_OBJECT"
    assert view.required_scope in {"read", "redeem", "earn", "manage"}, view


@pytest.mark.parametrize("regex,view,methods", ENDPOINTS, ids=[v.__name__ for _, v, _ in ENDPOINTS])
def test_every_endpoint_refuses_a_missing_or_bad_key(anon, regex, view, methods):
    url = url_for(regex, {p: "x-1" for p in params_of(regex)})
    for method in methods:
        response = getattr(anon, method)(url, {}, format="json")
        assert response.status_code == 401, (method, url, response.content)
        assert response.json()["error"]["code"] == "not_authenticated"
        anon.credentials(HTTP_AUTHORIZATION="Api-Key abcdefgh.nosuchkeyatall")
        response = getattr(anon, method)(url, {}, format="json")
        anon.credentials()
        assert response.status_code == 401, (method, url, response.content)


WITH_PATH_OBJECTS = [e for e in ENDPOINTS if params_of(e[0])]


@pytest.mark.parametrize("regex,view,methods", WITH_PATH_OBJECTS, ids=[v.__name__ for _, v, _ in WITH_PATH_OBJECTS])
def test_every_endpoint_hides_another_tenants_objects(api, other_tenant, regex, view, methods):
    params = params_of(regex)
    for method in methods:
        built = {p: PATH_OBJECTS[p](other_tenant) for p in params}
        values = {p: value for p, (value, _) in built.items()}
        response = getattr(api, method)(url_for(regex, values), {}, format="json")
        if (view.__name__, method) in UPSERTS:
            assert response.status_code in (200, 201, 400), (method, response.content)
        else:
            assert response.status_code == 404, (view.__name__, method, response.content)
            assert response.json()["error"]["code"] != "internal_error"
        for _, unchanged in built.values():
            unchanged()
