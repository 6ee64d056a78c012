import pytest
from django.contrib.auth.models import Group

from config.roles import ROLE_RULES, sync_roles


def codenames(group_name: str) -> set[str]:
    group = Group.objects.get(name=group_name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


@pytest.mark.django_db
def test_roles_exist_after_migrate():
    assert set(Group.objects.values_list("name", flat=True)) >= set(ROLE_RULES)


@pytest.mark.django_db
def test_admin_role_holds_every_permission_including_tenant_access():
    perms = codenames("Admin")
    assert "members.access_tenant" in perms
    assert "members.change_tenant" in perms
    assert "auth.change_user" in perms


@pytest.mark.django_db
def test_only_admin_reaches_every_tenant():
    for role in ("Marketer", "Junior marketer", "Support agent", "Analyst"):
        assert "members.access_tenant" not in codenames(role), role
        assert "members.change_tenant" not in codenames(role), role


@pytest.mark.django_db
def test_analyst_only_views():
    perms = codenames("Analyst")
    assert perms, "analyst has no permissions at all"
    assert all(p.split(".")[1].startswith("view_") for p in perms if not p.startswith("reports.")), perms


@pytest.mark.django_db
def test_sync_roles_is_idempotent_and_repairs_drift():
    marketer = Group.objects.get(name="Marketer")
    marketer.permissions.clear()
    first = sync_roles()
    second = sync_roles()
    assert first == second
    assert codenames("Marketer")
