"""GET /api/v1/reports/summary and /timeseries: scope `read`, JSON and CSV, bad input, tenant isolation."""

import csv
import io
from decimal import Decimal

import pytest
import time_machine

from tests.api.conftest import assert_error, client_for
from tests.factories import TenantFactory, api_key_for
from tests.reports import scenario
from tests.reports.scenario import NOW, expected_orders

pytestmark = pytest.mark.django_db

RANGE = {"from": "2026-03-01", "to": "2026-03-31"}


@pytest.fixture
def history(tenant):
    return scenario.build(tenant)


def get(client, path, params=None, **headers):
    with time_machine.travel(NOW, tick=False):
        return client.get(f"/api/v1/reports/{path}", params or {}, **headers)


def test_summary_answers_the_figures(api, tenant, history):
    h, _ = history
    response = get(api, "summary", RANGE)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["orders"] == expected_orders(h)
    assert set(body) == {"from", "to", "currency", "orders", "points", "gift_cards", "campaigns", "members", "tiers"}
    assert body["campaigns"]["engaged_conversion_rate"] == "1.0000"


def test_trailing_slash_is_optional(api, tenant, history):
    assert get(api, "summary/", RANGE).json() == get(api, "summary", RANGE).json()


def test_read_scope_is_required(tenant, history):
    client = client_for(api_key_for(tenant, scopes=["redeem", "earn"])[1])
    assert_error(get(client, "summary", RANGE), 403, "insufficient_scope")
    assert_error(get(client, "timeseries", RANGE), 403, "insufficient_scope")
    read_only = client_for(api_key_for(tenant, scopes=["read"])[1])
    assert get(read_only, "summary", RANGE).status_code == 200


def test_no_key_is_401(anon, history):
    assert_error(get(anon, "summary", RANGE), 401, "not_authenticated")


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"from": "2026-03-01"},
        {"from": "2026-13-01", "to": "2026-03-31"},
        {"from": "yesterday", "to": "2026-03-31"},
        {**RANGE, "campaign": "abc"},
        {**RANGE, "segment": "-1"},
        {**RANGE, "tier": "not a slug"},
        {**RANGE, "location": "x" * 101},
        {**RANGE, "campaign": "99999999999999999999999"},
    ],
)
def test_bad_dates_and_filters_are_400(api, tenant, params):
    assert_error(get(api, "summary", params), 400, "validation_error")
    assert_error(get(api, "timeseries", params), 400, "validation_error")


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-03-31", "to": "2026-03-01"},
        {"from": "1900-01-01", "to": "2026-03-31"},
        {"from": "0001-01-01", "to": "0001-01-01"},  # a day whose midnight east of UTC is before year 1
        {"from": "9999-12-31", "to": "9999-12-31"},
    ],
)
def test_a_backwards_too_long_or_out_of_calendar_range_is_400(api, tenant, params):
    assert_error(get(api, "summary", params), 400, "invalid_range")
    assert_error(get(api, "timeseries", params), 400, "invalid_range")


def test_bad_interval_is_400(api, tenant):
    assert_error(get(api, "timeseries", {**RANGE, "interval": "year"}), 400, "validation_error")


def test_unknown_and_foreign_filters_are_404(api, tenant, history, other_tenant):
    _, foreign = scenario.build(other_tenant)
    assert_error(get(api, "summary", {**RANGE, "campaign": foreign["k"].pk}), 404, "campaign_not_found")
    assert_error(get(api, "summary", {**RANGE, "segment": foreign["segment"].pk}), 404, "segment_not_found")
    assert_error(get(api, "summary", {**RANGE, "tier": "platinum"}), 404, "tier_not_found")
    errors = get(api, "summary", {**RANGE, "tier": "platinum"}, HTTP_ACCEPT="text/csv")
    assert errors["Content-Type"].startswith("application/json")  # errors keep the JSON body


def test_another_tenants_figures_are_never_included(tenant, history, other_tenant):
    other = client_for(api_key_for(other_tenant)[1])
    empty = get(other, "summary", RANGE).json()
    assert empty["orders"]["count"] == 0 and empty["points"]["outstanding"] == 0 and empty["tiers"] == []
    mine = client_for(api_key_for(tenant)[1])
    before = get(mine, "summary", RANGE).json()
    scenario.build(other_tenant)
    assert get(mine, "summary", RANGE).json() == before
    assert get(other, "summary", RANGE).json() == before  # the same history, its own figures


def test_filters_over_the_api(api, tenant, history):
    h, n = history
    body = get(api, "summary", {**RANGE, "location": "berlin"}).json()
    assert body["orders"] == expected_orders(h, keep=lambda o: o.location == "berlin")
    body = get(api, "summary", {**RANGE, "tier": "gold", "campaign": n["k"].pk, "segment": n["segment"].pk}).json()
    assert body["orders"]["count"] == 0  # the gold member is not in the segment


def csv_rows(response):
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_summary_as_csv_has_the_same_figures(api, tenant, history):
    body = get(api, "summary", RANGE).json()
    for response in (
        get(api, "summary", RANGE, HTTP_ACCEPT="text/csv"),
        get(api, "summary", {**RANGE, "format": "csv"}),
    ):
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        rows = dict(csv_rows(response)[1:])
        assert rows["orders.value"] == body["orders"]["value"]
        assert rows["points.expiring.30"] == str(body["points"]["expiring"]["30"])
        assert rows["campaigns.redemptions_failed.code_expired"] == "2"
        assert rows["tiers.gold.members"] == "1"
        assert len(rows) == 3 + 8 + 10 + 3 + (6 + 2 + 1) + 7 + 3 * 4  # every figure once (tiers: 4 figures each)


@pytest.mark.parametrize("interval", ["day", "week", "month"])
def test_timeseries_periods_add_up_to_the_summary(api, tenant, history, interval):
    total = get(api, "summary", RANGE).json()
    body = get(api, "timeseries", {**RANGE, "interval": interval}).json()
    assert body["interval"] == interval
    periods = body["periods"]
    assert len(periods) == {"day": 31, "week": 6, "month": 1}[interval]
    assert sum(p["orders"] for p in periods) == total["orders"]["count"]
    assert sum(Decimal(p["value"]) for p in periods) == Decimal(total["orders"]["value"])
    assert sum(Decimal(p["discount"]) for p in periods) == Decimal(total["orders"]["discount"])
    assert sum(p["points_issued"] for p in periods) == total["points"]["issued"]
    assert sum(p["points_spent"] for p in periods) == total["points"]["spent"]
    assert sum(p["points_expired"] for p in periods) == total["points"]["expired"]
    assert sum(p["redemptions"] for p in periods) == total["campaigns"]["redemptions"]
    assert set(periods[0]) == {
        "start",
        "orders",
        "value",
        "discount",
        "points_issued",
        "points_spent",
        "points_expired",
        "redemptions",
    }


def test_timeseries_as_csv(api, tenant, history):
    body = get(api, "timeseries", {**RANGE, "interval": "week"}).json()
    rows = csv_rows(get(api, "timeseries", {**RANGE, "interval": "week", "format": "csv"}))
    assert rows[0] == list(body["periods"][0])
    assert rows[1:] == [[str(v) for v in p.values()] for p in body["periods"]]


def test_empty_tenant_answers_zeros(tenant):
    client = client_for(api_key_for(TenantFactory())[1])
    body = get(client, "summary", RANGE).json()
    assert body["orders"]["aov"] == "0.00" and body["campaigns"]["conversion_rate"] == "0.0000"
    assert len(get(client, "timeseries", {**RANGE, "interval": "day"}).json()["periods"]) == 31


@pytest.mark.parametrize("params,headers", [({**RANGE, "format": "xml"}, {}), (RANGE, {"HTTP_ACCEPT": "image/png"})])
def test_an_unknown_format_is_an_error_body(api, tenant, params, headers):
    response = get(api, "summary", params, **headers)
    assert response.status_code in (404, 406)
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] in ("not_found", "not_acceptable")
