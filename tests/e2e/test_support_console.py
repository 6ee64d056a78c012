"""A support agent in a real browser: finds a member by email, gives an apology coupon that then validates
through the API, and asks for an adjustment above their limit that a second person approves."""

import pytest
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from loyalty import ledger
from rewards.models import ApprovalRequest
from tests.e2e.conftest import shot, sign_in, staff
from tests.factories import CampaignFactory, CodeFactory, MemberFactory, ProgramFactory, api_key_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_agent_finds_a_member_gives_a_coupon_and_a_lead_approves_a_large_adjustment(browser, live_server, tenant):
    ProgramFactory(tenant=tenant)
    member = MemberFactory(tenant=tenant, name="Grace Hopper", email="grace@example.com", marketing_consent=True)
    campaign = CampaignFactory(tenant=tenant, name="Sorry for the delay", discount={"type": "amount", "value": "10.00"})
    CodeFactory(campaign=campaign, code="SORRY-7")
    agent = staff(tenant, "Support agent")
    assign_perm("campaigns.use_campaign", agent, campaign)
    lead = staff(tenant, "Support lead")

    page = sign_in(browser, live_server, agent)
    page.fill("#support-q", "grace@example.com")
    page.press("#support-q", "Enter")
    page.click("text=Grace Hopper")
    page.wait_for_selector("#h-points")
    shot(page, "support-member-story")
    page.click("text=Apology coupon")
    page.select_option("#id_campaign", label="Sorry for the delay")
    page.fill("#id_reason", "parcel arrived a week late")
    page.check("#id_confirm")
    page.click("text=Give the code")
    page.wait_for_selector("#h-codes")
    assert "SORRY-7" in page.inner_text("#codes")
    shot(page, "support-apology-coupon")

    _key, raw = api_key_for(tenant)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    body = {"member": member.external_id, "order": {"amount": "30.00"}, "codes": ["SORRY-7"]}
    answer = api.post("/api/v1/validations", body, format="json").json()
    assert answer["valid"] is True and answer["order"]["discount"] == "10.00"

    page.click("text=Adjust points")
    page.fill("#id_points", "900")
    page.fill("#id_reason", "lost loyalty card, purchases since March")
    page.click("input[type=submit]")
    page.wait_for_selector(".messagelist")
    assert "above your limit" in page.inner_text(".messagelist")
    assert ledger.account_for(member=member).balance == 0

    approver = sign_in(browser, live_server, lead)
    assert "1 request waits for your approval" in approver.inner_text("#pending-approvals")
    approver.click("#pending-approvals a")
    approver.fill("#id_comment", "receipts checked")
    shot(approver, "support-approval")
    approver.click("text=Approve and carry out")
    approver.wait_for_selector(".messagelist")
    assert ApprovalRequest.objects.get().state == ApprovalRequest.State.APPROVED
    assert ledger.account_for(member=member).balance == 900
