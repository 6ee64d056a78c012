"""A marketer in a real browser (CSP on): creates a percent campaign with a rule through the admin's plain fields,
generates 100 codes from the campaign page, sees it on the list, disables it from the list after the
confirmation page, and a code of it is then refused by the API with `campaign_disabled`."""

import pytest
from rest_framework.test import APIClient

from campaigns.models import Campaign, Code
from tests.e2e.conftest import shot, sign_in, staff
from tests.factories import api_key_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_marketer_builds_a_campaign_with_codes_and_disables_it_from_the_list(browser, live_server, tenant):
    marketer = staff(tenant, "Marketer")
    page = sign_in(browser, live_server, marketer)
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)

    page.goto(f"{live_server.url}/admin/campaigns/campaign/add/")
    page.select_option("#id_tenant", str(tenant.pk))
    page.fill("#id_name", "Spring 15 browser")
    assert not page.is_visible("#id_discount_value")  # only the fields of the chosen discount type
    page.select_option("#id_discount_type", "percent")
    assert page.is_visible("#id_discount_value") and not page.is_visible("#id_discount_sku")
    page.fill("#id_discount_value", "15")
    page.fill("#id_discount_max_amount", "30.00")
    page.fill("#id_rule", "order.amount >= 20")
    page.fill("#id_redemptions_total", "500")
    shot(page, "marketing-add-campaign")
    page.click("input[name=_continue]")
    page.wait_for_selector("#campaign-numbers")
    campaign = Campaign.objects.get(name="Spring 15 browser")
    assert campaign.discount == {"type": "percent", "value": "15", "max_amount": "30.00"} and campaign.enabled

    page.click("text=Generate codes")
    page.fill("#id_count", "100")
    page.fill("#id_pattern", "BRW-####-????")
    page.click("input[type=submit]")
    page.wait_for_selector("#campaign-numbers")
    assert Code.objects.filter(campaign=campaign).count() == 100
    page.wait_for_selector("#campaign-chart[data-ready=true]")  # the vendored Chart.js ran under the CSP
    shot(page, "marketing-campaign-page")

    page.goto(f"{live_server.url}/admin/campaigns/campaign/")
    row = page.locator("#result_list tr", has_text="Spring 15 browser")
    assert "active" in row.inner_text()
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "disable_selected")
    page.click("button[name=index]")
    page.wait_for_selector("#bulk-counts")
    assert "1 campaigns, 100 codes" in page.inner_text("#bulk-counts")
    page.fill("#id_reason", "spring is over")
    shot(page, "marketing-bulk-disable")
    page.click("text=Yes, do it")
    page.wait_for_selector(".messagelist")
    assert "disabled" in page.locator("#result_list tr", has_text="Spring 15 browser").inner_text()
    shot(page, "marketing-list-disabled")
    assert not errors, errors  # no script refused by the CSP, no script error

    _key, raw = api_key_for(tenant)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    code = Code.objects.filter(campaign=campaign).first().code
    answer = api.post("/api/v1/validations", {"order": {"amount": "50.00"}, "codes": [code]}, format="json").json()
    assert answer["valid"] is False and answer["codes"][0]["reason"] == "campaign_disabled"
