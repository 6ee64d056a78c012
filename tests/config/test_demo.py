import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from config.demo import ROLE_USERS, load_demo
from members.admin_tenancy import tenants_for_user
from members.models import Tenant


@pytest.mark.django_db
def test_demo_loader_is_idempotent():
    first = load_demo(member_count=25)
    counts_after_first = dict(first.counts)
    assert counts_after_first["members"] == 25
    assert counts_after_first["orders"] >= 25
    assert counts_after_first["campaigns"] == 5
    second = load_demo(member_count=25)
    assert Tenant.objects.filter(slug="demo").count() == 1
    assert second.counts == counts_after_first
    assert get_user_model().objects.filter(username__in=ROLE_USERS).count() == len(ROLE_USERS)


@pytest.mark.django_db
def test_demo_logins_work_and_are_scoped_to_the_demo_tenant():
    logins = load_demo(member_count=3)
    for username, role in ROLE_USERS.items():
        user = authenticate(username=username, password=logins.passwords[username])
        assert user is not None, username
        assert user.groups.get().name == role
        assert list(tenants_for_user(user)) == [logins.tenant]


@pytest.mark.django_db
def test_load_demo_command_prints_the_logins(capsys):
    call_command("load_demo", members=3)
    out = capsys.readouterr().out
    api_key = out.strip().splitlines()[-1]
    from integrations.models import IntegrationAPIKey

    assert IntegrationAPIKey.objects.is_valid(api_key)
    assert "Demo tenant: Demo Outfitters (demo)" in out
    for username in ROLE_USERS:
        assert f"login {username}" in out
