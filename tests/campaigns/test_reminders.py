"""Reminder sequences: the sweep over its state table under a frozen clock, and through a real worker."""

import datetime as dt

import pytest
import time_machine
from django.core import mail

from campaigns.models import ReminderDelivery
from campaigns.reminders import member_reminders, reminder_step_save, reminders_send_due, reminders_sent_count
from campaigns.services import publication_create
from common.errors import ApplicationError
from members.services import member_consent_set
from tests.factories import CampaignFactory, CodeFactory, MemberFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
T0 = dt.datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def at(days: float):
    return time_machine.travel(T0 + dt.timedelta(days=days), tick=False)


@pytest.fixture
def sequence(tenant):
    """A campaign with reminders on day 3 and day 10, and a member who got one of its codes at T0."""
    campaign = CampaignFactory(tenant=tenant)
    CodeFactory.create_batch(3, campaign=campaign)
    with at(-1):
        reminder_step_save(campaign=campaign, days_after=3, message="Three days on: still yours.")
        reminder_step_save(campaign=campaign, days_after=10, message="Last call.", subject="Last call")
    member = MemberFactory(tenant=tenant, email_consent=True)
    with at(0):
        publication, _ = publication_create(tenant=tenant, campaign=campaign, member=member)
    return campaign, member, publication


def test_a_reminder_is_sent_when_due_and_not_before(sequence):
    campaign, member, publication = sequence
    with at(2.9):
        assert reminders_send_due().sent == 0
    assert mail.outbox == []
    with at(3):
        result = reminders_send_due()
    assert (result.written, result.sent) == (1, 1)
    assert [m.to for m in mail.outbox] == [[member.email]]
    assert "Three days on: still yours." in mail.outbox[0].body and publication.code.code in mail.outbox[0].body
    with at(9):
        assert reminders_send_due().sent == 0
    with at(10.5):
        assert reminders_send_due().sent == 1
    assert mail.outbox[1].subject == "Last call"
    assert reminders_sent_count(campaign) == 2
    assert [d.step.days_after for d in member_reminders(member)] == [10, 3]


def test_running_the_sweep_twice_sends_once(sequence):
    with at(4):
        first, second = reminders_send_due(), reminders_send_due()
    assert (first.sent, second.sent, second.written) == (1, 0, 0)
    assert len(mail.outbox) == 1 and ReminderDelivery.objects.get().state == "sent"


def test_a_code_redeemed_in_between_gets_no_reminder(sequence):
    campaign, member, publication = sequence
    with at(3):
        reminders_send_due()
    type(publication.code).objects.filter(pk=publication.code_id).update(redeemed_count=1)  # as a redemption does
    with at(11):
        result = reminders_send_due()
    assert (result.sent, result.stopped) == (0, 1)
    assert len(mail.outbox) == 1
    stopped = ReminderDelivery.objects.get(step__days_after=10)
    assert (stopped.state, stopped.stop_reason) == ("stopped", "redeemed")


def test_a_withdrawn_email_consent_stops_the_reminders(sequence):
    campaign, member, publication = sequence
    member_consent_set(member=member, consent={"email": False})
    with at(3):
        result = reminders_send_due()
    assert (result.sent, result.stopped) == (0, 1)
    assert mail.outbox == []
    assert ReminderDelivery.objects.get().stop_reason == "no_consent"


def test_an_expired_code_gets_no_reminder(sequence):
    campaign, member, publication = sequence
    type(publication.code).objects.filter(pk=publication.code_id).update(expires_at=T0 + dt.timedelta(days=2))
    with at(3):
        assert reminders_send_due().stopped == 1
    assert mail.outbox == []


def test_a_new_step_does_not_remind_old_publications(sequence, tenant):
    campaign, member, publication = sequence
    with at(30):
        reminder_step_save(campaign=campaign, days_after=20, message="Late.")
        result = reminders_send_due()
    assert result.sent == 2  # day 3 and day 10, late; day 20 was due before the step existed
    assert not ReminderDelivery.objects.filter(step__days_after=20).exists()


def test_steps_are_checked(sequence):
    campaign, member, publication = sequence
    with pytest.raises(ApplicationError) as refused:
        reminder_step_save(campaign=campaign, days_after=3, message="")
    assert set(refused.value.details) == {"days_after", "message"}
    with pytest.raises(ApplicationError):
        reminder_step_save(campaign=campaign, days_after=0, message="x")


@pytest.mark.redis
@pytest.mark.postgres
def test_the_beat_sweep_sends_through_a_real_worker(celery_worker_app, tenant):
    from campaigns.tasks import reminders_sweep
    from config.tasks import ping

    campaign = CampaignFactory(tenant=tenant)
    CodeFactory(campaign=campaign)
    with at(-1):
        reminder_step_save(campaign=campaign, days_after=3, message="From the worker.")
    member = MemberFactory(tenant=tenant, email_consent=True)
    with at(0):
        publication_create(tenant=tenant, campaign=campaign, member=member)
    with time_machine.travel(T0 + dt.timedelta(days=3.5), tick=True):  # a ticking clock: the result wait needs it
        reminders_sweep.delay()
        reminders_sweep.delay()
        # The solo worker takes tasks in order: once this answers, both sweeps have run (they keep no result).
        assert ping.delay().get(timeout=30)["pong"] is True
    assert ReminderDelivery.objects.get().state == "sent"
    assert [m.to for m in mail.outbox] == [[member.email]] and "From the worker." in mail.outbox[0].body
