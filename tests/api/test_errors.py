"""One error body for every failure (api/errors.py, api/base.py, api/middleware.py), Request-Id, trailing slashes."""

import logging

import pytest

from api.views.tenant import TenantDetailApi
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db


def test_trailing_slash_is_optional(api):
    assert api.get("/api/v1/tenant").status_code == 200
    assert api.get("/api/v1/tenant/").status_code == 200


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
def test_an_unknown_path_is_404_with_the_error_body(api, anon, method):
    assert_error(getattr(api, method)("/api/v1/no-such-thing"), 404, "not_found")
    assert_error(getattr(anon, method)("/api/v1/no/such/thing/"), 404, "not_found")


def test_a_wrong_method_is_405(api):
    assert_error(api.get("/api/v1/tenant/freeze"), 405, "method_not_allowed")
    assert_error(api.delete("/api/v1/tenant"), 405, "method_not_allowed")


def test_malformed_json_is_400_and_changes_nothing(api, tenant):
    response = api.post("/api/v1/tenant/freeze", data=b'{"reason": ', content_type="application/json")
    assert_error(response, 400, "malformed_request")
    tenant.refresh_from_db()
    assert not tenant.frozen


def test_a_non_json_body_is_415(api):
    response = api.post("/api/v1/tenant/freeze", data="reason=x", content_type="application/x-www-form-urlencoded")
    assert_error(response, 415, "unsupported_media_type")


def test_invalid_fields_are_400_with_the_field_errors_in_details(api, tenant):
    response = api.post("/api/v1/tenant/freeze", {"reason": "x" * 301}, format="json")
    error = assert_error(response, 400, "validation_error")
    assert list(error["details"]) == ["reason"]
    tenant.refresh_from_db()
    assert not tenant.frozen


def test_an_unexpected_exception_is_a_500_without_internals_logged_with_the_request_id(api, monkeypatch, caplog):
    def boom(self, request):
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(TenantDetailApi, "get", boom)
    with caplog.at_level(logging.ERROR, logger="api"):
        response = api.get("/api/v1/tenant")
    error = assert_error(response, 500, "internal_error")
    assert "hunter2" not in response.content.decode()
    request_id = response["Request-Id"]
    assert error["details"] == {"request_id": request_id}
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and "hunter2" in str(logged[0].exc_info[1])


def test_every_response_carries_a_request_id_and_keeps_a_well_formed_incoming_one(api, anon):
    first = api.get("/api/v1/tenant")["Request-Id"]
    second = api.get("/api/v1/tenant")["Request-Id"]
    assert first and second and first != second
    assert anon.get("/api/v1/tenant")["Request-Id"]
    assert api.get("/api/v1/tenant", HTTP_REQUEST_ID="trace-12345678")["Request-Id"] == "trace-12345678"
    assert api.get("/api/v1/tenant", HTTP_REQUEST_ID="bad id<script>")["Request-Id"] != "bad id<script>"


def test_nul_characters_are_refused_before_reaching_the_database(api, tenant):
    assert_error(api.get("/api/v1/members/a%00b"), 404, "not_found")
    body = {"name": "x", "type": "discount", "discount": {"type": "percent\x00", "value": "10"}}
    assert_error(api.post("/api/v1/campaigns", body, format="json"), 400, "malformed_request")
    assert_error(
        api.put("/api/v1/members/a", {"email": "a@b.example", "name": "x\x00"}, format="json"), 400, "malformed_request"
    )


def test_unusual_methods_are_405_not_500(api):
    for method in ("TRACE", "QUERY", "OPTIONS"):
        response = api.generic(method, "/api/v1/members/x")
        assert response.status_code in (200, 405), (method, response.status_code)
    assert_error(api.generic("TRACE", "/api/v1/tenant/freeze"), 405, "method_not_allowed")
