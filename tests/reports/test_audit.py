"""The global audit page through the real admin: filters, tenant scope, CSV, sign-ins, query budget."""

import csv
import io

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.db import connection, reset_queries
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from guardian.shortcuts import assign_perm

from campaigns.models import Campaign
from tests.campaigns.test_history_admin import form
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

AUDIT = "/admin/audit/"


def staff(role, *tenants, username=None):
    user = UserFactory(**({"username": username} if username else {}))
    user.groups.add(Group.objects.get(name=role))
    for tenant in tenants:
        assign_perm("members.access_tenant", user, tenant)
    return user


def make_campaign(client, tenant, user, name):
    """Through the admin, as `user` (the history records who)."""
    client.force_login(user)
    response = client.post(reverse("admin:campaigns_campaign_add"), form(tenant, name=name))
    assert response.status_code == 302, response.content.decode()[:2000]
    return Campaign.objects.get(name=name)


def rename(client, user, campaign, name):
    client.force_login(user)
    data = form(campaign.tenant, name=name, owner=campaign.owner_id or "")
    response = client.post(reverse("admin:campaigns_campaign_change", args=[campaign.pk]), data)
    assert response.status_code == 302, response.content.decode()[:2000]


def table(response) -> str:
    body = response.content.decode()
    start = body.index('<table id="audit-entries">')
    return body[start : body.index("</table>", start)]


def rows(response):
    return [r for r in csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))]


def test_audit_page_filters_by_user_model_action_tenant_and_date(client, tenant, other_tenant):
    alice = staff("Marketer", tenant, username="alice")
    bob = staff("Marketer", tenant, other_tenant, username="bob")
    with time_machine.travel("2026-03-01 10:00Z", tick=False):
        spring = make_campaign(client, tenant, alice, "Spring")
    with time_machine.travel("2026-03-05 10:00Z", tick=False):
        rename(client, alice, spring, "Spring 2")
        make_campaign(client, other_tenant, bob, "Elsewhere")
    analyst = staff("Analyst", tenant)
    client.force_login(analyst)
    page = client.get(AUDIT)
    assert page.status_code == 200
    body = table(page)
    assert "Spring" in body and "alice" in body
    assert "Elsewhere" not in body  # another tenant's record: out of the analyst's scope
    only_changes = table(client.get(AUDIT, {"action": "changed", "model": "campaigns.campaign"}))
    assert "Spring 2" in only_changes and 'data-action="created"' not in only_changes
    by_bob = table(client.get(AUDIT, {"user": "bob"}))
    assert "Spring" not in by_bob
    early = table(client.get(AUDIT, {"model": "campaigns.campaign", "until": "2026-03-02"}))
    assert early.count('class="audit-entry"') == 1 and 'data-action="created"' in early
    admin = staff("Admin")
    admin.is_superuser = True
    admin.save()
    client.force_login(admin)
    everything = table(client.get(AUDIT, {"model": "campaigns.campaign", "tenant": other_tenant.pk}))
    assert "Elsewhere" in everything and "Spring" not in everything


def test_audit_csv_is_streamed_with_the_filters(client, tenant):
    alice = staff("Marketer", tenant, username="alice")
    campaign = make_campaign(client, tenant, alice, "Spring")
    rename(client, alice, campaign, "Summer")
    client.force_login(staff("Analyst", tenant))
    response = client.get(AUDIT, {"model": "campaigns.campaign", "format": "csv"})
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    got = rows(response)
    assert [(r["action"], r["object"], r["user"]) for r in got] == [
        ("changed", "Summer", "alice"),
        ("created", "Spring", "alice"),
    ]
    assert all(r["tenant id"] == str(tenant.pk) for r in got)


def test_only_admin_and_analyst_roles_see_the_audit_page(client, tenant):
    for role, status in (
        ("Admin", 200),
        ("Analyst", 200),
        ("Marketer", 403),
        ("Junior marketer", 403),
        ("Support agent", 403),
    ):
        client.force_login(staff(role, tenant))
        assert client.get(AUDIT).status_code == status, role


def test_failed_and_successful_sign_ins_are_on_the_audit_page(client, tenant):
    user = UserFactory(username="dave")
    user.set_password("right-password-1")
    user.save()
    assert client.post("/admin/login/", {"username": "dave", "password": "wrong"}).status_code == 200
    assert client.post("/admin/login/", {"username": "dave", "password": "right-password-1"}).status_code == 302
    client.force_login(staff("Analyst", tenant))
    page = table(client.get(AUDIT, {"model": "sign-in"}))
    assert 'data-action="sign_in_failed"' in page and 'data-action="signed_in"' in page and "dave" in page
    failed = client.get(AUDIT, {"action": "sign_in_failed", "format": "csv"})
    assert [(r["user"], r["model"]) for r in rows(failed)] == [("dave", "sign-in")]


def test_audit_page_queries_do_not_grow_with_entries(client, tenant, django_assert_max_num_queries):
    alice = staff("Marketer", tenant, username="alice")
    analyst = staff("Analyst", tenant)
    make_campaign(client, tenant, alice, "One")
    client.force_login(analyst)
    client.get(AUDIT)
    reset_queries()  # the log is bounded: a full one would capture nothing
    with CaptureQueriesContext(connection) as few:
        client.get(AUDIT, {"model": "campaigns.campaign"})
    budget = len(few.captured_queries)
    for n in range(30):
        make_campaign(client, tenant, alice, f"C{n}")
    client.force_login(analyst)
    with django_assert_max_num_queries(budget):
        page = client.get(AUDIT, {"model": "campaigns.campaign"})
    assert page.content.decode().count('class="audit-entry"') == 31


def test_staff_points_adjustments_are_on_the_audit_page(client, tenant, other_tenant):
    from loyalty.ledger.adjustments import points_adjust
    from tests.factories import earning_setup

    agent = staff("Support agent", tenant, username="sam")
    _program, _rule, member = earning_setup(tenant)
    points_adjust(member=member, points=25, reason="apology for the late parcel", staff_user=agent)
    _p, _r, elsewhere = earning_setup(other_tenant)
    points_adjust(member=elsewhere, points=40, reason="other tenant", staff_user=UserFactory(is_superuser=True))
    client.force_login(staff("Analyst", tenant))
    got = rows(client.get(AUDIT, {"action": "adjustment", "format": "csv"}))
    assert [(r["user"], r["object"], r["reason / detail"]) for r in got] == [
        ("sam", "25", "apology for the late parcel")
    ]
