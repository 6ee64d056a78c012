"""Authentication, scopes, errors, Request-Id, throttling and trailing slashes, through the real URL conf."""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from api.views.tenant import TenantDetailApi
from integrations.models import IntegrationAPIKey
from members.models import Tenant
from tests.api.conftest import client_for
from tests.factories import api_key_for

pytestmark = pytest.mark.django_db


def assert_error(response, status: int, code: str):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def test_a_valid_key_reads_its_own_tenant(api, tenant):
    response = api.get("/api/v1/tenant")
    assert response.status_code == 200
    assert response.json()["slug"] == tenant.slug


def test_missing_key_is_401_with_the_error_body_and_www_authenticate(anon):
    response = anon.get("/api/v1/tenant")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Api-Key"


@pytest.mark.parametrize(
    "header",
    ["Bearer abc", "Api-Key", "Api-Key nodot", "Api-Key abcdefgh.wrongsecret", "Api-Key " + "x" * 300],
)
def test_malformed_or_unknown_keys_are_401(tenant, header):
    api_key_for(tenant)
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert_error(client.get("/api/v1/tenant"), 401, "authentication_failed")


def test_a_key_with_the_right_prefix_but_wrong_secret_is_401(key_pair):
    api_key, raw = key_pair
    forged = f"{api_key.prefix}.{'A' * 32}"
    assert_error(client_for(forged).get("/api/v1/tenant"), 401, "authentication_failed")


def test_only_a_hash_of_the_key_is_stored(key_pair):
    api_key, raw = key_pair
    stored = IntegrationAPIKey.objects.filter(pk=api_key.pk).values().get()
    assert raw not in str(stored.values())
    assert stored["hashed_key"].startswith("sha512$$")
    assert raw.startswith(api_key.prefix + ".")


def test_a_revoked_key_is_refused(key_pair):
    from integrations.keys import api_key_revoke

    api_key, raw = key_pair
    assert client_for(raw).get("/api/v1/tenant").status_code == 200
    api_key_revoke(api_key=api_key)
    assert_error(client_for(raw).get("/api/v1/tenant"), 401, "authentication_failed")


def test_an_expired_key_is_refused(tenant):
    _, raw = api_key_for(tenant, expiry_date=timezone.now() - timedelta(seconds=1))
    assert_error(client_for(raw).get("/api/v1/tenant"), 401, "authentication_failed")


def test_last_used_time_is_recorded_at_most_once_a_minute(key_pair, django_assert_max_num_queries):
    api_key, raw = key_pair
    assert api_key.last_used_at is None
    client = client_for(raw)
    client.get("/api/v1/tenant")
    api_key.refresh_from_db()
    first = api_key.last_used_at
    assert first is not None
    # A second call in the same minute: one SELECT for the key and nothing written.
    with django_assert_max_num_queries(1):
        assert client.get("/api/v1/tenant").status_code == 200
    api_key.refresh_from_db()
    assert api_key.last_used_at == first


def test_a_missing_scope_is_403_and_changes_nothing(tenant):
    _, raw = api_key_for(tenant, scopes=["read"])
    response = client_for(raw).post("/api/v1/tenant/freeze", {"reason": "x"}, format="json")
    error = assert_error(response, 403, "insufficient_scope")
    assert error["details"] == {"required_scope": "manage"}
    tenant.refresh_from_db()
    assert tenant.frozen is False


def test_the_kill_switch_freezes_and_unfreezes_the_keys_tenant_only(api, tenant, other_tenant):
    response = api.post("/api/v1/tenant/freeze", {"reason": "fraud wave"}, format="json")
    assert response.status_code == 200
    assert response.json()["frozen"] is True and response.json()["frozen_reason"] == "fraud wave"
    tenant.refresh_from_db()
    other_tenant.refresh_from_db()
    assert tenant.frozen and not other_tenant.frozen
    response = api.post("/api/v1/tenant/unfreeze/")
    assert response.status_code == 200 and response.json()["frozen"] is False
    tenant.refresh_from_db()
    assert not tenant.frozen and tenant.frozen_reason == ""


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


def test_throttling_answers_429_with_retry_after(tenant):
    _, raw = api_key_for(tenant, throttle_rate="3/min")
    client = client_for(raw)
    assert [client.get("/api/v1/tenant").status_code for _ in range(3)] == [200, 200, 200]
    response = client.get("/api/v1/tenant")
    error = assert_error(response, 429, "throttled")
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 61
    assert error["details"] == {"retry_after": retry_after}


def test_throttling_is_per_key(tenant):
    _, raw_a = api_key_for(tenant, throttle_rate="1/min")
    _, raw_b = api_key_for(tenant, throttle_rate="1/min")
    assert client_for(raw_a).get("/api/v1/tenant").status_code == 200
    assert client_for(raw_a).get("/api/v1/tenant").status_code == 429
    assert client_for(raw_b).get("/api/v1/tenant").status_code == 200


@pytest.mark.redis
def test_the_throttle_counter_on_redis_is_atomic_and_expires():
    """Threads incrementing one counter see every count once; the window's key dies with the window."""
    import threading
    import uuid

    from django.core.cache import caches

    from api.throttling import _increment

    assert type(caches["default"]).__name__ == "RedisCache"
    key = f"throttle:test:{uuid.uuid4().hex}"
    backend = caches["default"]
    backend._cache.get_client(key, write=True).script_flush()  # as after a Redis restart: EVAL again
    seen: list[int] = []
    lock = threading.Lock()

    def hit():
        for _ in range(25):
            count = _increment(key, 30)
            with lock:
                seen.append(count)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == list(range(1, 201))
    full_key = backend.make_and_validate_key(key)
    assert 0 < backend._cache.get_client(full_key).ttl(full_key) <= 30


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


def test_a_key_never_sees_another_tenant(api, tenant, other_tenant):
    assert api.get("/api/v1/tenant").json()["slug"] == tenant.slug
    api.post("/api/v1/tenant/freeze", {"reason": "x"}, format="json")
    assert Tenant.objects.get(pk=other_tenant.pk).frozen is False


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
