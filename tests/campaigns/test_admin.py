import pytest
import tablib
from django.contrib.auth.models import Group
from django.urls import reverse

from campaigns.admin import CodeResource
from campaigns.models import Campaign, CampaignAlert, Code, CodeGenerationJob
from rewards.models import Redemption
from rewards.services.redemption import redeem
from tests.factories import CampaignFactory, CodeFactory, EngineMemberFactory, UserFactory, form_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser():
    return UserFactory(is_superuser=True)


def staff(role):
    user = UserFactory()
    user.groups.add(Group.objects.get(name=role))
    return user


def add_form(tenant, **overrides):
    data = {
        "tenant": tenant.pk,
        "name": "Admin made",
        "description": "",
        "type": "discount",
        "enabled": "on",
        "discount_type": "percent",
        "discount_value": "10",
        "rule": "",
        "member_period": "",
        "stacking_category": "",
        "combinable_with": "",
        "priority": "0",
        "breaker_enabled": "on",
        "breaker_multiple": "5",
        "breaker_window_minutes": "5",
        "breaker_min_redemptions": "20",
    }
    data.update(overrides)
    return data


def test_admin_creates_campaigns_through_the_service_with_its_validation(client, superuser, tenant, published):
    client.force_login(superuser)
    url = reverse("admin:campaigns_campaign_add")
    response = client.post(url, add_form(tenant, rule="member.contry == 'GB'"))
    assert response.status_code == 200 and "Unknown name" in response.content.decode()
    assert not Campaign.objects.exists()
    response = client.post(url, add_form(tenant, rule="order.amount >= 10"))
    assert response.status_code == 302, response.content.decode()[:2000]
    campaign = Campaign.objects.get()
    assert campaign.rule == "order.amount >= 10" and campaign.enabled and campaign.owner == superuser
    assert [k for k, _ in published] == ["campaign.created"]


def test_junior_marketer_cannot_launch_from_the_admin(client, tenant):
    campaign = CampaignFactory(tenant=tenant, enabled=False)
    junior = staff("Junior marketer")
    junior.is_superuser = False
    from guardian.shortcuts import assign_perm

    assign_perm("members.access_tenant", junior, tenant)
    client.force_login(junior)
    changelist = reverse("admin:campaigns_campaign_changelist")
    page = client.get(changelist)
    assert page.status_code == 200 and "enable_selected" not in page.content.decode()
    client.post(changelist, {"action": "enable_selected", "_selected_action": [campaign.pk]})
    campaign.refresh_from_db()
    assert campaign.enabled is False
    marketer = staff("Marketer")
    assign_perm("members.access_tenant", marketer, tenant)
    assign_perm("campaigns.change_campaign", marketer, campaign)  # a marketer reaches campaigns owned or granted
    client.force_login(marketer)
    confirm = {"action": "enable_selected", "_selected_action": [campaign.pk], "confirm": "yes", "reason": "launch"}
    client.post(changelist, confirm)
    campaign.refresh_from_db()
    assert campaign.enabled is True


def test_bulk_generation_from_the_admin_runs_as_a_task(client, superuser, tenant, django_capture_on_commit_callbacks):
    campaign = CampaignFactory(tenant=tenant)
    client.force_login(superuser)
    url = reverse("admin:campaigns_campaign_generate_codes", args=[campaign.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"count": 500, "pattern": "ADM-####-????", "form_token": form_token()})
    assert response.status_code == 302
    assert CodeGenerationJob.objects.get().status == "done"
    assert Code.objects.filter(campaign=campaign, code__startswith="ADM-").count() == 500
    page = client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk])).content.decode()
    assert "0 redeemed" in page


def test_codes_csv_export_and_import(tenant, other_tenant):
    campaign = CampaignFactory(tenant=tenant)
    CodeFactory(campaign=campaign, code="EXP-1")
    exported = CodeResource().export(queryset=Code.objects.all()).csv
    assert "EXP-1" in exported and "code,campaign,usage_limit" in exported.splitlines()[0]
    data = tablib.Dataset(headers=["code", "campaign", "usage_limit", "redeemed_count", "expires_at", "balance"])
    data.append(["imp-1", campaign.pk, 3, 0, "", ""])
    data.append(["IMP-2", campaign.pk, 1, 0, "", ""])
    result = CodeResource().import_data(data, dry_run=False)
    assert not result.has_errors() and not result.has_validation_errors()
    assert set(Code.objects.filter(campaign=campaign).values_list("code", "usage_limit")) == {
        ("EXP-1", 1),
        ("IMP-1", 3),
        ("IMP-2", 1),
    }
    assert Code.objects.get(code="IMP-1").tenant == tenant
    # A campaign of a tenant the user may not see is refused.
    foreign = CampaignFactory(tenant=other_tenant)
    data = tablib.Dataset(headers=["code", "campaign", "usage_limit", "redeemed_count", "expires_at", "balance"])
    data.append(["SNEAK-1", foreign.pk, 1, 0, "", ""])
    result = CodeResource(tenant_ids={tenant.pk}).import_data(data, dry_run=False)
    assert result.has_errors() and not Code.objects.filter(code="SNEAK-1").exists()


def test_breaker_alerts_show_in_the_changelist(client, superuser, tenant):
    campaign = CampaignFactory(tenant=tenant)
    CampaignAlert.objects.create(
        tenant=tenant,
        campaign=campaign,
        kind="circuit_breaker",
        message="Campaign 'X' was paused automatically: too fast.",
    )
    client.force_login(superuser)
    page = client.get(reverse("admin:campaigns_campaign_changelist")).content.decode()
    assert "was paused automatically" in page


def test_redemption_rollback_from_the_admin(client, tenant):
    code = CodeFactory(campaign__tenant=tenant)
    redemption = redeem(tenant=tenant, member=None, order_id="o-1", order={"amount": "10"}, codes=[code.code])
    agent = staff("Support agent")
    from guardian.shortcuts import assign_perm

    assign_perm("members.access_tenant", agent, tenant)
    client.force_login(agent)
    url = reverse("admin:rewards_redemption_rollback", args=[redemption.pk])
    assert client.post(url, {"reason": "customer complaint", "form_token": form_token()}).status_code == 302
    redemption.refresh_from_db()
    assert redemption.status == Redemption.Status.ROLLED_BACK and redemption.rollback.user == agent
    analyst = staff("Analyst")
    client.force_login(analyst)
    assert client.post(url, {"reason": "x"}).status_code in (403, 404)


def test_support_agent_applies_codes_after_the_fact(client, tenant):
    from guardian.shortcuts import assign_perm

    member = EngineMemberFactory(tenant=tenant)
    code = CodeFactory(campaign__tenant=tenant, campaign__discount={"type": "amount", "value": "5.00"})
    agent = staff("Support agent")
    assign_perm("members.access_tenant", agent, tenant)
    client.force_login(agent)
    url = reverse("admin:rewards_redemption_apply")
    form = {
        "tenant": tenant.pk,
        "member": member.external_id,
        "order_id": "late-1",
        "amount": "40.00",
        "form_token": form_token(),
    }
    page = client.post(url, {**form, "codes": "NOPE-1", "apply": "1"}).content.decode()
    assert "NOPE-1: code_not_found" in page and not Redemption.objects.exists()
    assert client.post(url, {**form, "codes": code.code.lower(), "apply": "1"}).status_code == 302
    redemption = Redemption.objects.get()
    assert redemption.staff_user == agent and redemption.channel == "admin" and redemption.discount == 5
    client.force_login(staff("Analyst"))
    assert client.get(url).status_code == 403


def test_codes_csv_import_never_rewrites_usage_counts_or_balances(tenant):
    from decimal import Decimal

    campaign = CampaignFactory(tenant=tenant)
    used = CodeFactory(campaign=campaign, code="USED-1", usage_limit=1)
    Code.objects.filter(pk=used.pk).update(redeemed_count=1)
    gift = CodeFactory(campaign=campaign, code="GIFT-1", balance=Decimal("20.00"), initial_balance=Decimal("50.00"))
    headers = ["code", "campaign", "usage_limit", "redeemed_count", "expires_at", "balance"]

    data = tablib.Dataset(headers=headers)
    data.append(["USED-1", campaign.pk, 1, 0, "", ""])  # an attempt to make a used code fresh again
    CodeResource().import_data(data, dry_run=False)
    assert Code.objects.get(pk=used.pk).redeemed_count == 1

    data = tablib.Dataset(headers=headers)
    data.append(["GIFT-1", campaign.pk, 1, 0, "", "500.00"])  # an attempt to top up a gift card
    result = CodeResource().import_data(data, dry_run=False)
    assert result.has_errors()
    assert Code.objects.get(pk=gift.pk).balance == Decimal("20.00")


def test_admin_settings_are_saved_by_the_service_in_the_same_history_record(client, superuser, tenant):
    client.force_login(superuser)
    campaign = CampaignFactory(tenant=tenant, name="Before", enabled=True)
    other_owner = UserFactory(is_superuser=True)
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    form = add_form(tenant, name="After", code_usage_limit="3", owner=str(other_owner.pk))
    response = client.post(url, form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign.refresh_from_db()
    assert (campaign.name, campaign.code_usage_limit, campaign.owner) == ("After", 3, other_owner)
    latest = campaign.history.order_by("-history_id").first()
    assert latest.history_change_reason == "updated"
    assert (latest.name, latest.code_usage_limit, latest.owner_id) == ("After", 3, other_owner.pk)


def test_campaign_update_refuses_settings_that_are_not_admin_settings(tenant):
    from campaigns import services

    campaign = CampaignFactory(tenant=tenant)
    with pytest.raises(ValueError, match="redemptions_count"):
        services.campaign_update(campaign=campaign, data={}, admin_settings={"redemptions_count": 0})
    campaign.refresh_from_db()
    assert campaign.redemptions_count == 0
