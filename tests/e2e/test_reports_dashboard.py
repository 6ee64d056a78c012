"""An analyst in a real browser (CSP on): opens the reports dashboard from the admin index, reads March's figures,
switches the chart to weeks and picks a preset, subscribes to the weekly digest and stops it again."""

import datetime as dt

import pytest
from django.utils import timezone

from reports.models import ReportSubscription
from tests.e2e.conftest import shot, sign_in, staff
from tests.reports import scenario

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_analyst_reads_the_dashboard_and_subscribes_to_its_digest(browser, live_server, tenant):
    scenario.build(tenant)
    analyst = staff(tenant, "Analyst")
    page = sign_in(browser, live_server, analyst)
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)

    page.click("#reports-dashboard-link")
    page.wait_for_selector("#report-filters")
    page.fill("#id_from", "2026-03-01")
    page.fill("#id_to", "2026-03-31")
    page.click("#report-filters input[type=submit]")
    page.wait_for_selector('[data-figure="orders.count"]')
    assert page.inner_text('[data-figure="orders.count"]') == "4"
    for chart in ("orders", "points", "redemptions"):
        page.wait_for_selector(f"#report-chart-{chart}[data-ready=true]")  # the vendored Chart.js ran under the CSP
    shot(page, "reports-dashboard")

    page.click('[data-interval="week"]')
    page.wait_for_selector('.report-interval.selected[data-interval="week"]')
    page.wait_for_selector("#report-chart-orders[data-ready=true]")
    assert page.input_value("#id_from") == "2026-03-01"  # the range stays

    page.click('[data-preset="last_7"]')
    page.wait_for_selector('.report-preset.selected[data-preset="last_7"]')
    today = timezone.now().astimezone(tenant.tz).date()
    assert page.input_value("#id_from") == (today - dt.timedelta(days=6)).isoformat()

    page.click('button[data-frequency="weekly"]')
    page.wait_for_selector("#report-subscriptions")
    subscription = ReportSubscription.objects.get(user=analyst)
    assert subscription.frequency == "weekly" and subscription.active
    page.click(f'[data-subscription="{subscription.pk}"] button')
    page.wait_for_selector(".messagelist")
    subscription.refresh_from_db()
    assert not subscription.active
    assert not errors, errors  # no script refused by the CSP, no script error
