"""Scheduled digests: the period in the tenant's zone, the email (HTML, text, inline chart), each period once
(beat restarts, two runs at once on PostgreSQL), and only to staff who may still see the figures."""

import datetime as dt
import io
import threading

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import Group
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection
from django.test import override_settings
from guardian.shortcuts import assign_perm, remove_perm
from PIL import Image

from reports import digests
from reports.digests import CHART_CID, digest_period, digests_send_due
from reports.models import DigestSent, ReportSubscription
from reports.selectors import Report, ReportFilters, ReportRange
from reports.services import subscription_subscribe
from tests.factories import UserFactory
from tests.reports import scenario
from tests.reports.scenario import BERLIN

# Monday April 6, 2026, 07:00 in Berlin: last week is March 30 - April 5, last month is March.
MONDAY = dt.datetime(2026, 4, 6, 7, tzinfo=BERLIN)
BEFORE = dt.datetime(2026, 2, 20, tzinfo=dt.UTC)  # when the subscriptions were made


def staff(role, *tenants):
    user = UserFactory()
    user.groups.add(Group.objects.get(name=role))
    for tenant in tenants:
        assign_perm("members.access_tenant", user, tenant)
    return user


def subscribe(user, tenant, frequency="monthly", filters=None, at=BEFORE):
    with time_machine.travel(at, tick=False):
        return subscription_subscribe(user=user, tenant=tenant, frequency=frequency, filters=filters or {})


def run(at):
    with time_machine.travel(at, tick=False):
        return digests_send_due()


@pytest.mark.parametrize(
    ("frequency", "today", "first", "last"),
    [
        ("weekly", "2026-04-06", "2026-03-30", "2026-04-05"),  # a Monday: the week just over
        ("weekly", "2026-04-05", "2026-03-23", "2026-03-29"),  # a Sunday: its week is not over
        ("weekly", "2026-04-08", "2026-03-30", "2026-04-05"),
        ("monthly", "2026-04-01", "2026-03-01", "2026-03-31"),
        ("monthly", "2026-04-30", "2026-03-01", "2026-03-31"),
        ("monthly", "2026-01-15", "2025-12-01", "2025-12-31"),
        ("monthly", "2024-03-01", "2024-02-01", "2024-02-29"),
    ],
)
def test_digest_periods(frequency, today, first, last):
    got = digest_period(frequency, dt.date.fromisoformat(today))
    assert got == (dt.date.fromisoformat(first), dt.date.fromisoformat(last))


@pytest.mark.django_db
def test_a_monthly_digest_carries_the_months_figures_and_an_inline_chart(tenant):
    h, names = scenario.build(tenant)
    user = staff("Marketer", tenant)
    subscribe(user, tenant, "monthly", {"location": "berlin"})
    assert run(MONDAY) == 1
    (email,) = mail.outbox
    assert email.to == [user.email]
    assert "monthly" in email.subject and "2026-03-01" in email.subject and "2026-03-31" in email.subject
    with time_machine.travel(MONDAY, tick=False):
        expected = Report(
            ReportRange(tenant, scenario.FIRST, scenario.LAST), ReportFilters(location="berlin")
        ).summary()
    html, mimetype = email.alternatives[0]
    assert mimetype == "text/html"
    assert f'data-figure="orders.value">{expected["orders"]["value"]}<' in html
    assert f'data-figure="orders.count">{expected["orders"]["count"]}<' in html
    assert f"Order value: {expected['orders']['value']}" in email.body  # the text part
    assert f'src="cid:{CHART_CID}"' in html
    message = email.message()
    assert message.get_content_type() == "multipart/related"
    (image,) = [part for part in message.walk() if part.get_content_type() == "image/png"]
    assert image["Content-ID"] == f"<{CHART_CID}>"
    png = Image.open(io.BytesIO(image.get_payload(decode=True)))
    assert png.format == "PNG" and png.size == digests.CHART_SIZE


@pytest.mark.django_db
def test_each_period_goes_out_once_however_often_beat_runs(tenant):
    user = staff("Analyst", tenant)
    weekly = subscribe(user, tenant, "weekly")
    monthly = subscribe(user, tenant, "monthly")
    assert run(MONDAY) == 2
    assert run(MONDAY + dt.timedelta(hours=1)) == 0  # beat restarted, or the next hour's run
    assert run(MONDAY + dt.timedelta(days=3)) == 0
    assert len(mail.outbox) == 2
    assert run(MONDAY + dt.timedelta(days=7)) == 1  # the next week; the month is still April
    assert sorted(DigestSent.objects.values_list("subscription_id", "period_start")) == sorted(
        [
            (weekly.pk, dt.date(2026, 3, 30)),
            (weekly.pk, dt.date(2026, 4, 6)),
            (monthly.pk, dt.date(2026, 3, 1)),
        ]
    )
    assert not DigestSent.objects.filter(sent_at__isnull=True).exists()


@pytest.mark.django_db
def test_the_week_ends_at_the_tenants_midnight(tenant):
    subscribe(staff("Analyst", tenant), tenant, "weekly")
    assert run(dt.datetime(2026, 4, 5, 21, 30, tzinfo=dt.UTC)) == 1  # 23:30 in Berlin, still Sunday
    assert "2026-03-23" in mail.outbox[0].subject  # the week before is the last one over
    # 23:30 UTC on Sunday April 5 is 01:30 on Monday in Berlin: that week is over there.
    assert run(dt.datetime(2026, 4, 5, 23, 30, tzinfo=dt.UTC)) == 1
    assert "2026-03-30" in mail.outbox[1].subject


@pytest.mark.django_db
def test_a_period_that_ended_before_the_subscription_is_not_sent(tenant):
    subscribe(staff("Analyst", tenant), tenant, "monthly", at=dt.datetime(2026, 4, 2, tzinfo=dt.UTC))
    assert run(MONDAY) == 0  # March ended before the subscription
    assert run(dt.datetime(2026, 5, 1, 8, tzinfo=dt.UTC)) == 1  # April is its first


@pytest.mark.django_db
@pytest.mark.parametrize("change", ["inactive_user", "not_staff", "lost_role", "lost_tenant", "no_email", "cancelled"])
def test_only_staff_who_may_still_see_the_figures_get_them(tenant, change):
    user = staff("Marketer", tenant)
    subscription = subscribe(user, tenant)
    if change == "inactive_user":
        user.is_active = False
    elif change == "not_staff":
        user.is_staff = False
    elif change == "lost_role":
        user.groups.clear()
    elif change == "lost_tenant":
        remove_perm("members.access_tenant", user, tenant)
    elif change == "no_email":
        user.email = ""
    user.save()
    if change == "cancelled":
        ReportSubscription.objects.filter(pk=subscription.pk).update(active=False)
    assert run(MONDAY) == 0
    assert mail.outbox == []
    assert not DigestSent.objects.exists()  # nothing claimed: the period goes out if the right comes back


class BrokenBackend(BaseEmailBackend):
    def send_messages(self, messages):
        raise ConnectionError("the mail server is down")


@pytest.mark.django_db
def test_a_failed_send_is_retried_by_the_next_run(tenant):
    subscribe(staff("Analyst", tenant), tenant)
    with override_settings(EMAIL_BACKEND="tests.reports.test_digests.BrokenBackend"):
        assert run(MONDAY) == 0
    assert not DigestSent.objects.exists()  # the claim was given back
    assert run(MONDAY + dt.timedelta(hours=1)) == 1


@pytest.mark.django_db
def test_a_claim_left_by_a_crashed_run_is_taken_over_when_stale(tenant):
    subscription = subscribe(staff("Analyst", tenant), tenant)
    DigestSent.objects.create(
        subscription=subscription,
        period_start=dt.date(2026, 3, 1),
        period_end=dt.date(2026, 3, 31),
        claimed_at=MONDAY - dt.timedelta(minutes=10),
    )
    assert run(MONDAY) == 0  # another run may still be sending it
    assert run(MONDAY + dt.timedelta(minutes=25)) == 1  # 35 minutes without news: that run died
    assert DigestSent.objects.get().sent_at is not None


@pytest.mark.django_db
def test_a_digest_whose_segment_is_gone_is_not_sent_wider(tenant):
    _, names = scenario.build(tenant)
    subscription = subscribe(staff("Analyst", tenant), tenant, filters={"segment": names["segment"].pk})
    names["segment"].delete()
    assert run(MONDAY) == 0
    assert mail.outbox == [] and not DigestSent.objects.filter(subscription=subscription).exists()


def test_beat_runs_the_digests_every_hour():
    entry = settings.CELERY_BEAT_SCHEDULE["reports-digests"]
    assert entry["task"] == "reports.tasks.send_digests"
    assert entry["schedule"].minute == {20} and len(entry["schedule"].hour) == 24


@pytest.mark.django_db
def test_the_task_sends_the_due_digests(tenant):
    from reports.tasks import send_digests

    subscribe(staff("Analyst", tenant), tenant)
    with time_machine.travel(MONDAY, tick=False):
        assert send_digests.apply().get() == {"sent": 1}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_send_each_period_once(tenant):
    users = [staff("Analyst", tenant) for _ in range(3)]
    for user in users:
        subscribe(user, tenant, "weekly")
        subscribe(user, tenant, "monthly")
    barrier = threading.Barrier(4)
    counts, errors = [], []

    def sweep():
        try:
            barrier.wait(timeout=10)
            counts.append(digests_send_due(now=MONDAY))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sum(counts) == 6
    assert len(mail.outbox) == 6
    assert sorted((m.to[0], "weekly" in m.subject) for m in mail.outbox) == sorted(
        (u.email, weekly) for u in users for weekly in (True, False)
    )
    assert DigestSent.objects.count() == 6
