"""A junior marketer in a real browser builds a campaign (within the discount cap), requests its activation from
the campaign's page, and a marketer approves it from the admin index: the campaign is live."""

import pytest

from campaigns.models import ActivationRequest, Campaign
from tests.e2e.conftest import shot, sign_in, staff

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_juniors_activation_request_is_approved_by_a_marketer(browser, live_server, tenant):
    junior = staff(tenant, "Junior marketer")
    marketer = staff(tenant, "Marketer")

    page = sign_in(browser, live_server, junior)
    page.goto(f"{live_server.url}/admin/campaigns/campaign/add/")
    page.select_option("#id_tenant", str(tenant.pk))
    page.fill("#id_name", "Junior summer sale")
    page.select_option("#id_discount_type", "percent")
    page.fill("#id_discount_value", "35")
    page.click("input[name=_continue]")
    page.wait_for_selector(".errornote")
    assert "at most 20 % for a junior marketer" in page.inner_text("#content")
    shot(page, "activation-junior-cap")
    page.fill("#id_discount_value", "15")
    page.click("input[name=_continue]")
    page.wait_for_selector("#request-activation")
    campaign = Campaign.objects.get(name="Junior summer sale")
    assert campaign.enabled is False and campaign.owner == junior
    page.click("#request-activation")
    page.fill("#id_note", "ready for the summer mailing")
    shot(page, "activation-request")
    page.click("input[name=request]")
    page.wait_for_selector("#pending-activation")
    assert "Activation requested" in page.inner_text(".messagelist")
    request = ActivationRequest.objects.get()
    assert request.requested_by == junior and request.state == "pending"

    approver = sign_in(browser, live_server, marketer)
    assert "1 campaign waits for your approval to launch" in approver.inner_text("#pending-activations")
    shot(approver, "activation-index")
    approver.click("#pending-activations a")
    approver.fill("#id_comment", "budget checked")
    shot(approver, "activation-decide")
    approver.click("input[name=approve]")
    approver.wait_for_selector(".messagelist")
    assert "Approved" in approver.inner_text("#activation-state")
    shot(approver, "activation-approved")
    campaign.refresh_from_db()
    request.refresh_from_db()
    assert campaign.enabled is True
    assert (request.state, request.decided_by, request.comment) == ("approved", marketer, "budget checked")
