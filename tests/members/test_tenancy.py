import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from guardian.shortcuts import assign_perm

from members.admin_tenancy import tenants_for_user
from members.models import Tenant
from tests.factories import TenantFactory, UserFactory


@pytest.mark.django_db
def test_tenant_scoped_query_never_returns_another_tenants_rows():
    a, b = TenantFactory(), TenantFactory()
    from members.models import HistoricalTenant  # any tenant-keyed rows would do; history rows carry the id

    assert set(Tenant.objects.filter(pk=a.pk).values_list("slug", flat=True)) == {a.slug}
    assert HistoricalTenant.objects.filter(id=a.pk).count() == 1
    assert not HistoricalTenant.objects.filter(id=a.pk, slug=b.slug).exists()


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
