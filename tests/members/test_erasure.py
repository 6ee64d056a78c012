"""Erasure of a member's personal data (GDPR art. 17): what `member_erase` removes, what it keeps (every sum and
report figure), the external id's reuse per tenant, the grace-period task, and the admin's carry-out."""

import datetime as dt
import threading

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.db import connection
from django.db.models import Sum
from django.urls import reverse
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from common.errors import ApplicationError
from loyalty.models import Account, LedgerEntry, Order
from members.admin_tenancy import ACCESS_TENANT
from members.cockpit_links import cockpit_link_make, cockpit_link_use, cockpit_sign_in_member
from members.models import ConsentChange, CustomEvent, ErasureRequest, Member
from members.services import erasure_request_create, member_consent_set, member_erase, member_upsert
from members.tasks import erase_due_members
from reports.selectors import Report, ReportFilters, ReportRange
from rewards.models import Redemption
from tests.factories import MemberFactory, TenantFactory, UserFactory, api_key_for
from tests.reports import scenario

pytestmark = pytest.mark.django_db

PERSONAL = ("email", "name", "phone", "country", "city", "birth_date", "attributes")


def api_for(tenant) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(tenant)[1]}")
    return client


@pytest.fixture
def member(tenant):
    member, _ = member_upsert(
        tenant=tenant,
        external_id="crm-42",
        email="ada@example.com",
        name="Ada Lovelace",
        phone="+44 20 7946 0000",
        country="GB",
        city="London",
        birth_date="1815-12-10",
        attributes={"shoe_size": 38},
        marketing_consent=True,
    )
    member_upsert(tenant=tenant, external_id="crm-42", name="Ada King")  # a second history row
    return member


def test_erasure_removes_personal_data_from_the_member_and_its_history(tenant, member):
    staff = UserFactory()
    CustomEvent.objects.create(
        tenant=tenant,
        member=member,
        name="review_written",
        metadata={"text": "Ada's review"},
        occurred_at=member.created_at,
    )
    old_referral = member.referral_code
    erased, now_erased = member_erase(member=member, staff_user=staff)
    assert now_erased
    erased.refresh_from_db()
    assert erased.status == Member.Status.ERASED
    assert (erased.email, erased.name, erased.phone, erased.country, erased.city) == ("", "", "", "", "")
    assert erased.birth_date is None and erased.attributes == {}
    assert erased.referral_code != old_referral  # it began with the name
    assert erased.external_id == "crm-42"  # kept (reserved): the tenant does not allow reuse
    assert (erased.email_consent, erased.sms_consent, erased.push_consent, erased.marketing_consent) == (
        False,
        False,
        False,
        False,
    )
    withdrawn = ConsentChange.objects.filter(member=member, source=ConsentChange.Source.ERASURE)
    assert sorted(withdrawn.values_list("channel", "granted")) == [("email", False), ("push", False), ("sms", False)]
    # django-simple-history kept each save's values: none of them holds the personal data any more.
    history = list(member.history.all())
    assert len(history) >= 3
    for row in history:
        assert (row.email, row.name, row.phone, row.country, row.city, row.birth_date) == ("", "", "", "", "", None)
        assert row.attributes == {} and row.referral_code == erased.referral_code
    assert member.history.filter(email__icontains="ada").count() == 0
    assert member.history.first().history_change_reason == "erased"
    assert member.history.first().history_user == staff
    assert CustomEvent.objects.get(member=member).metadata == {}
    request = ErasureRequest.objects.get(member=member)
    assert (request.state, request.carried_out_by, request.automatic) == ("carried_out", staff, False)


def test_an_erased_member_cannot_sign_in_nor_be_found_by_email(client, tenant, member):
    token = cockpit_link_make(member=member).token
    member_erase(member=member)
    assert cockpit_sign_in_member(tenant=tenant, email="ada@example.com") is None
    with pytest.raises(ApplicationError) as refused:
        cockpit_link_use(tenant=tenant, token=token)
    assert refused.value.code == "member_inactive"
    body = api_for(tenant).get("/api/v1/members/crm-42").json()
    assert body["status"] == "erased" and body["email"] == "" and body["name"] == ""
    assert body["consent"] == {"email": False, "sms": False, "push": False}
    admin = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin)
    listing = client.get(reverse("admin:members_member_changelist"), {"q": "ada@example.com"})
    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 0
    assert client.get(reverse("admin:members_member_changelist"), {"q": "Lovelace"}).context["cl"].result_count == 0


def test_erasure_keeps_every_ledger_sum_and_report_figure(tenant):
    history, names = scenario.build(tenant)

    def figures():
        with time_machine.travel(scenario.NOW, tick=False):
            span = ReportRange(tenant, scenario.FIRST, scenario.LAST)
            filters = (ReportFilters(), ReportFilters(tier_code="gold"), ReportFilters(segment=names["segment"]))
            summaries = [Report(span, f).summary() for f in filters]
        ledger = LedgerEntry.objects.filter(tenant=tenant).aggregate(points=Sum("points"))["points"]
        balances = sorted(Account.objects.filter(tenant=tenant).values_list("member_id", "balance"))
        orders = Order.objects.filter(tenant=tenant).aggregate(amount=Sum("amount"))["amount"]
        redeemed = Redemption.objects.filter(tenant=tenant).aggregate(total=Sum("total"), discount=Sum("discount"))
        return summaries, ledger, balances, orders, redeemed

    before = figures()
    for key in ("a", "b"):
        member_erase(member=names[key])
    assert Member.objects.filter(tenant=tenant, status=Member.Status.ERASED).count() == 2
    assert figures() == before


def test_erasing_twice_does_nothing_the_second_time(tenant, member):
    member_erase(member=member)
    rows = member.history.count()
    _erased, now_erased = member_erase(member=member)
    assert not now_erased
    assert member.history.count() == rows
    assert ErasureRequest.objects.filter(member=member).count() == 1


def test_an_erased_members_external_id_is_refused_unless_the_tenant_allows_reuse(tenant, member):
    member_erase(member=member)
    api = api_for(tenant)
    refused = api.put("/api/v1/members/crm-42", {"email": "new@example.com"}, format="json")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "member_erased"
    assert Member.objects.get(pk=member.pk).email == ""
    with pytest.raises(ApplicationError) as blocked:
        member_consent_set(member=member, consent={"email": True})
    assert blocked.value.code == "member_erased"

    tenant.erased_external_id_reusable = True
    tenant.save()
    created = api.put("/api/v1/members/crm-42", {"email": "new@example.com"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "active"
    fresh = Member.objects.get(tenant=tenant, external_id="crm-42")
    assert fresh.pk != member.pk
    old = Member.objects.get(pk=member.pk)
    assert old.status == Member.Status.ERASED and old.external_id.startswith("erased-")
    assert not member.history.filter(external_id="crm-42").exists()


def test_with_reuse_allowed_erasure_replaces_the_external_id_by_a_pseudonym(tenant, member):
    tenant.erased_external_id_reusable = True
    tenant.save()
    erased, _ = member_erase(member=member)
    assert erased.external_id.startswith("erased-")
    assert not Member.history.filter(id=member.pk, external_id="crm-42").exists()
    assert api_for(tenant).get("/api/v1/members/crm-42").status_code == 404


# --- the grace period -------------------------------------------------------------------------------------


def test_requests_are_carried_out_automatically_after_the_grace_period(tenant, member, settings):
    settings.ERASURE_GRACE_DAYS = 10
    waiting = MemberFactory(tenant=tenant)
    with time_machine.travel("2026-05-01 12:00:00+00:00", tick=False):
        erasure_request_create(member=member)
    with time_machine.travel("2026-05-08 12:00:00+00:00", tick=False):
        erasure_request_create(member=waiting)
    with time_machine.travel("2026-05-11 11:59:00+00:00", tick=False):
        assert erase_due_members() == 0
    with time_machine.travel("2026-05-11 12:00:00+00:00", tick=False):
        assert erase_due_members() == 1
        assert erase_due_members() == 0  # run again: nothing twice
    member.refresh_from_db()
    waiting.refresh_from_db()
    assert member.status == Member.Status.ERASED and waiting.status == Member.Status.ACTIVE
    request = ErasureRequest.objects.get(member=member)
    assert (request.state, request.automatic, request.carried_out_by) == ("carried_out", True, None)
    assert request.carried_out_at.isoformat() == "2026-05-11T12:00:00+00:00"


def test_a_cancelled_request_is_not_carried_out(tenant, member, settings):
    from members.services import erasure_request_cancel

    settings.ERASURE_GRACE_DAYS = 0
    erasure_request_create(member=member)
    assert erasure_request_cancel(member=member) == 1
    assert erase_due_members() == 0
    assert Member.objects.get(pk=member.pk).status == Member.Status.ACTIVE


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_runs_of_the_task_at_once_erase_each_member_once(settings):
    settings.ERASURE_GRACE_DAYS = 0
    tenant = TenantFactory()
    members = [MemberFactory(tenant=tenant, marketing_consent=True) for _ in range(6)]
    for m in members:
        erasure_request_create(member=m)
    results, errors = [], []
    barrier = threading.Barrier(2)

    def run():
        try:
            barrier.wait()
            results.append(erase_due_members())
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(results) == 6
    assert Member.objects.filter(tenant=tenant, status=Member.Status.ERASED).count() == 6
    assert ErasureRequest.objects.filter(tenant=tenant, state="carried_out").count() == 6
    assert ConsentChange.objects.filter(tenant=tenant, source="erasure").count() == 6 * 3


# --- the admin --------------------------------------------------------------------------------------------


def _staff(tenant, *perms):
    user = UserFactory(is_staff=True)
    assign_perm(ACCESS_TENANT, user, tenant)
    for codename in ("view_erasurerequest", *perms):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def test_staff_see_the_requests_and_carry_one_out_from_its_page(client, tenant, member):
    request = erasure_request_create(member=member)[0]
    admin = _staff(tenant, "carry_out_erasurerequest")
    client.force_login(admin)
    listing = client.get(reverse("admin:members_erasurerequest_changelist"))
    assert listing.status_code == 200 and "crm-42" in listing.content.decode()
    page = reverse("admin:members_erasurerequest_carry_out", args=[request.pk])
    assert client.get(page).status_code == 200
    assert client.post(page, {}).status_code == 200  # not confirmed: shown again
    assert Member.objects.get(pk=member.pk).status == Member.Status.ACTIVE
    assert client.post(page, {"confirm": "on"}).status_code == 302
    request.refresh_from_db()
    assert (request.state, request.carried_out_by) == ("carried_out", admin)
    assert Member.objects.get(pk=member.pk).status == Member.Status.ERASED


def test_carrying_out_without_the_permission_is_refused_even_by_a_direct_post(client, tenant, member):
    request = erasure_request_create(member=member)[0]
    client.force_login(_staff(tenant))
    listing = client.get(reverse("admin:members_erasurerequest_changelist"))
    assert "carry_out" not in listing.content.decode()
    page = reverse("admin:members_erasurerequest_carry_out", args=[request.pk])
    assert client.post(page, {"confirm": "on"}).status_code == 403
    client.post(
        reverse("admin:members_erasurerequest_changelist"), {"action": "carry_out", "_selected_action": [request.pk]}
    )
    assert Member.objects.get(pk=member.pk).status == Member.Status.ACTIVE
    assert ErasureRequest.objects.get(pk=request.pk).state == "requested"


def test_an_object_permission_allows_that_request_only(client, tenant, member):
    other = MemberFactory(tenant=tenant)
    mine = erasure_request_create(member=member)[0]
    theirs = erasure_request_create(member=other)[0]
    user = _staff(tenant)
    assign_perm("members.carry_out_erasurerequest", user, mine)
    client.force_login(user)
    changelist = reverse("admin:members_erasurerequest_changelist")
    client.post(changelist, {"action": "carry_out", "_selected_action": [mine.pk, theirs.pk]})
    assert Member.objects.get(pk=member.pk).status == Member.Status.ERASED
    assert Member.objects.get(pk=other.pk).status == Member.Status.ACTIVE
    assert (
        client.post(reverse("admin:members_erasurerequest_carry_out", args=[theirs.pk]), {"confirm": "on"}).status_code
        == 403
    )


def test_another_tenants_request_is_not_found(client, tenant, member):
    foreign = erasure_request_create(member=MemberFactory(tenant=TenantFactory()))[0]
    client.force_login(_staff(tenant, "carry_out_erasurerequest"))
    page = reverse("admin:members_erasurerequest_carry_out", args=[foreign.pk])
    assert client.post(page, {"confirm": "on"}).status_code == 404
    assert ErasureRequest.objects.get(pk=foreign.pk).state == "requested"


def test_the_member_page_shows_erasure_requests_and_refuses_edits_of_an_erased_member(client, tenant, member):
    erasure_request_create(member=member)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    change = reverse("admin:members_member_change", args=[member.pk])
    assert "Requested" in client.get(change).content.decode()
    member_erase(member=member)
    response = client.post(change, {"email": "back@example.com", "name": "Ada"})
    assert response.status_code == 200  # the form's error, not a save
    assert Member.objects.get(pk=member.pk).email == ""


def test_due_dates_follow_the_setting(tenant, member, settings):
    settings.ERASURE_GRACE_DAYS = 3
    with time_machine.travel("2026-05-01 12:00:00+00:00", tick=False):
        request = erasure_request_create(member=member)[0]
    from members.admin import ErasureRequestAdmin

    assert ErasureRequestAdmin.due_at(None, request) == request.requested_at + dt.timedelta(days=3)
