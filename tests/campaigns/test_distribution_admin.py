"""The distribution pages through the real admin, per role: send to a segment, progress, cancel, CSV export,
reminder steps, and the reminders on the member page."""

import csv
import datetime as dt
import io

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from guardian.shortcuts import assign_perm

from campaigns.models import Campaign, Code, Publication, ReminderStep, SegmentSend
from campaigns.reminders import reminder_step_save, reminders_send_due
from campaigns.services import publication_create
from members.services import segment_declare
from tests.factories import CampaignFactory, CodeFactory, MemberFactory, UserFactory

pytestmark = pytest.mark.django_db


def staff_of(tenant, role):
    """Staff of `tenant` granted its campaigns so far (rights per campaign: test_admin_rights.py); what their role
    allows on sends and exports is what these tests check."""
    user = UserFactory()
    user.groups.add(Group.objects.get(name=role))
    assign_perm("members.access_tenant", user, tenant)
    for campaign in Campaign.objects.filter(tenant=tenant):
        assign_perm("campaigns.view_campaign", user, campaign)
        assign_perm("campaigns.change_campaign", user, campaign)
    return user


@pytest.fixture
def campaign(tenant):
    campaign = CampaignFactory(tenant=tenant, name="Spring")
    CodeFactory.create_batch(10, campaign=campaign)
    return campaign


@pytest.fixture
def segment(tenant):
    return segment_declare(tenant=tenant, code="gb", name="Great Britain", criteria={"country": ["GB"]})


def start_url(campaign):
    return reverse("admin:campaigns_segmentsend_start", args=[campaign.pk])


def test_a_marketer_starts_a_send_from_the_campaign_page_and_follows_it(
    client, tenant, campaign, segment, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    MemberFactory.create_batch(3, tenant=tenant, country="GB", email_consent=True)
    MemberFactory(tenant=tenant, country="GB", email_consent=False)
    client.force_login(staff_of(tenant, "Marketer"))
    page = client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk])).content.decode()
    assert start_url(campaign) in page and "Reminders: 0 sent" in page
    form = client.get(start_url(campaign))
    assert form.status_code == 200 and "Great Britain" in form.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(start_url(campaign), {"segment": segment.pk, "message": "Hi!", "confirm": "on"})
    send = SegmentSend.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/{send.pk}/change/")
    assert len(mail.outbox) == 3
    with django_assert_max_num_queries(12):
        progress = client.get(response["Location"])
    body = progress.content.decode()
    assert 'data-state="sent">3<' in body and 'data-state="skipped_consent">1<' in body
    SegmentSend.objects.create(tenant=tenant, campaign=campaign, segment=segment, status="done")
    with CaptureQueriesContext(connection) as one_more:
        listing = client.get(reverse("admin:campaigns_segmentsend_changelist"))
    assert listing.status_code == 200 and "Great Britain" in listing.content.decode()
    SegmentSend.objects.create(tenant=tenant, campaign=campaign, segment=segment, status="done")
    with CaptureQueriesContext(connection) as two_more:
        client.get(reverse("admin:campaigns_segmentsend_changelist"))
    assert len(two_more) == len(one_more)


@pytest.mark.parametrize("role", ["Junior marketer", "Support agent"])
def test_roles_without_the_right_cannot_start_a_send_even_by_a_direct_post(client, tenant, campaign, segment, role):
    MemberFactory(tenant=tenant, country="GB", email_consent=True)
    client.force_login(staff_of(tenant, role))
    response = client.post(start_url(campaign), {"segment": segment.pk, "confirm": "on"})
    assert response.status_code == 403
    assert not SegmentSend.objects.exists() and not Publication.objects.exists()


def test_another_tenants_marketer_does_not_see_the_campaign(client, tenant, other_tenant, campaign, segment):
    client.force_login(staff_of(other_tenant, "Marketer"))
    assert client.post(start_url(campaign), {"segment": segment.pk, "confirm": "on"}).status_code == 404
    export = reverse("admin:campaigns_segmentsend_export", args=[campaign.pk])
    assert client.get(export).status_code == 404
    assert not SegmentSend.objects.exists()


def test_a_segment_of_another_tenant_is_a_form_error(client, tenant, other_tenant, campaign):
    foreign = segment_declare(tenant=other_tenant, code="x", name="Foreign", criteria={})
    client.force_login(staff_of(tenant, "Marketer"))
    response = client.post(start_url(campaign), {"segment": foreign.pk, "confirm": "on"})
    assert response.status_code == 200 and response.context["form"].errors["segment"]
    assert not SegmentSend.objects.exists()


def test_cancel_is_a_post_by_someone_allowed_to_send(client, tenant, campaign, segment):
    send = SegmentSend.objects.create(tenant=tenant, campaign=campaign, segment=segment, status="running")
    cancel = reverse("admin:campaigns_segmentsend_cancel", args=[send.pk])
    client.force_login(staff_of(tenant, "Junior marketer"))
    assert client.post(cancel).status_code == 403
    client.force_login(staff_of(tenant, "Marketer"))
    assert client.get(cancel).status_code == 405
    page = client.get(reverse("admin:campaigns_segmentsend_change", args=[send.pk])).content.decode()
    assert cancel in page
    assert client.post(cancel).status_code == 302
    send.refresh_from_db()
    assert send.status == "cancelled"


def test_export_streams_every_publication_of_consenting_members(client, tenant, campaign):
    other = CampaignFactory(tenant=tenant)
    members = MemberFactory.create_batch(3000, tenant=tenant, email_consent=True)
    codes = Code.objects.bulk_create(
        Code(tenant=tenant, campaign=campaign, code=f"EXP-{i:05d}", member=m) for i, m in enumerate(members)
    )
    at = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    Publication.objects.bulk_create(
        Publication(tenant=tenant, campaign=campaign, code=c, member=c.member, channel="email", published_at=at)
        for c in codes
    )
    refusing = MemberFactory(tenant=tenant, email_consent=False)
    publication_create(tenant=tenant, campaign=campaign, member=refusing)
    CodeFactory(campaign=other)
    publication_create(tenant=tenant, campaign=other, member=members[0])
    client.force_login(staff_of(tenant, "Marketer"))
    url = reverse("admin:campaigns_segmentsend_export", args=[campaign.pk])
    response = client.get(url)
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 3000
    assert {r["code"] for r in rows} == {c.code for c in codes}
    first = rows[0]
    assert first["email"] == members[0].email and first["external_id"] == members[0].external_id
    assert first["published_at"] == at.isoformat() and first["channel"] == "email"
    everyone = list(csv.DictReader(io.StringIO(b"".join(client.get(url + "?all=1").streaming_content).decode())))
    assert len(everyone) == 3001 and everyone[-1]["email_consent"] == "no"
    all_codes = b"".join(client.get(url + "?what=codes").streaming_content).decode().splitlines()
    assert len(all_codes) == 1 + campaign.codes.count()


@pytest.mark.parametrize("role", ["Support agent", "Junior marketer"])
def test_export_needs_the_export_right(client, tenant, campaign, role):
    client.force_login(staff_of(tenant, role))
    assert client.get(reverse("admin:campaigns_segmentsend_export", args=[campaign.pk])).status_code == 403


def test_reminder_steps_are_added_in_the_admin_through_the_service(client, tenant, campaign):
    client.force_login(staff_of(tenant, "Marketer"))
    add = reverse("admin:campaigns_reminderstep_add")
    data = {"campaign": campaign.pk, "days_after": "3", "subject": "", "message": "Still yours", "active": "on"}
    assert client.post(add, data).status_code == 302
    step = ReminderStep.objects.get()
    assert (step.tenant_id, step.days_after, step.message) == (tenant.pk, 3, "Still yours")
    assert step.history.first().history_user is not None
    again = client.post(add, {**data, "message": ""})
    assert again.status_code == 200 and ReminderStep.objects.count() == 1
    errors = again.context["adminform"].form.errors
    assert "message" in errors and "already exists" in str(errors)


def test_sent_reminders_show_on_the_member_page_in_constant_queries(client, tenant, campaign):
    t0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    with time_machine.travel(t0 - dt.timedelta(days=1), tick=False):
        for days in (2, 5):
            reminder_step_save(campaign=campaign, days_after=days, message=f"Day {days}")
    member = MemberFactory(tenant=tenant, email_consent=True)
    with time_machine.travel(t0, tick=False):
        publication, _ = publication_create(tenant=tenant, campaign=campaign, member=member)
    with time_machine.travel(t0 + dt.timedelta(days=2), tick=False):
        reminders_send_due()
    client.force_login(staff_of(tenant, "Support agent"))
    story = reverse("admin:members_member_story", args=[member.pk])
    client.get(story)  # the first request of a session reads more (session, permissions)
    with CaptureQueriesContext(connection) as one:
        body = client.get(story).content.decode()
    assert 'id="reminders"' in body and "Day 2 reminder" in body and publication.code.code in body
    with time_machine.travel(t0 + dt.timedelta(days=5), tick=False):
        reminders_send_due()
    with CaptureQueriesContext(connection) as two:
        body = client.get(story).content.decode()
    assert "Day 5 reminder" in body
    assert len(two) == len(one)
    client.force_login(staff_of(tenant, "Marketer"))
    page = client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk])).content.decode()
    assert "Reminders: 2 sent" in page
