"""Two reminder sweeps, and two runs of one segment send, at once on real PostgreSQL (two connections): the
second takes only rows the first did not claim, and every member is emailed exactly once."""

import datetime as dt

import pytest
from django.core import mail
from django.utils import timezone

from campaigns import distribution, reminders
from campaigns.distribution import segment_send_progress, segment_send_run
from campaigns.models import ReminderDelivery, SegmentSend
from campaigns.reminders import reminder_step_save, reminders_send_due
from campaigns.services import publication_create
from members.services import segment_declare
from tests.concurrency.test_batch_job_overlap import two_runs_at_once
from tests.factories import CampaignFactory, CodeFactory, MemberFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_sweeps_at_once_send_each_reminder_once(tenant):
    campaign = CampaignFactory(tenant=tenant)
    CodeFactory.create_batch(6, campaign=campaign)
    reminder_step_save(campaign=campaign, days_after=3, message="Still yours")
    members = MemberFactory.create_batch(6, tenant=tenant, email_consent=True)
    for member in members:
        publication_create(tenant=tenant, campaign=campaign, member=member)
    later = timezone.now() + dt.timedelta(days=4)
    results, errors = two_runs_at_once(
        lambda: reminders_send_due(now=later, batch_size=2), (reminders, "code_reminder_send")
    )
    assert not errors, errors
    assert results["first"].sent + results["second"].sent == 6
    assert results["second"].sent > 0  # the second worked alongside, on other rows
    assert sorted(m.to[0] for m in mail.outbox) == sorted(m.email for m in members)
    assert ReminderDelivery.objects.filter(state="sent").count() == 6


def test_two_runs_of_one_send_at_once_email_each_member_once(tenant):
    campaign = CampaignFactory(tenant=tenant)
    CodeFactory.create_batch(8, campaign=campaign)
    members = MemberFactory.create_batch(6, tenant=tenant, country="GB", email_consent=True)
    segment = segment_declare(tenant=tenant, code="gb", name="GB", criteria={"country": ["GB"]})
    send = SegmentSend.objects.create(tenant=tenant, campaign=campaign, segment=segment)
    segment_send_run(send_id=send.pk, batch_size=1, batches=0)  # lists the members, sends nothing yet
    results, errors = two_runs_at_once(
        lambda: segment_send_run(send_id=send.pk, batch_size=2, batches=10), (distribution, "code_email_send")
    )
    assert not errors, errors
    assert sorted(m.to[0] for m in mail.outbox) == sorted(m.email for m in members)
    progress = segment_send_progress(send)
    assert progress["sent"] == 6 and progress["pending"] == progress["claimed"] == 0
    send.refresh_from_db()
    assert send.status == "done"
