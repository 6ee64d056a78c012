"""Hostile bodies get the contract's 4xx with the error body, never a 500, and change nothing.

Each case is a raw request body (bytes, so that JSON escapes such as a lone surrogate `\\ud800` reach the
server as a client would send them) with the status and error code it must get:

- above `DATA_UPLOAD_MAX_MEMORY_SIZE`: 413 `request_too_large`, with or without an `Idempotency-Key`;
- nested deeper than `api.parsers.MAX_JSON_DEPTH` (32): 400 `malformed_request`, before anything recurses
  (the decoder, the NUL check, the idempotency fingerprint);
- a lone UTF-16 surrogate in any string or key: 400 `malformed_request`;
- a time outside the years 1970..2999 as written (a date outside 1900..2999): 400 `validation_error` naming
  the field.
"""

import json

import pytest
from django.apps import apps
from django.conf import settings

from api.parsers import MAX_JSON_DEPTH, json_depth_exceeds
from tests.api.conftest import assert_error
from tests.factories import CampaignFactory, CodeFactory, earning_setup

pytestmark = pytest.mark.django_db

MEMBER = "hostile-m"
BIG = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1


def nested(depth: int, leaf: str = "1") -> str:
    """`depth` nested arrays around `leaf` (JSON text)."""
    return "[" * depth + leaf + "]" * depth


def nested_objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def order(**extra) -> dict:
    return {"order_id": "o-hostile", "member": MEMBER, "amount": "10.00", "currency": "EUR", **extra}


def text(body: dict) -> bytes:
    return json.dumps(body).encode()


# (id, method, path, raw body, Idempotency-Key or None, status, error code)
HOSTILE = [
    # 1. above the upload limit
    ("too-big-order-with-key", "post", "/api/v1/orders", b'"' + b"a" * BIG + b'"', "k-big", 413, "request_too_large"),
    ("too-big-order", "post", "/api/v1/orders", b'"' + b"a" * BIG + b'"', None, 413, "request_too_large"),
    (
        "too-big-member",
        "put",
        f"/api/v1/members/{MEMBER}",
        b'{"name": "' + b"a" * BIG + b'"}',
        None,
        413,
        "request_too_large",
    ),
    ("too-big-validation", "post", "/api/v1/validations", b"[" * BIG, None, 413, "request_too_large"),
    # 2. nested too deep
    (
        "deep-attributes",
        "put",
        f"/api/v1/members/{MEMBER}",
        ('{"email": "h@example.com", "attributes": {"x": ' + nested(400) + "}}").encode(),
        None,
        400,
        "malformed_request",
    ),
    (
        "deep-metadata-with-key",
        "post",
        "/api/v1/events",
        ('{"member": "hostile-m", "event": "e", "metadata": {"x": ' + nested(400) + "}}").encode(),
        "k-deep",
        400,
        "malformed_request",
    ),
    ("deep-100000", "post", "/api/v1/validations", nested(100_000).encode(), "k-deeper", 400, "malformed_request"),
    (
        "deep-objects-just-over",
        "put",
        f"/api/v1/members/{MEMBER}",
        ('{"email": "h@example.com", "attributes": ' + nested_objects(MAX_JSON_DEPTH) + "}").encode(),
        None,
        400,
        "malformed_request",
    ),
    (
        "deep-campaign-discount",
        "post",
        "/api/v1/campaigns",
        ('{"name": "x", "type": "discount", "discount": ' + nested_objects(1000) + "}").encode(),
        "k-camp",
        400,
        "malformed_request",
    ),
    # 3. lone surrogates
    (
        "surrogate-code-entry",
        "post",
        "/api/v1/validations",
        b'{"order": {"amount": "10.00"}, "codes": ["\\ud800"]}',
        None,
        400,
        "malformed_request",
    ),
    (
        "surrogate-code-object",
        "post",
        "/api/v1/redemptions",
        b'{"order_id": "r1", "order": {"amount": "10.00"}, "codes": [{"code": "\\udfff", "amount": "1.00"}]}',
        "k-s1",
        400,
        "malformed_request",
    ),
    (
        "surrogate-attribute-value",
        "put",
        f"/api/v1/members/{MEMBER}",
        b'{"email": "h@example.com", "attributes": {"vip": "\\ud800"}}',
        None,
        400,
        "malformed_request",
    ),
    (
        "surrogate-attribute-key",
        "put",
        f"/api/v1/members/{MEMBER}",
        b'{"email": "h@example.com", "attributes": {"\\ud800": 1}}',
        None,
        400,
        "malformed_request",
    ),
    (
        "surrogate-top-level-key",
        "put",
        f"/api/v1/members/{MEMBER}",
        b'{"email": "h@example.com", "\\ud800x": 1}',
        None,
        400,
        "malformed_request",
    ),
    (
        "surrogate-member-name",
        "put",
        f"/api/v1/members/{MEMBER}",
        b'{"email": "h@example.com", "name": "Ada \\ud83d"}',
        None,
        400,
        "malformed_request",
    ),
    (
        "surrogate-event-metadata",
        "post",
        "/api/v1/events",
        b'{"member": "hostile-m", "event": "e", "metadata": {"k": ["\\udc00"]}}',
        "k-s2",
        400,
        "malformed_request",
    ),
    (
        "surrogate-event-name",
        "post",
        "/api/v1/events",
        b'{"member": "hostile-m", "event": "\\ud800"}',
        None,
        400,
        "malformed_request",
    ),
    (
        "surrogate-campaign-code",
        "post",
        "/api/v1/campaigns",
        b'{"name": "x", "type": "discount", "discount": {"type": "percent", "value": "10"}, '
        b'"codes": {"code": "\\ud800"}}',
        "k-s3",
        400,
        "malformed_request",
    ),
    (
        "surrogate-choice-channel",
        "post",
        "/api/v1/publications",
        b'{"campaign": "1", "member": "hostile-m", "channel": "\\ud800"}',
        None,
        400,
        "malformed_request",
    ),
    (
        "surrogate-choice-status",
        "post",
        "/api/v1/orders",
        text(order())[:-1] + b', "status": "\\udbff"}',
        None,
        400,
        "malformed_request",
    ),
    (
        "surrogate-choice-campaign-type",
        "post",
        "/api/v1/campaigns",
        b'{"name": "x", "type": "\\ud800"}',
        None,
        400,
        "malformed_request",
    ),
    (
        "surrogate-reward",
        "post",
        f"/api/v1/members/{MEMBER}/reward-redemptions",
        b'{"reward": "\\ud800"}',
        None,
        400,
        "malformed_request",
    ),
    (
        "surrogate-program-tier",
        "put",
        "/api/v1/programs/club",
        b'{"name": "Club", "currency": "EUR", "tiers": [{"code": "\\ud800", "name": "x", "threshold": 0}]}',
        None,
        400,
        "malformed_request",
    ),
    # 4. times out of range
    (
        "order-year-9999",
        "post",
        "/api/v1/orders",
        text(order(occurred_at="9999-12-31T23:59:59Z")),
        "k-t1",
        400,
        "validation_error",
    ),
    (
        "order-year-9999-negative-offset",
        "post",
        "/api/v1/orders",
        text(order(occurred_at="9999-12-31T23:59:59-05:00")),
        None,
        400,
        "validation_error",
    ),
    (
        "order-year-1",
        "post",
        "/api/v1/orders",
        text(order(occurred_at="0001-01-01T00:00:00+01:00")),
        None,
        400,
        "validation_error",
    ),
    (
        "order-year-3000",
        "post",
        "/api/v1/orders",
        text(order(occurred_at="3000-01-01T00:00:00Z")),
        None,
        400,
        "validation_error",
    ),
    (
        "order-year-1969",
        "post",
        "/api/v1/orders",
        text(order(occurred_at="1969-12-31T23:59:59+14:00")),
        None,
        400,
        "validation_error",
    ),
    (
        "event-year-9999",
        "post",
        "/api/v1/events",
        text({"member": MEMBER, "event": "e", "occurred_at": "9999-12-31T23:59:59Z"}),
        "k-t2",
        400,
        "validation_error",
    ),
    (
        "campaign-ends-9999",
        "post",
        "/api/v1/campaigns",
        text(
            {
                "name": "x",
                "type": "discount",
                "discount": {"type": "percent", "value": "10"},
                "ends_at": "9999-12-31T23:59:59Z",
            }
        ),
        "k-t3",
        400,
        "validation_error",
    ),
    (
        "campaign-starts-year-1",
        "post",
        "/api/v1/campaigns",
        text(
            {
                "name": "x",
                "type": "discount",
                "discount": {"type": "percent", "value": "10"},
                "starts_at": "0001-01-01T00:00:00Z",
            }
        ),
        None,
        400,
        "validation_error",
    ),
    (
        "member-birth-9999",
        "put",
        f"/api/v1/members/{MEMBER}",
        text({"email": "h@example.com", "birth_date": "9999-12-31"}),
        None,
        400,
        "validation_error",
    ),
    (
        "member-birth-year-1",
        "put",
        f"/api/v1/members/{MEMBER}",
        text({"email": "h@example.com", "birth_date": "0001-01-01"}),
        None,
        400,
        "validation_error",
    ),
]

# What must still be accepted, next to the refusals: the limits are not off by one.
ACCEPTED = [
    (
        "depth-at-the-limit",
        "put",
        f"/api/v1/members/{MEMBER}",
        ('{"email": "h@example.com", "attributes": ' + nested_objects(MAX_JSON_DEPTH - 1) + "}").encode(),
        201,
    ),
    (
        "surrogate-pair-is-an-emoji",
        "put",
        f"/api/v1/members/{MEMBER}",
        b'{"email": "h@example.com", "name": "Ada \\ud83d\\ude00"}',
        201,
    ),
    (
        "brackets-inside-strings-do-not-count",
        "put",
        f"/api/v1/members/{MEMBER}",
        ('{"email": "h@example.com", "name": "' + "[" * 100 + '\\"{{"}').encode(),
        201,
    ),
    ("order-late-2999", "post", "/api/v1/orders", text(order(occurred_at="2999-12-31T23:59:59+14:00")), 201),
    ("order-1970", "post", "/api/v1/orders", text(order(occurred_at="1970-01-01T00:00:00+14:00")), 201),
    ("order-2999-behind-utc", "post", "/api/v1/orders", text(order(occurred_at="2999-12-31T23:59:59-12:00")), 201),
]

COUNTED_APPS = ("members", "loyalty", "campaigns", "rewards", "integrations")
NOT_COUNTED = {"idempotencyrecord"}  # a 4xx answer to a request with a key is kept for its retries


def snapshot() -> dict[str, int]:
    return {
        model._meta.label: model._default_manager.count()
        for label in COUNTED_APPS
        for model in apps.get_app_config(label).get_models()
        if model._meta.model_name not in NOT_COUNTED
    }


@pytest.fixture
def hostile_setup(tenant):
    # Points expire 10 years after earning: an order late in 2999 must still compute its expiry.
    _, _, member = earning_setup(tenant, expiry={"policy": "days", "days": 3650})
    member.external_id = "hostile-existing"
    member.save()
    campaign = CampaignFactory(tenant=tenant)
    CodeFactory(campaign=campaign, code="REAL-1")
    return tenant


def send(api, method, path, body, key=None):
    extra = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return getattr(api, method)(path, data=body, content_type="application/json", **extra)


@pytest.mark.parametrize(
    "method,path,body,key,status,code", [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE]
)
def test_a_hostile_body_gets_the_contracts_4xx_and_changes_nothing(
    api, hostile_setup, method, path, body, key, status, code
):
    before = snapshot()
    response = send(api, method, path, body, key)
    error = assert_error(response, status, code)
    if code == "validation_error":
        assert error["details"], error
    assert snapshot() == before


@pytest.mark.parametrize("method,path,body,status", [case[1:] for case in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_bodies_just_inside_the_limits_are_accepted(api, hostile_setup, method, path, body, status):
    if path == "/api/v1/orders":
        send(api, "put", f"/api/v1/members/{MEMBER}", b'{"email": "h@example.com"}')
    response = send(api, method, path, body)
    assert response.status_code == status, response.content[:500]


def test_the_same_too_deep_body_twice_with_one_key_gets_the_same_answer(api, hostile_setup):
    body = ('{"member": "hostile-m", "event": "e", "metadata": ' + nested(5000) + "}").encode()
    first = send(api, "post", "/api/v1/events", body, "k-twice")
    second = send(api, "post", "/api/v1/events", body, "k-twice")
    assert_error(first, 400, "malformed_request")
    assert second.status_code == 400 and second.json() == first.json()


@pytest.mark.parametrize(
    "raw,deeper",
    [
        (b"{}", False),
        (nested(MAX_JSON_DEPTH).encode(), False),
        (nested(MAX_JSON_DEPTH + 1).encode(), True),
        (('"' + "[" * 100 + '"').encode(), False),
        (('["\\\\"' + ",[" * 40 + "]" * 41).encode(), True),  # an escaped backslash ends before the quote
        (('["\\"' + "[" * 40 + '"]').encode(), False),  # an escaped quote does not end the string
    ],
)
def test_depth_is_measured_without_decoding(raw, deeper):
    assert json_depth_exceeds(raw) is deeper
