"""The member admin saves through member_upsert, as the API does."""

import pytest
import time_machine
from django.urls import reverse

from integrations.models import Event
from members.models import Member
from tests.factories import MemberFactory, UserFactory

pytestmark = pytest.mark.django_db


def _post_data(response, **changes) -> dict:
    """The change form as the browser would submit it (main form and inline management forms), changed."""
    data = {}
    form = response.context["adminform"].form
    for name in form.fields:
        value = form[name].value()
        if value is None:
            continue
        if isinstance(value, bool):
            if value:
                data[name] = "on"
            continue
        data[name] = value  # BoundField.value() is already prepared for the widget
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            data[f"{management.prefix}-{name}"] = management[name].value()
    for name, value in changes.items():
        if value is False:
            data.pop(name, None)
        else:
            data[name] = value
    return data


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_superuser=True))
    return client


def test_changing_consent_in_the_admin_stamps_the_time(admin_client, tenant):
    member = MemberFactory(tenant=tenant, marketing_consent=False)
    url = reverse("admin:members_member_change", args=[member.pk])
    with time_machine.travel("2026-11-20 10:00:00+00:00", tick=False):
        response = admin_client.post(url, _post_data(admin_client.get(url), sms_consent="on"))
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    member.refresh_from_db()
    assert (member.sms_consent, member.email_consent, member.marketing_consent) == (True, False, True)
    assert member.sms_consent_changed_at.isoformat() == "2026-11-20T10:00:00+00:00"
    assert member.marketing_consent_changed_at.isoformat() == "2026-11-20T10:00:00+00:00"
    assert member.email_consent_changed_at is None
    change = member.consent_changes.get()
    assert (change.channel, change.granted, change.source) == ("sms", True, "admin")
    assert change.staff_user is not None and change.staff_user.is_superuser
    assert member.history.order_by("-history_id").first().history_change_reason == "updated"


def test_a_save_without_a_consent_change_keeps_the_consent_time(admin_client, tenant):
    member = MemberFactory(tenant=tenant, marketing_consent=False)
    url = reverse("admin:members_member_change", args=[member.pk])
    admin_client.post(url, _post_data(admin_client.get(url), email_consent="on"))
    member.refresh_from_db()
    stamped = member.email_consent_changed_at
    assert stamped is not None
    response = admin_client.post(url, _post_data(admin_client.get(url), name="Renamed"))
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.name == "Renamed" and member.email_consent_changed_at == stamped
    assert member.consent_changes.count() == 1


def test_external_id_tenant_and_referrer_are_read_only_on_change(admin_client, tenant, other_tenant):
    member = MemberFactory(tenant=tenant, external_id="c-1")
    url = reverse("admin:members_member_change", args=[member.pk])
    page = admin_client.get(url)
    assert {"external_id", "tenant", "referred_by"}.isdisjoint(page.context["adminform"].form.fields)
    data = _post_data(page, external_id="hijacked", tenant=str(other_tenant.pk))
    assert admin_client.post(url, data).status_code == 302
    member.refresh_from_db()
    assert (member.external_id, member.tenant_id) == ("c-1", tenant.pk)


def test_adding_a_member_in_the_admin_runs_the_service(admin_client, tenant):
    url = reverse("admin:members_member_add")
    data = _post_data(admin_client.get(url), tenant=str(tenant.pk), external_id="new-1", email="new@example.com")
    response = admin_client.post(url, data)
    assert response.status_code == 302
    member = Member.objects.get(external_id="new-1")
    assert len(member.referral_code) >= 6 and member.referral_code.isupper()
    assert Event.objects.filter(tenant=tenant, type="member.created", data__external_id="new-1").exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"email": ""}, "email"), ({"email": "x@example.com", "country": "XX"}, "country")],
)
def test_the_services_refusals_are_form_errors_and_nothing_is_saved(admin_client, tenant, changes, field):
    url = reverse("admin:members_member_add")
    data = _post_data(admin_client.get(url), tenant=str(tenant.pk), external_id="bad-1", **changes)
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Member.objects.filter(external_id="bad-1").exists()
