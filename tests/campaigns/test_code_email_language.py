"""The code's email and its reminder speak the member's language: their tenant's locale, else English."""

import datetime as dt

import pytest
import time_machine
from django.core import mail

from campaigns.emails import code_email_send
from campaigns.reminders import reminder_step_save, reminders_send_due
from campaigns.services import publication_create
from tests.factories import CampaignFactory, CodeFactory, MemberFactory, TenantFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
T0 = dt.datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def give_code(locale: str):
    tenant = TenantFactory(locale=locale, name="Kaffeehaus")
    campaign = CampaignFactory(tenant=tenant, name="Sommer")
    # 23:30 UTC on 30 June is already 1 July in Berlin, the tenant's time zone: the email dates it the tenant's way.
    CodeFactory(campaign=campaign, code="SUN-1", expires_at=dt.datetime(2026, 6, 30, 23, 30, tzinfo=UTC))
    member = MemberFactory(tenant=tenant, name="Ada", email="ada@example.com", email_consent=True)
    with time_machine.travel(T0, tick=False):
        publication, _ = publication_create(tenant=tenant, campaign=campaign, member=member)
        assert code_email_send(publication_id=publication.pk) is True
    (email,) = mail.outbox
    html = email.alternatives[0][0]
    return email, html


@pytest.mark.parametrize(
    ("locale", "language", "subject", "words", "date"),
    [
        (
            "de_DE",
            "de",
            "Ein Code für Sie von Kaffeehaus",
            ["Hallo Ada,", "Hier ist Ihr Code für Sommer:"],
            "1. Juli 2026",
        ),
        ("tr-TR", "tr", "Kaffeehaus size bir kod gönderdi", ["Merhaba Ada,", "Sommer için kodunuz:"], "01 Temmuz 2026"),
        ("xx", "en", "A code for you from Kaffeehaus", ["Hello Ada,", "Here is your code for Sommer:"], "July 1, 2026"),
    ],
)
def test_the_code_email_is_in_the_tenants_language(locale, language, subject, words, date):
    email, html = give_code(locale)
    assert email.subject == subject
    assert email.extra_headers["Content-Language"] == language
    for body in (email.body, html):
        assert "SUN-1" in body and date in body
        for word in words:
            assert word in body
    assert f'<html lang="{language}">' in html


def test_a_german_reminder_is_german_and_its_own_subject_is_kept():
    tenant = TenantFactory(locale="de")
    campaign = CampaignFactory(tenant=tenant, name="Sommer")
    CodeFactory(campaign=campaign)
    with time_machine.travel(T0 - dt.timedelta(days=1), tick=False):
        reminder_step_save(campaign=campaign, days_after=3, message="Noch da.")
        reminder_step_save(campaign=campaign, days_after=10, message="Zuletzt.", subject="Letzte Chance")
    member = MemberFactory(tenant=tenant, email_consent=True)
    with time_machine.travel(T0, tick=False):
        publication_create(tenant=tenant, campaign=campaign, member=member)
    with time_machine.travel(T0 + dt.timedelta(days=3), tick=False):
        assert reminders_send_due().sent == 1
    with time_machine.travel(T0 + dt.timedelta(days=10), tick=False):
        assert reminders_send_due().sent == 1
    first, last = mail.outbox
    assert first.subject == "Ihr Code für Sommer wartet auf Sie"
    assert "Ihr Code für Sommer wartet noch darauf, eingelöst zu werden:" in first.body
    assert first.extra_headers["Content-Language"] == "de"
    assert last.subject == "Letzte Chance" and "Zuletzt." in last.body
