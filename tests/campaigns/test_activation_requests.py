"""A junior marketer builds, a marketer launches: activation requests and the junior's discount cap."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from campaigns import services
from campaigns.activation import activation_decide, activation_request
from campaigns.models import ActivationRequest, Campaign
from common.errors import ApplicationError
from tests.campaigns.test_admin import add_form
from tests.campaigns.test_admin_rights import change_form, change_url, staff_of
from tests.concurrency.test_ledger_concurrency import run_threads
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(tenant):
    junior = staff_of(tenant, role="Junior marketer", email="junior@example.com")
    marketer = staff_of(tenant, email="marketer@example.com")
    staff_of(TenantFactory(), email="elsewhere@example.com")  # a marketer of another tenant is not asked
    staff_of(tenant, role="Analyst", email="analyst@example.com")  # no right to launch: not asked
    return junior, marketer


def juniors_campaign(tenant, junior, **fields):
    data = {"name": "Junior's spring", "type": "discount", "discount": {"type": "percent", "value": "15"}, **fields}
    return services.campaign_create(tenant=tenant, data=data, user=junior)


def decide_url(request):
    return reverse("admin:campaigns_activationrequest_decide", args=[request.pk])


def test_a_junior_requests_activation_from_the_page_and_the_approvers_are_emailed(
    client, tenant, people, mailoutbox, django_capture_on_commit_callbacks
):
    junior, marketer = people
    campaign = juniors_campaign(tenant, junior)
    assert campaign.enabled is False and campaign.owner == junior
    client.force_login(junior)
    page = client.get(change_url(campaign)).content.decode()
    request_url = reverse("admin:campaigns_campaign_request_activation", args=[campaign.pk])
    assert request_url in page and "Request activation" in page
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(request_url, {"note": "ready for Monday"}, follow=True)
    assert "Activation requested" in answer.content.decode()
    request = ActivationRequest.objects.get()
    assert (request.campaign, request.requested_by, request.state, request.note) == (
        campaign,
        junior,
        "pending",
        "ready for Monday",
    )
    assert [m.to for m in mailoutbox] == [["marketer@example.com"]]
    assert campaign.name in mailoutbox[0].subject and decide_url(request) in mailoutbox[0].body
    page = client.get(change_url(campaign)).content.decode()
    assert request_url not in page and "pending-activation" in page
    assert client.post(request_url, {"note": "again"}).status_code == 302  # one waiting request is enough
    assert ActivationRequest.objects.count() == 1
    # The index shows the waiting request to who may approve it, not to the requester.
    assert "pending-activations" not in client.get(reverse("admin:index")).content.decode()
    client.force_login(marketer)
    index = client.get(reverse("admin:index")).content.decode()
    assert "1 campaign waits for your approval to launch" in index and decide_url(request) in index
    listed = client.get(reverse("admin:campaigns_activationrequest_changelist"))
    assert [r.pk for r in listed.context["cl"].result_list] == [request.pk]


def test_the_requester_cannot_approve_not_even_in_the_database(client, tenant, people):
    junior, marketer = people
    campaign = juniors_campaign(tenant, junior)
    request = activation_request(campaign=campaign, user=junior)
    client.force_login(junior)
    assert client.post(decide_url(request), {"approve": "1"}).status_code == 403
    with pytest.raises(ApplicationError) as refused:
        activation_decide(request=request, approver=junior, approve=True)
    assert refused.value.code == "own_request"
    with pytest.raises(IntegrityError), transaction.atomic():
        ActivationRequest.objects.filter(pk=request.pk).update(decided_by=junior, state="approved")
    # Nor can a marketer of another tenant decide it.
    with pytest.raises(ApplicationError):
        activation_decide(request=request, approver=staff_of(TenantFactory()), approve=True)
    campaign.refresh_from_db()
    assert campaign.enabled is False


def test_a_marketer_approves_once_and_the_history_names_both(client, tenant, people, published):
    junior, marketer = people
    campaign = juniors_campaign(tenant, junior)
    request = activation_request(campaign=campaign, user=junior)
    client.force_login(marketer)
    page = client.get(decide_url(request)).content.decode()
    assert "Junior&#x27;s spring" in page and 'name="approve"' in page
    assert client.post(decide_url(request), {"approve": "1", "comment": "go"}).status_code == 302
    request.refresh_from_db()
    campaign.refresh_from_db()
    assert (request.state, request.decided_by, request.comment) == ("approved", marketer, "go")
    assert campaign.enabled is True
    reason = campaign.history.latest().history_change_reason
    assert marketer.username in reason and junior.username in reason
    answer = client.post(decide_url(request), {"approve": "1"}, follow=True)  # a second click
    assert "Someone already decided this request." in answer.content.decode()
    assert [kind for kind, _data in published].count("campaign.enabled") == 1


def test_a_rejection_with_a_comment_leaves_the_campaign_off(client, tenant, people):
    junior, marketer = people
    campaign = juniors_campaign(tenant, junior)
    request = activation_request(campaign=campaign, user=junior)
    client.force_login(marketer)
    client.post(decide_url(request), {"reject": "1", "comment": "budget too high"})
    request.refresh_from_db()
    campaign.refresh_from_db()
    assert (request.state, request.comment, request.decided_by) == ("rejected", "budget too high", marketer)
    assert campaign.enabled is False
    assert activation_request(campaign=campaign, user=junior).state == "pending"  # may ask again after changes


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_approvers_at_once_enable_it_once(published):
    tenant = TenantFactory()
    junior = staff_of(tenant, role="Junior marketer")
    marketers = [staff_of(tenant) for _ in range(6)]
    campaign = juniors_campaign(tenant, junior)
    request = activation_request(campaign=campaign, user=junior)

    def approve(i):
        fresh = ActivationRequest.objects.select_related("campaign", "requested_by").get(pk=request.pk)
        return activation_decide(request=fresh, approver=marketers[i], approve=True)

    outcomes, errors = run_threads(approve, n=6)
    assert len(outcomes) == 1 and len(errors) == 5
    assert all(isinstance(e, ApplicationError) and e.code == "already_decided" for e in errors)
    assert Campaign.objects.get(pk=campaign.pk).enabled is True
    assert [kind for kind, _data in published].count("campaign.enabled") == 1
    assert campaign.history.filter(history_change_reason__startswith="enabled: by ").count() == 1


# --- the junior's discount cap ------------------------------------------------------------------


def test_a_junior_cannot_save_a_discount_above_the_cap_in_the_form(client, tenant, people):
    junior, marketer = people
    client.force_login(junior)
    url = reverse("admin:campaigns_campaign_add")
    answer = client.post(url, add_form(tenant, discount_value="25"))
    assert answer.status_code == 200 and "at most 20 % for a junior marketer" in answer.content.decode()
    assert not Campaign.objects.exists()
    assert client.post(url, add_form(tenant, discount_value="20")).status_code == 302
    campaign = Campaign.objects.get()
    answer = client.post(change_url(campaign), change_form(campaign, discount_value="30"))
    assert answer.status_code == 200 and "at most 20 %" in answer.content.decode()
    campaign.refresh_from_db()
    assert campaign.discount["value"] == "20"
    client.force_login(marketer)  # who may launch may also give more
    assert client.post(url, add_form(tenant, name="Big", discount_value="40")).status_code == 302


def test_the_cap_in_money_is_the_tenants_setting(client, tenant, people):
    junior, _marketer = people
    amount = {"name": "Ten off", "type": "discount", "discount": {"type": "amount", "value": "10"}}
    with pytest.raises(ApplicationError) as refused:
        services.campaign_create(tenant=tenant, data=amount, user=junior)
    assert "no maximum is set" in refused.value.details["discount"]
    tenant.junior_max_discount_amount = Decimal("15")
    tenant.save()
    assert services.campaign_create(tenant=tenant, data=amount, user=junior).discount["value"] == "10"
    big = {**amount, "discount": {"type": "volume", "tiers": [{"min_amount": "50", "amount": "25"}]}}
    with pytest.raises(ApplicationError) as refused:
        services.campaign_create(tenant=tenant, data=big, user=junior)
    assert "at most 15.00 EUR" in refused.value.details["discount"]
    gift = {"name": "Gift", "type": "gift_card", "gift_card": {"amount": "50"}}
    with pytest.raises(ApplicationError) as refused:
        services.campaign_create(tenant=tenant, data=gift, user=junior)
    assert "gift_card.amount" in refused.value.details


def test_the_service_refuses_a_junior_above_the_cap_whatever_the_door(tenant, people):
    junior, marketer = people
    campaign = juniors_campaign(tenant, junior)
    with pytest.raises(ApplicationError) as refused:
        services.campaign_update(campaign=campaign, data={"discount": {"type": "percent", "value": "50"}}, user=junior)
    assert refused.value.code == "validation_error" and "discount" in refused.value.details
    bogo = {"type": "bogo", "buy_sku": "A", "buy_quantity": 1, "get_quantity": 1}  # a free item: 100 %
    with pytest.raises(ApplicationError):
        services.campaign_update(campaign=campaign, data={"discount": bogo}, user=junior)
    tenant.junior_max_discount_percent = Decimal("60")
    tenant.save()
    services.campaign_update(campaign=campaign, data={"discount": {"type": "percent", "value": "50"}}, user=junior)
    updated = services.campaign_update(
        campaign=campaign, data={"discount": {"type": "percent", "value": "90"}}, user=marketer
    )
    assert updated.discount["value"] == "90"


def test_the_tenant_page_sets_the_cap(client, tenant):
    admin = staff_of(tenant, role="Admin")
    client.force_login(admin)
    page = client.get(reverse("admin:members_tenant_change", args=[tenant.pk])).content.decode()
    assert 'name="junior_max_discount_percent"' in page and 'name="junior_max_discount_amount"' in page
