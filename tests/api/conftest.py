import pytest
from rest_framework.test import APIClient

from tests.factories import api_key_for


def client_for(raw_key: str | None = None) -> APIClient:
    client = APIClient()
    if raw_key:
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


@pytest.fixture
def key_pair(tenant):
    """(api_key, raw_key) with every scope, for `tenant`."""
    return api_key_for(tenant)


@pytest.fixture
def api(key_pair):
    return client_for(key_pair[1])


@pytest.fixture
def other_api(other_tenant):
    return client_for(api_key_for(other_tenant)[1])


@pytest.fixture
def anon():
    return APIClient()


def assert_error(response, status: int, code: str):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]
