"""Consent per channel through `PUT /api/v1/members/{external_id}` and the member object."""

import pytest
import time_machine

from members.models import ConsentChange, Member
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db


def test_consent_per_channel_round_trips_with_the_time_each_changed(api, tenant):
    with time_machine.travel("2026-03-01 09:00:00+00:00", tick=False):
        created = api.put(
            "/api/v1/members/c-1", {"email": "a@b.example", "consent": {"email": True, "sms": False}}, format="json"
        )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["consent"] == {"email": True, "sms": False, "push": False}
    assert body["marketing_consent"] is True
    assert body["consent_changed_at"] == {
        "email": "2026-03-01T09:00:00+00:00",
        "sms": "2026-03-01T09:00:00+00:00",
        "push": None,
    }
    with time_machine.travel("2026-03-05 12:00:00+00:00", tick=False):
        updated = api.put("/api/v1/members/c-1", {"consent": {"push": True, "email": True}}, format="json")
    assert updated.status_code == 200, updated.content
    body = updated.json()
    assert body["consent"] == {"email": True, "sms": False, "push": True}
    # Email did not change, so its time stays; push changed now.
    assert body["consent_changed_at"]["email"] == "2026-03-01T09:00:00+00:00"
    assert body["consent_changed_at"]["push"] == "2026-03-05T12:00:00+00:00"
    assert api.get("/api/v1/members/c-1").json()["consent"] == body["consent"]
    member = Member.objects.get(tenant=tenant, external_id="c-1")
    changes = member.consent_changes.order_by("changed_at", "channel")
    assert list(changes.values_list("channel", "granted", "source")) == [
        ("email", True, "api"),
        ("sms", False, "api"),
        ("push", True, "api"),
    ]


def test_marketing_consent_writes_every_channel_and_reads_any(api, tenant):
    api.put("/api/v1/members/c-2", {"email": "a@b.example", "marketing_consent": True}, format="json")
    body = api.put("/api/v1/members/c-2", {"consent": {"email": False, "sms": False}}, format="json").json()
    assert body["consent"] == {"email": False, "sms": False, "push": True}
    assert body["marketing_consent"] is True  # push is still on
    body = api.put("/api/v1/members/c-2", {"consent": {"push": False}}, format="json").json()
    assert body["marketing_consent"] is False
    body = api.put("/api/v1/members/c-2", {"marketing_consent": True}, format="json").json()
    assert body["consent"] == {"email": True, "sms": True, "push": True} and body["marketing_consent"] is True
    # Both given: marketing_consent sets every channel first, then `consent` names the exceptions.
    body = api.put("/api/v1/members/c-2", {"marketing_consent": False, "consent": {"sms": True}}, format="json")
    assert body.json()["consent"] == {"email": False, "sms": True, "push": False}


def test_bad_consent_is_refused_and_changes_nothing(api, tenant):
    api.put("/api/v1/members/c-3", {"email": "a@b.example", "marketing_consent": True}, format="json")
    before = ConsentChange.objects.count()
    response = api.put("/api/v1/members/c-3", {"consent": {"email": "no"}}, format="json")
    assert_error(response, 400, "validation_error")
    response = api.put("/api/v1/members/c-3", {"consent": {"fax": True}}, format="json")
    assert response.status_code == 400
    assert ConsentChange.objects.count() == before
    assert api.get("/api/v1/members/c-3").json()["consent"] == {"email": True, "sms": True, "push": True}
