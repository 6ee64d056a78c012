"""Sending a campaign's codes to a segment now: once per member, with consent, cancellable, with progress."""

import pytest
from django.core import mail

from campaigns.distribution import (
    segment_send_cancel,
    segment_send_progress,
    segment_send_resume,
    segment_send_run,
    segment_send_start,
)
from campaigns.models import Publication, SegmentSend, SegmentSendRecipient
from campaigns.services import publication_create
from common.errors import ApplicationError
from members.services import segment_declare, segment_upload_static
from tests.factories import CampaignFactory, CodeFactory, MemberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(tenant):
    campaign = CampaignFactory(tenant=tenant, description="Spring is here.")
    CodeFactory.create_batch(20, campaign=campaign)
    return campaign


@pytest.fixture
def start(django_capture_on_commit_callbacks):
    """Start a send and run its task as the commit would (in-process tasks)."""

    def start(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return segment_send_start(**kwargs)

    return start


@pytest.fixture
def resume(django_capture_on_commit_callbacks):
    def resume(send):
        with django_capture_on_commit_callbacks(execute=True):
            return segment_send_resume(send=send)

    return resume


def gb_segment(tenant):
    return segment_declare(tenant=tenant, code="gb", name="GB", criteria={"country": ["GB"]})


def test_a_send_reaches_consenting_members_once_and_counts_the_rest(tenant, campaign, start):
    consenting = MemberFactory.create_batch(4, tenant=tenant, country="GB", email_consent=True)
    refusing = MemberFactory(tenant=tenant, country="GB", email_consent=False, sms_consent=True)
    holder = MemberFactory(tenant=tenant, country="GB", email_consent=True)
    publication_create(tenant=tenant, campaign=campaign, member=holder)
    MemberFactory(tenant=tenant, country="FR", email_consent=True)  # not in the segment
    send = start(campaign=campaign, segment=gb_segment(tenant), message="Just for you")
    send.refresh_from_db()
    assert send.status == "done"
    progress = segment_send_progress(send)
    assert (progress["sent"], progress["skipped_consent"], progress["skipped_held"], progress["failed"]) == (4, 1, 1, 0)
    assert progress["total"] == 6 and progress["pending"] == 0
    assert sorted(m.to[0] for m in mail.outbox) == sorted(m.email for m in consenting)
    assert "Just for you" in mail.outbox[0].body and "Spring is here." in mail.outbox[0].body
    assert not Publication.objects.filter(member=refusing).exists()
    assert Publication.objects.filter(campaign=campaign, channel="email").count() == 4


def test_running_a_send_again_or_a_second_send_emails_nobody_twice(tenant, campaign, start):
    MemberFactory.create_batch(3, tenant=tenant, country="GB", email_consent=True)
    segment = gb_segment(tenant)
    send = start(campaign=campaign, segment=segment)
    assert len(mail.outbox) == 3
    SegmentSend.objects.filter(pk=send.pk).update(status="running")  # as if a retried task ran it again
    assert segment_send_run(send_id=send.pk) is False
    assert len(mail.outbox) == 3
    again = start(campaign=campaign, segment=segment)
    assert len(mail.outbox) == 3
    assert segment_send_progress(again)["skipped_held"] == 3
    assert Publication.objects.filter(campaign=campaign).count() == 3


def test_a_send_works_in_batches_and_a_cancel_stops_it(tenant, campaign, django_capture_on_commit_callbacks):
    members = MemberFactory.create_batch(7, tenant=tenant, email_consent=True)
    segment = segment_declare(tenant=tenant, code="list", name="List", kind="static")
    segment_upload_static(segment=segment, external_ids=[m.external_id for m in members])
    with django_capture_on_commit_callbacks(execute=False):  # the task runs below, batch by batch
        send = segment_send_start(campaign=campaign, segment=segment)
    assert segment_send_run(send_id=send.pk, batch_size=3, batches=1) is True
    assert segment_send_progress(send)["sent"] == 3 and len(mail.outbox) == 3
    assert segment_send_cancel(send=send) is True
    assert segment_send_run(send_id=send.pk, batch_size=3, batches=5) is False
    progress = segment_send_progress(send)
    assert (progress["sent"], progress["pending"]) == (3, 4)
    assert len(mail.outbox) == 3
    send.refresh_from_db()
    assert send.status == "cancelled" and segment_send_cancel(send=send) is False


def test_a_send_stops_when_codes_run_out_and_resumes_without_repeats(tenant, start, resume):
    campaign = CampaignFactory(tenant=tenant)
    CodeFactory.create_batch(2, campaign=campaign)
    MemberFactory.create_batch(4, tenant=tenant, country="GB", email_consent=True)
    send = start(campaign=campaign, segment=gb_segment(tenant))
    send.refresh_from_db()
    assert (send.status, send.stop_reason) == ("stopped", "no_codes_left")
    assert segment_send_progress(send)["sent"] == 2 and segment_send_progress(send)["pending"] == 2
    CodeFactory.create_batch(2, campaign=campaign)
    assert resume(send) is True
    send.refresh_from_db()
    assert send.status == "done" and segment_send_progress(send)["sent"] == 4
    assert len(mail.outbox) == 4 and len({m.to[0] for m in mail.outbox}) == 4


def test_a_second_start_while_one_runs_is_refused_and_other_tenants_segments_too(tenant, other_tenant, campaign):
    segment = gb_segment(tenant)
    SegmentSend.objects.create(tenant=tenant, campaign=campaign, segment=segment, status="running")
    with pytest.raises(ApplicationError) as refused:
        segment_send_start(campaign=campaign, segment=segment)
    assert refused.value.code == "send_in_progress"
    foreign = segment_declare(tenant=other_tenant, code="gb", name="GB", criteria={})
    with pytest.raises(ApplicationError) as refused:
        segment_send_start(campaign=campaign, segment=foreign)
    assert "segment" in refused.value.details
    assert SegmentSendRecipient.objects.count() == 0


@pytest.mark.redis
@pytest.mark.postgres
def test_a_send_runs_through_a_real_worker(celery_worker_app, tenant):
    import time

    campaign = CampaignFactory(tenant=tenant)
    CodeFactory.create_batch(5, campaign=campaign)
    MemberFactory.create_batch(4, tenant=tenant, country="GB", email_consent=True)
    send = segment_send_start(campaign=campaign, segment=gb_segment(tenant))  # commits: the task is queued
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        send.refresh_from_db()
        if send.status == "done":
            break
        time.sleep(0.2)
    assert send.status == "done"
    assert segment_send_progress(send)["sent"] == 4 and len(mail.outbox) == 4
