"""Admin forms that change balances, codes or budgets: the same form sent twice (a double click, a browser retry)
is carried out once, and the second POST says so and changes nothing."""

import pytest
from django.urls import reverse
from guardian.shortcuts import assign_perm

from campaigns.models import Campaign, CodeGenerationJob
from loyalty.models import LedgerEntry
from members.form_once import ALREADY_SUBMITTED
from members.models import FormSubmission
from rewards.models import Redemption
from rewards.services.redemption import redeem
from tests.campaigns.test_admin import add_form
from tests.campaigns.test_admin_rights import change_form, staff_of
from tests.factories import CampaignFactory, CodeFactory, EngineMemberFactory, earning_setup
from tests.rewards.test_member_story import agent_of

pytestmark = pytest.mark.django_db

ALREADY = str(ALREADY_SUBMITTED)


def token_of(page) -> str:
    """The one-time token the page rendered into its form, as a browser would send it back."""
    form = page.context["adminform"].form if "adminform" in page.context else page.context["form"]
    token = form["form_token"].value()
    assert token and f'value="{token}"' in page.content.decode()
    return token


def twice(client, url, data, **kwargs):
    first = client.post(url, data, **kwargs)
    second = client.post(url, data, follow=True)
    assert ALREADY in second.content.decode().replace("&#x27;", "'")
    return first, second


def test_a_points_adjustment_is_posted_once(client, tenant):
    _program, _rule, member = earning_setup(tenant)
    client.force_login(agent_of(tenant))
    url = reverse("admin:members_member_adjust", args=[member.pk])
    data = {"points": 50, "reason": "goodwill", "form_token": token_of(client.get(url))}
    first, _second = twice(client, url, data)
    assert first.status_code == 302
    assert LedgerEntry.objects.filter(kind="adjust").count() == 1


def test_an_apology_coupon_is_given_once(client, tenant, django_capture_on_commit_callbacks):
    _program, _rule, member = earning_setup(tenant)
    campaign = CampaignFactory(tenant=tenant, name="Sorry")
    CodeFactory.create_batch(2, campaign=campaign)
    agent = agent_of(tenant)
    assign_perm("campaigns.use_campaign", agent, campaign)
    client.force_login(agent)
    url = reverse("admin:members_member_apology", args=[member.pk])
    data = {"campaign": campaign.pk, "reason": "late parcel", "confirm": "on", "form_token": token_of(client.get(url))}
    with django_capture_on_commit_callbacks(execute=True):
        first, _second = twice(client, url, data)
    assert first.status_code == 302
    assert member.publications.count() == 1


def test_a_redemption_after_the_fact_is_recorded_once(client, tenant):
    member = EngineMemberFactory(tenant=tenant)
    code = CodeFactory(campaign__tenant=tenant, usage_limit=5, campaign__discount={"type": "amount", "value": "5"})
    client.force_login(agent_of(tenant))
    url = reverse("admin:rewards_redemption_apply")
    data = {
        "tenant": tenant.pk,
        "member": member.external_id,
        "order_id": "late-1",
        "amount": "40.00",
        "codes": code.code,
        "form_token": token_of(client.get(url)),
    }
    preview = client.post(url, data)  # the preview writes nothing and keeps the token for the apply
    assert preview.status_code == 200 and not Redemption.objects.exists()
    first, _second = twice(client, url, {**data, "apply": "1"})
    assert first.status_code == 302
    assert Redemption.objects.count() == 1


def test_a_refused_apply_gives_the_token_back(client, tenant):
    member = EngineMemberFactory(tenant=tenant)
    code = CodeFactory(campaign__tenant=tenant)
    client.force_login(agent_of(tenant))
    url = reverse("admin:rewards_redemption_apply")
    data = {"tenant": tenant.pk, "member": member.external_id, "order_id": "o", "amount": "40.00", "apply": "1"}
    data["form_token"] = token_of(client.get(url))
    refused = client.post(url, {**data, "codes": "NOPE-1"})
    assert "code_not_found" in refused.content.decode() and not FormSubmission.objects.exists()
    assert client.post(url, {**data, "codes": code.code}).status_code == 302  # corrected, the same form goes


def test_a_rollback_is_posted_once(client, tenant):
    code = CodeFactory(campaign__tenant=tenant)
    redemption = redeem(tenant=tenant, member=None, order_id="o-1", order={"amount": "10"}, codes=[code.code])
    client.force_login(agent_of(tenant))
    url = reverse("admin:rewards_redemption_rollback", args=[redemption.pk])
    data = {"reason": "cancelled", "form_token": token_of(client.get(url))}
    first, _second = twice(client, url, data)
    assert first.status_code == 302
    redemption.refresh_from_db()
    assert redemption.status == Redemption.Status.ROLLED_BACK


def test_code_generation_is_queued_once(client, tenant, django_capture_on_commit_callbacks):
    marketer = staff_of(tenant)
    campaign = CampaignFactory(tenant=tenant, owner=marketer)
    client.force_login(marketer)
    url = reverse("admin:campaigns_campaign_generate_codes", args=[campaign.pk])
    data = {"count": 20, "pattern": "DBL-####-??", "form_token": token_of(client.get(url))}
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(url, data)
        second = client.post(url, data)
    assert first.status_code == 302 and second.status_code == 200 and ALREADY in second.content.decode()
    assert CodeGenerationJob.objects.count() == 1
    assert campaign.codes.count() == 20


def test_a_budget_change_and_a_new_campaign_are_saved_once(client, tenant):
    marketer = staff_of(tenant)
    campaign = CampaignFactory(tenant=tenant, owner=marketer, discount_total=100)
    client.force_login(marketer)
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    data = change_form(campaign, discount_total="500", form_token=token_of(client.get(url)))
    first, _second = twice(client, url, data)
    assert first.status_code == 302
    campaign.refresh_from_db()
    assert campaign.discount_total == 500
    assert campaign.history.filter(history_change_reason="updated").count() == 1
    add = reverse("admin:campaigns_campaign_add")
    data = add_form(tenant, name="Once only", form_token=token_of(client.get(add)))
    twice(client, add, data)
    assert Campaign.objects.filter(name="Once only").count() == 1
    # A page shown again with its errors saved nothing: corrected, the same page goes through.
    data = change_form(campaign, rule="member.contry == 'GB'", form_token=token_of(client.get(url)))
    assert client.post(url, data).status_code == 200
    assert client.post(url, {**data, "rule": ""}).status_code == 302
