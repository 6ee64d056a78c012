import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from guardian.shortcuts import assign_perm

from members.admin_tenancy import tenants_for_user
from members.models import Tenant
from tests.factories import TenantFactory, UserFactory


@pytest.mark.django_db
def test_tenant_scoped_query_never_returns_another_tenants_rows():
    from members.models import Member
    from members.services import member_upsert

    a, b = TenantFactory(), TenantFactory()
    mine, _ = member_upsert(tenant=a, external_id="c-1", email="a@example.com")
    member_upsert(tenant=b, external_id="c-1", email="b@example.com")  # the same external id, another tenant
    member_upsert(tenant=b, external_id="c-2", email="c@example.com")

    assert list(Member.objects.for_tenant(a)) == [mine]
    assert Member.objects.for_tenant(a).get(external_id="c-1").email == "a@example.com"
    assert Member.objects.for_tenant(b).count() == 2


@pytest.mark.django_db
def test_staff_sees_only_granted_tenants_in_the_admin(client):
    granted, hidden = TenantFactory(name="Granted Brand"), TenantFactory(name="Hidden Brand")
    user = UserFactory()
    user.user_permissions.add(Permission.objects.get(codename="view_tenant"))
    assign_perm("members.access_tenant", user, granted)
    assert list(tenants_for_user(user)) == [granted]

    client.force_login(user)
    listing = client.get("/admin/members/tenant/")
    assert listing.status_code == 200
    assert b"Granted Brand" in listing.content
    assert b"Hidden Brand" not in listing.content
    other = client.get(f"/admin/members/tenant/{hidden.pk}/change/")
    assert other.status_code == 302  # the admin's "does not exist" redirect: nothing of it leaks


@pytest.mark.django_db
def test_create_tenant_command_is_idempotent(capsys):
    call_command("create_tenant", "acme-de", name="Acme DE", currency="eur", time_zone="Europe/Berlin")
    call_command("create_tenant", "acme-de", name="Changed", currency="USD")
    tenant = Tenant.objects.get(slug="acme-de")
    assert (tenant.name, tenant.currency, tenant.time_zone) == ("Acme DE", "EUR", "Europe/Berlin")
    assert capsys.readouterr().out.splitlines() == [
        "created: tenant acme-de (Acme DE)",
        "exists: tenant acme-de (Acme DE)",
    ]


@pytest.mark.django_db
def test_create_tenant_rejects_an_unknown_time_zone():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="time_zone"):
        call_command("create_tenant", "bad", name="Bad", currency="EUR", time_zone="Mars/Olympus")
    assert not Tenant.objects.filter(slug="bad").exists()


def test_every_tenant_owned_model_admin_is_tenant_scoped():
    """Generated from the admin registry, so a new admin cannot forget the tenant scope."""
    from django.contrib import admin

    from members.admin_tenancy import TenantScopedAdminMixin
    from members.models import TenantOwned

    unscoped = [
        model.__name__
        for model, model_admin in admin.site._registry.items()
        if issubclass(model, TenantOwned) and not isinstance(model_admin, TenantScopedAdminMixin)
    ]
    assert unscoped == []


HISTORY_REQUIRED = {
    "members.Tenant",
    "members.Member",
    "members.Segment",
    "loyalty.Program",
    "loyalty.Tier",
    "loyalty.EarningRule",
    "integrations.Integration",
    "integrations.IntegrationAPIKey",
    "integrations.WebhookEndpoint",
    "campaigns.Campaign",
    "rewards.Reward",
}


def test_configuration_and_master_data_keep_history_shown_in_the_admin():
    """Who changed what, when: on configuration and master data (the ledger is its own history)."""
    from django.apps import apps
    from django.contrib import admin
    from simple_history.admin import SimpleHistoryAdmin

    for label in HISTORY_REQUIRED:
        model = apps.get_model(label)
        assert hasattr(model, "history"), f"{label} has no history"
        assert isinstance(admin.site._registry.get(model), SimpleHistoryAdmin), f"{label} admin shows no history"


def test_the_unscoped_library_api_key_admin_is_not_offered():
    from django.contrib import admin
    from rest_framework_api_key.models import APIKey

    assert not admin.site.is_registered(APIKey)


@pytest.mark.django_db
def test_admin_freezes_and_unfreezes_a_tenant_with_the_reason_recorded(client):
    tenant = TenantFactory()
    admin_user = UserFactory(is_superuser=True)
    client.force_login(admin_user)
    changelist = "/admin/members/tenant/"

    response = client.post(changelist, {"action": "freeze", "_selected_action": [tenant.pk]})
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.frozen is True
    assert tenant.frozen_reason == f"frozen in the admin by {admin_user.username}"
    assert tenant.history.first().history_change_reason.startswith("frozen")

    client.post(changelist, {"action": "unfreeze", "_selected_action": [tenant.pk]})
    tenant.refresh_from_db()
    assert (tenant.frozen, tenant.frozen_reason) == (False, "")
