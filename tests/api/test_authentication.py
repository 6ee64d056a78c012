"""API keys (api/authentication.py) and scopes (api/permissions.py): who may call, and what they see."""

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.models import IntegrationAPIKey
from members.models import Tenant
from tests.api.conftest import assert_error, client_for
from tests.factories import api_key_for

pytestmark = pytest.mark.django_db


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


def test_a_key_never_sees_another_tenant(api, tenant, other_tenant):
    assert api.get("/api/v1/tenant").json()["slug"] == tenant.slug
    api.post("/api/v1/tenant/freeze", {"reason": "x"}, format="json")
    assert Tenant.objects.get(pk=other_tenant.pk).frozen is False


def test_a_key_revoked_elsewhere_is_refused_within_the_cache_time(key_pair, monkeypatch, settings):
    """Another process revoked the key (a direct UPDATE here): this process serves what it read for at most
    API_KEY_CACHE_SECONDS, then reads the key again and refuses it."""
    from integrations import keys

    settings.API_KEY_CACHE_SECONDS = 5
    clock = [1000.0]
    monkeypatch.setattr(keys, "_clock", lambda: clock[0])
    api_key, raw = key_pair
    assert client_for(raw).get("/api/v1/tenant").status_code == 200
    IntegrationAPIKey.objects.filter(pk=api_key.pk).update(revoked=True)
    clock[0] += 4.9
    assert client_for(raw).get("/api/v1/tenant").status_code == 200  # the documented grace
    clock[0] += 0.2
    assert_error(client_for(raw).get("/api/v1/tenant"), 401, "authentication_failed")


def test_a_cached_key_is_not_read_again_and_still_checks_the_secret(key_pair, django_assert_num_queries):
    _, raw = key_pair
    assert client_for(raw).get("/api/v1/tenant").status_code == 200
    with django_assert_num_queries(0):
        assert_error(client_for(raw.split(".")[0] + ".wrongsecret").get("/api/v1/tenant"), 401, "authentication_failed")
    with django_assert_num_queries(0):
        assert client_for(raw).get("/api/v1/tenant").status_code == 200


def test_without_the_cache_every_request_reads_the_key(key_pair, settings, django_assert_num_queries):
    settings.API_KEY_CACHE_SECONDS = 0
    _, raw = key_pair
    assert client_for(raw).get("/api/v1/tenant").status_code == 200
    with django_assert_num_queries(1):
        assert client_for(raw).get("/api/v1/tenant").status_code == 200
