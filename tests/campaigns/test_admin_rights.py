"""Rights per campaign in the admin: owners and grants, granting from the campaign's page, tenant scope."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from guardian.shortcuts import assign_perm

from campaigns.models import Campaign
from tests.factories import CampaignFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db


def staff_of(tenant, role="Marketer", **fields):
    user = UserFactory(**fields)
    user.groups.add(Group.objects.get(name=role))
    assign_perm("members.access_tenant", user, tenant)
    return user


def change_url(campaign):
    return reverse("admin:campaigns_campaign_change", args=[campaign.pk])


def change_form(campaign, **overrides):
    data = {
        "tenant": campaign.tenant_id,
        "name": campaign.name,
        "description": "",
        "discount_type": "percent",
        "discount_value": "10",
        "rule": "",
        "member_period": "",
        "stacking_category": "",
        "combinable_with": "",
        "priority": "0",
        "breaker_multiple": "5",
        "breaker_window_minutes": "5",
        "breaker_min_redemptions": "20",
    }
    if campaign.owner_id:
        data["owner"] = campaign.owner_id
    data.update(overrides)
    return data


def changelist(client) -> list[str]:
    """The names of the campaigns the list shows."""
    page = client.get(reverse("admin:campaigns_campaign_changelist"))
    assert page.status_code == 200
    return [c.name for c in page.context["cl"].result_list]


def grant(client, campaign, user, perms):
    """Grant through the campaign's Rights page, as the owner does in the browser."""
    rights = reverse("admin:campaigns_campaign_permissions", args=[campaign.pk])
    picked = client.post(rights, {"user": user.username, "submit_manage_user": "1"})
    assert picked.status_code == 302, picked.content.decode()[:500]
    return client.post(picked.url, {"permissions": perms, "submit": "1"})  # a browser always sends more than none


def test_a_marketer_reaches_another_marketers_campaign_only_once_granted_from_its_page(client, tenant):
    owner, other = staff_of(tenant), staff_of(tenant)
    campaign = CampaignFactory(tenant=tenant, owner=owner, name="Owners spring sale")
    client.force_login(other)
    assert "Owners spring sale" not in changelist(client)
    assert client.get(change_url(campaign)).status_code == 302  # "does not exist" and back to the index
    client.post(change_url(campaign), change_form(campaign, name="Hijacked"))
    campaign.refresh_from_db()
    assert campaign.name == "Owners spring sale"
    generate = reverse("admin:campaigns_campaign_generate_codes", args=[campaign.pk])
    assert client.post(generate, {"count": 5, "pattern": "X-####"}).status_code == 404
    assert client.get(reverse("admin:campaigns_campaign_permissions", args=[campaign.pk])).status_code == 404

    client.force_login(owner)
    page = client.get(change_url(campaign)).content.decode()
    assert reverse("admin:campaigns_campaign_permissions", args=[campaign.pk]) in page  # the Rights link
    assert grant(client, campaign, other, ["change_campaign"]).status_code == 302

    client.force_login(other)
    assert "Owners spring sale" in changelist(client)
    assert client.post(change_url(campaign), change_form(campaign, name="Renamed by other")).status_code == 302
    campaign.refresh_from_db()
    assert campaign.name == "Renamed by other"
    # A granted user may change, not pass rights on.
    assert client.get(reverse("admin:campaigns_campaign_permissions", args=[campaign.pk])).status_code == 403

    client.force_login(owner)
    assert grant(client, campaign, other, []).status_code == 302  # revoked
    client.force_login(other)
    assert "Renamed by other" not in changelist(client)


def test_a_view_grant_opens_the_page_read_only_and_a_post_is_refused(client, tenant):
    owner, viewer = staff_of(tenant), staff_of(tenant)
    campaign = CampaignFactory(tenant=tenant, owner=owner, name="Look only")
    assign_perm("campaigns.view_campaign", viewer, campaign)
    client.force_login(viewer)
    page = client.get(change_url(campaign))
    assert page.status_code == 200 and 'name="name"' not in page.content.decode()
    assert client.post(change_url(campaign), change_form(campaign, name="Nope")).status_code == 403
    campaign.refresh_from_db()
    assert campaign.name == "Look only"


def test_a_group_grant_reaches_every_member_of_the_group(client, tenant):
    owner, junior = staff_of(tenant), staff_of(tenant, role="Junior marketer")
    campaign = CampaignFactory(tenant=tenant, owner=owner, name="For the juniors")
    client.force_login(owner)
    rights = reverse("admin:campaigns_campaign_permissions", args=[campaign.pk])
    picked = client.post(rights, {"group": "Junior marketer", "submit_manage_group": "1"})
    assert client.post(picked.url, {"permissions": ["change_campaign"]}).status_code == 302
    client.force_login(junior)
    assert "For the juniors" in changelist(client)


def test_only_grantable_rights_to_staff_of_the_tenant_and_only_by_owner_or_admin(client, tenant):
    owner, junior = staff_of(tenant), staff_of(tenant, role="Junior marketer")
    outsider = staff_of(TenantFactory())
    campaign = CampaignFactory(tenant=tenant, owner=owner)
    client.force_login(owner)
    refused = grant(client, campaign, junior, ["enable_campaign"])
    assert refused.status_code == 200  # not a choice: a form error
    assert not junior.has_perm("campaigns.enable_campaign", campaign)
    answer = grant(client, campaign, outsider, ["change_campaign"])
    assert answer.status_code == 302 and not outsider.has_perm("campaigns.change_campaign", campaign)
    # A junior owner builds, but does not hand out rights (no grant right).
    own = CampaignFactory(tenant=tenant, owner=junior)
    client.force_login(junior)
    assert client.get(reverse("admin:campaigns_campaign_permissions", args=[own.pk])).status_code == 403
    # An Admin may grant on any campaign of the tenant.
    client.force_login(staff_of(tenant, role="Admin"))
    assert grant(client, campaign, junior, ["view_campaign"]).status_code == 302
    assert junior.has_perm("campaigns.view_campaign", campaign)


def test_staff_see_only_their_granted_tenants(client, tenant, other_tenant):
    CampaignFactory(tenant=tenant, name="Ours")
    theirs = CampaignFactory(tenant=other_tenant, name="Theirs")
    for role in ("Admin", "Analyst", "Marketer"):
        user = staff_of(tenant, role=role)
        if role == "Admin":  # the Admin role reaches all tenants through its model-wide permission
            continue
        client.force_login(user)
        page = changelist(client)
        assert "Theirs" not in page, role
        assert client.get(change_url(theirs)).status_code == 302, role
        tenants = client.get(reverse("admin:members_tenant_changelist"))
        assert other_tenant.name not in tenants.content.decode(), role
    assert Campaign.objects.filter(tenant=other_tenant).exists()


def test_analyst_and_support_see_every_campaign_of_their_tenant_and_change_none(client, tenant):
    campaign = CampaignFactory(tenant=tenant, owner=staff_of(tenant), name="Someone elses")
    for role in ("Analyst", "Support agent"):
        client.force_login(staff_of(tenant, role=role))
        assert "Someone elses" in changelist(client), role
        assert client.post(change_url(campaign), change_form(campaign, name="x")).status_code == 403, role
    campaign.refresh_from_db()
    assert campaign.name == "Someone elses"


def test_the_campaign_list_costs_a_constant_number_of_queries(client, tenant):
    marketer, owner = staff_of(tenant), staff_of(tenant)
    client.force_login(marketer)

    def queries_of_the_list(expected: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert len(changelist(client)) == expected
        return len(captured)

    CampaignFactory.create_batch(2, tenant=tenant, owner=marketer)
    granted = CampaignFactory(tenant=tenant, owner=owner)
    assign_perm("campaigns.view_campaign", marketer, granted)
    queries_of_the_list(3)  # the first page of a session fills its caches
    few = queries_of_the_list(3)
    for campaign in CampaignFactory.create_batch(10, tenant=tenant, owner=owner):
        assign_perm("campaigns.change_campaign", marketer, campaign)
    assert queries_of_the_list(13) == few
