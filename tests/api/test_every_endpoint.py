"""Generated from the URL conf: every API endpoint refuses a missing key and hides other tenants.

A new endpoint cannot escape: its path parameters need a builder in PATH_OBJECTS (which makes the
object in *another* tenant), and an endpoint without path parameters must be listed in
NO_PATH_OBJECT with the reason it cannot leak another tenant's objects through its path.
"""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from api.base import ApiView
from api.permissions import scope_for
from tests.factories import CampaignFactory, CodeFactory, MemberFactory, ProgramFactory, earning_setup

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


def _member(tenant):
    member = MemberFactory(tenant=tenant)
    before = (member.email, member.name, member.tenant_id)

    def unchanged():
        member.refresh_from_db()
        assert (member.email, member.name, member.tenant_id) == before

    return member.external_id, unchanged


def _order(tenant):
    from rewards.services.checkout import order_checkout

    _, _, member = earning_setup(tenant)
    result = order_checkout(
        tenant=tenant, member=member.external_id, order_id="o-other", amount="100.00", currency=tenant.currency
    )
    order = result.order

    def unchanged():
        order.refresh_from_db()
        assert order.returned_amount == 0

    return order.order_id, unchanged


def _program(tenant):
    program = ProgramFactory(tenant=tenant, name="Theirs")

    def unchanged():
        program.refresh_from_db()
        assert program.name == "Theirs"

    return program.code, unchanged


def _campaign(tenant):
    campaign = CampaignFactory(tenant=tenant, name="Theirs", enabled=True)

    def unchanged():
        campaign.refresh_from_db()
        assert campaign.name == "Theirs" and campaign.enabled

    return str(campaign.pk), unchanged


def _redemption(tenant):
    from rewards.services.redemption import redeem

    code = CodeFactory(campaign=CampaignFactory(tenant=tenant), usage_limit=5)
    redemption = redeem(tenant=tenant, member=None, order_id="o-1", order={"amount": "100.00"}, codes=[code.code])

    def unchanged():
        redemption.refresh_from_db()
        assert str(redemption.status) != "rolled_back"

    return str(redemption.pk), unchanged


# Path parameter -> builder of such an object in the given tenant: (value for the path, check it is unchanged).
PATH_OBJECTS: dict = {
    "external_id": _member,
    "order_id": _order,
    "code": _program,
    "campaign_id": _campaign,
    "redemption_id": _redemption,
}


def _probe_member_in_body(method, url, body_for):
    def probe(tenant):
        external_id, unchanged = _member(tenant)
        return method, url, body_for(external_id), unchanged

    return probe


def _probe_publication(tenant):
    campaign_id, unchanged = _campaign(tenant)
    return "post", "/api/v1/publications", {"campaign": campaign_id, "member": "nobody"}, unchanged


def _probe_report(path):
    def probe(tenant):
        campaign_id, unchanged = _campaign(tenant)
        query = {"from": "2026-03-01", "to": "2026-03-31", "campaign": campaign_id}
        return "get", f"/api/v1/reports/{path}", query, unchanged

    return probe


# Endpoints with no object in their path: a probe naming another tenant's object in the body or query
# (which must answer 404), or the reason the endpoint cannot reach another tenant.
NO_PATH_OBJECT: dict = {
    "TenantDetailApi": "the key's own tenant",
    "TenantFreezeApi": "acts on the key's own tenant",
    "TenantUnfreezeApi": "acts on the key's own tenant",
    "CampaignCreateApi": "creates in the key's own tenant",
    "OrderCreateApi": _probe_member_in_body(
        "post", "/api/v1/orders", lambda m: {"order_id": "o-x", "member": m, "amount": "10.00", "currency": "EUR"}
    ),
    "EventCreateApi": _probe_member_in_body("post", "/api/v1/events", lambda m: {"member": m, "event": "liked"}),
    "ValidationApi": _probe_member_in_body(
        "post", "/api/v1/validations", lambda m: {"member": m, "order": {"amount": "10.00"}, "codes": ["X"]}
    ),
    "RedemptionCreateApi": _probe_member_in_body(
        "post",
        "/api/v1/redemptions",
        lambda m: {"member": m, "order_id": "o-x", "order": {"amount": "10.00"}, "codes": ["X"]},
    ),
    "RewardCatalogApi": _probe_member_in_body("get", "/api/v1/rewards", lambda m: {"member": m}),
    "PublicationCreateApi": _probe_publication,
    "ReportSummaryApi": _probe_report("summary"),
    "ReportTimeseriesApi": _probe_report("timeseries"),
}

# (view, method) that create-or-update by a key from the path: another tenant's id makes a *new*
# object in the caller's tenant; the other tenant's object must stay untouched (checked below).
UPSERTS: set = {("MemberApi", "put"), ("ProgramApi", "put")}

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
    for method in methods:
        assert scope_for(view, method) in {"read", "redeem", "earn", "manage"}, (view, method)


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


MINIMAL_BODIES = {"MemberRewardRedemptionApi": {"reward": "1"}, "OrderReturnApi": {"amount": "1.00"}}

PROBED = [e for e in ENDPOINTS if callable(NO_PATH_OBJECT.get(e[1].__name__))]


@pytest.mark.parametrize("regex,view,methods", PROBED, ids=[v.__name__ for _, v, _ in PROBED])
def test_endpoints_refuse_another_tenants_objects_named_in_the_body(api, other_tenant, regex, view, methods):
    method, url, body, unchanged = NO_PATH_OBJECT[view.__name__](other_tenant)
    if method == "get":
        response = api.get(url, body)
    else:
        response = getattr(api, method)(url, body, format="json")
    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"].endswith("_not_found")
    unchanged()


WITH_PATH_OBJECTS = [e for e in ENDPOINTS if params_of(e[0])]


@pytest.mark.parametrize("regex,view,methods", WITH_PATH_OBJECTS, ids=[v.__name__ for _, v, _ in WITH_PATH_OBJECTS])
def test_every_endpoint_hides_another_tenants_objects(api, other_tenant, regex, view, methods):
    params = params_of(regex)
    for method in methods:
        built = {p: PATH_OBJECTS[p](other_tenant) for p in params}
        values = {p: value for p, (value, _) in built.items()}
        response = getattr(api, method)(url_for(regex, values), {}, format="json")
        if response.status_code == 400 and (view.__name__, method) not in UPSERTS:
            # Input is checked before lookups on some endpoints: send the smallest valid body.
            response = getattr(api, method)(
                url_for(regex, values), MINIMAL_BODIES.get(view.__name__, {}), format="json"
            )
        if (view.__name__, method) in UPSERTS:
            assert response.status_code in (200, 201, 400), (method, response.content)
        else:
            assert response.status_code == 404, (view.__name__, method, response.content)
            assert response.json()["error"]["code"] != "internal_error"
        for _, unchanged in built.values():
            unchanged()
