"""A member in a real browser: asks for a sign-in link on their tenant's cockpit, opens the link from the email,
sees their balance, spends points on a catalog reward and gets its code at once, then switches to German."""

import re

import pytest
from django.core import mail

from campaigns.models import Publication
from loyalty.ledger import account_for, points_adjust
from tests.e2e.conftest import shot
from tests.factories import CampaignFactory, MemberFactory, ProgramFactory, RewardFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_member_signs_in_by_email_spends_points_on_a_reward_and_reads_the_cockpit_in_german(
    browser, live_server, tenant
):
    program = ProgramFactory(tenant=tenant, points_name="")
    member = MemberFactory(tenant=tenant, name="Ada Lovelace", email="ada@example.com")
    points_adjust(points=1500, reason="welcome", staff_user=UserFactory(), member=member, program=program)
    campaign = CampaignFactory(
        tenant=tenant, type="loyalty_reward", discount={"type": "amount", "value": "5.00"}, code_pattern="LR-####-????"
    )
    RewardFactory(tenant=tenant, name="Five off", type="coupon", campaign=campaign, points_cost=400)
    mail.outbox.clear()

    page = browser.new_context(locale="en-US").new_page()
    page.goto(f"{live_server.url}/cockpit/{tenant.slug}/sign-in")
    page.get_by_label("Your email address").fill("ada@example.com")
    shot(page, "cockpit-sign-in")
    page.get_by_role("button", name="Send me a sign-in link").click()
    page.get_by_role("heading", name="Check your email").wait_for()

    (email,) = mail.outbox
    assert email.to == ["ada@example.com"] and email.extra_headers["Content-Language"] == "en"
    link = re.search(r"https?://\S+", email.body).group(0)
    assert link.startswith(f"{live_server.url}/cockpit/{tenant.slug}/sign-in/")
    page.goto(link)
    page.wait_for_url(f"{live_server.url}/cockpit/{tenant.slug}/")
    assert page.get_by_test_id("balance").inner_text() == "1,500"
    shot(page, "cockpit-home")

    page.get_by_role("navigation", name="Cockpit").get_by_role("link", name="Rewards").click()
    page.get_by_role("button", name="Get Five off").click()
    page.wait_for_selector("#the-code")
    code = Publication.objects.get(tenant=tenant, member=member, campaign=campaign).code.code
    assert page.inner_text("#the-code") == code and re.fullmatch(r"LR-\d{4}-[A-Z0-9]{4}", code)
    assert "Five off is yours: here is your code." in page.inner_text(".messages")
    assert account_for(member=member, program=program).balance == 1100
    shot(page, "cockpit-new-code")

    page.get_by_role("button", name="Deutsch").click()
    page.wait_for_selector('html[lang="de"]')
    assert page.url.endswith(f"/cockpit/{tenant.slug}/codes/{code}")
    assert page.get_by_role("button", name="Code kopieren").is_visible()
    assert "Zurück zu Ihrer Mitgliedschaft" in page.inner_text("main")
    page.get_by_role("link", name="Übersicht").click()
    page.get_by_role("heading", name="Hallo Ada Lovelace").wait_for()
    assert page.get_by_test_id("balance").inner_text() == "1.100"
    assert page.get_by_role("button", name="Deutsch").get_attribute("aria-pressed") == "true"
    shot(page, "cockpit-home-german")
