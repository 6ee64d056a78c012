import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from loyalty.ledger import account_for, points_adjust
from loyalty.models import Account, LedgerEntry
from tests.factories import MemberFactory, ProgramFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(tenant):
    return account_for(member=MemberFactory(tenant=tenant), program=ProgramFactory(tenant=tenant))


def test_ledger_and_account_pages_are_read_only_with_balances(client, account):
    client.force_login(UserFactory(is_superuser=True))
    points_adjust(account=account, points=40, reason="welcome", staff_user=None)
    response = client.get(reverse("admin:loyalty_ledgerentry_changelist"))
    assert response.status_code == 200 and b"welcome" in response.content
    response = client.get(reverse("admin:loyalty_account_changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_list[0].entries_total == 40
    entry = LedgerEntry.objects.get()
    response = client.post(reverse("admin:loyalty_ledgerentry_change", args=[entry.pk]), {"points": 1})
    assert response.status_code == 403
    assert client.get(reverse("admin:members_member_change", args=[account.member_id])).status_code == 200


def test_points_adjustment_form_calls_the_service_with_the_staff_user(client, account):
    staff = UserFactory(is_superuser=True)
    client.force_login(staff)
    url = reverse("admin:loyalty_account_adjust", args=[account.pk])
    assert client.get(url).status_code == 200
    response = client.post(url, {"points": 25, "reason": ""})
    assert response.status_code == 200 and not LedgerEntry.objects.exists()
    response = client.post(url, {"points": 25, "reason": "goodwill"})
    assert response.status_code == 302
    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.points, entry.staff_user, entry.reason) == ("adjust", 25, staff, "goodwill")
    response = client.post(url, {"points": -26, "reason": "too much"})
    assert response.status_code == 200 and Account.objects.get().balance == 25


def test_adjustment_needs_the_adjust_permission(client, account):
    staff = UserFactory()
    staff.user_permissions.add(Permission.objects.get(codename="view_account"))
    client.force_login(staff)
    assert client.get(reverse("admin:loyalty_account_adjust", args=[account.pk])).status_code == 403
    response = client.post(
        reverse("admin:loyalty_account_changelist"), {"action": "adjust_points", "_selected_action": [account.pk]}
    )
    assert not LedgerEntry.objects.exists()
    assert response.status_code in (200, 302, 403)
