"""Consent per channel: the service's semantics, and sending that checks the channel at the moment of sending."""

import pytest
import time_machine
from django.core import mail

from campaigns.emails import code_email_send
from campaigns.services import publication_create
from common.errors import ApplicationError
from members.services import member_consent_set, member_upsert
from tests.factories import CampaignFactory, CodeFactory, MemberFactory

pytestmark = pytest.mark.django_db


def test_member_consent_set_records_only_changes_with_source_and_time(tenant):
    member, _ = member_upsert(tenant=tenant, external_id="c-1", email="a@b.example")
    assert (member.email_consent, member.marketing_consent) == (False, False)
    assert member.consent_changes.count() == 0  # nothing was said about consent
    with time_machine.travel("2026-05-01 08:00:00+00:00", tick=False):
        member = member_consent_set(member=member, consent={"email": True, "sms": False}, source="cockpit")
    assert member.email_consent and member.marketing_consent
    assert member.email_consent_changed_at.isoformat() == "2026-05-01T08:00:00+00:00"
    assert member.marketing_consent_changed_at.isoformat() == "2026-05-01T08:00:00+00:00"
    assert member.sms_consent_changed_at is None  # sms was already off
    assert list(member.consent_changes.values_list("channel", "granted", "source")) == [("email", True, "cockpit")]
    member_consent_set(member=member, consent={"email": True})
    assert member.consent_changes.count() == 1


def test_member_consent_set_refuses_unknown_channels(tenant):
    member = MemberFactory(tenant=tenant)
    with pytest.raises(ApplicationError) as refused:
        member_consent_set(member=member, consent={"letter": True})
    assert "consent.letter" in refused.value.details
    assert member.consent_changes.count() == 0


def test_marketing_consent_on_create_sets_every_channel_and_is_recorded(tenant):
    member, _ = member_upsert(tenant=tenant, external_id="c-2", email="a@b.example", marketing_consent=True)
    assert (member.email_consent, member.sms_consent, member.push_consent) == (True, True, True)
    assert sorted(member.consent_changes.values_list("channel", flat=True)) == ["email", "push", "sms"]


def test_code_email_is_skipped_when_email_consent_is_off_at_sending_time(tenant):
    campaign = CampaignFactory(tenant=tenant)
    CodeFactory(campaign=campaign)
    member = MemberFactory(tenant=tenant, marketing_consent=True)
    publication, _ = publication_create(tenant=tenant, campaign=campaign, member=member)
    member_consent_set(member=member, consent={"email": False})  # sms and push stay on
    member.refresh_from_db()
    assert member.marketing_consent is True
    assert code_email_send(publication_id=publication.pk) is False
    assert mail.outbox == []
    member_consent_set(member=member, consent={"email": True})
    assert code_email_send(publication_id=publication.pk) is True
    assert [m.to for m in mail.outbox] == [[member.email]]
