"""Property-based fuzzing of every operation of the generated schema (schemathesis): never a 500.

Cases are generated from the OpenAPI document the API serves (valid and invalid inputs: wrong types,
missing fields, odd strings) and sent through the real URL conf with a valid key of every scope. Every
answer must be below 500 and, when it is an error, carry the contract's error body.
"""

import json
from urllib.parse import urlencode

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient
from schemathesis.core import NOT_SET

from tests.factories import api_key_for


def _schema() -> dict:
    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document, renderer_context={}))


schema = schemathesis.openapi.from_dict(_schema())


@pytest.fixture
def fuzz_client(tenant):
    _, raw = api_key_for(tenant, throttle_rate="100000/min")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client


def send(client: APIClient, case) -> object:
    """The case through Django's test client: its method (even unusual ones), path, query, JSON body and
    `Idempotency-Key`; the valid key of the fixture replaces whatever Authorization was generated."""
    extra = {"QUERY_STRING": urlencode(case.query or {}, doseq=True)}
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and key.isascii() and key.isprintable():
        extra["HTTP_IDEMPOTENCY_KEY"] = key
    if case.body is NOT_SET:
        data = ""
    elif isinstance(case.body, bytes):
        data = case.body
    else:
        data = json.dumps(case.body)
    return client.generic(case.method.upper(), case.formatted_path, data, content_type="application/json", **extra)


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=True,
)
def test_no_input_makes_the_api_fail(case, fuzz_client):
    response = send(fuzz_client, case)
    assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.content[:500])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"]), body
