"""The reports dashboard through the real admin: who may see it, tenant scope, the form, and the same figures as
the API's JSON and CSV (one selector behind both)."""

import csv
import datetime as dt
import html
import io
import json
import re

import pytest
import time_machine
from django.contrib.auth.models import Group
from guardian.shortcuts import assign_perm

from reports.dashboard import preset_range
from reports.exports import summary_figures
from reports.models import ReportSubscription
from tests.api.conftest import client_for
from tests.factories import CampaignFactory, IntegrationFactory, UserFactory, api_key_for
from tests.reports import scenario
from tests.reports.scenario import NOW

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/reports/dashboard/"
RANGE = {"from": "2026-03-01", "to": "2026-03-31"}
FIGURE = re.compile(r'data-figure="([^"]+)"[^>]*>([^<]*)<')


def staff(role, *tenants, **fields):
    user = UserFactory(**fields)
    user.groups.add(Group.objects.get(name=role))
    for tenant in tenants:
        assign_perm("members.access_tenant", user, tenant)
    return user


def page(client, tenant, **params):
    with time_machine.travel(NOW, tick=False):
        return client.get(DASHBOARD, {"tenant": tenant.pk, **params})


def figures(response) -> dict[str, str]:
    body = response.content.decode()
    return {name: html.unescape(value) for name, value in FIGURE.findall(body)}


def csv_rows(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode())))


def api_get(client, path, params, **headers):
    with time_machine.travel(NOW, tick=False):
        return client.get(f"/api/v1/reports/{path}", params, **headers)


@pytest.fixture
def history(tenant):
    IntegrationFactory(tenant=tenant, name="web-shop")
    return scenario.build(tenant)


@pytest.fixture
def analyst(client, tenant):
    user = staff("Analyst", tenant)
    client.force_login(user)
    return user


@pytest.mark.parametrize("role", ["Analyst", "Marketer", "Admin"])
def test_analysts_marketers_and_admins_see_the_dashboard(client, tenant, role):
    client.force_login(staff(role, tenant))
    response = page(client, tenant)
    assert response.status_code == 200
    assert 'id="report-filters"' in response.content.decode()
    index = client.get("/admin/").content.decode()
    assert 'id="reports-dashboard-link"' in index


@pytest.mark.parametrize("role", ["Support agent", "Support lead", "Junior marketer"])
def test_other_staff_are_refused(client, tenant, role):
    client.force_login(staff(role, tenant))
    assert page(client, tenant).status_code == 403
    assert (
        client.post("/admin/reports/dashboard/subscribe/", {"tenant": tenant.pk, "frequency": "weekly"}).status_code
        == 403
    )
    assert 'id="reports-dashboard-link"' not in client.get("/admin/").content.decode()


def test_signed_out_visitors_go_to_the_sign_in(client, tenant):
    response = client.get(DASHBOARD)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_another_tenant_is_not_found(client, tenant, other_tenant, analyst):
    scenario.build(other_tenant)
    response = page(client, other_tenant, **RANGE)
    assert response.status_code == 404
    assert page(client, tenant, **RANGE).status_code == 200
    assert client.get(DASHBOARD, {"tenant": "x"}).status_code == 404


def test_a_filter_naming_another_tenants_campaign_is_a_form_error(client, tenant, other_tenant, analyst):
    theirs = CampaignFactory(tenant=other_tenant)
    response = page(client, tenant, **RANGE, campaign=theirs.pk)
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert figures(response) == {}  # no figures for a query the form refused
    mine = CampaignFactory(tenant=tenant, name="Mine")
    body = page(client, tenant, **RANGE).content.decode()
    select = re.search(r'<select name="campaign".*?</select>', body, re.S).group(0)
    assert f'<option value="{mine.pk}">Mine</option>' in select and f'value="{theirs.pk}"' not in select


def test_a_user_of_one_tenant_gets_its_figures_by_default(client, tenant, other_tenant, history, analyst):
    with time_machine.travel(NOW, tick=False):
        response = client.get(DASHBOARD)  # no tenant, no range: theirs, the last 30 days in the tenant's zone
    got = figures(response)
    assert (got["from"], got["to"]) == ("2026-03-12", "2026-04-10")
    assert f'name="tenant" value="{tenant.pk}"' in response.content.decode()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-13-01", "to": "2026-03-31"}, "Enter a valid date."),
        ({"from": "", "to": "2026-03-31"}, "This field is required."),
        ({"from": "2026-04-01", "to": "2026-03-31"}, "`to` must not be before `from`."),
        ({"from": "2000-01-01", "to": "2026-03-31"}, "The range may span at most 3660 days."),
        ({"from": "1899-12-31", "to": "1900-01-05"}, "Days from 1900-01-01 to 9998-12-31 only."),
        ({"from": "2026-03-01", "to": "2026-03-31", "interval": "year"}, "Select a valid choice"),
    ],
)
def test_bad_ranges_are_form_errors_with_the_apis_rules(client, tenant, analyst, params, message):
    response = page(client, tenant, **params)
    assert response.status_code == 200
    assert html.unescape(response.content.decode()).count(message) >= 1
    assert figures(response) == {}


@pytest.mark.parametrize(
    ("preset", "first", "last"),
    [
        ("last_7", "2026-04-04", "2026-04-10"),
        ("last_30", "2026-03-12", "2026-04-10"),
        ("last_90", "2026-01-11", "2026-04-10"),
        ("this_month", "2026-04-01", "2026-04-10"),
        ("last_month", "2026-03-01", "2026-03-31"),
        ("this_year", "2026-01-01", "2026-04-10"),
    ],
)
def test_presets_name_their_days_in_the_tenants_zone(client, tenant, analyst, preset, first, last):
    got = figures(page(client, tenant, preset=preset, **RANGE))  # a preset wins over the dates
    assert (got["from"], got["to"]) == (first, last)


def test_presets_on_the_first_of_january():
    today = dt.date(2027, 1, 1)
    assert preset_range("last_month", today) == (dt.date(2026, 12, 1), dt.date(2026, 12, 31))
    assert preset_range("this_year", today) == (today, today)
    assert preset_range("last_7", today) == (dt.date(2026, 12, 26), today)


def test_today_is_the_tenants_today(client, tenant, analyst):
    # 23:30 UTC on March 31 is already April 1 in Berlin.
    with time_machine.travel(dt.datetime(2026, 3, 31, 23, 30, tzinfo=dt.UTC), tick=False):
        got = figures(client.get(DASHBOARD, {"tenant": tenant.pk, "preset": "this_month"}))
    assert (got["from"], got["to"]) == ("2026-04-01", "2026-04-01")


FILTER_CASES = [
    {},
    {"location": "berlin"},
    {"tier": "gold"},
    {"integration": "web-shop"},
    "campaign",
    "segment",
]


@pytest.mark.parametrize("case", FILTER_CASES)
def test_page_figures_equal_the_api_json_and_csv_to_the_cent(client, tenant, history, analyst, case):
    _, names = history
    if case == "campaign":
        case = {"campaign": names["k"].pk}
    elif case == "segment":
        case = {"segment": names["segment"].pk}
    params = {**RANGE, **case}
    api = client_for(api_key_for(tenant)[1])
    body = api_get(api, "summary", params).json()
    api_csv = api_get(api, "summary", params, HTTP_ACCEPT="text/csv")
    expected = {name: str(value) for name, value in summary_figures(body)}
    assert body["orders"]["count"] > 0 or case  # the data set is not empty

    response = page(client, tenant, **params)
    assert response.status_code == 200
    assert figures(response) == expected
    assert dict(csv_rows(api_csv.content)[1:]) == expected

    download = page(client, tenant, **params, export="summary")
    assert download["Content-Type"].startswith("text/csv")
    assert download.content == api_csv.content  # the API's CSV, byte for byte


@pytest.mark.parametrize("interval", ["day", "week", "month"])
def test_charts_get_the_apis_series(client, tenant, history, analyst, interval):
    api = client_for(api_key_for(tenant)[1])
    series = api_get(api, "timeseries", {**RANGE, "interval": interval}).json()
    response = page(client, tenant, **RANGE, interval=interval)
    body = response.content.decode()
    data = json.loads(re.search(r'<script id="report-series" type="application/json">(.*?)</script>', body).group(1))
    assert data["interval"] == interval
    assert data["labels"] == [p["start"] for p in series["periods"]]
    for name in ("orders", "value", "discount", "points_issued", "points_spent", "points_expired", "redemptions"):
        assert data[name] == [p[name] for p in series["periods"]]
    assert "<script>" not in body.replace('<script id="report-series"', "")  # no inline code (CSP)
    assert "reports/dashboard.js" in body and "chartjs/chart.umd.min.js" in body
    download = page(client, tenant, **RANGE, interval=interval, export="timeseries")
    assert (
        download.content == api_get(api, "timeseries", {**RANGE, "interval": interval}, HTTP_ACCEPT="text/csv").content
    )


def test_the_engaged_conversion_rate_is_defined_on_the_page(client, tenant, history, analyst):
    body = page(client, tenant, **RANGE).content.decode()
    assert 'id="engaged-definition"' in body
    assert "engaged redeemed / engaged published" in body
    assert figures(page(client, tenant, **RANGE))["campaigns.engaged_conversion_rate"] == "1.0000"


def test_failed_redemptions_are_shown_by_reason(client, tenant, history, analyst):
    got = figures(page(client, tenant, **RANGE))
    assert got["campaigns.redemptions_failed.code_expired"] == "2"
    assert got["campaigns.redemptions_failed.rule_not_met"] == "1"
    assert "Failed redemptions: code_expired" in page(client, tenant, **RANGE).content.decode()


def test_subscribe_and_unsubscribe_from_the_dashboard(client, tenant, history, analyst):
    segment = history[1]["segment"]
    response = client.post(
        "/admin/reports/dashboard/subscribe/",
        {"tenant": tenant.pk, "frequency": "weekly", "segment": segment.pk, "location": "berlin"},
    )
    assert response.status_code == 302
    subscription = ReportSubscription.objects.get(user=analyst)
    assert (subscription.frequency, subscription.filters, subscription.active) == (
        "weekly",
        {"segment": segment.pk, "location": "berlin"},
        True,
    )
    client.post(
        "/admin/reports/dashboard/subscribe/",
        {"tenant": tenant.pk, "frequency": "weekly", "segment": segment.pk, "location": "berlin"},
    )
    assert ReportSubscription.objects.filter(user=analyst).count() == 1  # a second click changes nothing
    shown = page(client, tenant, **RANGE).content.decode()
    assert f'data-subscription="{subscription.pk}"' in shown

    assert client.post(f"/admin/reports/dashboard/subscriptions/{subscription.pk}/cancel/").status_code == 302
    subscription.refresh_from_db()
    assert not subscription.active
    assert f'data-subscription="{subscription.pk}"' not in page(client, tenant, **RANGE).content.decode()


def test_subscriptions_are_scoped_to_the_user_and_tenant(client, tenant, other_tenant, analyst):
    theirs = CampaignFactory(tenant=other_tenant)
    assert (
        client.post(
            "/admin/reports/dashboard/subscribe/", {"tenant": other_tenant.pk, "frequency": "monthly"}
        ).status_code
        == 404
    )
    client.post(
        "/admin/reports/dashboard/subscribe/", {"tenant": tenant.pk, "frequency": "monthly", "campaign": theirs.pk}
    )
    assert not ReportSubscription.objects.exists()  # another tenant's campaign is not a choice
    someone = staff("Analyst", tenant)
    other = ReportSubscription.objects.create(user=someone, tenant=tenant, frequency="weekly")
    assert client.post(f"/admin/reports/dashboard/subscriptions/{other.pk}/cancel/").status_code == 404
    other.refresh_from_db()
    assert other.active
    assert client.get(f"/admin/reports/dashboard/subscriptions/{other.pk}/cancel/").status_code == 405


def test_subscribing_needs_the_csrf_token(tenant):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(staff("Analyst", tenant))
    response = csrf_client.post("/admin/reports/dashboard/subscribe/", {"tenant": tenant.pk, "frequency": "weekly"})
    assert response.status_code == 403
    assert not ReportSubscription.objects.exists()


def test_the_console_lists_the_subscriptions_of_the_users_tenants_and_stops_them(client, tenant, other_tenant):
    mine = ReportSubscription.objects.create(user=staff("Analyst", tenant), tenant=tenant, frequency="weekly")
    theirs = ReportSubscription.objects.create(
        user=staff("Analyst", other_tenant), tenant=other_tenant, frequency="monthly"
    )
    marketer = staff("Marketer", tenant)
    client.force_login(marketer)
    listing = client.get("/admin/reports/reportsubscription/")
    assert listing.status_code == 200
    assert f'value="{mine.pk}"' in listing.content.decode() and f'value="{theirs.pk}"' not in listing.content.decode()
    response = client.post(
        "/admin/reports/reportsubscription/",
        {"action": "stop_selected", "_selected_action": [mine.pk, theirs.pk]},
    )
    assert response.status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert not mine.active and theirs.active  # another tenant's row is out of reach, even named in the POST
    client.force_login(staff("Support agent", tenant))
    assert client.get("/admin/reports/reportsubscription/").status_code == 403
