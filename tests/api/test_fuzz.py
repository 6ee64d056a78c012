"""Property-based fuzzing of every operation of the generated schema (schemathesis), in the normal suite.

Cases are generated from the OpenAPI document the API serves (valid and invalid inputs: wrong types,
missing fields, odd strings), with a fixed seed and a bounded number of examples per operation, and sent
through Django's real WSGI handler with a valid key of every scope. Every answer goes through
schemathesis' response checks: no server error; the status code, content type, headers and body conform
to the schema; data the schema calls invalid is refused, data it calls valid is not refused as malformed.
"""

import json

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.config import SchemathesisConfig
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.errors import INVALID_BODY_MESSAGE
from tests.factories import api_key_for

MAX_EXAMPLES = 20

# Well-formed requests may still be refused by a business rule the schema cannot state (an unknown member
# is 404, a refused redemption 422, a used key 409): those statuses are "accepted" for valid data.
CONFIG = SchemathesisConfig.from_str(
    """
seed = 20261201

[generation]
# The API refuses a NUL in any string (400 `malformed_request`, documented in the schema's description):
# PostgreSQL cannot store one. The schema does not repeat that on every string.
allow-x00 = false

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]
"""
)


def _schema() -> dict:
    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document, renderer_context={}))


def refused_as_the_schema_says(response) -> bool:
    """A 400 given before any service ran: the parser, the idempotency key or an input serializer. What the
    schema calls valid must never get one of these."""
    error = response.json().get("error", {})
    if error.get("code") in {"malformed_request", "invalid_idempotency_key"}:
        return True
    return error.get("code") == "validation_error" and error.get("message") == INVALID_BODY_MESSAGE


def valid_data_is_accepted(ctx, response, case):
    """schemathesis' `positive_data_acceptance`, except for a 400 that a service gave for a rule of the whole
    document the schema cannot state (an email for a new member, the tenant's currency, a campaign's
    `ends_at` after its `starts_at`): those have their own codes or messages."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        if response.status_code == 400 and not refused_as_the_schema_says(response):
            return None
        raise


schema = schemathesis.openapi.from_dict(_schema(), config=CONFIG)
schema.app = WSGIHandler()  # every request, the checks' own probes included, goes to Django in-process


@pytest.fixture
def in_test_transaction(settings):
    """Django's WSGI handler runs in the test's thread and transaction: like Django's test client, it must
    not close the connection (and with it the test's transaction) when a request starts or finishes. The
    WSGI transport names the host `localhost`."""
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def auth_header(tenant):
    _, raw = api_key_for(tenant, throttle_rate="100000/min")
    return {"Authorization": f"Api-Key {raw}"}


@pytest.mark.django_db
@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=True,
)
def test_every_operation_conforms_to_its_schema(case, in_test_transaction, auth_header):
    case.call_and_validate(
        headers=auth_header, excluded_checks=[positive_data_acceptance], additional_checks=[valid_data_is_accepted]
    )
